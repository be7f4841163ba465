# The multilayer NMF notebook's Poisson-Gamma block simulation (scfactor.layers.simulate).
from scfactor.layers.smk import simulate_blocks_command  # noqa: E402




rule simulate_blocks:
    """Simulate block-structured Poisson-Gamma counts with their true theta and beta."""
    output:
        h5ad=f"{RESULTS}/simulate/blocks.h5ad",
        nnmf_h5=f"{RESULTS}/simulate/blocks.h5",
    params:
        cmd=command("simulate_blocks.py"),
        opts=lambda wc: simulate_blocks_command(config),
    log:
        log_path("simulate_blocks"),
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} {params.opts} --threads {threads} --output {output.h5ad:q} "
        "--nnmf-h5 {output.nnmf_h5:q} 2> {log:q}"
