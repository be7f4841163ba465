# Report extras: the benchmark tables and the run's configuration, shown in `snakemake --report`.
import glob


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
        cmd=command("report_config.py"),
        config=lambda wc: json.dumps(config),
    log:
        log_path("report_config"),
    threads: 1
    resources:
        mem_mb=mem_mb(500),
        runtime=runtime_min(5),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --config-json {params.config:q} --output {output:q} 2> {log:q}"


rule report_benchmark:
    """A committed benchmark results table (benchmarks/results/<name>.tsv), copied into the report."""
    input:
        # part of the workflow's source, not of the run's data: read from the checkout (the job's source
        # archive on a cloud executor), never staged through object storage
        local(str(REPO / "benchmarks" / "results" / "{name}.tsv")),
    output:
        report(
            f"{RESULTS}/report/benchmarks/{{name}}.tsv",
            caption="../report/benchmark.rst",
            category="Benchmarks",
            labels={"benchmark": "{name}"},
        ),
    params:
        cmd=command("report_table.py"),
    log:
        log_path("report_benchmark", "name"),
    threads: 1
    resources:
        mem_mb=mem_mb(500),
        runtime=runtime_min(5),
    conda:
        "../../envs/scanpy.yaml"
    shell:
        "{params.cmd} --input {input:q} --output {output:q} 2> {log:q}"


TARGETS.append(f"{RESULTS}/report/config.tsv")
if config["figures"]["benchmark_tables"]:
    TARGETS.extend(f"{RESULTS}/report/benchmarks/{name}.tsv" for name in BENCHMARK_TABLES)
