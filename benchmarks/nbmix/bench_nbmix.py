#!/usr/bin/env python
"""Benchmark the NB mixture (scfactor) against the reference batch EM (aksarkar/mpebpm@gam-mix) in one run.

(a) the model-based clustering notebook's simulation (n=100, p=500, k=4): how many of 10 runs reach accuracy 1.0, for
    a1: data seed 1 (the notebook's), fit seeds 0-9;  a2: data seeds 0-9, fit seed = data seed.
(b) 1000 cells x 2000 genes, k=4 (data seed 1): wall and CPU time of one fit, and its accuracy.
(c) Kang 2018 ctrl cells (all, 2000 HVGs, 8 labelled types): ARI / NMI of the NB mixture vs Leiden.

The reference runs from a copy of the public code extracted into benchmarks/out (never committed), in its own
virtual environment (--ref-python), with ``.cuda()`` switched to ``.cpu()`` at run time
(reference_runner.py). Both sides use 1 thread; times cover the fit call only (not imports / data loading).
Writes benchmarks/results/nbmix.tsv and nbmix.md.

    python benchmarks/nbmix/bench_nbmix.py --ref-python /root/.cache/scfactor/bench-nbmix/bin/python \\
        --ref-git-dir /path/to/mpebpm/.git   # or omit to clone https://github.com/aksarkar/mpebpm
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from scfactor.core import metrics  # noqa: E402
from scfactor.nbmix import model as nbmix  # noqa: E402
from scfactor.nbmix.cli import FIT  # noqa: E402
from scfactor.nbmix.pipeline import em_settings, load_cells  # noqa: E402
from scfactor.nbmix.simulate import simulate  # noqa: E402

S = 1e4  # the notebook's size factor

OUT = REPO / "benchmarks" / "out" / "nbmix"
REF_FILES = ("__init__", "gam_mix", "sgd", "sparse")


def extract_reference(git_dir: str | None, ref: str = "gam-mix") -> Path:
    """Copy mpebpm@gam-mix's sources into benchmarks/out (clone from GitHub when no git dir is given)."""
    dest = OUT / "mpebpm-gam-mix"
    (dest / "mpebpm").mkdir(parents=True, exist_ok=True)
    if git_dir is None:
        git_dir = str(OUT / "mpebpm.git")
        if not Path(git_dir).exists():
            subprocess.run(["git", "clone", "--bare", "https://github.com/aksarkar/mpebpm", git_dir], check=True)
    for name in REF_FILES:
        src = subprocess.run(["git", "--git-dir", git_dir, "show", f"{ref}:src/mpebpm/{name}.py"],
                             check=True, capture_output=True, text=True).stdout
        (dest / "mpebpm" / f"{name}.py").write_text(src)
    commit = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", ref], check=True, capture_output=True,
                            text=True).stdout.strip()
    return dest, commit


