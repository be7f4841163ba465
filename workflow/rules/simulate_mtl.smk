# Simulator (d) (scfactor.mtl.simulate): the trace-norm MTL notebook's layout with planted
# cluster-shared low-rank structure (config simulate.mtl).
from scfactor.mtl.smk import simulate_command as simulate_mtl_command  # noqa: E402



rule simulate_mtl:
    """Simulate rpkm/velo hdf5 + TF activity CSVs (the notebook's layout) and their ground truth."""
    output:
        rpkm=f"{RESULTS}/simulate/mtl/rpkm.hdf5",
        velo=f"{RESULTS}/simulate/mtl/velo.hdf5",
        e2s=f"{RESULTS}/simulate/mtl/ensembl_to_symbol.csv",
        tfs=f"{RESULTS}/simulate/mtl/tf_list.csv",
        act=directory(f"{RESULTS}/simulate/mtl/tf_activity"),
        truth=f"{RESULTS}/simulate/mtl/truth/genes.tsv",
        maps=f"{RESULTS}/simulate/mtl/truth/maps.h5",
    params:
        cmd=command("simulate_mtl.py"),
        out=lambda wc, output: staged_dir(output),
        opts=simulate_mtl_command(config),
    log:
        log_path("simulate_mtl"),
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} {params.opts} --threads {threads} --out-dir {params.out:q} 2> {log:q}"
