# Bundled reference data: verify checksums before anything reads it.


rule verify_resources:
    """Check every file listed in resources/SHA256SUMS against its checksum."""
    input:
        sums=os.path.join(config["resources_dir"], "SHA256SUMS"),
    output:
        RESOURCES_OK,
    params:
        script=script("verify_resources.py"),
    log:
        f"{LOGS}/verify_resources.log",
    threads: 1
    resources:
        mem_mb=mem_mb(500),
        runtime=runtime_min(5),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} --sums {input.sums} --output {output} 2> {log}"
