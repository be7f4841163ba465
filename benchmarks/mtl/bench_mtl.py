#!/usr/bin/env python
"""Benchmark: the trace-norm MTL notebook's per-gene Keras models vs the batched trace-norm model, on one simulated shard.

In ONE run (same process, same threads): CPU and wall seconds per epoch and test R2 of (a) a faithful
re-creation of the notebook's training (benchmarks/mtl/seed_keras.py), with its eager step and with
the same step compiled by ``tf.function`` (``--seed-variants``), and (b) scfactor's batched model
(workflow/scfactor/mtl/model.py, the TensorFlow engine), same shard, split, epochs, lambda, learning
rate, batch; the ratios of each notebook variant to each batched engine are CPU-time ratios (wall beside them),
per steady epoch (median of the epochs after the first) and per whole fit (every epoch, tracing included).
The results files start with the command that wrote them.
Then, in a child process, peak memory (max RSS) of the batched model training on a large shard
(default 25 genes x 1600 TFs x 5000 cells). Writes benchmarks/results/mtl.tsv and mtl.md.

    python benchmarks/mtl/bench_mtl.py                # the defaults used for the committed results
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import rss  # noqa: E402
from results_file import machine  # noqa: E402


def make_shard(tmp, genes, tfs, cells, seed=0):
    from scfactor.mtl import data as mtl_data
    from scfactor.mtl import layout as L
    from scfactor.mtl.cli import SIMULATE
    from scfactor.mtl.simulate import simulate_layout
    opts = SIMULATE.defaults(n_tissues=1, n_cells=cells, n_genes=genes, n_tfs=tfs, planted_clusters=1, rank=3,
                             support=20, noise=0.8, seed=seed)
    root = simulate_layout(Path(tmp) / f"sim_{genes}_{tfs}_{cells}", opts)
    d = L.load_tissue(root, "tissue1")
    return mtl_data.build_shard(d, d.gene_ids, 0.1, seed, 0)


def run_batched(shard, epochs, lam, lr, batch, seed=0, engine="tensorflow"):
    from scfactor.mtl import data as mtl_data
    from scfactor.mtl import model as tf_model
    from scfactor.mtl import model_np
    mtl = model_np if engine == "numpy" else tf_model
    from scfactor.mtl.cli import TRAIN_SHARD
    opts = TRAIN_SHARD.defaults(epochs=epochs, batch_size=batch, learning_rate=lr, lam=lam, l1=0.0)
    t0, c0 = time.perf_counter(), time.process_time()
    model, hist = mtl.train_shard(shard, opts, seed_seq=mtl_data.shard_seed(seed, "tissue1", 0, 0),
                                  log_every=max(1, epochs))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return mtl.test_r2(model, shard), [h["seconds"] for h in hist], wall, [h["cpu_seconds"] for h in hist], cpu


def timing_row(implementation, r2, wall_epochs, wall, cpu_epochs, cpu) -> dict:
    """One results row: steady (median after the first) and first epoch, whole fit; CPU and wall; test R2."""
    def steady(x):
        return float(np.median(x[1:])) if len(x) > 1 else float(x[0])
    return dict(implementation=implementation, epochs=len(wall_epochs), cpu_s_per_epoch=steady(cpu_epochs),
                s_per_epoch=steady(wall_epochs), first_epoch_cpu_s=cpu_epochs[0], first_epoch_s=wall_epochs[0],
                fit_cpu_s=cpu, fit_wall_s=wall, mean_test_r2=float(np.mean(r2)), median_test_r2=float(np.median(r2)))


def ratio_lines(df) -> list:
    """Per notebook variant and batched engine: CPU ratio (wall beside it) per steady epoch and per whole fit."""
    out = []
    for seed in df[df["implementation"].str.startswith("notebook")].itertuples():
        for ours in df[df["implementation"].str.startswith("batched")].itertuples():
            out.append(f"{seed.implementation} / {ours.implementation}: steady epoch "
                       f"**{seed.cpu_s_per_epoch / ours.cpu_s_per_epoch:.1f}x CPU** "
                       f"({seed.s_per_epoch / ours.s_per_epoch:.1f}x wall), whole fit "
                       f"**{seed.fit_cpu_s / ours.fit_cpu_s:.1f}x CPU** "
                       f"({seed.fit_wall_s / ours.fit_wall_s:.1f}x wall); "
                       f"mean test R2 {seed.mean_test_r2:.3f} vs {ours.mean_test_r2:.3f}")
    return out


def peak_memory_child(args):
    """Child: build + train one epoch + test on the big shard; print peak RSS (MiB)."""
    from scfactor.core.device import configure_tf
    configure_tf(0, threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        shard = make_shard(tmp, args.mem_genes, args.mem_tfs, args.mem_cells)
        base = rss.peak_mib()
        r2, secs, *_ = run_batched(shard, 1, args.lam, args.lr, args.batch)
    peak = rss.peak_mib()
    print(json.dumps({"peak_rss_mib": peak, "rss_after_data_mib": base, "epoch_s": secs[0],
                      "mean_r2": float(np.mean(r2))}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--genes", type=int, default=25)
    p.add_argument("--tfs", type=int, default=200)
    p.add_argument("--cells", type=int, default=3000)
    p.add_argument("--epochs", type=int, default=3, help="epochs for both implementations (the notebook's final run: 3)")
    p.add_argument("--lam", type=float, default=0.01)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mem-genes", type=int, default=25)
    p.add_argument("--mem-tfs", type=int, default=1600)
    p.add_argument("--mem-cells", type=int, default=5000)
    p.add_argument("--skip-seed", action="store_true", help="only the batched model (quick check)")
    p.add_argument("--seed-variants", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled"],
                   help="the notebook's step as written (eager) and/or wrapped in tf.function (compiled)")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--memory-only", action="store_true",
                   help="rerun only the memory measurement; keep the timing rows of an existing <out>.tsv")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "mtl"))
    args = p.parse_args(argv)
    if args.memory_child:
        return peak_memory_child(args)

    from threadpoolctl import threadpool_limits

    from scfactor.core.device import configure_tf
    tf = configure_tf(0, threads=args.threads)
    threadpool_limits(args.threads)  # numpy's BLAS too (the numpy engine), not only TensorFlow's pools
    rows, mem = [], None
    if args.memory_only:
        rows = pd.read_csv(f"{args.out}.tsv", sep="\t", comment="#").to_dict("records")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            shard = make_shard(tmp, args.genes, args.tfs, args.cells)
            print(f"shard: {shard.n_genes} genes x {shard.n_tfs} TFs x {shard.expr.shape[0]} cells, "
                  f"{min(map(len, shard.train))}-{max(map(len, shard.train))} training cells per gene", flush=True)
            for engine in ("tensorflow", "numpy"):
                r2_b, sec_b, wall_b, cpu_b, fit_cpu_b = run_batched(shard, args.epochs, args.lam, args.lr, args.batch,
                                                                    engine=engine)
                rows.append(timing_row(f"batched (scfactor), {engine} engine", r2_b, sec_b, wall_b, cpu_b, fit_cpu_b))
                write_results(rows, mem, args, tf)
            if not args.skip_seed:
                from seed_keras import test_seed, train_seed
                for variant in args.seed_variants:
                    t0, c0 = time.perf_counter(), time.process_time()
                    models, sec_s, cpu_s = train_seed(shard, args.epochs, batch_size=args.batch, lam=args.lam,
                                                      lr=args.lr, compiled=variant == "compiled")
                    wall_s, fit_cpu_s = time.perf_counter() - t0, time.process_time() - c0
                    r2_s = test_seed(models, shard)
                    rows.append(timing_row(f"notebook per-gene Keras (re-created), {variant} step", r2_s, sec_s,
                                           wall_s, cpu_s, fit_cpu_s))
                    write_results(rows, mem, args, tf)
    child = subprocess.run([sys.executable, __file__, "--memory-child", "--mem-genes", str(args.mem_genes),
                            "--mem-tfs", str(args.mem_tfs), "--mem-cells", str(args.mem_cells),
                            "--threads", str(args.threads), "--batch", str(args.batch)],
                           capture_output=True, text=True, env=dict(os.environ))
    if child.returncode != 0:
        raise SystemExit(child.stderr[-3000:])
    mem = json.loads(child.stdout.strip().splitlines()[-1])
    print(write_results(rows, mem, args, tf))
    return 0


def write_results(rows, mem, args, tf) -> str:
    """Write <out>.tsv and <out>.md (each starting with this run's command) from the rows so far and the memory
    measurement (``None``: not yet taken); called after every row, so a run stopped early keeps what it measured."""
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = "python " + shlex.join([str(Path(__file__).resolve().relative_to(REPO)), *sys.argv[1:]])
    with open(f"{out}.tsv", "w") as fh:
        fh.write(f"# {cmd}\n")
        df.round(4).to_csv(fh, sep="\t", index=False)
    seed_feat_gb = args.mem_genes * args.mem_cells * args.mem_tfs * 5 * 8 / 1e9
    memory = ("Peak memory: not measured yet (the run is still going or stopped before it)." if mem is None else
              f"Peak memory (VmHWM of a child process that imports TF, simulates, loads and trains one epoch of a "
              f"{args.mem_genes} genes x {args.mem_tfs} TFs x {args.mem_cells} cells shard): "
              f"**{mem['peak_rss_mib'] / 1024:.2f} GiB** ({mem['rss_after_data_mib'] / 1024:.2f} GiB after loading "
              f"the data; one epoch {mem['epoch_s']:.1f} s). The notebook's materialised per-gene features for that "
              f"shard would take {seed_feat_gb:.1f} GB (float64, genes x cells x TFs x 5) before any model is built.")
    md = [f"<!-- {cmd} -->", "",
          "# MTL benchmark (the trace-norm MTL notebook): per-gene Keras models vs one batched model",
          "",
          f"Command: `{cmd}`{' (memory row re-measured, timing rows kept from the earlier file)' if args.memory_only else ''}.  ",
          f"Machine: {machine()}, "
          f"TF {tf.__version__}, {args.threads} thread(s) (TensorFlow and numpy's BLAS), CPU only; 1-minute load "
          f"average when written {os.getloadavg()[0]:.2f}. Steady epoch = median of the epochs after the first; "
          "`fit_*` = all epochs (the first one traces) plus set-up (the notebook's: per-gene feature lists and Keras "
          "models); `cpu` = process CPU seconds (user + system), the others wall seconds.",
          "",
          f"Shard: {args.genes} genes x {args.tfs} TFs x {args.cells} cells (simulator (d), one planted cluster, "
          f"rank 3), test ratio 0.1, {args.epochs} epochs, lambda {args.lam}, Adam lr {args.lr}, batch {args.batch}.",
          "",
          df.round(4).to_markdown(index=False),
          "",
          *(f"- {line}" for line in ratio_lines(df)),
          "",
          memory,
          ""]
    Path(f"{out}.md").write_text("\n".join(md))
    return "\n".join(md)


if __name__ == "__main__":
    raise SystemExit(main())
