# Trace-norm multi-task learning (seed 001, MTLRank): velocity ~ TF expression x TF activity.
# Fan-out: one train_shard job per (dataset, tissue, model, cluster, replicate), one file each:
#   results/mtl/{dataset}/{tissue}/shards/{model}/c{cluster}_r{rep}.tsv (+ .weights.npz)
from scfactor.smk.mtl import (
    lasso_args,
    mtl_datasets,
    mtl_layout_inputs,
    mtl_root,
    mtl_shards,
    mtl_targets,
    mtl_tissues,
    setting,
    shard_args,
    tf_activity_args,
    velocity_args,
)


MTL = f"{RESULTS}/mtl"
MTL_H5AD = [n for n in mtl_datasets(config) if config["mtl"]["datasets"][n]["source"] == "h5ad"]
MTL_H5AD_RE = "|".join(MTL_H5AD) or "__no_h5ad_dataset__"
MTL_DS_RE = "|".join(mtl_datasets(config)) or "__no_mtl_dataset__"


rule mtl_velocity:
    """Steady-state RNA velocity + CPM expression of a spliced/unspliced .h5ad, as rpkm.hdf5 / velo.hdf5."""
    input:
        lambda wc: resource_inputs(config["mtl"]["datasets"][wc.dataset]["path"]),
    output:
        rpkm=f"{MTL}/{{dataset}}/input/rpkm.hdf5",
        velo=f"{MTL}/{{dataset}}/input/velo.hdf5",
        e2s=f"{MTL}/{{dataset}}/input/ensembl_to_symbol.csv",
    wildcard_constraints:
        dataset=MTL_H5AD_RE,
    params:
        path=lambda wc: config["mtl"]["datasets"][wc.dataset]["path"],
        out=lambda wc: f"{MTL}/{wc.dataset}/input",
        opts=lambda wc: velocity_args(config, wc.dataset),
        script=script("mtl_velocity.py"),
    log:
        f"{LOGS}/mtl/{{dataset}}/velocity.log",
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime_min(20),
    retries: 1
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} --input {params.path} {params.opts} --out-dir {params.out} 2> {log}"


rule mtl_tf_activity:
    """Gene x TF mean/sum activity per tissue from the DoRothEA prior (stand-in for ATAC) + tf_list.csv."""
    input:
        rpkm=f"{MTL}/{{dataset}}/input/rpkm.hdf5",
        velo=f"{MTL}/{{dataset}}/input/velo.hdf5",
        prior=resource_inputs(config["mtl"]["tf_activity"]["prior"]),
        census=resource_inputs(config["mtl"]["tf_activity"]["tf_list"]),
        orthologs=resource_inputs(config["mtl"]["tf_activity"]["orthologs"]),
    output:
        tfs=f"{MTL}/{{dataset}}/input/tf_list.csv",
        act=directory(f"{MTL}/{{dataset}}/input/tf_activity"),
    wildcard_constraints:
        dataset=MTL_H5AD_RE,
    params:
        out=lambda wc: f"{MTL}/{wc.dataset}/input",
        prior=lambda wc, input: input.prior[0],
        census=lambda wc, input: input.census[0],
        orthologs=lambda wc, input: input.orthologs[0],
        opts=lambda wc: tf_activity_args(config, wc.dataset),
        script=script("mtl_tf_activity.py"),
    log:
        f"{LOGS}/mtl/{{dataset}}/tf_activity.log",
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} --layout {params.out} --prior {params.prior} --tf-list {params.census} "
        "--orthologs {params.orthologs} {params.opts} 2> {log}"


rule mtl_lasso:
    """Per-gene LassoCV baseline of one tissue on the MTL train/test splits (lasso_r2.csv)."""
    input:
        lambda wc: mtl_layout_inputs(config, RESULTS, wc.dataset, wc.tissue),
    output:
        f"{MTL}/{{dataset}}/{{tissue}}/lasso_r2.csv",
    wildcard_constraints:
        dataset=MTL_DS_RE,
    params:
        root=lambda wc: mtl_root(config, RESULTS, wc.dataset),
        opts=lambda wc: lasso_args(config, wc.dataset),
        script=script("mtl_lasso.py"),
    log:
        f"{LOGS}/mtl/{{dataset}}/{{tissue}}/lasso.log",
    threads: config["mtl"]["lasso"]["threads"]
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime_min(60),
    retries: 1
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} --layout {params.root} --tissue {wildcards.tissue} {params.opts} "
        "--threads {threads} --output {output} 2> {log}"


rule mtl_select_genes:
    """Genes with velocity in >= min_cells cells and a lasso result; a seeded random num_genes."""
    input:
        layout=lambda wc: mtl_layout_inputs(config, RESULTS, wc.dataset, wc.tissue),
        lasso=f"{MTL}/{{dataset}}/{{tissue}}/lasso_r2.csv",
    output:
        f"{MTL}/{{dataset}}/{{tissue}}/genes.tsv",
    wildcard_constraints:
        dataset=MTL_DS_RE,
    params:
        root=lambda wc: mtl_root(config, RESULTS, wc.dataset),
        min_cells=lambda wc: setting(config, wc.dataset, "min_cells"),
        num_genes=lambda wc: setting(config, wc.dataset, "num_genes"),
        seed=config["mtl"]["seed"],
        script=script("mtl_select_genes.py"),
    log:
        f"{LOGS}/mtl/{{dataset}}/{{tissue}}/select_genes.log",
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} --layout {params.root} --tissue {wildcards.tissue} --lasso {input.lasso} "
        "--min-cells {params.min_cells} --num-genes {params.num_genes} --seed {params.seed} "
        "--output {output} 2> {log}"