def run_reference(args, src, x, k, seed, tag):
    data = OUT / f"{tag}.x.npz"
    out = OUT / f"{tag}.ref.npz"
    np.savez(data, x=x)
    proc = subprocess.run([args.ref_python, str(Path(__file__).with_name("reference_runner.py")), "--src", str(src),
                           "--data", str(data), "--k", str(k), "--seed", str(seed), "--output", str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"reference failed on {tag}:\n{proc.stderr[-3000:]}")
    with np.load(out) as f:
        return f["resp"], float(f["seconds"]), float(f["cpu_seconds"])


def run_ours(x, k, seed, init, nrep=1):
    t0, c0 = time.perf_counter(), time.process_time()
    # the project's defaults (schema nbmix.schema.yaml) with this init and number of restarts
    fit = nbmix.fit_em(x, k, seed=seed, log_every=0, **em_settings(FIT.defaults(k=k, init=init, nrep=nrep)))
    return fit, time.perf_counter() - t0, time.process_time() - c0


def row(part, dataset, method, seed, truth, pred, resp, sec, cpu, **extra):
    sc = metrics.clustering_scores(truth, pred, resp)
    return {"part": part, "dataset": dataset, "method": method, "seed": seed,
            "accuracy_majority": sc["accuracy_majority"], "accuracy_hungarian": sc["accuracy_hungarian"],
            "nmi": sc["nmi"], "ari": sc["ari"], "wall_s": round(sec, 3), "cpu_s": round(cpu, 3), **extra}


def part_a(args, src, rows, save):
    for variant in args.variants:
        for seed in range(10):
            data_seed = 1 if variant == "a1" else seed
            x, z, _, _ = simulate(100, 500, 4, S, seed=data_seed)
            truth = z.argmax(1)
            ds = f"sim n=100 p=500 k=4 data_seed={data_seed}"
            resp, sec, cpu = run_reference(args, src, x, 4, seed, f"{variant}_{seed}")
            rows.append(row(variant, ds, "reference EM (mpebpm gam-mix, CPU)", seed, truth, resp.argmax(1), resp,
                            sec, cpu))
            for init in ("random", "kmeans"):
                fit, sec, cpu = run_ours(x, 4, seed, init)
                rows.append(row(variant, ds, f"scfactor EM (init={init}, nrep=1)", seed, truth, fit.labels, fit.resp,
                                sec, cpu, rounds=fit.n_iter))
            print(rows[-3]["accuracy_majority"], rows[-2]["accuracy_majority"], rows[-1]["accuracy_majority"],
                  file=sys.stderr, flush=True)
            save()  # keep partial results of this long part


def part_b(args, src, rows):
    x, z, _, _ = simulate(1000, 2000, 4, S, seed=1)
    truth = z.argmax(1)
    ds = "sim n=1000 p=2000 k=4 data_seed=1"
    for init in ("kmeans", "random"):
        fit, sec, cpu = run_ours(x, 4, 0, init)
        rows.append(row("b", ds, f"scfactor EM (init={init}, nrep=1)", 0, truth, fit.labels, fit.resp, sec, cpu,
                        rounds=fit.n_iter))
        print(rows[-1], file=sys.stderr, flush=True)
    if not args.skip_reference_b:
        resp, sec, cpu = run_reference(args, src, x, 4, 0, "b")
        rows.append(row("b", ds, "reference EM (mpebpm gam-mix, CPU)", 0, truth, resp.argmax(1), resp, sec, cpu))
        print(rows[-1], file=sys.stderr, flush=True)


def part_c(args, rows):
    from scfactor.core.clustering import scanpy_pipeline
    pre = OUT / "kang_full.h5ad"
    if not pre.exists():
        subprocess.run([sys.executable, str(REPO / "workflow/scripts/preprocess.py"), "--input",
                        str(REPO / "resources/kang2018/kang2018_liger_tutorial_6000x35635.h5ad"), "--dataset", "kang",
                        "--batch-key", "condition", "--batches", "ctrl", "stim", "--label-key", "cell_type_geo",
                        "--n-hvg", "2000", "--output", str(pre), "--qc-table", str(OUT / "kang_full.qc.tsv"),
                        "--qc-figure", str(OUT / "kang_full.qc.png")], check=True)
    a = load_cells(pre, FIT.defaults(k=8, batch="ctrl", genes="hvg", drop_empty_cells=True))
    lab = a.obs["label"].astype(object).to_numpy()
    keep = metrics.labelled_mask(lab)
    ds = f"Kang ctrl ({a.n_obs} cells, {keep.sum()} labelled, {a.n_vars} HVGs, 8 types)"
    t0, c0 = time.perf_counter(), time.process_time()
    res = scanpy_pipeline(a.X, n_pcs=50, n_neighbors=15, resolution=1.0, seed=0, umap=False)
    rows.append(row("c", ds, f"Leiden (scanpy, resolution 1, {res['leiden'].max() + 1} clusters)", 0, lab[keep],
                    res["leiden"][keep], None, time.perf_counter() - t0, time.process_time() - c0))
    for init, nrep in (("kmeans", 3), ("leiden", 1)):
        fit, sec, cpu = run_ours(a.X, 8, 0, init, nrep=nrep)
        rows.append(row("c", ds, f"scfactor EM (k=8, init={init}, nrep={nrep})", 0, lab[keep], fit.labels[keep],
                        fit.resp[keep], sec, cpu, rounds=fit.n_iter))
        print(rows[-1], file=sys.stderr, flush=True)


def write_results(rows, commit, out_tsv, out_md):
    df = pd.DataFrame(rows)
    df.to_csv(out_tsv, sep="\t", index=False)
    lines = ["# NB mixture benchmark", "",
             f"Reference: aksarkar/mpebpm branch gam-mix commit {commit}, src/mpebpm/gam_mix.py "
             "(`ebpm_gam_mix_em`, lr=1e-2, 50 epochs x 10 EM rounds, `.cuda()` -> `.cpu()`), run in its own venv.",
             "Both sides: 1 CPU thread, fit call only. The machine is a shared 2-core VM; compare ratios within this "
             "run (CPU seconds are less sensitive to other load than wall seconds).", "",
             "Command: `python benchmarks/nbmix/bench_nbmix.py --ref-python <venv>/bin/python [--ref-git-dir ...]`. "
             "This file came from four such processes run in parallel (`--parts a --variants a1`, `--parts a "
             "--variants a2`, `--parts b`, `--parts c`, each with its own `--tsv benchmarks/results/nbmix_<part>.tsv`),"
             " merged with `--merge benchmarks/results/nbmix_{a1,a2,b,c}.tsv`; each table's ratios come from one "
             "process. (a) and (b) use the project's defaults except nrep=1; the reference uses the notebook's "
             "settings and its random initialisation.", ""]
    for part, title in (("a1", "(a1) seed simulation, data seed 1, fit seeds 0-9"),
                        ("a2", "(a2) seed simulation, data seeds 0-9, fit seed = data seed")):
        sub = df[df.part == part]
        if sub.empty:
            continue
        lines += [f"## {title}", "", "| method | runs with accuracy 1.0 | mean accuracy | mean ARI | median wall s | "
                  "median CPU s |", "|---|---|---|---|---|---|"]
        for m, g in sub.groupby("method", sort=False):
            lines.append(f"| {m} | {int((g.accuracy_majority == 1.0).sum())}/{len(g)} | "
                         f"{g.accuracy_majority.mean():.3f} | {g.ari.mean():.3f} | {g.wall_s.median():.2f} | "
                         f"{g.cpu_s.median():.2f} |")
        lines.append("")
    for part, title in (("b", "(b) 1000 cells x 2000 genes, k=4"), ("c", "(c) Kang ctrl: NB mixture vs Leiden")):
        sub = df[df.part == part]
        if sub.empty:
            continue
        lines += [f"## {title}", "", "| data | method | accuracy (majority) | accuracy (1-to-1) | NMI | ARI | wall s | "
                  "CPU s |", "|---|---|---|---|---|---|---|---|"]
        for _, r in sub.iterrows():
            lines.append(f"| {r.dataset} | {r.method} | {r.accuracy_majority:.4f} | {r.accuracy_hungarian:.4f} | "
                         f"{r.nmi:.4f} | {r.ari:.4f} | {r.wall_s:.2f} | {r.cpu_s:.2f} |")
        if part == "b":
            ref = sub[sub.method.str.startswith("reference")]
            ours = sub[sub.method.str.contains("kmeans")]
            if len(ref) and len(ours):
                lines += ["", f"Speed-up of scfactor EM (init=kmeans) over the reference: "
                          f"{ref.wall_s.iloc[0] / ours.wall_s.iloc[0]:.1f}x wall, "
                          f"{ref.cpu_s.iloc[0] / ours.cpu_s.iloc[0]:.1f}x CPU."]
        lines.append("")
    Path(out_md).write_text("\n".join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref-python", help="python of the benchmark venv (torch, scipy, tensorboard)")
    p.add_argument("--ref-git-dir", default=None, help="git dir of aksarkar/mpebpm (default: clone from GitHub)")
    p.add_argument("--parts", nargs="+", default=["a", "b", "c"], choices=["a", "b", "c"])
    p.add_argument("--skip-reference-b", action="store_true", help="do not time the reference on (b)")
    p.add_argument("--variants", nargs="+", default=["a1", "a2"], choices=["a1", "a2"], help="variants of (a)")
    p.add_argument("--merge", nargs="+", default=None,
                   help="only merge result TSVs of separate (parallel) runs into --tsv / --md")
    p.add_argument("--tsv", default=str(REPO / "benchmarks/results/nbmix.tsv"))
    p.add_argument("--md", default=str(REPO / "benchmarks/results/nbmix.md"))
    args = p.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    src, commit = extract_reference(args.ref_git_dir)
    if args.merge:
        rows = pd.concat([pd.read_csv(f, sep="\t") for f in args.merge], ignore_index=True).to_dict("records")
        write_results(rows, commit, args.tsv, args.md)
        print(Path(args.md).read_text())
        return
    if not args.ref_python:
        p.error("--ref-python is required")
    rows = []

    def save():
        write_results(rows, commit, args.tsv, args.md)

    if "a" in args.parts:
        part_a(args, src, rows, save)
    if "b" in args.parts:
        part_b(args, src, rows)
    if "c" in args.parts:
        part_c(args, rows)
    write_results(rows, commit, args.tsv, args.md)
    print(Path(args.md).read_text())


if __name__ == "__main__":
    main()
