#!/usr/bin/env python
"""NeuMF densification benchmark on Kang 2018 ctrl cells (the NeuMF/LIGER notebook): speed and held-out quality.

One command, in this order:

1. speed (``--skip-speed`` leaves it out): the sgemm peak of this machine at one thread (a numpy
   float32 matmul, best of ``--peak-repeats``, in its own process), the model's FLOPs per epoch, then
   ``--repeats`` pairs run alternately (the notebook's TF1 feed_dict loop, `seed_loop.py`, then this
   implementation), each in its own process at one thread, on the same training matrix and held-out
   entries. Each side reports the training CPU seconds (held-out scoring left out) at which it first
   reached each held-out Pearson(log1p) in ``--levels``, and its final held-out scores; the parent
   measures each process's CPU and wall time as a whole. Ours also gives its CPU seconds per steady
   epoch, hence the achieved fraction of the sgemm peak.
2. quality (``--skip-quality`` leaves it out): ``workflow/scripts/densify.py`` for every loss in
   ``--losses`` (same seed, so the same 10% of nonzeros hidden), the zero and truncated-SVD baselines,
   and MAGIC and scVI run in the benchmark's own environment (``--peers-python``) on the same
   training matrix, all scored on the same hidden entries.

Writes ``<out>.md`` (whose first line is this command, recorded from its own arguments), ``<out>.tsv``
(quality) and ``<out>_speed.tsv`` (one row per process). Input: the preprocessed Kang data of the
paper config (``snakemake --configfile config/paper.yaml results/preprocess/kang.h5ad``; 3000 ctrl
cells x 2432 LIGER genes). Speed numbers mean something only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
sys.path.insert(0, str(REPO / "benchmarks"))

from child import thread_env  # noqa: E402
from results_file import command_line, machine, run_conditions  # noqa: E402

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


# --------------------------------------------------------------------------- FLOPs and peak
def model_flops(n_entries: int, embedding_dim: int, layers) -> dict:
    """Training FLOPs per epoch (forward + backward = 3 x forward, a multiply-add = 2) of NeuMF.

    ``nominal``: the model as written per (cell, gene) pair (GMF product, ``concat`` -> layer 1 ->
    ... -> output), the count the issue's ~230 GFLOP refers to. ``executed``: what the dense tile
    computation runs per entry: layer 1 is a broadcast sum of a per-cell and a per-gene product
    (their matmuls are per cell / per gene, negligible), the later layers and the GMF product over
    the genes are matrix products.
    """
    d, widths = int(embedding_dim), [int(u) for u in layers]
    later = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    out = d + widths[-1]
    nominal = 2 * (2 * d * widths[0] + later + out) + d
    executed = 2 * (later + out) + widths[0]
    return {"nominal": 3.0 * nominal * n_entries, "executed": 3.0 * executed * n_entries}


def sgemm_peak(n: int, repeats: int) -> float:
    """FLOP/s of the best of ``repeats`` float32 ``n x n`` matmuls (numpy; run it at one thread)."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best


