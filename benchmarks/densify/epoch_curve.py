#!/usr/bin/env python
"""Held-out Pearson(log1p) and RMSE of densify's model after every epoch, for one setting (quality only).

    python benchmarks/densify/epoch_curve.py --input results/preprocess/kang.h5ad --set '{"epochs": 30}'

``--set``: densify options overriding the schema's (JSON). Prints one JSON line per epoch (the first line
is the command), then the final scores of the whole dense prediction. The held-out entries and the
training are those of ``workflow/scripts/densify.py`` with the same options at one thread, so the line of
epoch k equals a ``--epochs k`` run (no learning-rate schedule). Deterministic: fine on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default=str(REPO / "results/preprocess/kang.h5ad"))
    p.add_argument("--batch", default="ctrl")
    p.add_argument("--set", default="{}", help="densify options as JSON, e.g. '{\"block_genes\": 0}'")
    args = p.parse_args(argv)
    print("python " + shlex.join([str(Path(__file__).resolve().relative_to(REPO)), *sys.argv[1:]]), flush=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    from scfactor.densify import heldout
    from scfactor.densify.cli import DENSIFY
    from scfactor.densify.pipeline import prepare_tf, validate_input
    from scfactor.densify.train import fit, predict_dense, size_factors, tile_shape
    kw = json.loads(args.set)
    opts = DENSIFY.defaults(accelerator="cpu", **kw)
    data = validate_input(args.input, args.batch, opts)  # the held-out entries hidden as the densify job hides them
    strategy = prepare_tf(opts, 1)
    train, held = data.train, data.held
    cells, genes = tile_shape(opts.block_entries, opts.block_genes, *train.shape)
    steps = -(-train.shape[0] // cells) * -(-train.shape[1] // genes)
    c_t, g_t = tf.constant(held.rows.astype(np.int32)), tf.constant(held.cols.astype(np.int32))
    off = np.log(size_factors(train)).astype(np.float32)

    def on_block(model, phase, epoch, block):
        if block == steps:
            pred = model.mean(model.logits(c_t, g_t), tf.gather(off, c_t)).numpy()
            r = heldout.heldout_metrics(pred, held.values)
            print(json.dumps({"set": kw, "epoch": epoch + 1, "pearson_log1p": round(r["pearson_log1p"], 4),
                              "rmse": round(r["rmse"], 3)}), flush=True)

    res = fit(train, opts, strategy, on_block=on_block)
    dense = predict_dense(res.model, res.offset, *train.shape, opts.predict_block)
    t = heldout.evaluate({"neumf": dense[held.rows, held.cols]}, held)
    print(json.dumps({"set": kw, "final": t.iloc[0].drop("method").to_dict(),
                      "final_loss": res.trace[opts.arch][-1]["loss"]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
