#!/usr/bin/env python
"""Scale benchmark (issue 19): every step at growing cell counts, wall / CPU / peak memory, growth exponents.

    python benchmarks/scale/run.py                                  # 10k, 50k, 200k, 1M cells x 2000 genes
    python benchmarks/scale/run.py --sizes 2000 5000 --limit 600    # a quick check
    python benchmarks/scale/run.py --sizes 50000 200000 1000000 --steps simulate preprocess --shared-machine \
        --out benchmarks/results/scale_preprocess                   # one step's memory (results/scale_preprocess.md)

For each size N the project's own simulator writes N cells x ``--genes`` genes in two batches
(``workflow/scripts/simulate_batches.py``, chunked), then every step runs as its own subprocess through its
workflow script with the schema defaults (a few overrides, listed in the table's ``command`` column):
preprocess, integrate (batch and online), NB mixture EM (``k`` = the planted groups), the Leiden baseline,
densification (1 epoch) and multilayer NMF (a few epochs; on minibatches above its ``minibatch_cells``), the
model steps on the preprocessed file; then the figure steps on their outputs (integrate's, the NB mixture's, the
multilayer NMF's layer-1 theta clustermap). ``--code-commit`` runs a commit's scripts instead of the working
tree's (before / after a change). Each
child is measured with ``os.wait4``: wall time, CPU time (user + sys) and peak resident memory
(``ru_maxrss``). A step still running after ``--limit`` seconds is killed (with its process group) and
recorded as ``over limit`` (``--mem-limit-gib``: killed as soon as its resident memory exceeds that, recorded as over the
memory limit); steps needing its output are ``skipped``. Growth exponents are log-log slopes
between consecutive sizes (1 = linear, 2 = quadratic); the memory constant of a step is its extra peak memory
per extra cell and per extra stored non-zero of the simulated counts between two sizes. ``--shared-machine``
writes into the results that wall and CPU times were taken among other jobs (peak memory is still valid).

``output_mib``: the size of the step's first output file once it is done.

Writes ``<out>.tsv`` (one row per size and step) and ``<out>.md``; the first line of both is this
command as run. Threads: ``--threads`` goes to every script and to the BLAS / OpenMP variables.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from child import thread_env, workflow_of  # noqa: E402
SHARED_NOTE = ("The wall and CPU columns were taken on a machine shared with other jobs: they are not valid "
               "timings. Peak resident memory does not depend on the load.")
STEPS = ("simulate", "preprocess", "integrate_batch", "integrate_online", "nbmix_em", "nbmix_leiden",
         "densify_1_epoch", "layers", "integrate_figures", "nbmix_figures", "layers_figure")


def step_commands(n: int, work: Path, a) -> dict[str, tuple[tuple, list]]:
    """``{step: (steps whose outputs it reads, argv)}`` for ``n`` cells, files under ``work``; a step's first
    output follows ``--output`` (``--umap`` / ``--figure`` for the figure steps)."""
    sim, pre = work / "sim.h5ad", work / "pre.h5ad"
    half = [n // 2, n - n // 2]
    integ = ["--input", pre, "--k", a.k, "--device", "cpu",
             *(["--leiden-starts", a.leiden_starts] if a.leiden_starts else [])]
    return {
        "simulate": ((), ["simulate_batches.py", "--n-cells", *half, "--n-genes", a.genes, "--k-shared", a.groups,
                            "--k-specific", 1, "--chunk", 10000, "--seed", 0, "--output", sim]),
        "preprocess": (("simulate",), ["preprocess.py", "--input", sim, "--batch-key", "batch", "--label-key", "label",
                                    "--output", pre, "--qc-table", work / "qc.tsv", "--qc-figure", work / "qc.png"]),
        "integrate_batch": (("preprocess",), ["integrate.py", *integ, "--mode", "batch", "--output",
                                           work / "ib.h5ad", "--metrics", work / "ib.tsv"]),
        "integrate_online": (("preprocess",), ["integrate.py", *integ, "--mode", "online", "--output",
                                            work / "io.h5ad", "--metrics", work / "io.tsv"]),
        "nbmix_em": (("preprocess",), ["nbmix_fit.py", "--input", pre, "--k", a.groups, "--device", "cpu", "--output",
                                    work / "nb.h5ad", "--metrics", work / "nb.tsv", "--trace", work / "nbt.tsv"]),
        "nbmix_leiden": (("preprocess",), ["nbmix_leiden.py", "--input", pre, "--output", work / "nl.h5ad",
                                        "--metrics", work / "nl.tsv"]),
        "densify_1_epoch": (("preprocess",), ["densify.py", "--input", pre, "--epochs", 1, "--accelerator", "cpu",
                                           "--checkpoint-dir", work / "ckpt", "--output", work / "dn.h5ad",
                                           "--heldout-table", work / "dn.tsv"]),
        "layers": (("preprocess",), ["layers.py", "--input", pre, "--epochs", a.layers_epochs, "--minibatch-epochs",
                                  a.layers_epochs, *(["--minibatch-cells", a.layers_minibatch_cells]
                                                     if a.layers_minibatch_cells else []), "--device", "cpu",
                                  "--output", work / "ly.h5ad", "--loss-table", work / "lyl.tsv",
                                  "--metrics", work / "lym.tsv"]),
        "integrate_figures": (("integrate_online",), ["integrate_figures.py", "--dataset", "sim", "--run",
                                                      f"counts={work / 'io.h5ad'}", "--metrics",
                                                      f"counts={work / 'io.tsv'}", "--umap", work / "if_umap.png",
                                                      "--bars", work / "if_bars.png"]),
        "nbmix_figures": (("nbmix_em", "nbmix_leiden"), ["nbmix_figures.py", "--nbmix", work / "nb.h5ad", "--leiden",
                                                         work / "nl.h5ad", "--umap", work / "nf_umap.png",
                                                         "--correlation", work / "nf_corr.png", "--poisson-nb",
                                                         work / "nf_pnb.png"]),
        "layers_figure": (("layers",), ["layers_theta_clustermap.py", "--input", work / "ly.h5ad", "--level", 1,
                                        "--figure", work / "lf_theta_l1.png"]),
    }


COLUMNS = ["cells", "nnz", "step", "code", "status", "wall_s", "cpu_s", "user_s", "sys_s", "peak_rss_gib", "output_mib",
           "command"]


def first_output(args: list) -> Path:
    """The first output a step's argv names (after ``--output``, ``--umap`` or ``--figure``)."""
    for flag in ("--output", "--umap", "--figure"):
        if flag in args:
            return Path(args[args.index(flag) + 1])
    raise ValueError(f"no output in {args}")


