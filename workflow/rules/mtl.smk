# Trace-norm multi-task learning (scfactor.mtl; the trace-norm MTL notebook, MTLRank): velocity ~ TF
# expression x TF activity. Runs are the entries of mtl.datasets (wildcard {run}). Fan-out: one
# mtl_train_shard job per (run, tissue, model, cluster, replicate), one file each:
#   results/mtl/{run}/{tissue}/shards/{model}/c{cluster}_r{rep}.tsv (+ .weights.npz)
from scfactor.core.config import check_names  # noqa: E402
from scfactor.mtl.smk import (  # noqa: E402
    gene_clusters_command,
    lasso_command,
    layout_inputs,
    runs,
    select_genes_command,
    shards,
    targets,
    tf_activity_command,
    tissues,
    train_shard_command,
    velocity_command,
)

# tissue names become wildcards too (run names are checked with the rest of the config in common.smk)
for _run in runs(config):
    check_names(f"mtl.datasets.{_run}.tissues", tissues(config, _run))

MTL = f"{RESULTS}/mtl"
MTL_H5AD_RE = "|".join(runs(config, "h5ad")) or "__no_h5ad_run__"
MTL_RUN_RE = "|".join(runs(config)) or "__no_mtl_run__"


rule mtl_velocity:
    """Steady-state RNA velocity + CPM expression of a spliced/unspliced .h5ad, as rpkm.hdf5 / velo.hdf5."""
    input:
        h5ad=lambda wc: resource_inputs(config["mtl"]["datasets"][wc.run]["path"]),
    output:
        rpkm=f"{MTL}/{{run}}/input/rpkm.hdf5",
        velo=f"{MTL}/{{run}}/input/velo.hdf5",
        e2s=f"{MTL}/{{run}}/input/ensembl_to_symbol.csv",
    wildcard_constraints:
        run=MTL_H5AD_RE,
    params:
        cmd=command("mtl_velocity.py"),
        h5ad=lambda wc, input: input.h5ad[0],
        out=lambda wc, output: staged_dir(output),
        opts=lambda wc: velocity_command(config, wc.run),
    log:
        log_path("mtl_velocity", "run"),
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime_min(20),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --input {params.h5ad:q} {params.opts} --threads {threads} --out-dir {params.out:q} 2> {log:q}"


rule mtl_tf_activity:
    """Gene x TF mean/sum activity per tissue from the DoRothEA prior (stand-in for ATAC) + tf_list.csv."""
    input:
        rpkm=f"{MTL}/{{run}}/input/rpkm.hdf5",
        velo=f"{MTL}/{{run}}/input/velo.hdf5",
        prior=resource_inputs(config["mtl"]["tf_activity"]["prior"]),
        census=resource_inputs(config["mtl"]["tf_activity"]["tf_list"]),
        orthologs=resource_inputs(config["mtl"]["tf_activity"]["orthologs"]),
    output:
        tfs=f"{MTL}/{{run}}/input/tf_list.csv",
        act=directory(f"{MTL}/{{run}}/input/tf_activity"),
    wildcard_constraints:
        run=MTL_H5AD_RE,
    params:
        cmd=command("mtl_tf_activity.py"),
        out=lambda wc, output: staged_dir(output),
        opts=lambda wc, input: tf_activity_command(
            config, wc.run, prior=input.prior[0], tf_list=input.census[0], orthologs=input.orthologs[0]
        ),
    log:
        log_path("mtl_tf_activity", "run"),
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --layout {params.out:q} {params.opts} --threads {threads} 2> {log:q}"


rule mtl_lasso:
    """Per-gene LassoCV baseline of one tissue on the MTL train/test splits (lasso_r2.csv)."""
    input:
        layout=lambda wc: layout_inputs(config, RESULTS, wc.run, wc.tissue),
    output:
        f"{MTL}/{{run}}/{{tissue}}/lasso_r2.csv",
    wildcard_constraints:
        run=MTL_RUN_RE,
        tissue=NAME,
    params:
        cmd=command("mtl_lasso.py"),
        root=lambda wc, input: staged_dir(input.layout),
        opts=lambda wc: lasso_command(config, wc.run),
    log:
        log_path("mtl_lasso", "run", "tissue"),
    threads: config["mtl"]["lasso"]["threads"]
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime_min(60),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --layout {params.root:q} --tissue {wildcards.tissue:q} {params.opts} "
        "--threads {threads} --output {output:q} 2> {log:q}"


rule mtl_select_genes:
    """Genes with velocity in >= min_cells cells and a lasso result; a seeded random num_genes."""
    input:
        layout=lambda wc: layout_inputs(config, RESULTS, wc.run, wc.tissue),
        lasso=f"{MTL}/{{run}}/{{tissue}}/lasso_r2.csv",
    output:
        f"{MTL}/{{run}}/{{tissue}}/genes.tsv",
    wildcard_constraints:
        run=MTL_RUN_RE,
        tissue=NAME,
    params:
        cmd=command("mtl_select_genes.py"),
        root=lambda wc, input: staged_dir(input.layout),
        opts=lambda wc: select_genes_command(config, wc.run),
    log:
        log_path("mtl_select_genes", "run", "tissue"),
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --layout {params.root:q} --tissue {wildcards.tissue:q} --lasso-table {input.lasso:q} "
        "{params.opts} --threads {threads} --output {output:q} 2> {log:q}"