rule mtl_gene_clusters:
    """Balanced KMeansConstrained clusters of the selected genes on mean-imputed velocity."""
    input:
        layout=lambda wc: mtl_layout_inputs(config, RESULTS, wc.dataset, wc.tissue),
        genes=f"{MTL}/{{dataset}}/{{tissue}}/genes.tsv",
    output:
        f"{MTL}/{{dataset}}/{{tissue}}/clusters.tsv",
    wildcard_constraints:
        dataset=MTL_DS_RE,
    params:
        root=lambda wc: mtl_root(config, RESULTS, wc.dataset),
        n_clusters=lambda wc: setting(config, wc.dataset, "n_clusters"),
        seed=config["mtl"]["seed"],
        script=script("mtl_gene_clusters.py"),
    log:
        f"{LOGS}/mtl/{{dataset}}/{{tissue}}/gene_clusters.log",
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(20),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} --layout {params.root} --tissue {wildcards.tissue} --genes {input.genes} "
        "--n-clusters {params.n_clusters} --seed {params.seed} --output {output} 2> {log}"


rule mtl_train_shard:
    """Train + test the batched trace-norm model of one (tissue, cluster, replicate) shard; own files only."""
    input:
        layout=lambda wc: mtl_layout_inputs(config, RESULTS, wc.dataset, wc.tissue),
        clusters=f"{MTL}/{{dataset}}/{{tissue}}/clusters.tsv",
    output:
        tsv=f"{MTL}/{{dataset}}/{{tissue}}/shards/{{model}}/c{{cluster}}_r{{rep}}.tsv",
        weights=f"{MTL}/{{dataset}}/{{tissue}}/shards/{{model}}/c{{cluster}}_r{{rep}}.weights.npz",
    wildcard_constraints:
        dataset=MTL_DS_RE,
        model="tracenorm|lambda0",
        cluster=r"\d+",
        rep=r"\d+",
    params:
        root=lambda wc: mtl_root(config, RESULTS, wc.dataset),
        ckpt=lambda wc: f"{MTL}/checkpoints/{wc.dataset}/{wc.tissue}/{wc.model}/c{wc.cluster}_r{wc.rep}",
        opts=lambda wc: shard_args(config, wc),
        script=script("mtl_train_shard.py"),
    log:
        f"{LOGS}/mtl/{{dataset}}/{{tissue}}/shards/{{model}}/c{{cluster}}_r{{rep}}.log",
    threads: config["mtl"]["train"]["threads"]
    resources:
        mem_mb=mem_mb(config["mtl"]["train"]["mem_mb"]),
        runtime=runtime_min(config["mtl"]["train"]["runtime"]),
        gpu=1,
        tpu=1,
    retries: 2
    conda:
        "../../envs/tensorflow.yaml"
    shell:
        "python {params.script} --layout {params.root} --tissue {wildcards.tissue} --clusters {input.clusters} "
        "--cluster {wildcards.cluster} --rep {wildcards.rep} {params.opts} --threads {threads} "
        "--checkpoint-dir {params.ckpt} --output {output.tsv} --weights {output.weights} 2> {log}"


rule mtl_aggregate:
    """One R2 table (joined with the lasso on the same splits) and per-tissue summaries of a dataset."""
    input:
        shards=lambda wc: mtl_shards(config, RESULTS, wc.dataset),
        lasso=lambda wc: [f"{MTL}/{wc.dataset}/{t}/lasso_r2.csv" for t in mtl_tissues(config, wc.dataset)],
    output:
        r2=f"{MTL}/{{dataset}}/r2.tsv",
        summary=f"{MTL}/{{dataset}}/summary.tsv",
    wildcard_constraints:
        dataset=MTL_DS_RE,
    params:
        script=script("mtl_aggregate.py"),
    log:
        f"{LOGS}/mtl/{{dataset}}/aggregate.log",
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} --shards {input.shards} --lasso {input.lasso} "
        "--output {output.r2} --summary {output.summary} 2> {log}"


rule mtl_figures:
    """Test R2 per gene: MTL vs lasso and vs lambda = 0 per tissue; R2 distribution per gene cluster."""
    input:
        f"{MTL}/{{dataset}}/r2.tsv",
    output:
        comparison=report(
            f"{RESULTS}/figures/mtl/{{dataset}}_comparison.png",
            caption="../report/mtl_comparison.rst",
            category="MTL (seed 001)",
            labels={"dataset": "{dataset}", "figure": "MTL vs lasso / lambda=0"},
        ),
        comparison_pdf=f"{RESULTS}/figures/mtl/{{dataset}}_comparison.pdf",
        clusters=report(
            f"{RESULTS}/figures/mtl/{{dataset}}_clusters.png",
            caption="../report/mtl_clusters.rst",
            category="MTL (seed 001)",
            labels={"dataset": "{dataset}", "figure": "R2 per cluster"},
        ),
        clusters_pdf=f"{RESULTS}/figures/mtl/{{dataset}}_clusters.pdf",
    wildcard_constraints:
        dataset=MTL_DS_RE,
    params:
        script=script("mtl_figures.py"),
    log:
        f"{LOGS}/mtl/{{dataset}}/figures.log",
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} --r2 {input} --dataset {wildcards.dataset} "
        "--comparison {output.comparison} {output.comparison_pdf} "
        "--clusters {output.clusters} {output.clusters_pdf} 2> {log}"


TARGETS.extend(mtl_targets(config, RESULTS))