def rss_gib(pid: int) -> float:
    """Resident memory of process ``pid`` now (GiB; 0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return 0.0


def measure(argv: list, limit: float, threads: int, log: Path, mem_limit_gib: float | None = None) -> dict:
    """Run ``argv`` as a child (own process group, output to ``log``); its status, wall, CPU and peak RSS. The
    child is killed after ``limit`` seconds, or as soon as its resident memory exceeds ``mem_limit_gib``."""
    import subprocess
    env = thread_env(threads, PYTHONUNBUFFERED="1")
    t0 = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(c) for c in argv], stdout=fh, stderr=subprocess.STDOUT, env=env,
                                cwd=REPO, start_new_session=True)
    over = None
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - t0 > limit:
            over = "over limit"
        elif mem_limit_gib is not None and rss_gib(proc.pid) > mem_limit_gib:
            over = f"over memory limit ({mem_limit_gib:g} GiB)"
        if over:
            os.killpg(proc.pid, signal.SIGKILL)
            _, status, ru = os.wait4(proc.pid, 0)
            break
        time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    if over:
        state = over
    elif proc.returncode == 0:
        state = "ok"
    else:
        tail = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-1:]
        state = f"failed ({proc.returncode}): {tail[0][:200] if tail else ''}"
    return {"status": state, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "user_s": ru.ru_utime,
            "sys_s": ru.ru_stime, "peak_rss_gib": ru.ru_maxrss / 2 ** 20}  # ru_maxrss: KiB on Linux


def stored_nonzeros(path: Path) -> int:
    """Stored non-zeros of the counts ``X`` (CSR) of an ``.h5ad``."""
    import h5py
    with h5py.File(path, "r") as f:
        return int(f["X"]["indptr"][-1])


def growth(table: pd.DataFrame) -> pd.DataFrame:
    """Log-log slopes of wall, CPU and peak RSS between consecutive sizes, per step (completed runs only)."""
    rows = []
    for step, t in table[table["status"] == "ok"].groupby("step", sort=False):
        t = t.sort_values("cells")
        for (_, lo), (_, hi) in zip(t.iloc[:-1].iterrows(), t.iloc[1:].iterrows()):
            span = math.log(hi["cells"] / lo["cells"])
            rows.append({"step": step, "from_cells": lo["cells"], "to_cells": hi["cells"],
                         **{f"exp_{m}": math.log(hi[m] / lo[m]) / span if lo[m] > 0 and hi[m] > 0 else float("nan")
                            for m in ("wall_s", "cpu_s", "peak_rss_gib")},
                         "bytes_per_cell": (hi["peak_rss_gib"] - lo["peak_rss_gib"]) * 2 ** 30 / (hi["cells"] - lo["cells"]),
                         "bytes_per_nnz": (hi["peak_rss_gib"] - lo["peak_rss_gib"]) * 2 ** 30 / (hi["nnz"] - lo["nnz"])})
    return pd.DataFrame(rows, columns=["step", "from_cells", "to_cells", "exp_wall_s", "exp_cpu_s",
                                       "exp_peak_rss_gib", "bytes_per_cell", "bytes_per_nnz"])


def write(table: pd.DataFrame, command: str, out: Path, shared: bool = False) -> None:
    """``out``.tsv and ``out``.md, each starting with the command (``shared``: say that times are not valid)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    shown = table.drop(columns=["command"])
    with open(out.with_suffix(".tsv"), "w") as fh:
        fh.write(f"# {command}\n")
        table.to_csv(fh, sep="\t", index=False, float_format="%.4g")
    slopes = growth(table)
    text = [command, "", "Per step and size (wall and CPU in seconds, peak resident memory of the step's process "
            "in GiB, `output_mib` the size of its first output file in MiB; the commands are in the .tsv; an "
            "`over limit` step's values are lower bounds):", "",
            *([SHARED_NOTE, ""] if shared else []), shown.to_markdown(index=False, floatfmt=".4g"), "",
            "Growth exponents (log-log slope between consecutive sizes; 1 = linear, 2 = quadratic) and the memory "
            "constant: extra peak memory per extra cell and per extra stored non-zero of the simulated counts "
            "(`nnz`) between the two sizes:", "",
            slopes.to_markdown(index=False, floatfmt=".3g") if len(slopes) else "(fewer than two sizes completed)",
            ""]
    out.with_suffix(".md").write_text("\n".join(text))


