# Multilayer NMF (scfactor.layers, the multilayer NMF notebook): X ~ theta1 theta2 beta per dataset, plus its figures.
from scfactor.layers.smk import (  # noqa: E402
    check_layers_datasets,
    layers_command,
    layers_files,
    layers_levels,
    loading_figure_command,
    theta_figure_command,
)


LAYERS_DATASETS = check_layers_datasets(config)

LAYERS_OUT = f"{RESULTS}/layers"
LAYERS_FIG = f"{RESULTS}/figures/layers"


rule layers:
    """Fit the multilayer NMF to one preprocessed dataset; score it against the truth of a simulation."""
    input:
        h5ad=lambda wc: preprocessed(wc.dataset),
        option_files=layers_files(config),
    output:
        h5ad=f"{LAYERS_OUT}/{{dataset}}.h5ad",
        loss=f"{LAYERS_OUT}/{{dataset}}.loss.tsv",
        metrics=f"{LAYERS_OUT}/{{dataset}}.metrics.tsv",
    params:
        cmd=command("layers.py"),
        opts=lambda wc, input: layers_command(config, staged_files(layers_files(config), input.option_files)),
        ckpt=lambda wc: state_path(f"{LAYERS_OUT}/checkpoints/{wc.dataset}"),
    log:
        log_path("layers", "dataset"),
    threads: config["layers"]["threads"]
    resources:
        mem_mb=mem_mb(4000),
        # 40 minibatch passes: 2672 s on 2 threads at 1M cells (scale_1m_layers40.md)
        runtime=by_cells(30, 0.06),
        gpu=1,
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.cmd} --input {input.h5ad:q} {params.opts} --threads {threads} --output {output.h5ad:q} "
        "--loss-table {output.loss:q} --metrics {output.metrics:q} --checkpoint-dir {params.ckpt:q} 2> {log:q}"


rule layers_theta_figure:
    """Clustermap of theta per layer (the multilayer NMF notebook: sns.clustermap(adata.uns['theta_l<l>']))."""
    wildcard_constraints:
        level=r"\d+",
    input:
        f"{LAYERS_OUT}/{{dataset}}.h5ad",
    output:
        png=report(
            f"{LAYERS_FIG}/{{dataset}}_theta_l{{level}}.png",
            caption="../report/layers_theta.rst",
            category="Multilayer NMF",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "theta layer {level}"},
        ),
        pdf=f"{LAYERS_FIG}/{{dataset}}_theta_l{{level}}.pdf",
    params:
        cmd=command("layers_theta_clustermap.py"),
        opts=lambda wc: theta_figure_command(config),
    log:
        log_path("layers_theta_figure", "dataset", "level"),
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --input {input:q} --level {wildcards.level:q} {params.opts} --threads {threads} "
        "--figure {output.png:q} 2> {log:q}"


rule layers_loading_figure:
    """Top gene loadings per factor (the multilayer NMF notebook: plot_gene_loading(col='beta_l<l>', top_n=10))."""
    wildcard_constraints:
        level=r"\d+",
    input:
        f"{LAYERS_OUT}/{{dataset}}.h5ad",
    output:
        png=report(
            f"{LAYERS_FIG}/{{dataset}}_beta_l{{level}}.png",
            caption="../report/layers_loading.rst",
            category="Multilayer NMF",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "top genes layer {level}"},
        ),
        pdf=f"{LAYERS_FIG}/{{dataset}}_beta_l{{level}}.pdf",
    params:
        cmd=command("layers_gene_loading.py"),
        opts=lambda wc: loading_figure_command(config),
    log:
        log_path("layers_loading_figure", "dataset", "level"),
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --input {input:q} --level {wildcards.level:q} {params.opts} --threads {threads} "
        "--figure {output.png:q} 2> {log:q}"


TARGETS.extend(
    [f"{LAYERS_OUT}/{d}.metrics.tsv" for d in LAYERS_DATASETS]
    + [
        f"{LAYERS_FIG}/{d}_{kind}_l{lv}.png"
        for d in LAYERS_DATASETS
        for kind in ("theta", "beta")
        for lv in layers_levels(config)
    ]
)