# --------------------------------------------------------------------------- our side of a pair
def ours_speed(matrix, held_npz, epochs: int, levels, eval_every: int, blocks: dict) -> dict:
    """Train this implementation at one thread, scoring the held-out entries every ``eval_every`` entries.

    Times are CPU seconds of this process's training (the scoring's own CPU time left out). ``blocks``:
    densify options overriding the schema's (block_entries, block_genes).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from scfactor.densify.cli import DENSIFY
    from scfactor.densify.pipeline import prepare_tf
    from scfactor.densify.train import fit, size_factors, tile_shape
    opts = DENSIFY.defaults(epochs=epochs, accelerator="cpu", seed=0, **blocks)
    strategy = prepare_tf(opts, 1)
    x = sp.load_npz(matrix)
    with np.load(held_npz) as z:
        rows, cols, vals = z["rows"], z["cols"], z["values"]
    offset = np.log(size_factors(x)).astype(np.float32)
    c_t, g_t = tf.constant(rows.astype(np.int32)), tf.constant(cols.astype(np.int32))
    per_block = int(np.prod(tile_shape(opts.block_entries, opts.block_genes, *x.shape)))
    state = {"scoring": 0.0, "seen": 0, "next": eval_every, "reached": {}, "trace": [], "epoch_end": {}}
    levels = sorted(levels)

    def fit_cpu():
        return time.process_time() - state["t0"] - state["scoring"]

    def score(model):
        t0 = time.process_time()
        pred = model.mean(model.logits(c_t, g_t), tf.gather(offset, c_t)).numpy()
        r = heldout.heldout_metrics(pred, vals)
        state["scoring"] += time.process_time() - t0
        return r

    def on_block(model, phase, epoch, block):
        state["seen"] += per_block  # approximate (blocks differ by at most one cell); exact per epoch below
        state["epoch_end"][epoch] = fit_cpu()
        if state["seen"] >= state["next"]:
            state["next"] += eval_every
            cpu = fit_cpu()
            r = score(model)["pearson_log1p"]
            state["trace"].append([round(cpu, 3), state["seen"], r])
            for lev in levels:
                if str(lev) not in state["reached"] and r >= lev:
                    state["reached"][str(lev)] = cpu

    state["t0"] = time.process_time()
    res = fit(x, opts, strategy, on_block=on_block)
    cpu = fit_cpu()
    final = score(res.model)
    ends = [state["epoch_end"][e] for e in sorted(state["epoch_end"])]
    per_epoch = np.diff([0.0, *ends])
    return {"impl": f"scfactor_neumf_{opts.loss}", "block_entries": opts.block_entries,
            "block_genes": opts.block_genes, "fit_cpu_s": cpu,
            "epochs_seen": epochs, "entries_seen": int(x.shape[0] * x.shape[1] * epochs),
            "samples_per_cpu_s": x.shape[0] * x.shape[1] * epochs / cpu,
            "first_epoch_cpu_s": float(per_epoch[0]),
            "steady_epoch_cpu_s": float(np.median(per_epoch[1:])) if per_epoch.size > 1 else float(per_epoch[0]),
            "time_to_level": {str(k): state["reached"].get(str(k)) for k in levels}, "trace": state["trace"],
            "final_loss": res.trace[opts.arch][-1]["loss"], **{f"final_{k}": v for k, v in final.items()}}


def run_child(cmd, env):
    """Run ``cmd``; return (process, wall seconds, CPU seconds of the whole process incl. its imports)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc, wall, cpu


def speed(args, train_npz, held_npz, n_entries, env) -> tuple[dict, list]:
    """The peak, the FLOPs and ``args.repeats`` alternating (seed loop, ours) pairs; one row per process."""
    from scfactor.densify.cli import DENSIFY
    d = DENSIFY.defaults()
    proc, _, _ = run_child([sys.executable, __file__, "--_peak", args.peak_n, args.peak_repeats], env)
    if proc.returncode != 0:
        raise SystemExit(f"sgemm peak failed:\n{proc.stderr[-3000:]}")
    peak = _json_lines(proc.stdout)[0]["flops"]
    info = {"peak_flops": peak, **{f"{k}_flops_per_epoch": v
                                   for k, v in model_flops(n_entries, d.embedding_dim, d.layers).items()}}
    print(json.dumps(info), flush=True)
    levels = [str(v) for v in args.levels]
    eval_every = int(args.eval_every_entries)
    seed_cmd = [sys.executable, HERE / "seed_loop.py", "--matrix", train_npz, "--heldout", held_npz,
                "--seconds", args.seed_seconds, "--epochs", args.seed_epochs, "--threads", 1,
                "--eval-every", max(1, eval_every // 128), "--levels", *levels]
    ours_cmd = [sys.executable, __file__, "--_ours", train_npz, held_npz, args.speed_epochs, eval_every,
                "--levels", *levels, *_block_args(args)]
    rows = []
    for rep in range(args.repeats):
        for name, cmd in (("seed", seed_cmd), ("ours", ours_cmd)):
            proc, wall, cpu = run_child(cmd, env)
            out = _json_lines(proc.stdout)
            if proc.returncode != 0 or not out:
                raise SystemExit(f"speed run {name} failed:\n{proc.stderr[-3000:]}")
            r = out[-1]
            r.update(repeat=rep + 1, process_cpu_s=cpu, process_wall_s=wall)
            for lev in levels:
                r[f"cpu_s_to_{lev}"] = r["time_to_level"].get(lev)
            rows.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "trace"}), flush=True)
    return info, rows


