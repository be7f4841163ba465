#!/usr/bin/env python
"""NeuMF densification benchmark on Kang 2018 ctrl cells (the NeuMF/LIGER notebook): throughput and held-out quality.

One command, in this order:

1. throughput: the notebook's TF1 feed_dict loop (`seed_loop.py`, batch 128, MSE, timed over
   ``--seed-steps`` mini-batches and extrapolated to an epoch) and this implementation (the
   same NeuMF with MSE, then the default loss, ``--batch-size``, two full epochs, the second
   one timed), each in its own process, one after the other on the same matrix;
2. quality: ``workflow/scripts/densify.py`` for every loss in ``--losses`` (same seed, so the
   same 10% of nonzeros hidden), the zero and truncated-SVD baselines, and MAGIC and scVI run
   in the benchmark's own environment (``--peers-python``) on the same training matrix,
   all scored on the same hidden entries.

Writes ``<out>.tsv`` (quality), ``<out>_throughput.tsv`` and ``<out>.md``. Input: the
preprocessed Kang data of the paper config (``snakemake --configfile config/paper.yaml
results/preprocess/kang.h5ad``; 3000 ctrl cells x ~2400 LIGER genes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow"))

from scfactor.densify import heldout  # noqa: E402
from scfactor.preprocess.contract import load_preprocessed  # noqa: E402

HERE = Path(__file__).resolve().parent


def _json_lines(text):
    out = []
    for ln in text.splitlines():
        ln = ln.strip()
        if ln.startswith("{") and ln.endswith("}"):
            out.append(json.loads(ln))
    return out


def ours_throughput(matrix, loss, batch_size, threads, epochs=2):
    """Train this implementation for ``epochs`` epochs in this process; JSON of the last epoch."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from scfactor.densify.cli import DENSIFY
    from scfactor.densify.pipeline import prepare_tf
    from scfactor.densify.train import fit
    opts = DENSIFY.defaults(arch="neumf", loss=loss, epochs=epochs, batch_size=batch_size, accelerator="cpu", seed=0)
    strategy = prepare_tf(opts, threads)
    x = sp.load_npz(matrix)
    res = fit(x, opts, strategy)
    last = res.trace["neumf"][-1]
    return {"impl": f"scfactor_neumf_{loss}", "batch_size": batch_size, "samples_per_s": last["samples_per_s"],
            "epoch_s": last["seconds"], "entries": int(x.shape[0] * x.shape[1]),
            "epochs_run": epochs, "final_loss": last["loss"]}


