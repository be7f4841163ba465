# Prior-masked gene regulatory networks between cell states (the cell-state GRN notebook; scfactor.grn):
# one run per transition A -> B of grn.transitions ({run}), its figures, and one summary table.
from scfactor.grn.smk import (  # noqa: E402
    grn_command,
    grn_files,
    grn_figures_command,
    grn_prior_path,
    grn_runs,
    grn_transition,
)


GRN_RUNS = grn_runs(config)

GRN = f"{RESULTS}/grn"
GRN_FIG = f"{RESULTS}/figures/grn"


rule grn:
    """Pair cells of A and B, fit the masked linear model and the masked MLP, write edges and metrics."""
    input:
        h5ad=lambda wc: preprocessed(grn_transition(config, wc.run)["dataset"]),
        prior=lambda wc: resource_inputs(grn_prior_path(config, wc.run)),
        option_files=lambda wc: grn_files(config, wc.run),
    output:
        edges=f"{GRN}/{{run}}/edges.tsv",
        weights=f"{GRN}/{{run}}/weights.npz",
        r2=f"{GRN}/{{run}}/r2.tsv",
        metrics=f"{GRN}/{{run}}/metrics.tsv",
    params:
        cmd=command("grn.py"),
        prior=lambda wc, input: input.prior[0],
        opts=lambda wc, input: grn_command(config, wc.run, staged_files(grn_files(config, wc.run), input.option_files)),
    log:
        log_path("grn", "run"),
    threads: config["grn"]["threads"]
    resources:
        mem_mb=mem_mb(3000),
        runtime=runtime_min(20),
        gpu=1 if config["grn"]["device"] != "cpu" else 0,
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.cmd} --input {input.h5ad:q} --prior-file {params.prior:q} --name {wildcards.run:q} {params.opts} "
        "--threads {threads} --edges {output.edges:q} --weights {output.weights:q} "
        "--r2 {output.r2:q} --metrics {output.metrics:q} 2> {log:q}"


rule grn_figures:
    """Heatmap of the strongest signed edges, residuals vs predicted, sign agreement with the prior."""
    input:
        weights=f"{GRN}/{{run}}/weights.npz",
    output:
        heatmap=report(
            f"{GRN_FIG}/{{run}}_edges.png",
            caption="../report/grn_edges.rst",
            category="GRN",
            subcategory="{run}",
            labels={"transition": "{run}", "figure": "strongest edges"},
        ),
        heatmap_pdf=f"{GRN_FIG}/{{run}}_edges.pdf",
        residuals=report(
            f"{GRN_FIG}/{{run}}_residuals.png",
            caption="../report/grn_residuals.rst",
            category="GRN",
            subcategory="{run}",
            labels={"transition": "{run}", "figure": "residuals"},
        ),
        residuals_pdf=f"{GRN_FIG}/{{run}}_residuals.pdf",
        signs=report(
            f"{GRN_FIG}/{{run}}_signs.png",
            caption="../report/grn_signs.rst",
            category="GRN",
            subcategory="{run}",
            labels={"transition": "{run}", "figure": "sign agreement"},
        ),
        signs_pdf=f"{GRN_FIG}/{{run}}_signs.pdf",
    params:
        cmd=command("grn_figures.py"),
        opts=lambda wc: grn_figures_command(config),
    log:
        log_path("grn_figures", "run"),
    threads: 1
    resources:
        mem_mb=mem_mb(1000),
        runtime=runtime_min(5),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.cmd} --weights {input.weights:q} {params.opts} --threads {threads} "
        "--heatmap {output.heatmap:q} --residuals {output.residuals:q} --signs {output.signs:q} 2> {log:q}"


rule grn_summary:
    """One wide table of the metrics of every configured transition."""
    input:
        metrics=expand(f"{GRN}/{{run}}/metrics.tsv", run=GRN_RUNS),
    output:
        summary=report(f"{GRN}/summary.tsv", caption="../report/grn_summary.rst", category="GRN"),
    params:
        cmd=command("grn_summary.py"),
    log:
        log_path("grn_summary"),
    threads: 1
    resources:
        mem_mb=mem_mb(500),
        runtime=runtime_min(5),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.cmd} --metrics {input.metrics:q} --threads {threads} --output {output.summary:q} 2> {log:q}"


TARGETS.extend(
    expand(f"{GRN_FIG}/{{run}}_{{fig}}.png", run=GRN_RUNS, fig=["edges", "residuals", "signs"])
    + ([f"{GRN}/summary.tsv"] if GRN_RUNS else [])
)