def _block_args(args) -> list:
    """``--block-entries`` / ``--block-genes`` of our runs, when given (else the schema's defaults apply)."""
    out = []
    for flag, v in (("--block-entries", args.block_entries), ("--block-genes", args.block_genes)):
        if v is not None:
            out += [flag, v]
    return out


# --------------------------------------------------------------------------- quality
def quality(args, train, held, tmp, env) -> pd.DataFrame:
    """Held-out scores of densify.py (each loss), the baselines and the peers on the same hidden entries."""
    import anndata as ad
    preds, info = {}, {}
    cache = Path(args.cache) / f"{Path(args.input).stem}_{args.batch}_{args.genes}_s{args.seed}"
    for loss in args.losses:
        block = _block_args(args)
        d = cache / "_".join([f"neumf_{loss}_e{args.epochs}", *map(str, block)])
        cmd = [sys.executable, REPO / "workflow/scripts/densify.py", "--input", args.input, "--batch", args.batch,
               "--genes", args.genes, "--loss", loss, "--epochs", args.epochs, "--threads", args.threads,
               "--seed", args.seed, *block, "--output", d / "out.h5ad", "--heldout-table", d / "out.tsv"]
        if not (d / "out.h5ad").exists():  # the same command finished before: reuse its output
            proc, _, _ = run_child(cmd, env)
            if proc.returncode != 0:
                raise SystemExit(f"densify.py --loss {loss} failed:\n{proc.stderr[-3000:]}")
        o = ad.read_h5ad(d / "out.h5ad")
        assert np.array_equal(np.asarray(o.uns["neumf"]["heldout_rows"]), held.rows), \
            "densify.py hid other entries than the benchmark"
        preds[f"neumf_{loss}"] = np.asarray(o.layers["neumf"])[held.rows, held.cols]
        prm = o.uns["neumf"]["params"]
        info[f"neumf_{loss}"] = {"note": f"{args.epochs} epochs, block_entries {prm['block_entries']}, "
                                         f"block_genes {prm['block_genes']}"}
    for k, v in heldout.baselines(train, held, 20, args.seed).items():
        preds[k], info[k] = v, {"note": ""}
    if args.peers:
        np.savez(tmp / "peers_in.npz", data=train.data, indices=train.indices, indptr=train.indptr,
                 shape=np.array(train.shape), rows=held.rows, cols=held.cols)
        for m in args.peers:  # one process per peer, each result cached on its own
            key = f"{m}_e{args.scvi_epochs}_t{args.scvi_minutes:g}" if m == "scvi" else m
            res, meta_f = cache / f"{key}.npz", cache / f"{key}.json"
            if not Path(args.peers_python).exists():
                info[m] = {"error": f"benchmark environment {args.peers_python} does not exist"}
                continue
            if not meta_f.exists():
                proc, _, _ = run_child([args.peers_python, HERE / "peers.py", "--input", tmp / "peers_in.npz",
                                        "--output", res, "--methods", m, "--seed", args.seed,
                                        "--threads", args.threads, "--scvi-epochs", args.scvi_epochs,
                                        "--scvi-minutes", args.scvi_minutes], env)
                rows = _json_lines(proc.stdout)
                r = rows[0] if rows else {"method": m, "ok": False, "error": f"peers.py exited "
                                          f"{proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
                meta_f.write_text(json.dumps(r))
            info[m] = json.loads(meta_f.read_text())
            if info[m].get("ok") and res.exists():
                with np.load(res) as z:
                    preds[m] = z[m]
    table = heldout.evaluate(preds, held)
    table["note"] = [_note(info.get(m, {})) for m in table["method"]]
    for m in [m for m in args.peers if m not in preds]:
        table.loc[len(table)] = {"method": m, "n": len(held), "note": "FAILED: " + info[m].get("error", "")}
    return table


def _note(i: dict) -> str:
    if i.get("note"):
        return i["note"]
    parts = [f"v{i['version']}"] if "version" in i else []
    if "epochs_trained" in i:
        parts.append(f"{i['epochs_trained']} of max {i['max_epochs']} epochs (cap {i['max_minutes']:g} min)")
    return ", ".join(parts)


# --------------------------------------------------------------------------- report
def _f(v, fmt="{:.4f}"):
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)


