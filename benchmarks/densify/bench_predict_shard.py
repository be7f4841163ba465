#!/usr/bin/env python
"""Benchmark: the single-job unit of densify's fan-out, ONE densify_predict shard of about ``--cells`` cells.

Setup (not timed): a model file (`scfactor.densify.fanout.save_model`) of ``--total-cells`` cells x ``--genes``
genes with the schema's default model (or ``--set`` overrides), its weights at their initialisation: the
prediction's cost does not depend on the weights' values. Then, ``--repeats`` times, the real script
``workflow/scripts/densify_predict.py`` predicts shard 0 of as many shards as give it about ``--cells`` cells
(whole prediction blocks) in a child process with ``--threads`` threads (OMP / MKL / OpenBLAS /
NUMBA too); the parent reads its wall time, CPU time (user + system) and peak resident memory (wait4's
``ru_maxrss``: TensorFlow and the interpreter included).

Writes <out>.tsv, one row per repeat; its first line is the command that produced it. Seconds are only
meaningful on an otherwise idle machine.

    python benchmarks/densify/bench_predict_shard.py --cells 50000 --total-cells 1000000 --genes 2000
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "benchmarks"))
from child import run_child, thread_env  # noqa: E402
SCRIPT = REPO / "workflow" / "scripts" / "densify_predict.py"
COLUMNS = ("repeat", "cells", "total_cells", "genes", "predict_block", "threads", "wall_s", "cpu_s",
           "peak_rss_mb", "entries_per_cpu_s")


def command_line() -> str:
    """The command that is running, as typed from the repository root."""
    return "python " + shlex.join([str(Path(__file__).resolve().relative_to(REPO)), *sys.argv[1:]])


def write_model(path, total_cells: int, genes: int, opts) -> None:
    """A model file of ``total_cells`` x ``genes`` with ``opts``' model at its initialisation."""
    import numpy as np
    import scipy.sparse as sp

    from scfactor.core.device import configure_tf, tf_strategy
    from scfactor.densify import fanout
    from scfactor.densify.train import FitResult, build_model
    configure_tf(opts.seed, 1)
    train = sp.csr_matrix((total_cells, genes), dtype=np.float32)
    model = build_model(opts.arch, train, np.ones(total_cells), opts, tf_strategy("cpu"))
    fanout.save_model(path, FitResult(model, np.zeros(total_cells, np.float32), {}, 0.0, 0.0), train, opts)


def run_shard(model, shards: int, out, threads: int, argv: list[str]) -> dict:
    """Wall, CPU and peak RSS of one densify_predict.py process predicting shard 0 of ``shards``."""
    cmd = [sys.executable, str(SCRIPT), "--model", str(model), "--shard", "0", "--shards", str(shards),
           "--threads", str(threads), "--output", str(out), *argv]
    return run_child(cmd, thread_env(threads, TF_CPP_MIN_LOG_LEVEL="2"))


def main(argv=None) -> int:
    """Time one prediction shard; write the results table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=50_000, help="cells of the shard (rounded to whole prediction blocks)")
    p.add_argument("--total-cells", type=int, default=None, help="cells of the model file (default: 10 x --cells)")
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--set", default="{}", help="densify options as JSON, e.g. '{\"predict_block\": 1048576}'")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "densify_predict_shard"))
    args = p.parse_args(argv)
    import numpy as np

    from scfactor.densify.cli import DENSIFY
    from scfactor.densify.fanout import shard_cells
    from scfactor.densify.train import cells_per_block
    total = args.total_cells or 10 * args.cells
    overrides = json.loads(args.set)
    opts = DENSIFY.defaults(**{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    opt_argv = DENSIFY.argv(overrides)   # the script's options as the rule passes them (schema defaults filled)
    per = cells_per_block(opts.predict_block, args.genes)          # shard 0 of `shards`: about --cells cells
    shards = max(1, -(-total // per) // max(1, round(args.cells / per)))
    start, stop = shard_cells(total, args.genes, opts.predict_block, shards, 0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.npz"
        write_model(model, total, args.genes, opts)
        for r in range(args.repeats):
            got = run_shard(model, shards, Path(tmp) / "shard.npy", args.threads, opt_argv)
            cells = stop - start
            row = {"repeat": r, "cells": cells, "total_cells": total, "genes": args.genes,
                   "predict_block": opts.predict_block, "threads": args.threads, **got,
                   "entries_per_cpu_s": cells * args.genes / got["cpu_s"]}
            assert np.load(Path(tmp) / "shard.npy", mmap_mode="r").shape == (cells, args.genes)
            rows.append(row)
            print("\t".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  file=sys.stderr)
    out = Path(args.out).with_suffix(".tsv")
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {command_line()}", "\t".join(COLUMNS)]
    lines += ["\t".join(f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in COLUMNS) for row in rows]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
