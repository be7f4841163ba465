# Preprocessing: read counts, split batches, QC, normalise, flag LIGER / HVG genes.


rule preprocess:
    """Read one dataset's counts, QC-filter per batch, normalise and flag selected genes."""
    input:
        lambda wc: resource_inputs(dataset(wc.dataset)["path"]),
    output:
        h5ad=f"{RESULTS}/preprocess/{{dataset}}.h5ad",
        qc=f"{RESULTS}/preprocess/{{dataset}}.qc.tsv",
        fig=report(
            f"{RESULTS}/figures/qc/{{dataset}}.png",
            caption="../report/qc.rst",
            category="QC",
            labels={"dataset": "{dataset}"},
        ),
    params:
        path=lambda wc: dataset(wc.dataset)["path"],
        opts=lambda wc: preprocess_args(config, wc.dataset),
        script=script("preprocess.py"),
    log:
        f"{LOGS}/preprocess/{{dataset}}.log",
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime_min(20),
    retries: 1
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} --input {params.path} {params.opts} "
        "--output {output.h5ad} --qc-table {output.qc} --qc-figure {output.fig} 2> {log}"


TARGETS.extend(f"{RESULTS}/figures/qc/{name}.png" for name in config["datasets"])