def write_markdown(path, command, meta, info, speed_rows, table, args):
    """The results file: the command on its first line, then what this run measured."""
    lines = [command, "", "# NeuMF densification benchmark (the NeuMF/LIGER notebook)", "",
             f"Data: `{meta['input']}` batch `{meta['batch']}`: {meta['cells']} cells x {meta['genes']} genes "
             f"({meta['cells'] * meta['genes']:,} entries, {meta['nnz']:,} nonzeros; {meta['hidden']:,} nonzeros "
             f"hidden, seed {args.seed}). Run {meta['date']}. {run_conditions(meta['load_avg_start'], REPO)}", "",
             f"Processor: {machine()}.", ""]
    if speed_rows:
        peak, nom, exe = info["peak_flops"], info["nominal_flops_per_epoch"], info["executed_flops_per_epoch"]
        lines += ["## Speed (one thread each side, pairs run alternately, CPU seconds)", "",
                  f"sgemm peak at one thread (numpy float32 {args.peak_n}x{args.peak_n}, best of "
                  f"{args.peak_repeats}): {peak / 1e9:.1f} GFLOP/s. Model FLOPs per training epoch: "
                  f"{nom / 1e9:.1f} GFLOP as written per pair (nominal), {exe / 1e9:.1f} GFLOP as executed "
                  "by the dense tiles.", "",
                  "| repeat | implementation | batch | process CPU s | fit CPU s | epochs | held-out Pearson | "
                  + " | ".join(f"fit CPU s to {lev}" for lev in args.levels) + " |",
                  "|---" * (7 + len(args.levels)) + "|"]
        for r in speed_rows:
            batch = r.get("batch_size", f"{r.get('block_entries')} (tile, {r.get('block_genes')} genes)")
            lines.append(f"| {r['repeat']} | {r['impl']} | {batch} | {r['process_cpu_s']:.1f} | {r['fit_cpu_s']:.1f} | "
                         f"{r['epochs_seen']:.2f} | {_f(r['final_pearson_log1p'])} | "
                         + " | ".join(_f(r[f'cpu_s_to_{lev}'], '{:.1f}') for lev in args.levels) + " |")
        ours = [r for r in speed_rows if r["impl"].startswith("scfactor")]
        if ours:
            ep = float(np.median([r["steady_epoch_cpu_s"] for r in ours]))
            lines += ["", f"Ours, median steady epoch: {ep:.2f} CPU s = {nom / ep / 1e9:.1f} GFLOP/s nominal "
                      f"(**{nom / ep / peak:.1%} of the sgemm peak**), {exe / ep / 1e9:.1f} GFLOP/s executed "
                      f"({exe / ep / peak:.1%}); the peak allows {nom / peak:.2f} s per epoch (nominal FLOPs)."]
        lines += ["", "Fit CPU s: training only (the held-out scoring every "
                  f"{int(args.eval_every_entries):,} entries is left out); process CPU s: the whole process "
                  "(imports, data loading, graph building, scoring included). The seed loop stops after "
                  f"{args.seed_seconds:g} fit CPU s or {args.seed_epochs:g} epochs; its held-out Pearson is "
                  "its own quality at that point.", ""]
    if table is not None:
        lines += ["## Held-out quality (same hidden entries for every method)", "",
                  "| method | Pearson log1p | Spearman log1p | median abs err | RMSE | note |", "|---|---|---|---|---|---|"]
        for _, r in table.iterrows():
            lines.append(f"| {r['method']} | {_f(r['pearson_log1p'])} | {_f(r['spearman_log1p'])} | "
                         f"{_f(r['median_abs_error'], '{:.3f}')} | {_f(r['rmse'], '{:.3f}')} | {r['note']} |")
        lines.append("")
    Path(path).write_text("\n".join(lines) + "\n")


