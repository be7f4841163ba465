# Seed 002's Poisson-Gamma block simulation (generate_data(N, K, M, mode='block')).
from scfactor.smk.layers import simulate_blocks_args


validate_section("simulate.blocks", "simulate_blocks.schema.yaml")


rule simulate_blocks:
    """Simulate block-structured Poisson-Gamma counts with their true theta and beta."""
    output:
        h5ad=f"{RESULTS}/simulate/blocks.h5ad",
        nnmf_h5=f"{RESULTS}/simulate/blocks.h5",
    params:
        opts=simulate_blocks_args(config),
        script=script("simulate_blocks.py"),
    log:
        f"{LOGS}/simulate/blocks.log",
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} {params.opts} --output {output.h5ad} --nnmf-h5 {output.nnmf_h5} 2> {log}"
