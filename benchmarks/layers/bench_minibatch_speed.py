#!/usr/bin/env python
"""CPU time of the multilayer NMF step on minibatches: the working tree against a commit, on the same file.

Runs the real step script (``workflow/scripts/layers.py``, schema defaults, ``--minibatch-epochs`` passes, one
thread) from the working tree and from ``--code-commit`` (its ``workflow/``, extracted), alternating which side
goes first, ``--repeats`` times. Records per run the whole process (wall, CPU, peak RSS through ``wait4``), the
fit's own time (its "fit done in" log line), the wall seconds per pass at the start and at the end (from its
progress lines: first and last three intervals), the final loss and a metric, and whether the two sides wrote
the same loss table and metrics. Writes ``<out>.tsv`` / ``<out>.md`` (medians per side) and ``<out>_runs.tsv``,
each starting with this command. The input is a preprocessed ``.h5ad``, for example the scale benchmark's:

    python benchmarks/scale/run.py --sizes 50000 --steps preprocess --keep --work /tmp/sc --out /tmp/sc/res
    python benchmarks/layers/bench_minibatch_speed.py --input /tmp/sc/n50000/pre.h5ad --code-commit 154a29b
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from child import run_child, thread_env, workflow_of  # noqa: E402
from results_file import command_line, run_conditions, write_summary_and_runs  # noqa: E402

FIT_DONE = re.compile(r"fit done in ([\d.]+) s wall, ([\d.]+) s CPU")
PASS_LOGGED = re.compile(r"^(\d\d):(\d\d):(\d\d) INFO scfactor: layers \(minibatch\) (\d+)/\d+:", re.M)


def pass_seconds(log: str) -> tuple[float, float]:
    """Mean wall seconds per pass over the first and over the last three logged intervals (the log's progress
    lines: every pass when there are at most 19; one-second timestamps)."""
    marks = [(int(e), int(h) * 3600 + int(m) * 60 + int(s)) for h, m, s, e in PASS_LOGGED.findall(log)]
    rates = [(t1 - t0) % 86400 / (e1 - e0) for (e0, t0), (e1, t1) in zip(marks, marks[1:])]
    if len(rates) < 2:
        return float("nan"), float("nan")
    return sum(rates[:3]) / len(rates[:3]), sum(rates[-3:]) / len(rates[-3:])


def run_side(root: Path, a, work: Path) -> dict:
    """One run of the step from the ``workflow/`` at ``root``, outputs under ``work``; its measurements."""
    outs = {k: work / f"{k}.{ext}" for k, ext in (("fit", "h5ad"), ("loss", "tsv"), ("metrics", "tsv"))}
    argv = [sys.executable, root / "scripts" / "layers.py", "--input", a.input, "--minibatch-cells", 1,
            "--minibatch-epochs", a.epochs, "--device", "cpu", "--threads", 1, "--output", outs["fit"],
            "--loss-table", outs["loss"], "--metrics", outs["metrics"]]
    proc = run_child(argv, thread_env(1), stderr=True)
    fit = FIT_DONE.search(proc["stderr"])
    first, last = pass_seconds(proc["stderr"])
    import pandas as pd
    loss = pd.read_csv(outs["loss"], sep="\t")
    metrics = pd.read_csv(outs["metrics"], sep="\t").set_index("metric")["value"]
    return {"process_cpu_s": proc["cpu_s"], "process_wall_s": proc["wall_s"], "peak_rss_mb": proc["peak_rss_mb"],
            "fit_cpu_s": float(fit.group(2)), "fit_wall_s": float(fit.group(1)),
            "first_passes_s": first, "last_passes_s": last,
            "final_loss": float(loss.iloc[-1, -1]), "ari_label": float(metrics.get("ari_label", float("nan")))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True, help="a preprocessed .h5ad")
    ap.add_argument("--code-commit", required=True, help="the other side: the workflow/ of this commit")
    ap.add_argument("--epochs", type=int, default=2, help="minibatch passes per run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "layers_minibatch_speed"))
    a = ap.parse_args(argv)
    import pandas as pd
    command = command_line(__file__)
    sides = {f"commit {a.code_commit}": workflow_of(a.code_commit), "working tree": workflow_of(None)}
    load_before = os.getloadavg()[0]
    rows, same = [], True
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.repeats):
            order = list(sides.items())[::1 if rep % 2 == 0 else -1]  # each side goes first every other repeat
            works = {}
            for side, root in order:
                works[side] = Path(tmp) / f"{rep}-{len(works)}"
                works[side].mkdir()
                rows.append({"side": side, "repeat": rep + 1, **run_side(root, a, works[side])})
                print(rows[-1], flush=True)
            w1, w2 = works.values()
            same &= all(filecmp.cmp(w1 / f, w2 / f, shallow=False) for f in ("loss.tsv", "metrics.tsv"))
    runs = pd.DataFrame(rows)
    summary = runs.drop(columns="repeat").groupby("side", sort=False).median().reset_index()
    before, after = (summary.set_index("side").loc[s] for s in sides)
    ratios = {k: before[k] / after[k] for k in ("process_cpu_s", "fit_cpu_s", "process_wall_s", "fit_wall_s")}
    intro = (f"Multilayer NMF step (schema defaults, minibatches at every size) on `{a.input}`, {a.epochs} passes, "
             f"one thread, sides alternating, {a.repeats} repeats; medians. " + run_conditions(load_before, REPO)
             + "\n\n"
             f"Commit {a.code_commit} / working tree: whole process CPU {ratios['process_cpu_s']:.2f}x "
             f"(wall {ratios['process_wall_s']:.2f}x), fit CPU {ratios['fit_cpu_s']:.2f}x "
             f"(wall {ratios['fit_wall_s']:.2f}x). The two sides wrote "
             f"{'identical' if same else 'DIFFERENT'} loss tables and metrics in every repeat.")
    write_summary_and_runs(a.out, command, summary, runs, intro, floatfmt=".4g")
    print(intro)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
