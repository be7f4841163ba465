# Negative-binomial mixture clustering (seed 004): simulator, NB mixture, Leiden baseline, figures, summary.
validate_section("simulate.nbmix", "simulate_nbmix.schema.yaml")
validate_section("nbmix", "nbmix.schema.yaml")

from scfactor.smk.nbmix import (  # noqa: E402
    nbmix_fit_args,
    nbmix_input,
    nbmix_leiden_args,
    nbmix_runs,
    simulate_nbmix_args,
)

NBMIX = f"{RESULTS}/nbmix"
NBMIX_FIG = f"{RESULTS}/figures/nbmix"
NBMIX_RUNS = nbmix_runs(config)
for _name in NBMIX_RUNS:
    nbmix_input(config, _name)  # fail at parse time on a run that names nothing


wildcard_constraints:
    nbrun="|".join(NBMIX_RUNS) if NBMIX_RUNS else "^$",
    nbsim="[^/]+",


rule simulate_nbmix:
    """Seed 004's NB mixture simulate(n, p, k, s, seed) with its ground truth."""
    output:
        f"{RESULTS}/simulate/nbmix/{{nbsim}}.h5ad",
    params:
        opts=lambda wc: simulate_nbmix_args(config, wc.nbsim),
        script=script("simulate_nbmix.py"),
    log:
        f"{LOGS}/simulate_nbmix/{{nbsim}}.log",
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.script} {params.opts} --output {output} 2> {log}"


rule nbmix:
    """Fit the NB mixture (batch EM or amortised) to one data set and score it against its labels."""
    input:
        lambda wc: nbmix_input(config, wc.nbrun),
    output:
        h5ad=f"{NBMIX}/{{nbrun}}/nbmix.h5ad",
        metrics=f"{NBMIX}/{{nbrun}}/nbmix.metrics.tsv",
        trace=f"{NBMIX}/{{nbrun}}/nbmix.trace.tsv",
    params:
        opts=lambda wc: nbmix_fit_args(config, wc.nbrun),
        script=script("nbmix_fit.py"),
    log:
        f"{LOGS}/nbmix/{{nbrun}}.log",
    threads: config["nbmix"]["threads"]
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime_min(60),
        gpu=1,
    retries: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.script} --input {input} {params.opts} --threads {threads} "
        "--output {output.h5ad} --metrics {output.metrics} --trace {output.trace} 2> {log}"


rule nbmix_leiden:
    """scanpy baseline: normalise, log1p, PCA, 15-NN graph, Leiden, UMAP (also used by other figures)."""
    input:
        lambda wc: nbmix_input(config, wc.nbrun),
    output:
        h5ad=f"{NBMIX}/{{nbrun}}/leiden.h5ad",
        metrics=f"{NBMIX}/{{nbrun}}/leiden.metrics.tsv",
    params:
        opts=lambda wc: nbmix_leiden_args(config, wc.nbrun),
        script=script("nbmix_leiden.py"),
    log:
        f"{LOGS}/nbmix_leiden/{{nbrun}}.log",
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime_min(30),
    retries: 1
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} --input {input} {params.opts} --threads {threads} "
        "--output {output.h5ad} --metrics {output.metrics} 2> {log}"


rule nbmix_figures:
    """UMAP (labels / Leiden / NB mixture), responsibilities vs labels, Poisson vs NB log-likelihood per gene."""
    input:
        nbmix=f"{NBMIX}/{{nbrun}}/nbmix.h5ad",
        leiden=f"{NBMIX}/{{nbrun}}/leiden.h5ad",
    output:
        umap=report(
            f"{NBMIX_FIG}/{{nbrun}}.umap.png",
            caption="../report/nbmix_umap.rst",
            category="NB mixture",
            labels={"dataset": "{nbrun}", "figure": "UMAP"},
        ),
        umap_pdf=f"{NBMIX_FIG}/{{nbrun}}.umap.pdf",
        corr=report(
            f"{NBMIX_FIG}/{{nbrun}}.correlation.png",
            caption="../report/nbmix_correlation.rst",
            category="NB mixture",
            labels={"dataset": "{nbrun}", "figure": "responsibilities vs labels"},
        ),
        corr_pdf=f"{NBMIX_FIG}/{{nbrun}}.correlation.pdf",
        poisnb=report(
            f"{NBMIX_FIG}/{{nbrun}}.poisson_nb.png",
            caption="../report/nbmix_poisson_nb.rst",
            category="NB mixture",
            labels={"dataset": "{nbrun}", "figure": "Poisson vs NB"},
        ),
        poisnb_pdf=f"{NBMIX_FIG}/{{nbrun}}.poisson_nb.pdf",
    params:
        script=script("nbmix_figures.py"),
    log:
        f"{LOGS}/nbmix_figures/{{nbrun}}.log",
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime_min(20),
    retries: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.script} --nbmix {input.nbmix} --leiden {input.leiden} --dataset {wildcards.nbrun} "
        "--umap {output.umap_pdf} {output.umap} --correlation {output.corr_pdf} {output.corr} "
        "--poisson-nb {output.poisnb_pdf} {output.poisnb} 2> {log}"


rule nbmix_summary:
    """Accuracy / NMI / ARI table of the NB mixture and Leiden over all runs."""
    input:
        expand(f"{NBMIX}/{{nbrun}}/{{method}}.metrics.tsv", nbrun=NBMIX_RUNS, method=["nbmix", "leiden"]),
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
        script=script("nbmix_summary.py"),
    log:
        f"{LOGS}/nbmix_summary.log",
    threads: 1
    resources:
        mem_mb=mem_mb(1000),
        runtime=runtime_min(5),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} --metrics {input} --output {output.tsv} --figure {output.pdf} {output.fig} 2> {log}"


if NBMIX_RUNS:
    TARGETS.extend(
        [f"{NBMIX}/summary.tsv", f"{NBMIX_FIG}/summary.png"]
        + expand(
            f"{NBMIX_FIG}/{{nbrun}}.{{fig}}.png",
            nbrun=NBMIX_RUNS,
            fig=["umap", "correlation", "poisson_nb"],
        )
    )
