# The densify job of one (dataset, batch): train, predict, write (densify.predict_shards: 1, the default).


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
