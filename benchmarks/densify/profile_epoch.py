#!/usr/bin/env python
"""Op-level profile of densify's steady train step (TensorFlow profiler): where an epoch's time goes.

    python benchmarks/densify/profile_epoch.py --input results/preprocess/kang.h5ad --tiles 40

Trains ``--warm`` tiles (tracing), then profiles ``--tiles`` more at one thread and writes ``<out>.md``
(first line: this command): the share of the profiled op time per category (matmul, batch norm,
dropout random bits, elementwise by op type, gathers, optimiser variables) and the top ops, with
their execution counts. Shares, not seconds: they are meaningful on a loaded machine, timings are not.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow"))

CATEGORIES = (("matmul", ("MatMul", "BatchMatMulV2")), ("batch norm", ("FusedBatchNormV3", "FusedBatchNormGradV3")),
              ("dropout bits", ("StatelessRandomUniformV2", "StatelessRandomUniformFullIntV2")),
              ("gather / scatter", ("ResourceGather", "GatherV2", "UnsortedSegmentSum")),
              ("loss special functions", ("Lgamma", "Digamma", "Log1p", "Exp", "Abs", "Maximum")),
              ("optimiser variables", ("AssignVariableOp", "ReadVariableOp", "AssignSubVariableOp",
                                       "AssignAddVariableOp", "Sqrt", "RealDiv")))


def category(name: str) -> str:
    """The category of a profiled op ``<name>:<type>`` (moments / batchnorm ops of an unfused batch norm included)."""
    scope, kind = name.rsplit(":", 1)
    for label, kinds in CATEGORIES:
        if kind in kinds:
            return label
    if "moments" in scope or "batchnorm" in scope:
        return "batch norm"
    if "dropout" in scope:
        return "dropout bits"
    return f"elementwise / other: {kind}"


def op_times(logdir: str) -> tuple[collections.Counter, collections.Counter]:
    """(picoseconds, executions) per op name from the profiler's XSpace under ``logdir``."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(sorted(glob.glob(f"{logdir}/plugins/profile/*/*.xplane.pb"))[-1]).read_bytes())
    ps, n = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for ev in line.events:
                name = plane.event_metadata[ev.metadata_id].name
                if ":" in name and not name.startswith("ExecutorState"):
                    ps[name] += ev.duration_ps
                    n[name] += 1
    return ps, n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default=str(REPO / "results/preprocess/kang.h5ad"))
    p.add_argument("--batch", default="ctrl")
    p.add_argument("--set", default="{}", help="densify options as JSON")
    p.add_argument("--warm", type=int, default=3)
    p.add_argument("--tiles", type=int, default=40)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", default=str(REPO / "benchmarks/results/densify_profile"))
    args = p.parse_args(argv)
    command = "python " + shlex.join([str(Path(__file__).resolve().relative_to(REPO)), *sys.argv[1:]])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    from scfactor.densify.cli import DENSIFY
    from scfactor.densify.pipeline import prepare_tf, validate_input
    from scfactor.densify.train import build_model, size_factors, train_phase
    opts = DENSIFY.defaults(accelerator="cpu", **json.loads(args.set))
    train = validate_input(args.input, args.batch, opts).train  # the held-out entries hidden as the job hides them
    strategy = prepare_tf(opts, 1)
    sf = size_factors(train)
    model = build_model(opts.arch, train, sf, opts, strategy)
    offset = np.log(sf).astype(np.float32)
    with tempfile.TemporaryDirectory() as logdir:
        train_phase(model, train, offset, opts, strategy, 1, "warm", max_blocks_per_epoch=args.warm)
        tf.profiler.experimental.start(logdir)
        train_phase(model, train, offset, opts, strategy, 1, "profiled", max_blocks_per_epoch=args.tiles)
        tf.profiler.experimental.stop()
        ps, n = op_times(logdir)
    total = sum(ps.values())
    by_cat, n_cat = collections.Counter(), collections.Counter()
    for name, v in ps.items():
        by_cat[category(name)] += v
        n_cat[category(name)] += n[name]
    lines = [command, "", f"Op-time shares over {args.tiles} profiled tiles (one thread; {sum(n.values())} op "
             f"executions, {len(ps)} distinct ops).", "", "| category | share | executions |", "|---|---|---|"]
    lines += [f"| {k} | {v / total:.1%} | {n_cat[k]} |" for k, v in by_cat.most_common() if v / total >= 0.001]
    lines += ["", "| op | share | executions |", "|---|---|---|"]
    lines += [f"| `{k}` | {v / total:.1%} | {n[k]} |" for k, v in ps.most_common(args.top)]
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
