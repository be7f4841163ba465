# NeuMF densification (seed 000): one TensorFlow job per (dataset, batch), then its held-out figure.
from scfactor.smk.densify import densify_args, densify_pairs



DENSIFY_PAIRS = densify_pairs(config)


rule densify:
    """Train NeuMF on one batch's counts (10% of nonzeros held out), predict the dense matrix."""
    input:
        lambda wc: preprocessed(wc.dataset),
    output:
        h5ad=f"{RESULTS}/densify/{{dataset}}/{{batch}}.h5ad",
        heldout=f"{RESULTS}/densify/{{dataset}}/{{batch}}.heldout.tsv",
    wildcard_constraints:
        dataset="[^/]+",
        batch="[^/]+",
    params:
        opts=lambda wc: densify_args(config),
        ckpt=lambda wc: f"{RESULTS}/densify/{wc.dataset}/{wc.batch}.ckpt",
        script=script("densify.py"),
    log:
        f"{LOGS}/densify/{{dataset}}/{{batch}}.log",
    threads: config["densify"]["threads"]
    resources:
        mem_mb=mem_mb(config["densify"]["mem_mb"]),
        runtime=runtime_min(config["densify"]["runtime"]),
        gpu=1,
        tpu=1,
    retries: 1
    conda:
        "../../envs/tensorflow.yaml"
    shell:
        "python {params.script} --input {input} --batch {wildcards.batch} {params.opts} "
        "--threads {threads} --checkpoint-dir {params.ckpt} "
        "--output {output.h5ad} --heldout-table {output.heldout} 2> {log}"


rule densify_figure:
    """Held-out NeuMF predictions vs observed counts (and the SVD baseline, loss trace)."""
    input:
        f"{RESULTS}/densify/{{dataset}}/{{batch}}.h5ad",
    output:
        png=report(
            f"{RESULTS}/figures/densify/{{dataset}}/{{batch}}.heldout.png",
            caption="../report/densify_heldout.rst",
            category="Densification (NeuMF)",
            labels={"dataset": "{dataset}", "batch": "{batch}"},
        ),
        pdf=f"{RESULTS}/figures/densify/{{dataset}}/{{batch}}.heldout.pdf",
    wildcard_constraints:
        dataset="[^/]+",
        batch="[^/]+",
    params:
        script=script("densify_figure.py"),
    log:
        f"{LOGS}/densify_figure/{{dataset}}/{{batch}}.log",
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} --input {input} --title '{wildcards.dataset} {wildcards.batch}' "
        "--output {output.png} --output-pdf {output.pdf} 2> {log}"


TARGETS.extend(f"{RESULTS}/figures/densify/{d}/{b}.heldout.png" for d, b in DENSIFY_PAIRS)
