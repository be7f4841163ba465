#!/usr/bin/env python
"""A faithful re-creation of the NeuMF/LIGER notebook's NeuMF training loop, for the speed comparison only.

TF1-style: ``tf.compat.v1`` graph with placeholders of shape (None, 1), ``tf.Variable`` embeddings
(``random_uniform``, 20 per tower), the notebook's NeuMF layer stack (section 6 of the notebook: MLP
tower concat -> dropout -> Dense 64 relu -> BN -> dropout -> Dense 32 relu -> BN -> dropout ->
Dense 16 relu -> Dense 8 exponential, GMF product, concat, Dense 1 lecun_uniform), MSE loss,
Adam(lr 0.001, epsilon 1), mini-batches of 128 made by ``sklearn.utils.shuffle`` + list slicing,
and one ``session.run([step, loss], feed_dict)`` per batch with ``np.array(...).reshape(-1, 1)``
as in the notebook. The notebook's tqdm bar is left out (it only makes the notebook's loop slower).

Trains until ``--seconds`` of CPU time (training only) or ``--epochs`` epochs, whichever comes first,
scoring the held-out entries (``--heldout``, `scfactor.densify.heldout` metrics) every
``--eval-every`` mini-batches with the CPU time of scoring left out. Prints one JSON line: the
training CPU seconds at which each ``--levels`` held-out Pearson(log1p) was first reached, the
trace of (CPU seconds, entries seen, Pearson), the final held-out scores and samples/s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--matrix", required=True, help=".npz with a CSR training matrix (scipy.sparse.save_npz)")
    p.add_argument("--heldout", required=True, help=".npz with the hidden entries: rows, cols, values")
    p.add_argument("--seconds", type=float, default=600.0, help="CPU-second budget of training")
    p.add_argument("--epochs", type=float, default=10.0, help="epoch budget of training")
    p.add_argument("--eval-every", type=int, default=2000, help="mini-batches between held-out scorings")
    p.add_argument("--levels", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import scipy.sparse as sp
    import tensorflow.compat.v1 as tf
    from sklearn.utils import shuffle

    from scfactor.densify.heldout import heldout_metrics
    tf.disable_v2_behavior()

    x = sp.load_npz(args.matrix).toarray()
    with np.load(args.heldout) as z:
        h_rows, h_cols, h_vals = z["rows"], z["cols"], z["values"]
    n_cells, n_genes = x.shape
    # the notebook's long table: every (cell, gene, expression) entry, zeros included
    cids = np.repeat(np.arange(n_cells), n_genes)
    gids = np.tile(np.arange(n_genes), n_cells)
    values = list(x.ravel().astype(np.int64))
    latent_features, learning_rate = 20, 0.001

    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(args.seed)
        cell = tf.placeholder(tf.int32, shape=(None, 1))
        gene = tf.placeholder(tf.int32, shape=(None, 1))
        label = tf.placeholder(tf.int32, shape=(None, 1))
        mlp_c_var = tf.Variable(tf.random_uniform([n_cells, latent_features], minval=0), name="mlp_cell_embedding")
        mlp_cell_embedding = tf.nn.embedding_lookup(mlp_c_var, cell)
        mlp_g_var = tf.Variable(tf.random_uniform([n_genes, latent_features], minval=0), name="mlp_gene_embedding")
        mlp_gene_embedding = tf.nn.embedding_lookup(mlp_g_var, gene)
        gmf_c_var = tf.Variable(tf.random_uniform([n_cells, latent_features], minval=0), name="gmf_cell_embedding")
        gmf_cell_embedding = tf.nn.embedding_lookup(gmf_c_var, cell)
        gmf_g_var = tf.Variable(tf.random_uniform([n_genes, latent_features], minval=0), name="gmf_item_embedding")
        gmf_gene_embedding = tf.nn.embedding_lookup(gmf_g_var, gene)
        gmf_matrix = tf.multiply(tf.keras.layers.Flatten()(gmf_cell_embedding),
                                 tf.keras.layers.Flatten()(gmf_gene_embedding))
        mlp_concat = tf.keras.layers.concatenate([tf.keras.layers.Flatten()(mlp_cell_embedding),
                                                  tf.keras.layers.Flatten()(mlp_gene_embedding)])
        mlp_dropout = tf.keras.layers.Dropout(0.2)(mlp_concat)
        mlp_layer_1 = tf.keras.layers.Dense(64, activation="relu", name="layer1")(mlp_dropout)
        mlp_batch_norm1 = tf.keras.layers.BatchNormalization(name="batch_norm1")(mlp_layer_1)
        mlp_dropout1 = tf.keras.layers.Dropout(0.2, name="dropout1")(mlp_batch_norm1)
        mlp_layer_2 = tf.keras.layers.Dense(32, activation="relu", name="layer2")(mlp_dropout1)
        mlp_batch_norm2 = tf.keras.layers.BatchNormalization(name="batch_norm2")(mlp_layer_2)
        mlp_dropout2 = tf.keras.layers.Dropout(0.2, name="dropout2")(mlp_batch_norm2)
        mlp_layer_3 = tf.keras.layers.Dense(16, activation="relu", name="layer3")(mlp_dropout2)
        mlp_layer_4 = tf.keras.layers.Dense(8, activation="exponential", name="layer4")(mlp_layer_3)
        merged_vector = tf.keras.layers.concatenate([gmf_matrix, mlp_layer_4])
        output_layer = tf.keras.layers.Dense(1, kernel_initializer="lecun_uniform", name="output_layer")(merged_vector)
        labels = tf.cast(label, tf.float32)
        loss = tf.reduce_mean(tf.square(tf.subtract(labels, output_layer)))
        opt = tf.train.AdamOptimizer(learning_rate=learning_rate, epsilon=1)
        step = opt.minimize(loss)
        init = tf.global_variables_initializer()
    config = tf.ConfigProto(intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=args.threads)
    session = tf.Session(config=config, graph=graph)
    session.run(init)

    def score():
        pred = session.run(output_layer, {cell: h_rows.reshape(-1, 1), gene: h_cols.reshape(-1, 1)}).ravel()
        return heldout_metrics(pred, h_vals)

    b = args.batch_size
    n_batches = int(math.ceil(len(cids) / b))
    levels = sorted(args.levels)
    reached, trace = {}, []
    cpu, seen, epoch, l = 0.0, 0, 0, float("nan")
    wall0 = time.perf_counter()
    while cpu < args.seconds and epoch < args.epochs:
        t0 = time.process_time()
        # the notebook's random_mini_batches (sklearn shuffle + slicing), once per epoch
        shuffled_c, shuffled_g, shuffled_l = shuffle(cids, gids, values, random_state=args.seed + epoch)
        cpu += time.process_time() - t0
        for k in range(n_batches):
            t0 = time.process_time()
            minibatch = (shuffled_c[k * b:(k + 1) * b], shuffled_g[k * b:(k + 1) * b], shuffled_l[k * b:(k + 1) * b])
            feed_dict = {cell: np.array(minibatch[0]).reshape(-1, 1),
                         gene: np.array(minibatch[1]).reshape(-1, 1),
                         label: np.array(minibatch[2]).reshape(-1, 1)}
            _, l = session.run([step, loss], feed_dict)
            cpu += time.process_time() - t0
            seen += len(minibatch[0])
            if (k + 1) % args.eval_every == 0 or k == n_batches - 1:
                r = score()["pearson_log1p"]
                trace.append([round(cpu, 3), seen, r])
                for lev in levels:
                    if lev not in reached and r >= lev:
                        reached[lev] = cpu
            if cpu >= args.seconds or seen >= args.epochs * len(cids):
                break
        epoch += 1
    final = score()
    print(json.dumps({"impl": "seed_tf1_feed_dict", "batch_size": b, "fit_cpu_s": cpu,
                      "fit_wall_s": time.perf_counter() - wall0, "entries_seen": seen,
                      "epochs_seen": seen / len(cids), "samples_per_cpu_s": seen / cpu,
                      "time_to_level": {str(k): reached.get(k) for k in levels}, "trace": trace,
                      "final_loss": float(l), **{f"final_{k}": v for k, v in final.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