def run(cmd, **kw):
    t0 = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    return proc, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default=str(REPO / "results/preprocess/kang.h5ad"))
    p.add_argument("--batch", default="ctrl")
    p.add_argument("--genes", default="liger")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/densify"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seed-steps", type=int, default=3000, help="seed-loop mini-batches to time")
    p.add_argument("--batch-size", type=int, default=8192)
    p.add_argument("--losses", nargs="+", default=["nb", "poisson"])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--peers", nargs="*", default=["magic", "scvi"])
    p.add_argument("--peers-python", default="/root/.cache/scfactor/bench-densify/bin/python")
    p.add_argument("--scvi-epochs", type=int, default=400)
    p.add_argument("--scvi-minutes", type=float, default=10.0, help="wall-clock cap of scVI training")
    p.add_argument("--cache", default=str(REPO / "benchmarks/out/densify"),
                   help="finished runs are kept here and reused by a rerun with the same settings")
    p.add_argument("--skip-throughput", action="store_true",
                   help="keep the throughput table of an earlier run (<out>_throughput.tsv)")
    p.add_argument("--_throughput", nargs=3, metavar=("MATRIX", "LOSS", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._throughput:
        m, loss, b = args._throughput
        print(json.dumps(ours_throughput(m, loss, int(b), args.threads)))
        return 0

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    py = sys.executable
    adata = load_preprocessed(args.input, batch=args.batch, genes=args.genes)
    x = sp.csr_matrix(adata.X)
    train, held = heldout.mask_nonzeros(x, 0.1, args.seed)
    print(f"{args.batch}: {x.shape[0]} cells x {x.shape[1]} genes, {x.nnz} nonzeros, {len(held)} hidden", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="densify-bench-"))
    sp.save_npz(tmp / "train.npz", train)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"input": args.input, "batch": args.batch, "cells": x.shape[0], "genes": x.shape[1],
            "nnz": int(x.nnz), "hidden": len(held), "threads": args.threads,
            "date": time.strftime("%Y-%m-%d %H:%M"), "load_avg_start": os.getloadavg()[0]}

    # ---------------------------------------------------------------- 1. throughput
    thr = []
    if args.skip_throughput and Path(f"{out}_throughput.tsv").exists():
        thr = pd.read_csv(f"{out}_throughput.tsv", sep="\t").to_dict(orient="records")
    if not args.skip_throughput:
        jobs = [("seed", [py, HERE / "seed_loop.py", "--matrix", tmp / "train.npz", "--steps", args.seed_steps,
                          "--threads", args.threads]),
                ("ours", [py, __file__, "--threads", args.threads, "--_throughput", tmp / "train.npz", "mse",
                          args.batch_size]),
                ("ours", [py, __file__, "--threads", args.threads, "--_throughput", tmp / "train.npz",
                          args.losses[0], args.batch_size])]
        for name, cmd in jobs:
            proc, _ = run(cmd, env=env)
            rows = _json_lines(proc.stdout)
            if proc.returncode != 0 or not rows:
                raise SystemExit(f"throughput run {name} failed:\n{proc.stderr[-3000:]}")
            rows[0]["load_avg"] = os.getloadavg()[0]
            rows[0]["date"] = time.strftime("%Y-%m-%d %H:%M")
            print(json.dumps(rows[0]), flush=True)
            thr.append(rows[0])
        t = pd.DataFrame(thr)
        seed_sps = t.loc[t["impl"] == "seed_tf1_feed_dict", "samples_per_s"].iloc[0]
        t["speedup_vs_seed"] = t["samples_per_s"] / seed_sps
        t["epoch_s"] = t["epoch_s"].fillna(t.get("epoch_s_extrapolated"))
        t.to_csv(f"{out}_throughput.tsv", sep="\t", index=False, float_format="%.4g")

    # ---------------------------------------------------------------- 2. quality
    preds, info = {}, {}
    cache = Path(args.cache) / f"{Path(args.input).stem}_{args.batch}_{args.genes}_s{args.seed}"
    for loss in args.losses:
        d = cache / f"neumf_{loss}_e{args.epochs}_b{args.batch_size}"
        cmd = [py, REPO / "workflow/scripts/densify.py", "--input", args.input, "--batch", args.batch,
               "--genes", args.genes, "--loss", loss, "--epochs", args.epochs, "--batch-size", args.batch_size,
               "--threads", args.threads, "--seed", args.seed, "--output", d / "out.h5ad",
               "--heldout-table", d / "out.tsv"]
        if (d / "out.h5ad").exists():  # the same command finished before: reuse its output
            secs = float(json.loads((d / "seconds.json").read_text())["seconds"])
        else:
            proc, secs = run(cmd, env=env)
            if proc.returncode != 0:
                raise SystemExit(f"densify.py --loss {loss} failed:\n{proc.stderr[-3000:]}")
            (d / "seconds.json").write_text(json.dumps({"seconds": secs}))
        import anndata as ad
        o = ad.read_h5ad(d / "out.h5ad")
        rows = np.asarray(o.uns["neumf"]["heldout_rows"])
        assert np.array_equal(rows, held.rows), "densify.py hid other entries than the benchmark"
        preds[f"neumf_{loss}"] = np.asarray(o.layers["neumf"])[held.rows, held.cols]
        info[f"neumf_{loss}"] = {"seconds": secs, "train_seconds": o.uns["neumf"]["train_seconds"],
                                 "note": f"{args.epochs} epochs, batch {args.batch_size}"}
        print(f"neumf_{loss}: {secs:.0f} s", flush=True)
    t0 = time.perf_counter()
    base = heldout.baselines(train, held, 20, args.seed)
    for k, v in base.items():
        preds[k] = v
        info[k] = {"seconds": time.perf_counter() - t0 if k.startswith("svd") else 0.0, "note": ""}
    if args.peers:
        np.savez(tmp / "peers_in.npz", data=train.data, indices=train.indices, indptr=train.indptr,
                 shape=np.array(train.shape), rows=held.rows, cols=held.cols)
        if not Path(args.peers_python).exists():
            for m in args.peers:
                info[m] = {"error": f"benchmark environment {args.peers_python} does not exist"}
        else:
            for m in args.peers:  # one process per peer, each result cached on its own
                key = f"{m}_e{args.scvi_epochs}_t{args.scvi_minutes:g}" if m == "scvi" else m
                res, meta_f = cache / f"{key}.npz", cache / f"{key}.json"
                if not meta_f.exists():
                    proc, _ = run([args.peers_python, HERE / "peers.py", "--input", tmp / "peers_in.npz",
                                   "--output", res, "--methods", m, "--seed", args.seed,
                                   "--threads", args.threads, "--scvi-epochs", args.scvi_epochs,
                                   "--scvi-minutes", args.scvi_minutes], env=env)
                    rows = _json_lines(proc.stdout)
                    r = rows[0] if rows else {"method": m, "ok": False, "error": f"peers.py exited "
                                              f"{proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
                    meta_f.write_text(json.dumps(r))
                r = json.loads(meta_f.read_text())
                info[m] = r
                print(json.dumps(r), flush=True)
                if r.get("ok") and res.exists():
                    with np.load(res) as z:
                        preds[m] = z[m]
    table = heldout.evaluate(preds, held)
    table["seconds"] = [round(float(info.get(m, {}).get("seconds", np.nan)), 1) for m in table["method"]]
    table["note"] = [_note(info.get(m, {})) for m in table["method"]]
    failed = [m for m in args.peers if m not in preds]
    for m in failed:
        table.loc[len(table)] = {"method": m, "n": len(held), "note": "FAILED: " + info[m].get("error", "")}
    table.to_csv(f"{out}.tsv", sep="\t", index=False)
    write_markdown(out, meta, table, thr, args)
    print(table.to_string(), flush=True)
    return 0


def _note(i: dict) -> str:
    if i.get("note"):
        return i["note"]
    parts = [f"v{i['version']}"] if "version" in i else []
    if "epochs_trained" in i:
        parts.append(f"{i['epochs_trained']} of max {i['max_epochs']} epochs "
                     f"(cap {i['max_minutes']:g} min, trained {i['train_seconds']:.0f} s)")
    return ", ".join(parts)


def write_markdown(out, meta, table, thr, args):
    lines = [f"# NeuMF densification benchmark (the NeuMF/LIGER notebook)\n",
             f"Data: `{meta['input']}` batch `{meta['batch']}`: {meta['cells']} cells x {meta['genes']} "
             f"LIGER genes ({meta['cells'] * meta['genes']:,} entries, {meta['nnz']:,} nonzeros; "
             f"{meta['hidden']:,} nonzeros hidden, seed {args.seed}). {meta['threads']} threads; run "
             f"{meta['date']} on a shared 2-core machine (load average at start {meta['load_avg_start']:.1f}).\n",
             "Command: `python benchmarks/densify/run.py " + " ".join(sys.argv[1:]) + "`\n"]
    if thr:
        lines += ["## Throughput (same matrix, one run, one implementation at a time)\n",
                  "| implementation | batch | samples/s | s per epoch | speed-up vs the notebook's loop | load avg |",
                  "|---|---|---|---|---|---|"]
        for r in thr:
            ep = r.get("epoch_s", r.get("epoch_s_extrapolated"))
            sp_ = r["samples_per_s"] / thr[0]["samples_per_s"]
            ep = r["epoch_s_extrapolated"] if r["impl"].startswith("seed") else ep
            lines.append(f"| {r['impl']} | {r['batch_size']} | {r['samples_per_s']:,.0f} | {ep:.1f} | "
                         f"{sp_:.1f}x | {r['load_avg']:.1f} |")
        lines.append("")
        if args.skip_throughput:
            lines.append("These throughput rows come from an earlier full run of this script (the same command "
                         "without `--skip-throughput`), kept in `densify_throughput.tsv`; this run reused them.\n")
        lines.append(f"The notebook's loop was timed over {int(thr[0]['steps_timed'])} mini-batches of 128 and "
                     f"extrapolated to an epoch; its epoch time also counts its per-epoch sklearn shuffle of "
                     f"the long table ({thr[0]['shuffle_s']:.1f} s). Ours: the second of two full epochs.\n")
    lines += ["## Held-out quality (same hidden entries for every method)\n",
              "| method | Pearson log1p | Spearman log1p | median abs err | RMSE | seconds | note |",
              "|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        def f(v, fmt="{:.4f}"):
            return "n/a" if pd.isna(v) else fmt.format(v)
        lines.append(f"| {r['method']} | {f(r['pearson_log1p'])} | {f(r['spearman_log1p'])} | "
                     f"{f(r['median_abs_error'], '{:.3f}')} | {f(r['rmse'], '{:.3f}')} | "
                     f"{f(r['seconds'], '{:.0f}')} | {r['note']} |")
    lines.append("")
    t = table.set_index("method")
    if {"neumf_nb", "neumf_poisson"} <= set(t.index):
        best = max(("neumf_nb", "neumf_poisson"), key=lambda m: t.loc[m, "pearson_log1p"])
        lines.append(f"**Default loss**: `{best.split('_')[1]}` (Pearson log1p {t.loc['neumf_nb', 'pearson_log1p']:.4f} "
                     f"for nb vs {t.loc['neumf_poisson', 'pearson_log1p']:.4f} for poisson; RMSE "
                     f"{t.loc['neumf_nb', 'rmse']:.2f} vs {t.loc['neumf_poisson', 'rmse']:.2f}; same epochs, "
                     f"batch and hidden entries).\n")
    ok = [m for m in ("magic", "scvi") if m in t.index and not pd.isna(t.loc[m, "pearson_log1p"])]
    if ok and "neumf_nb" in t.index:
        cmp = ", ".join(f"{m} {t.loc[m, 'pearson_log1p']:.4f}" for m in ok)
        lines.append(f"Pearson log1p of NeuMF (nb) {t.loc['neumf_nb', 'pearson_log1p']:.4f} vs {cmp}.\n")
    Path(f"{out}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
