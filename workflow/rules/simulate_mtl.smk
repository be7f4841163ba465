# Simulator (d): seed-001 layout with planted cluster-shared low-rank structure (config simulate.mtl).
from scfactor.smk.mtl import simulate_args



rule simulate_mtl:
    """Simulate rpkm/velo hdf5 + TF activity CSVs (seed 001 layout) and their ground truth."""
    output:
        rpkm=f"{RESULTS}/simulate/mtl/rpkm.hdf5",
        velo=f"{RESULTS}/simulate/mtl/velo.hdf5",
        e2s=f"{RESULTS}/simulate/mtl/ensembl_to_symbol.csv",
        tfs=f"{RESULTS}/simulate/mtl/tf_list.csv",
        act=directory(f"{RESULTS}/simulate/mtl/tf_activity"),
        truth=f"{RESULTS}/simulate/mtl/truth/genes.tsv",
        maps=f"{RESULTS}/simulate/mtl/truth/maps.h5",
    params:
        out=lambda wc, output: os.path.dirname(output.rpkm),
        opts=simulate_args(config),
        script=script("simulate_mtl.py"),
    log:
        f"{LOGS}/simulate/mtl.log",
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} {params.opts} --out-dir {params.out} 2> {log}"
