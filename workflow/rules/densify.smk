# NeuMF densification (scfactor.densify; the NeuMF/LIGER notebook): one TensorFlow job per (dataset, batch),
# then its held-out figure.
from scfactor.densify.smk import densify_command, densify_files, densify_pairs  # noqa: E402



DENSIFY_PAIRS = densify_pairs(config)


rule densify:
    """Train NeuMF on one batch's counts (a seeded share of nonzeros held out), predict the dense matrix."""
    input:
        h5ad=lambda wc: preprocessed(wc.dataset),
        option_files=densify_files(config),
    output:
        h5ad=f"{RESULTS}/densify/{{dataset}}/{{batch}}.h5ad",
        heldout=f"{RESULTS}/densify/{{dataset}}/{{batch}}.heldout.tsv",
    params:
        cmd=command("densify.py"),
        opts=lambda wc, input: densify_command(config, staged_files(densify_files(config), input.option_files)),
        ckpt=lambda wc: state_path(f"{RESULTS}/densify/checkpoints/{wc.dataset}/{wc.batch}"),
    log:
        log_path("densify", "dataset", "batch"),
    threads: config["densify"]["threads"]
    resources:
        mem_mb=mem_mb(config["densify"]["mem_mb"]),
        runtime=runtime_min(config["densify"]["runtime"]),
        gpu=1,
        tpu=1,
    conda:
        "../../envs/tensorflow.yaml"
    shell:
        "{params.cmd} --input {input.h5ad:q} --batch {wildcards.batch:q} {params.opts} --threads {threads} "
        "--checkpoint-dir {params.ckpt:q} --output {output.h5ad:q} --heldout-table {output.heldout:q} 2> {log:q}"


rule densify_figure:
    """Held-out NeuMF predictions vs observed counts (and the SVD baseline, loss trace)."""
    input:
        f"{RESULTS}/densify/{{dataset}}/{{batch}}.h5ad",
    output:
        heldout=report(
            f"{RESULTS}/figures/densify/{{dataset}}/{{batch}}.heldout.png",
            caption="../report/densify_heldout.rst",
            category="Densification (NeuMF)",
            labels={"dataset": "{dataset}", "batch": "{batch}"},
        ),
        heldout_pdf=f"{RESULTS}/figures/densify/{{dataset}}/{{batch}}.heldout.pdf",
    params:
        cmd=command("densify_figure.py"),
        title=lambda wc: f"{wc.dataset} {wc.batch}",
    log:
        log_path("densify_figure", "dataset", "batch"),
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --input {input:q} --title {params.title:q} --threads {threads} "
        "--figure {output.heldout:q} 2> {log:q}"


TARGETS.extend(f"{RESULTS}/figures/densify/{d}/{b}.heldout.png" for d, b in DENSIFY_PAIRS)
