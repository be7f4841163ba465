# Multilayer NMF (seed 002): X ~ theta1 theta2 beta per dataset, plus its figures.
from scfactor.smk.layers import check_layers_datasets, layers_args, layers_levels, loading_figure_args


validate_section("layers", "layers.schema.yaml")
check_layers_datasets(config)

LAYERS_OUT = f"{RESULTS}/layers"
LAYERS_FIG = f"{RESULTS}/figures/layers"


rule layers:
    """Fit the multilayer NMF to one preprocessed dataset; score it against the truth of a simulation."""
    wildcard_constraints:
        dataset=r"[A-Za-z0-9_-]+",
    input:
        lambda wc: preprocessed(wc.dataset),
    output:
        h5ad=f"{LAYERS_OUT}/{{dataset}}.h5ad",
        loss=f"{LAYERS_OUT}/{{dataset}}.loss.tsv",
        metrics=f"{LAYERS_OUT}/{{dataset}}.metrics.tsv",
    params:
        opts=layers_args(config),
        script=script("layers.py"),
    log:
        f"{LOGS}/layers/{{dataset}}.log",
    threads: config["layers"]["threads"]
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime_min(30),
        gpu=1,
    retries: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.script} --input {input} {params.opts} --threads {threads} "
        "--output {output.h5ad} --loss-table {output.loss} --metrics {output.metrics} 2> {log}"


rule layers_theta_figure:
    """Clustermap of theta per layer (seed 002: sns.clustermap(adata.uns['theta_l<l>']))."""
    wildcard_constraints:
        dataset=r"[A-Za-z0-9_-]+",
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
        max_rows=config["layers"]["max_rows"],
        seed=config["layers"]["seed"],
        script=script("layers_theta_clustermap.py"),
    log:
        f"{LOGS}/layers/{{dataset}}_theta_l{{level}}.log",
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} --input {input} --level {wildcards.level} --max-rows {params.max_rows} "
        "--seed {params.seed} --output {output.png} {output.pdf} 2> {log}"


rule layers_loading_figure:
    """Top gene loadings per factor (seed 002: plot_gene_loading(col='beta_l<l>', top_n=10))."""
    wildcard_constraints:
        dataset=r"[A-Za-z0-9_-]+",
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
        opts=loading_figure_args(config),
        script=script("layers_gene_loading.py"),
    log:
        f"{LOGS}/layers/{{dataset}}_beta_l{{level}}.log",
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} --input {input} --level {wildcards.level} {params.opts} "
        "--output {output.png} {output.pdf} 2> {log}"


TARGETS.extend(
    [f"{LAYERS_OUT}/{d}.metrics.tsv" for d in config["layers"]["datasets"]]
    + [
        f"{LAYERS_FIG}/{d}_{kind}_l{lv}.png"
        for d in config["layers"]["datasets"]
        for kind in ("theta", "beta")
        for lv in layers_levels(config)
    ]
)