rule mtl_gene_clusters:
    """Balanced KMeansConstrained clusters of the selected genes on mean-imputed velocity."""
    input:
        layout=lambda wc: layout_inputs(config, RESULTS, wc.run, wc.tissue),
        genes=f"{MTL}/{{run}}/{{tissue}}/genes.tsv",
    output:
        f"{MTL}/{{run}}/{{tissue}}/clusters.tsv",
    wildcard_constraints:
        run=MTL_RUN_RE,
        tissue=NAME,
    params:
        cmd=command("mtl_gene_clusters.py"),
        root=lambda wc, input: staged_dir(input.layout),
        opts=lambda wc: gene_clusters_command(config, wc.run),
    log:
        log_path("mtl_gene_clusters", "run", "tissue"),
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(20),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --layout {params.root:q} --tissue {wildcards.tissue:q} --genes {input.genes:q} "
        "{params.opts} --threads {threads} --output {output:q} 2> {log:q}"


rule mtl_train_shard:
    """Train + test the batched trace-norm model of one (tissue, cluster, replicate) shard; own files only."""
    input:
        layout=lambda wc: layout_inputs(config, RESULTS, wc.run, wc.tissue),
        clusters=f"{MTL}/{{run}}/{{tissue}}/clusters.tsv",
    output:
        tsv=f"{MTL}/{{run}}/{{tissue}}/shards/{{model}}/c{{cluster}}_r{{rep}}.tsv",
        weights=f"{MTL}/{{run}}/{{tissue}}/shards/{{model}}/c{{cluster}}_r{{rep}}.weights.npz",
    wildcard_constraints:
        run=MTL_RUN_RE,
        tissue=NAME,
        model="tracenorm|lambda0",
        cluster=r"\d+",
        rep=r"\d+",
    params:
        cmd=command("mtl_train_shard.py"),
        root=lambda wc, input: staged_dir(input.layout),
        ckpt=lambda wc: state_path(f"{MTL}/checkpoints/{wc.run}/{wc.tissue}/{wc.model}/c{wc.cluster}_r{wc.rep}"),
        opts=lambda wc: train_shard_command(config, wc.run, wc.model),
    log:
        log_path("mtl_train_shard", "run", "tissue", "model", "cluster", "rep"),
    threads: config["mtl"]["train"]["threads"]
    resources:
        mem_mb=mem_mb(config["mtl"]["train"]["mem_mb"]),
        runtime=runtime_min(config["mtl"]["train"]["runtime"]),
        # only the TensorFlow engine can use an accelerator; the numpy engine (default) asks for none
        gpu=int(config["mtl"]["train"]["engine"] == "tensorflow"),
        tpu=int(config["mtl"]["train"]["engine"] == "tensorflow"),
    conda:
        "../../envs/tensorflow.yaml"
    shell:
        "{params.cmd} --layout {params.root:q} --tissue {wildcards.tissue:q} --clusters {input.clusters:q} "
        "--cluster {wildcards.cluster:q} --rep {wildcards.rep:q} --model {wildcards.model:q} {params.opts} "
        "--threads {threads} --checkpoint-dir {params.ckpt:q} --output {output.tsv:q} "
        "--weights {output.weights:q} 2> {log:q}"


rule mtl_aggregate:
    """One R2 table (joined with the lasso on the same splits) and per-tissue summaries of a run."""
    input:
        shards=lambda wc: shards(config, RESULTS, wc.run),
        lasso=lambda wc: [f"{MTL}/{wc.run}/{t}/lasso_r2.csv" for t in tissues(config, wc.run)],
    output:
        r2=f"{MTL}/{{run}}/r2.tsv",
        summary=f"{MTL}/{{run}}/summary.tsv",
    wildcard_constraints:
        run=MTL_RUN_RE,
    params:
        cmd=command("mtl_aggregate.py"),
    log:
        log_path("mtl_aggregate", "run"),
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --shards {input.shards:q} --lasso-tables {input.lasso:q} --threads {threads} "
        "--output {output.r2:q} --summary {output.summary:q} 2> {log:q}"


rule mtl_figures:
    """Test R2 per gene: MTL vs lasso and vs lambda = 0 per tissue; R2 distribution per gene cluster."""
    input:
        f"{MTL}/{{run}}/r2.tsv",
    output:
        comparison=report(
            f"{RESULTS}/figures/mtl/{{run}}_comparison.png",
            caption="../report/mtl_comparison.rst",
            category="Trace-norm MTL",
            labels={"run": "{run}", "figure": "MTL vs lasso / lambda=0"},
        ),
        comparison_pdf=f"{RESULTS}/figures/mtl/{{run}}_comparison.pdf",
        clusters=report(
            f"{RESULTS}/figures/mtl/{{run}}_clusters.png",
            caption="../report/mtl_clusters.rst",
            category="Trace-norm MTL",
            labels={"run": "{run}", "figure": "R2 per cluster"},
        ),
        clusters_pdf=f"{RESULTS}/figures/mtl/{{run}}_clusters.pdf",
    wildcard_constraints:
        run=MTL_RUN_RE,
    params:
        cmd=command("mtl_figures.py"),
    log:
        log_path("mtl_figures", "run"),
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --r2 {input:q} --run {wildcards.run:q} --threads {threads} "
        "--comparison {output.comparison:q} --clusters {output.clusters:q} 2> {log:q}"


TARGETS.extend(targets(config, RESULTS))
