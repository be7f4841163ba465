# Prior-masked gene regulatory networks between cell states (seed 003): one job per transition A -> B.
from scfactor.smk.grn import grn_args, grn_prior_path, grn_transition


validate_section("grn", "grn.schema.yaml")

GRN = f"{RESULTS}/grn"
GRN_FIG = f"{RESULTS}/figures/grn"


wildcard_constraints:
    transition="[A-Za-z0-9_.-]+",


rule grn:
    """Pair cells of A and B, fit the masked linear model and the masked MLP, write edges and metrics."""
    input:
        h5ad=lambda wc: preprocessed(grn_transition(config, wc.transition)["dataset"]),
        prior=lambda wc: resource_inputs(grn_prior_path(config, wc.transition)),
    output:
        edges=f"{GRN}/{{transition}}/edges.tsv",
        weights=f"{GRN}/{{transition}}/weights.npz",
        r2=f"{GRN}/{{transition}}/r2.tsv",
        metrics=f"{GRN}/{{transition}}/metrics.tsv",
    params:
        prior=lambda wc: grn_prior_path(config, wc.transition),
        opts=lambda wc: grn_args(config, wc.transition),
        script=script("grn.py"),
    log:
        f"{LOGS}/grn/{{transition}}.log",
    threads: config["grn"]["threads"]
    resources:
        mem_mb=mem_mb(3000),
        runtime=runtime_min(20),
        gpu=1 if config["grn"]["device"] != "cpu" else 0,
    retries: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.script} --input {input.h5ad} --prior {params.prior} {params.opts} "
        "--threads {threads} --edges {output.edges} --weights {output.weights} "
        "--r2 {output.r2} --metrics {output.metrics} 2> {log}"


rule grn_figures:
    """Heatmap of the strongest signed edges, residuals vs predicted, sign agreement with the prior."""
    input:
        weights=f"{GRN}/{{transition}}/weights.npz",
    output:
        heatmap=report(
            f"{GRN_FIG}/{{transition}}_edges.png",
            caption="../report/grn_edges.rst",
            category="GRN",
            subcategory="{transition}",
            labels={"transition": "{transition}", "figure": "strongest edges"},
        ),
        residuals=report(
            f"{GRN_FIG}/{{transition}}_residuals.png",
            caption="../report/grn_residuals.rst",
            category="GRN",
            subcategory="{transition}",
            labels={"transition": "{transition}", "figure": "residuals"},
        ),
        signs=report(
            f"{GRN_FIG}/{{transition}}_signs.png",
            caption="../report/grn_signs.rst",
            category="GRN",
            subcategory="{transition}",
            labels={"transition": "{transition}", "figure": "sign agreement"},
        ),
        pdfs=multiext(f"{GRN_FIG}/{{transition}}", "_edges.pdf", "_residuals.pdf", "_signs.pdf"),
    params:
        k=config["grn"]["heatmap_edges"],
        script=script("grn_figures.py"),
    log:
        f"{LOGS}/grn/{{transition}}.figures.log",
    threads: 1
    resources:
        mem_mb=mem_mb(1000),
        runtime=runtime_min(5),
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.script} --weights {input.weights} --heatmap-edges {params.k} "
        "--heatmap {output.heatmap} --residuals {output.residuals} --signs {output.signs} 2> {log}"


rule grn_summary:
    """One wide table of the metrics of every configured transition."""
    input:
        expand(f"{GRN}/{{transition}}/metrics.tsv", transition=config["grn"]["transitions"]),
    output:
        report(f"{GRN}/summary.tsv", caption="../report/grn_summary.rst", category="GRN"),
    params:
        script=script("grn_summary.py"),
    log:
        f"{LOGS}/grn/summary.log",
    threads: 1
    resources:
        mem_mb=mem_mb(500),
        runtime=runtime_min(5),
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.script} --metrics {input} --output {output} 2> {log}"


TARGETS.extend(
    expand(f"{GRN_FIG}/{{transition}}_{{fig}}.png", transition=config["grn"]["transitions"],
           fig=["edges", "residuals", "signs"])
    + ([f"{GRN}/summary.tsv"] if config["grn"]["transitions"] else [])
)
