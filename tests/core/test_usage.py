"""Every step that succeeds ends its log with its usage (wall, CPU, peak memory), and `benchmarks/run_times.py`
sums those lines per rule from the job logs a Snakemake run names."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from conftest import run_cli
from scfactor.core.cli import USAGE_LINE
from scfactor.layers.cli import simulate_blocks

REPO = Path(__file__).resolve().parents[2]


def test_a_successful_step_logs_its_usage_last(tmp_path):
    proc = run_cli(simulate_blocks, "--n-cells", 60, "--n-genes", 30, "--n-factors", 2, "--output",
                   tmp_path / "b.h5ad")
    assert proc.returncode == 0, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    m = re.search(r"done: ([\d.]+) s wall, ([\d.]+) s CPU, peak memory (\d+) MiB$", last)
    assert m and float(m.group(2)) > 0 and int(m.group(3)) > 10, last


def test_a_failing_step_logs_no_usage(tmp_path):
    proc = run_cli(simulate_blocks, "--n-cells", 0, "--output", tmp_path / "b.h5ad")
    assert proc.returncode != 0 and "done:" not in proc.stderr


SNAKEMAKE_LOG = """[Thu Dec  3 07:15:20 2026]
localrule fit:
    input: a.h5ad
    output: b.h5ad
    log: logs/fit/a.log
    jobid: 7
    resources: tmpdir=/tmp
[Thu Dec  3 07:15:23 2026]
localrule fit:
    output: c.h5ad
    log: logs/fit/b.log
    jobid: 8
[Thu Dec  3 07:15:30 2026]
Finished jobid: 7 (Rule: fit)
1 of 3 steps (33%) done
[Thu Dec  3 07:15:33 2026]
Finished jobid: 8 (Rule: fit)
2 of 3 steps (67%) done
[Thu Dec  3 07:15:33 2026]
localrule figure:
    jobid: 9
[Thu Dec  3 07:15:35 2026]
Finished jobid: 9 (Rule: figure)
3 of 3 steps (100%) done
"""


def test_run_times_sums_cpu_and_takes_the_largest_peak_per_rule(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import run_times
    (tmp_path / "logs" / "fit").mkdir(parents=True)
    for name, cpu, peak in (("a", 12.5, 800), ("b", 3.0, 950)):
        (tmp_path / "logs" / "fit" / f"{name}.log").write_text(
            "07:15 INFO scfactor: fitting\n07:15 INFO scfactor: "
            + USAGE_LINE.format(wall_s=9.0, cpu_s=cpu, peak_mib=peak) + "\n")
    log = tmp_path / "run.log"
    log.write_text(SNAKEMAKE_LOG)
    assert run_times.main(["--log", str(log), "--output", str(tmp_path / "times.md")]) == 0
    table = run_times.per_rule(run_times.parse_log(log)["jobs"], tmp_path).set_index("rule")
    assert table.loc["fit", "jobs"] == 2 and table.loc["fit", "total_s"] == 20
    assert table.loc["fit", "cpu_s"] == 15.5 and table.loc["fit", "cpu_jobs"] == 2
    assert table.loc["fit", "peak_mib"] == 950
    assert table.loc["figure", "cpu_jobs"] == 0  # no log named: unknown, not zero
    text = (tmp_path / "times.md").read_text()
    assert "| fit | 2 | 20 |" in text and "| 16 (2) | 950 |" in text and "(2 of 3 jobs)" in text


def test_results_files_name_the_processor(tmp_path):
    """Benchmark results name the processor they ran on (model, family / model, clock, cache, AVX-512, cores), and
    an unreadable cpuinfo says so instead of failing."""
    import os

    import pandas as pd
    sys.path.insert(0, str(REPO / "benchmarks"))
    import results_file
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2596.1\n"
                       "cache size\t: 1024 KB\nflags\t\t: fpu avx2 avx512f\n\nprocessor\t: 1\nmodel name\t: other\n")
    assert results_file.machine(cpuinfo) == (f"AMD EPYC (family 26, model 2), 2596.1 MHz, cache 1024 KB, AVX-512 yes, "
                                             f"{os.cpu_count()} cores")
    assert results_file.machine(tmp_path / "missing") == f"processor unknown, {os.cpu_count()} cores"
    results_file.write_results(tmp_path / "r", "python x.py", pd.DataFrame({"a": [1]}), "intro")
    md = (tmp_path / "r.md").read_text().splitlines()
    assert md[0] == "python x.py" and md[4] == f"Processor: {results_file.machine()}."
