# Preprocessing (scfactor.preprocess): read counts (one file or a sample sheet), split batches, QC, normalise,
# flag LIGER / HVG genes.
from scfactor.preprocess.smk import (  # noqa: E402
    check_datasets,
    preprocess_command,
    preprocess_files,
    preprocess_inputs,
    preprocess_source,
)

check_datasets(config)


rule preprocess:
    """Read one dataset's counts (or its sample sheet's samples), QC-filter per batch, normalise, flag genes."""
    input:
        lambda wc: preprocess_inputs(config, wc.dataset, resource_inputs),
        option_files=lambda wc: preprocess_files(config, wc.dataset),
    output:
        h5ad=f"{RESULTS}/preprocess/{{dataset}}.h5ad",
        qc=f"{RESULTS}/preprocess/{{dataset}}.qc.tsv",
        fig=report(
            f"{RESULTS}/figures/qc/{{dataset}}.png",
            caption="../report/qc.rst",
            category="QC",
            labels={"dataset": "{dataset}"},
        ),
        pdf=f"{RESULTS}/figures/qc/{{dataset}}.pdf",
    params:
        cmd=command("preprocess.py"),
        source=lambda wc, input: preprocess_source(config, wc.dataset, input[0]),
        opts=lambda wc, input: preprocess_command(
            config, wc.dataset, staged_files(preprocess_files(config, wc.dataset), input.option_files)
        ),
    log:
        log_path("preprocess", "dataset"),
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime_min(20),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} {params.source} --dataset {wildcards.dataset:q} {params.opts} --threads {threads} "
        "--output {output.h5ad:q} --qc-table {output.qc:q} --qc-figure {output.fig:q} 2> {log:q}"


TARGETS.extend(f"{RESULTS}/figures/qc/{name}.png" for name in config["datasets"])
