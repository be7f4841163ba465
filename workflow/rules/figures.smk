# Report extras: the benchmark tables and the run's configuration, shown in `snakemake --report`.
import glob

validate_section("figures", "figures.schema.yaml")

BENCHMARK_TABLES = sorted(
    os.path.basename(p)[: -len(".tsv")] for p in glob.glob(str(REPO / "benchmarks" / "results" / "*.tsv"))
)


rule report_config:
    """The configuration of this run, flattened to key/value rows, for the report."""
    output:
        report(
            f"{RESULTS}/report/config.tsv",
            caption="../report/config.rst",
            category="Configuration",
        ),
    params:
        script=script("report_tables.py"),
        config=lambda wc: json.dumps(config),
    log:
        f"{LOGS}/report/config.log",
    threads: 1
    resources:
        mem_mb=mem_mb(500),
        runtime=runtime_min(5),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} config --config-json {params.config:q} --output {output} 2> {log}"


rule report_benchmark:
    """A committed benchmark results table (benchmarks/results/<name>.tsv), copied into the report."""
    input:
        str(REPO / "benchmarks" / "results" / "{name}.tsv"),
    output:
        report(
            f"{RESULTS}/report/benchmarks/{{name}}.tsv",
            caption="../report/benchmark.rst",
            category="Benchmarks",
            labels={"benchmark": "{name}"},
        ),
    params:
        script=script("report_tables.py"),
    log:
        f"{LOGS}/report/benchmark_{{name}}.log",
    threads: 1
    resources:
        mem_mb=mem_mb(500),
        runtime=runtime_min(5),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "python {params.script} table --input {input} --output {output} 2> {log}"


TARGETS.append(f"{RESULTS}/report/config.tsv")
if config["figures"]["benchmark_tables"]:
    TARGETS.extend(f"{RESULTS}/report/benchmarks/{name}.tsv" for name in BENCHMARK_TABLES)
