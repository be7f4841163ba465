# Bundled reference data: verify checksums before anything reads it.


rule verify_resources:
    """Check every file listed in resources/SHA256SUMS against its checksum."""
    input:
        sums=RESOURCE_SUMS,
        files=listed_resources(RESOURCE_SUMS),
    output:
        RESOURCES_OK,
    params:
        cmd=command("verify_resources.py"),
    log:
        log_path("verify_resources"),
    threads: 1
    resources:
        mem_mb=mem_mb(500),
        runtime=runtime_min(5),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --sums {input.sums:q} --output {output:q} 2> {log:q}"
