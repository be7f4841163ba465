# LIGER-style integration (the NeuMF/LIGER notebook; scfactor.integrate): iNMF, quantile normalisation,
# Leiden, UMAP, metrics, figures; and simulator (c): batches sharing factors plus batch-specific factors.
from scfactor.integrate.cli import SOURCES as INTEGRATE_SOURCES
from scfactor.integrate.smk import (
    integrate_command,
    integrate_files,
    integrate_inputs,
    integrate_sources,
    simulate_batches_command,
)



INTEGRATE = config["integrate"]


rule simulate_batches:
    """Two (or more) batches sharing iNMF factors plus batch-specific factors, with the truth."""
    output:
        f"{RESULTS}/simulate/batches.h5ad",
    params:
        cmd=command("simulate_batches.py"),
        opts=simulate_batches_command(config),
    log:
        log_path("simulate_batches"),
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(20),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.cmd} {params.opts} --threads {threads} --output {output:q} 2> {log:q}"


rule integrate:
    """iNMF of all batches of one dataset (raw counts or NeuMF layers), quantile norm, Leiden, UMAP."""
    input:
        h5ad=lambda wc: integrate_inputs(config, RESULTS, wc.dataset, wc.source),
        option_files=lambda wc: integrate_files(config, wc.dataset, wc.source),
    output:
        h5ad=f"{RESULTS}/integrate/{{dataset}}/{{source}}.h5ad",
        metrics=f"{RESULTS}/integrate/{{dataset}}/{{source}}.metrics.tsv",
    wildcard_constraints:
        source="|".join(INTEGRATE_SOURCES),
    params:
        cmd=command("integrate.py"),
        opts=lambda wc, input: integrate_command(
            config, wc.dataset, wc.source,
            staged_files(integrate_files(config, wc.dataset, wc.source), input.option_files),
        ),
    log:
        log_path("integrate", "dataset", "source"),
    threads: INTEGRATE["threads"]
    resources:
        # online mode: 3.73 GiB at 200k cells, 10.94 GiB at 1M (scale_200k.md, scale_1m_integrate_trim.md)
        mem_mb=by_cells(INTEGRATE["mem_mb"], 15),
        runtime=runtime_min(60),
        gpu=1,
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.cmd} --source {wildcards.source:q} --input {input.h5ad:q} {params.opts} --threads {threads} "
        "--output {output.h5ad:q} --metrics {output.metrics:q} 2> {log:q}"


rule integrate_figures:
    """UMAPs by batch and cluster per source side by side; ARI/NMI and alignment bars per source."""
    input:
        runs=lambda wc: [
            f"{RESULTS}/integrate/{wc.dataset}/{s}.h5ad" for s in integrate_sources(config, wc.dataset)
        ],
        metrics=lambda wc: [
            f"{RESULTS}/integrate/{wc.dataset}/{s}.metrics.tsv"
            for s in integrate_sources(config, wc.dataset)
        ],
    output:
        umap=report(
            f"{RESULTS}/figures/integrate/{{dataset}}.umap.png",
            caption="../report/integrate_umap.rst",
            category="Integration (the NeuMF/LIGER notebook)",
            labels={"dataset": "{dataset}", "figure": "UMAP"},
        ),
        umap_pdf=f"{RESULTS}/figures/integrate/{{dataset}}.umap.pdf",
        bars=report(
            f"{RESULTS}/figures/integrate/{{dataset}}.metrics.png",
            caption="../report/integrate_metrics.rst",
            category="Integration (the NeuMF/LIGER notebook)",
            labels={"dataset": "{dataset}", "figure": "metrics"},
        ),
        bars_pdf=f"{RESULTS}/figures/integrate/{{dataset}}.metrics.pdf",
    params:
        cmd=command("integrate_figures.py"),
        runs=lambda wc, input: [
            f"{s}={p}" for s, p in zip(integrate_sources(config, wc.dataset), input.runs)
        ],
        metrics=lambda wc, input: [
            f"{s}={p}" for s, p in zip(integrate_sources(config, wc.dataset), input.metrics)
        ],
    log:
        log_path("integrate_figures", "dataset"),
    threads: 1
    resources:
        mem_mb=mem_mb(2000),
        runtime=runtime_min(10),
    conda:
        "../../envs/torch.yaml"
    shell:
        "{params.cmd} --dataset {wildcards.dataset:q} --run {params.runs:q} --metrics {params.metrics:q} "
        "--threads {threads} --umap {output.umap:q} --bars {output.bars:q} 2> {log:q}"


TARGETS.extend(
    f"{RESULTS}/figures/integrate/{d}.{kind}.png"
    for d in INTEGRATE["datasets"]
    for kind in ("umap", "metrics")
)