def main(argv=None) -> int:
    """Run the benchmark; returns 0 (failed or over-limit steps are results, not errors)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 50000, 200000, 1000000], help="cells")
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--groups", type=int, default=10, help="planted groups (k_shared; the NB mixture's k)")
    ap.add_argument("--k", type=int, default=20, help="iNMF factors")
    ap.add_argument("--leiden-starts", type=int, default=None,
                    help="integrate's Leiden starts (default: the schema's); the peak memory holds one start")
    ap.add_argument("--layers-epochs", type=int, default=10,
                    help="multilayer NMF epochs (passes over the cells when it runs on minibatches)")
    ap.add_argument("--layers-minibatch-cells", type=int, default=None,
                    help="multilayer NMF minibatch_cells: above this many cells it runs on minibatches (default: the "
                         "schema's; 1 = minibatches at every size)")
    ap.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), help="simulate always runs")
    ap.add_argument("--limit", type=float, default=3600.0, help="seconds per step before it is killed")
    ap.add_argument("--mem-limit-gib", type=float, default=None,
                    help="kill a step whose resident memory exceeds this (recorded as over the memory limit)")
    ap.add_argument("--code-commit", default=None,
                    help="run the steps' scripts of this commit (its workflow/ extracted) instead of the working tree")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="/tmp/scfactor-bench-scale", help="data and logs (per size)")
    ap.add_argument("--keep", action="store_true", help="keep each size's files (default: removed after it)")
    ap.add_argument("--reuse", action="store_true",
                    help="take the outputs of an earlier --keep run in --work instead of making them again: the "
                         "simulated and preprocessed files, and those of steps not in --steps whose outputs a step in "
                         "--steps reads (their rows say 'reused', with no times)")
    ap.add_argument("--shared-machine", action="store_true",
                    help="the machine runs other jobs: the results say that wall and CPU times are not valid")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "scale"), help="results stem")
    a = ap.parse_args(argv)
    command = "python " + shlex.join([str(Path(__file__).resolve().relative_to(REPO)), *sys.argv[1:]])
    scripts = workflow_of(a.code_commit) / "scripts"
    code = "working tree" if a.code_commit is None else scripts.parents[1].name   # the commit's hash (12 digits)
    rows = []
    for n in a.sizes:
        work = Path(a.work) / f"n{n}"
        work.mkdir(parents=True, exist_ok=True)
        done, nnz = set(), float("nan")
        commands = step_commands(n, work, a)
        wanted = {d for st in a.steps for d in commands[st][0]}   # steps whose outputs a requested step reads
        for step, (needs, args) in commands.items():
            made = first_output(args)
            needed = step in ("simulate", "preprocess") or (step not in a.steps and step in wanted)
            reused = a.reuse and needed and made.exists()
            if step != "simulate" and step not in a.steps and not reused:
                continue
            argv_step = [sys.executable, scripts / args[0], *args[1:], "--threads", a.threads]
            missing = [s for s in needs if s not in done]
            if reused:
                res = {"status": "reused"}
            elif missing:
                res = {"status": f"skipped ({', '.join(missing)} did not finish)"}
            else:
                res = measure(argv_step, a.limit, a.threads, work / f"{step}.log", a.mem_limit_gib)
            if res["status"] in ("ok", "reused"):
                done.add(step)
                if step == "simulate":
                    nnz = stored_nonzeros(work / "sim.h5ad")
            print(f"{n} cells, {step}: {res['status']}", flush=True)
            size = made.stat().st_size / 2 ** 20 if step in done and made.is_file() else float("nan")
            rows.append({"cells": n, "nnz": nnz, "step": step, "code": code, **res, "output_mib": size,
                         "command": shlex.join(["python", f"workflow/scripts/{args[0]}", *map(str, args[1:]),
                                                "--threads", str(a.threads)])})
            write(pd.DataFrame(rows, columns=COLUMNS), command, Path(a.out), a.shared_machine)  # partial results survive an interrupted run
        if not a.keep:
            import shutil
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