def _write_tsv(df, path, command):
    with open(path, "w") as fh:
        fh.write(f"# {command}\n")
        df.to_csv(fh, sep="\t", index=False, float_format="%.6g")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default=str(REPO / "results/preprocess/kang.h5ad"))
    p.add_argument("--batch", default="ctrl")
    p.add_argument("--genes", default="liger")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/densify"))
    p.add_argument("--threads", type=int, default=1, help="threads of the quality runs (speed runs: always 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--losses", nargs="+", default=["nb", "poisson"])
    p.add_argument("--epochs", type=int, default=10, help="epochs of the quality runs")
    p.add_argument("--block-entries", type=int, default=None,
                   help="densify's block_entries in our runs (default: the schema's)")
    p.add_argument("--block-genes", type=int, default=None,
                   help="densify's block_genes in our runs (default: the schema's)")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--repeats", type=int, default=2, help="alternating (seed loop, ours) pairs")
    p.add_argument("--levels", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8],
                   help="held-out Pearson(log1p) levels to time")
    p.add_argument("--speed-epochs", type=int, default=10, help="our epochs in a speed run")
    p.add_argument("--seed-seconds", type=float, default=1200.0, help="fit CPU-second budget of the seed loop")
    p.add_argument("--seed-epochs", type=float, default=10.0, help="epoch budget of the seed loop")
    p.add_argument("--eval-every-entries", type=float, default=1e6, help="entries between held-out scorings")
    p.add_argument("--peak-n", type=int, default=2048)
    p.add_argument("--peak-repeats", type=int, default=10)
    p.add_argument("--peers", nargs="*", default=["magic", "scvi"])
    p.add_argument("--peers-python", default=str(Path.home() / ".cache/scfactor/bench-densify/bin/python"))
    p.add_argument("--scvi-epochs", type=int, default=400)
    p.add_argument("--scvi-minutes", type=float, default=10.0, help="wall-clock cap of scVI training")
    p.add_argument("--cache", default=str(REPO / "benchmarks/out/densify"),
                   help="finished quality runs are kept here and reused by a rerun with the same settings")
    p.add_argument("--_peak", nargs=2, type=int, help=argparse.SUPPRESS)
    p.add_argument("--_ours", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._peak:
        print(json.dumps({"flops": sgemm_peak(*args._peak)}))
        return 0
    if args._ours:
        m, h, e, every = args._ours
        blocks = {k: getattr(args, k) for k in ("block_entries", "block_genes") if getattr(args, k) is not None}
        print(json.dumps(ours_speed(m, h, int(e), args.levels, int(float(every)), blocks)))
        return 0

    command = command_line(__file__)
    env = thread_env(1, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    adata = load_preprocessed(args.input, batch=args.batch, genes=args.genes)
    x = sp.csr_matrix(adata.X)
    train, held = heldout.mask_nonzeros(x, 0.1, args.seed)
    print(f"{args.batch}: {x.shape[0]} cells x {x.shape[1]} genes, {x.nnz} nonzeros, {len(held)} hidden", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="densify-bench-"))
    sp.save_npz(tmp / "train.npz", train)
    np.savez(tmp / "held.npz", rows=held.rows, cols=held.cols, values=held.values)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"input": args.input, "batch": args.batch, "cells": x.shape[0], "genes": x.shape[1], "nnz": int(x.nnz),
            "hidden": len(held), "date": time.strftime("%Y-%m-%d %H:%M"), "load_avg_start": os.getloadavg()[0]}
    info, rows, table = {}, [], None
    if not args.skip_speed:
        info, rows = speed(args, tmp / "train.npz", tmp / "held.npz", x.shape[0] * x.shape[1], env)
        _write_tsv(pd.DataFrame([{k: v for k, v in r.items() if k not in ("trace", "time_to_level")} for r in rows]),
                   f"{out}_speed.tsv", command)
    if not args.skip_quality:
        table = quality(args, train, held, tmp, env)
        _write_tsv(table, f"{out}.tsv", command)
        print(table.to_string(), flush=True)
    write_markdown(f"{out}.md", command, meta, info, rows, table, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
