# LIGER-style integration (seed 000): iNMF, quantile normalisation, Leiden, UMAP, metrics, figures;
# and simulator (c): batches sharing factors plus batch-specific factors.
from scfactor.smk.integrate import (
    integrate_args,
    integrate_input_paths,
    integrate_sources,
    simulate_batches_args,
)


validate_section("integrate", "integrate.schema.yaml")
validate_section("simulate.batches", "simulate_batches.schema.yaml")

INTEGRATE = config["integrate"]


wildcard_constraints:
    source="counts|neumf",


rule simulate_batches:
    """Two (or more) batches sharing iNMF factors plus batch-specific factors, with the truth."""
    output:
        f"{RESULTS}/simulate/batches.h5ad",
    params:
        opts=simulate_batches_args(config),
        script=script("simulate_batches.py"),
    log:
        f"{LOGS}/simulate/batches.log",
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(20),
    retries: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.script} {params.opts} --output {output} 2> {log}"


rule integrate:
    """iNMF of all batches of one dataset (raw counts or NeuMF layers), quantile norm, Leiden, UMAP."""
    input:
        lambda wc: integrate_input_paths(config, RESULTS, wc.dataset, wc.source),
    output:
        h5ad=f"{RESULTS}/integrate/{{dataset}}/{{source}}.h5ad",
        metrics=f"{RESULTS}/integrate/{{dataset}}/{{source}}.metrics.tsv",
    params:
        opts=lambda wc: integrate_args(config, wc.dataset, wc.source),
        script=script("integrate.py"),
    log:
        f"{LOGS}/integrate/{{dataset}}/{{source}}.log",
    threads: INTEGRATE["threads"]
    resources:
        mem_mb=mem_mb(INTEGRATE["mem_mb"]),
        runtime=runtime_min(60),
        gpu=1,
    retries: 1
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.script} --input {input} {params.opts} "
        "--output {output.h5ad} --metrics {output.metrics} 2> {log}"


rule integrate_figures:
    """UMAPs by batch and cluster per source side by side; ARI/NMI and alignment bars per source."""
    input:
        runs=lambda wc: [
            f"{RESULTS}/integrate/{wc.dataset}/{s}.h5ad" for s in integrate_sources(config, wc.dataset)
        ],
        metrics=lambda wc: [
            f"{RESULTS}/integrate/{wc.dataset}/{s}.metrics.tsv" for s in integrate_sources(config, wc.dataset)
        ],
    output:
        umap=report(
            f"{RESULTS}/figures/integrate/{{dataset}}.umap.png",
            caption="../report/integrate_umap.rst",
            category="Integration (seed 000)",
            labels={"dataset": "{dataset}", "figure": "UMAP"},
        ),
        umap_pdf=f"{RESULTS}/figures/integrate/{{dataset}}.umap.pdf",
        bars=report(
            f"{RESULTS}/figures/integrate/{{dataset}}.metrics.png",
            caption="../report/integrate_metrics.rst",
            category="Integration (seed 000)",
            labels={"dataset": "{dataset}", "figure": "metrics"},
        ),
        bars_pdf=f"{RESULTS}/figures/integrate/{{dataset}}.metrics.pdf",
    params:
        runs=lambda wc, input: [
            f"{s}={p}" for s, p in zip(integrate_sources(config, wc.dataset), input.runs)
        ],
        metrics=lambda wc, input: [
            f"{s}={p}" for s, p in zip(integrate_sources(config, wc.dataset), input.metrics)
        ],
        script=script("integrate_figures.py"),
    log:
        f"{LOGS}/integrate/{{dataset}}.figures.log",
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {params.script} --dataset {wildcards.dataset} --run {params.runs} "
        "--metrics {params.metrics} --umap {output.umap} {output.umap_pdf} "
        "--bars {output.bars} {output.bars_pdf} 2> {log}"


TARGETS.extend(
    f"{RESULTS}/figures/integrate/{d}.{kind}.png"
    for d in INTEGRATE["datasets"]
    for kind in ("umap", "metrics")
)
