# NeuMF densification (scfactor.densify; the NeuMF/LIGER notebook), then its held-out figure, per (dataset, batch):
# one TensorFlow job (rule densify, densify_job.smk) or, with densify.predict_shards = K > 1, the fan-out of
# densify_fanout.smk (a training job, K prediction shards, a gather job; the same output byte for byte).
from scfactor.densify.smk import densify_command, densify_files, densify_pairs, predict_shards, shard_files  # noqa: E402



DENSIFY_PAIRS = densify_pairs(config)

if predict_shards(config) > 1:

    include: "densify_fanout.smk"

else:

    include: "densify_job.smk"


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
