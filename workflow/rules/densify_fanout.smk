# The densify fan-out of one (dataset, batch) (densify.predict_shards = K > 1; docs/densify.md, "Fan-out"):
# densify_train writes the model file, K densify_predict jobs each predict a contiguous range of whole
# prediction blocks into a shard (temporary: deleted once the output is written), densify_gather streams
# the shards into the same output the single densify job writes. Each job gets densify's threads, mem_mb and
# runtime (upper bounds: each does a part of the single job's work). The shards share the job group
# `densify_predict`: on a cluster, `--group-components densify_predict=N` submits N ready shards as one job.

DENSIFY_FANOUT = f"{RESULTS}/densify/fanout/{{dataset}}/{{batch}}"


rule densify_train:
    """Train NeuMF on one batch's counts (a seeded share of nonzeros held out); write the model file."""
    input:
        h5ad=lambda wc: preprocessed(wc.dataset),
        option_files=densify_files(config),
    output:
        model=f"{DENSIFY_FANOUT}/model.npz",
    params:
        cmd=command("densify_train.py"),
        opts=lambda wc, input: densify_command(config, staged_files(densify_files(config), input.option_files)),
        ckpt=lambda wc: state_path(f"{RESULTS}/densify/checkpoints/{wc.dataset}/{wc.batch}"),
    log:
        log_path("densify_train", "dataset", "batch"),
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
        "--checkpoint-dir {params.ckpt:q} --model {output.model:q} 2> {log:q}"


rule densify_predict:
    """Predict one shard of the dense matrix (a contiguous range of whole prediction blocks) from the model file."""
    input:
        model=f"{DENSIFY_FANOUT}/model.npz",
        option_files=densify_files(config),
    output:
        temp(f"{DENSIFY_FANOUT}/shard{{shard}}.npy"),
    wildcard_constraints:
        shard=r"\d+",
    params:
        cmd=command("densify_predict.py"),
        opts=lambda wc, input: densify_command(config, staged_files(densify_files(config), input.option_files)),
        shards=predict_shards(config),
    log:
        log_path("densify_predict", "dataset", "batch", "shard"),
    group:
        "densify_predict"
    threads: config["densify"]["threads"]
    resources:
        mem_mb=mem_mb(config["densify"]["mem_mb"]),
        runtime=runtime_min(config["densify"]["runtime"]),
        gpu=1,
    conda:
        "../../envs/tensorflow.yaml"
    shell:
        "{params.cmd} --model {input.model:q} --shard {wildcards.shard} --shards {params.shards} {params.opts} "
        "--threads {threads} --output {output:q} 2> {log:q}"


rule densify_gather:
    """Write one batch's densify output from its prediction shards; score the held-out entries."""
    input:
        h5ad=lambda wc: preprocessed(wc.dataset),
        option_files=densify_files(config),
        model=f"{DENSIFY_FANOUT}/model.npz",
        shards=lambda wc: shard_files(f"{DENSIFY_FANOUT}/shard{{shard}}.npy", config, **wc),
    output:
        h5ad=f"{RESULTS}/densify/{{dataset}}/{{batch}}.h5ad",
        heldout=f"{RESULTS}/densify/{{dataset}}/{{batch}}.heldout.tsv",
    params:
        cmd=command("densify_gather.py"),
        opts=lambda wc, input: densify_command(config, staged_files(densify_files(config), input.option_files)),
    log:
        log_path("densify_gather", "dataset", "batch"),
    threads: config["densify"]["threads"]
    resources:
        mem_mb=mem_mb(config["densify"]["mem_mb"]),
        runtime=runtime_min(config["densify"]["runtime"]),
    conda:
        "../../envs/tensorflow.yaml"
    shell:
        "{params.cmd} --input {input.h5ad:q} --batch {wildcards.batch:q} {params.opts} --threads {threads} "
        "--model {input.model:q} --predictions {input.shards:q} --output {output.h5ad:q} "
        "--heldout-table {output.heldout:q} 2> {log:q}"
