# NB-mixture clustering (scfactor.nbmix; the model-based clustering notebook): simulator, NB mixture,
# Leiden baseline, figures, summary. Options: workflow/schemas/{nbmix,simulate_nbmix}.schema.yaml.

from scfactor.nbmix.smk import (  # noqa: E402
    figures_command as nbmix_figures_command,
    fit_command,
    leiden_command,
    nbmix_input,
    nbmix_runs,
    run_files as nbmix_run_files,
    simulate_command as simulate_nbmix_command,
    simulations,
)

NBMIX = f"{RESULTS}/nbmix"
NBMIX_FIG = f"{RESULTS}/figures/nbmix"
NBMIX_RUNS = nbmix_runs(config)
for _run in NBMIX_RUNS:
    nbmix_input(config, _run)  # fail at parse time on a run that names nothing


rule simulate_nbmix:
    """The model-based clustering notebook's NB mixture simulate(n, p, k, s, seed) with its ground truth."""
    output:
        f"{RESULTS}/simulate/nbmix/{{sim}}.h5ad",
    params:
        cmd=command("simulate_nbmix.py"),
        opts=lambda wc: simulate_nbmix_command(config, wc.sim),
    log:
        log_path("simulate_nbmix", "sim"),
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.cmd} --name {wildcards.sim:q} {params.opts} --threads {threads} --output {output:q} 2> {log:q}"


rule nbmix:
    """Fit the NB mixture (batch EM or amortised) to one run and score it against its labels."""
    input:
        h5ad=lambda wc: nbmix_input(config, wc.run),
        option_files=lambda wc: nbmix_run_files(config, wc.run),
    output:
        h5ad=f"{NBMIX}/{{run}}/nbmix.h5ad",
        metrics=f"{NBMIX}/{{run}}/nbmix.metrics.tsv",
        trace=f"{NBMIX}/{{run}}/nbmix.trace.tsv",
    params:
        cmd=command("nbmix_fit.py"),
        opts=lambda wc, input: fit_command(
            config, wc.run, staged_files(nbmix_run_files(config, wc.run), input.option_files)
        ),
    log:
        log_path("nbmix", "run"),
    threads: config["nbmix"]["threads"]
    resources:
        # 2.21 GiB at 200k cells, 6.83 GiB at 1M (scale_200k_idle.md, scale_1m_nbmix_load_counts.md)
        mem_mb=by_cells(4000, 7),
        runtime=runtime_min(60),
        gpu=1,
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.cmd} --input {input.h5ad:q} --dataset {wildcards.run:q} {params.opts} --threads {threads} "
        "--output {output.h5ad:q} --metrics {output.metrics:q} --trace {output.trace:q} 2> {log:q}"


rule nbmix_leiden:
    """scanpy baseline: normalise, log1p, PCA, k-NN graph, Leiden, UMAP (its UMAP is used by the figures)."""
    input:
        h5ad=lambda wc: nbmix_input(config, wc.run),
        option_files=lambda wc: nbmix_run_files(config, wc.run),
    output:
        h5ad=f"{NBMIX}/{{run}}/leiden.h5ad",
        metrics=f"{NBMIX}/{{run}}/leiden.metrics.tsv",
    params:
        cmd=command("nbmix_leiden.py"),
        opts=lambda wc, input: leiden_command(
            config, wc.run, staged_files(nbmix_run_files(config, wc.run), input.option_files)
        ),
    log:
        log_path("nbmix_leiden", "run"),
    threads: 1
    resources:
        # 1.05 GiB at 50k cells, 11.06 GiB at 1M (scale.md, scale_1m_leiden_trim.md)
        mem_mb=by_cells(4000, 15),
        runtime=runtime_min(30),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --input {input.h5ad:q} --dataset {wildcards.run:q} {params.opts} --threads {threads} "
        "--output {output.h5ad:q} --metrics {output.metrics:q} 2> {log:q}"


rule nbmix_figures:
    """UMAP (labels / Leiden / NB mixture), responsibilities vs labels, Poisson vs NB log-likelihood per gene."""
    input:
        nbmix=f"{NBMIX}/{{run}}/nbmix.h5ad",
        leiden=f"{NBMIX}/{{run}}/leiden.h5ad",
    output:
        umap=report(
            f"{NBMIX_FIG}/{{run}}.umap.png",
            caption="../report/nbmix_umap.rst",
            category="NB mixture",
            labels={"dataset": "{run}", "figure": "UMAP"},
        ),
        umap_pdf=f"{NBMIX_FIG}/{{run}}.umap.pdf",
        corr=report(
            f"{NBMIX_FIG}/{{run}}.correlation.png",
            caption="../report/nbmix_correlation.rst",
            category="NB mixture",
            labels={"dataset": "{run}", "figure": "responsibilities vs labels"},
        ),
        corr_pdf=f"{NBMIX_FIG}/{{run}}.correlation.pdf",
        poisnb=report(
            f"{NBMIX_FIG}/{{run}}.poisson_nb.png",
            caption="../report/nbmix_poisson_nb.rst",
            category="NB mixture",
            labels={"dataset": "{run}", "figure": "Poisson vs NB"},
        ),
        poisnb_pdf=f"{NBMIX_FIG}/{{run}}.poisson_nb.pdf",
    params:
        cmd=command("nbmix_figures.py"),
        opts=nbmix_figures_command(config),
    log:
        log_path("nbmix_figures", "run"),
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime_min(20),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.cmd} --nbmix {input.nbmix:q} --leiden {input.leiden:q} --dataset {wildcards.run:q} {params.opts} "
        "--threads {threads} --umap {output.umap:q} --correlation {output.corr:q} "
        "--poisson-nb {output.poisnb:q} 2> {log:q}"


rule nbmix_summary:
    """Accuracy / NMI / ARI table of the NB mixture and Leiden over all runs."""
    input:
        expand(f"{NBMIX}/{{run}}/{{method}}.metrics.tsv", run=NBMIX_RUNS, method=["nbmix", "leiden"]),
    output:
        tsv=f"{NBMIX}/summary.tsv",
        fig=report(
            f"{NBMIX_FIG}/summary.png",
            caption="../report/nbmix_summary.rst",
            category="NB mixture",
            labels={"dataset": "all", "figure": "metrics table"},
        ),
        pdf=f"{NBMIX_FIG}/summary.pdf",
    params:
        cmd=command("nbmix_summary.py"),
    log:
        log_path("nbmix_summary"),
    threads: 1
    resources:
        mem_mb=mem_mb(1000),
        runtime=runtime_min(5),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --metrics {input:q} --threads {threads} --output {output.tsv:q} "
        "--figure {output.fig:q} 2> {log:q}"


if NBMIX_RUNS:
    TARGETS.extend(
        [f"{NBMIX}/summary.tsv", f"{NBMIX_FIG}/summary.png"]
        + expand(
            f"{NBMIX_FIG}/{{run}}.{{fig}}.png",
            run=NBMIX_RUNS,
            fig=["umap", "correlation", "poisson_nb"],
        )
    )
