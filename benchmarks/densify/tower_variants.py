#!/usr/bin/env python
"""Benchmark: one training tile of the NeuMF MLP tower (forward + backward), at one thread, computed several ways.

The tower is `scfactor.densify.model.NeuMF._tower` at the default layers (64-32-16-8, batch norm + dropout after
the first two) on a tile of ``--rows`` rows (the default tile: 65536 entries), its input a fixed random first-layer
pre-activation. Variants, each in its own process, run alternately ``--repeats`` times:

* ``fused``: the model as it is (one fused batch-norm kernel each way);
* ``moments``: batch norm as ``tf.nn.moments`` + ``tf.nn.batch_normalization`` (the version before the fused one);
* ``custom``: batch norm as three elementwise passes with a hand-written gradient (``dx = dy a + x b + c`` with
  per-unit ``a, b, c``);
* ``xla``: the model's tower in a step compiled with XLA (``jit_compile``), dropout bits included;
* ``xla_masks``: the tower compiled with XLA, its dropout masks drawn outside the compiled part.

Writes ``<out>.tsv`` / ``<out>.md`` (the command first): milliseconds per tile step (median of the steps of a
run, then of the runs) and the loss, which all variants share up to rounding. Run on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "benchmarks"))

from child import thread_env  # noqa: E402

VARIANTS = ("fused", "moments", "custom", "xla", "xla_masks")


def _custom_batch_norm(tf):
    """Batch norm over rows (batch statistics, biased variance) with a hand-written three-pass gradient."""
    @tf.custom_gradient
    def bn(h, gamma, beta):
        n = tf.cast(tf.shape(h)[0], tf.float32)
        mean = tf.reduce_sum(h, 0) / n
        inv = tf.math.rsqrt(tf.reduce_sum(tf.square(h), 0) / n - tf.square(mean) + 1e-3)
        scale = inv * gamma

        def grad(dy):
            sum_dy = tf.reduce_sum(dy, 0)
            sum_dy_xhat = (tf.reduce_sum(dy * h, 0) - mean * sum_dy) * inv
            b = -scale * inv * sum_dy_xhat / n
            return dy * scale + (h * b + (-scale * sum_dy / n - b * mean)), sum_dy_xhat, sum_dy
        return h * scale + (beta - mean * scale), grad
    return bn


def time_variant(variant: str, rows: int, steps: int) -> dict:
    """Median milliseconds per tile step of ``variant`` over ``steps`` steps after 3 warm-up steps, one thread."""
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from scfactor.densify.model import NeuMF
    model = NeuMF(2, 2, arch="mlp", loss="nb", embedding_dim=20, layers=[64, 32, 16, 8], dropout=0.2, bn_layers=2,
                  seed=0)
    h0 = tf.constant(np.random.default_rng(0).normal(0, 1, (rows, 64)).astype(np.float32))
    out_w = tf.constant(np.random.default_rng(1).normal(0, 0.1, (8, 1)).astype(np.float32))
    weights = [v for n, v in zip(model.trainable_names, model.trainable) if n.startswith(("mlp_w", "mlp_b", "bn_"))]
    if variant == "moments":
        def batch_norm(h, i, training):
            mean, var = tf.nn.moments(h, [0])
            v = model.vars
            return tf.nn.batch_normalization(h, mean, var, v[f"bn_beta{i}"], v[f"bn_gamma{i}"], 1e-3)
        model._batch_norm = batch_norm
    elif variant == "custom":
        bn = _custom_batch_norm(tf)
        model._batch_norm = lambda h, i, training: bn(h, model.vars[f"bn_gamma{i}"], model.vars[f"bn_beta{i}"])

    def loss_grads(step):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.matmul(model._tower(h0, True, step), out_w))
        return loss, tape.gradient(loss, weights)

    if variant == "xla_masks":
        masks = {}
        dropout = model._dropout
        model._dropout = lambda h, training, layer, step: h * masks[layer]

        @tf.function(jit_compile=True)
        def inner(m1, m2):
            masks.update({1: m1, 2: m2})
            return loss_grads(None)

        @tf.function
        def run(step):
            ones = [tf.ones([rows, u]) for u in model.layers[:2]]
            m1, m2 = (dropout(o, True, k + 1, step) for k, o in enumerate(ones))
            return inner(m1, m2)
    else:
        run = tf.function(loss_grads, jit_compile=(variant == "xla") or None)
    for s in range(3):
        run(tf.constant(s, tf.int64))
    times = []
    for s in range(steps):
        t0 = time.process_time()
        loss, _ = run(tf.constant(s + 3, tf.int64))
        float(loss)
        times.append(time.process_time() - t0)
    return {"variant": variant, "ms_per_step": 1000 * float(np.median(times)),
            "loss_step_3": float(run(tf.constant(3, tf.int64))[0])}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--rows", type=int, default=65536, help="rows of the tile (the default tile: 65536 entries)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per run")
    p.add_argument("--repeats", type=int, default=3, help="runs per variant (variants alternate)")
    p.add_argument("--out", default="benchmarks/results/densify_tower_variants")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        print(json.dumps(time_variant(args._child, args.rows, args.steps)))
        return
    import numpy as np
    import pandas as pd
    from results_file import command_line, run_conditions, write_results
    env = thread_env(1, TF_CPP_MIN_LOG_LEVEL="3")
    load = os.getloadavg()[0]
    runs = []
    for r in range(args.repeats):
        for v in args.variants:
            out = subprocess.run([sys.executable, __file__, "--_child", v, "--rows", str(args.rows), "--steps",
                                  str(args.steps)], capture_output=True, text=True, env=env, check=True)
            runs.append({**json.loads(out.stdout.strip().splitlines()[-1]), "repeat": r + 1})
    df = pd.DataFrame(runs)
    table = df.groupby("variant", sort=False).agg(ms_per_step=("ms_per_step", "median"),
                                                  ms_min=("ms_per_step", "min"), ms_max=("ms_per_step", "max"),
                                                  loss_step_3=("loss_step_3", "first")).reset_index()
    table["vs_fused"] = table["ms_per_step"] / float(table.loc[table.variant == "fused", "ms_per_step"].iloc[0]) \
        if "fused" in args.variants else np.nan
    write_results(args.out, command_line(__file__), table,
                  f"One NeuMF MLP-tower training step (forward + backward) on a tile of {args.rows} rows, one thread: "
                  f"CPU milliseconds per step (median of {args.steps} steps per run, median / min / max over "
                  f"{args.repeats} runs per variant, variants alternating). {run_conditions(load)}", floatfmt=".4g")


if __name__ == "__main__":
    main()
