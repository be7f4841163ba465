"""One MTL shard's logic (`scfactor.mtl.cli.mtl_train_shard`): its genes, data, training, test R2 and table.

Imports neither pandas nor (with the numpy engine) TensorFlow: the shard fan-out runs this module in
hundreds of short processes, whose fixed cost is mostly imports. The table is written by `write_shard_table`
with the bytes pandas' ``to_csv(sep="\\t", index=False, float_format="%.6g")`` would give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import DeviceError, InputError
from ..core.io import require_columns
from ..core.log import LOG
from . import layout as L
from .tables import column, read_rows, to_float, write_tsv

#: the model every other model is compared with (trace norm, lambda from config)
REFERENCE = "tracenorm"
#: the lambda = 0 ablation (same network, independent tasks)
ABLATION = "lambda0"
#: models trained per shard, reference first
MODELS = (REFERENCE, ABLATION)


@dataclass
class TrainedShard:
    """A trained shard: its per-gene R2 table (``{column: values}``), the model, the genes and the
    attributes stored with the weights."""

    table: dict
    model: object
    genes: np.ndarray
    attrs: dict


def cluster_genes(clusters_path, cluster: int) -> np.ndarray:
    """The genes (``gene_ensembl``) of ``cluster`` in a clusters table (columns gene_ensembl, cluster);
    `InputError` if the table lacks a column or the cluster has no genes."""
    header, body = read_rows(clusters_path)
    require_columns(header, ["gene_ensembl", "cluster"], clusters_path, "cluster table")
    genes = np.asarray(column(header, body, "gene_ensembl"), dtype=object)
    labels = column(header, body, "cluster")
    try:
        values = to_float([[c] for c in labels], clusters_path, ["cluster"])[:, 0]
    except InputError:  # a text column: no label equals the number (as pandas compares it)
        values, have = np.full(len(labels), np.nan), sorted(set(labels))
    else:
        ints = np.isfinite(values).all() and (values == np.round(values)).all()
        have = sorted(set(values.astype(np.int64).tolist() if ints else values.tolist()))
    genes = genes[values == cluster]
    if len(genes) == 0:
        raise InputError(clusters_path, f"cluster {cluster} has no genes (clusters: {', '.join(map(str, have))})")
    return genes


def train_shard(root, tissue: str, clusters_path, cluster: int, rep: int, model_name: str, opts, *,
                checkpoint_dir, threads: int) -> TrainedShard:
    """Train and test one (tissue, cluster, replicate) shard (`cli.TRAIN_SHARD` options).

    Seeds come from ``opts.seed`` and the shard's wildcards (`data.shard_seed`); the split from
    ``(opts.seed, rep)``, the same as the lasso's.
    """
    from .data import build_shard, shard_seed
    if opts.engine == "numpy" and opts.accelerator in ("gpu", "tpu"):
        raise DeviceError(f"--accelerator {opts.accelerator} needs --engine tensorflow "
                          "(the numpy engine runs on the CPU)")
    genes = cluster_genes(clusters_path, cluster)
    data = L.load_tissue(root, tissue, genes=genes)
    shard = build_shard(data, genes, opts.test_ratio, opts.seed, rep, shard=clusters_path)
    LOG.info("shard %s c%02d r%d (%s, lambda %g): %d genes x %d TFs, %d-%d training cells per gene",
             tissue, cluster, rep, model_name, opts.lam, shard.n_genes, shard.n_tfs,
             min(map(len, shard.train)), max(map(len, shard.train)))
    seq = shard_seed(opts.seed, tissue, cluster, rep)
    model, r2 = _train_test(shard, opts, seq, checkpoint_dir, threads)
    table = {"tissue": tissue, "gene": shard.genes, "cluster": cluster, "rep": rep, "model": model_name,
             "lambda": opts.lam, "r2": np.round(r2, 6), "n_train": [len(t) for t in shard.train],
             "n_test": [len(t) for t in shard.test]}
    attrs = {"tissue": tissue, "cluster": cluster, "rep": rep, "lambda": opts.lam, "l1": opts.l1,
             "epochs": opts.epochs, "unfold_axis": opts.unfold_axis}
    LOG.info("test R2: mean %.3f, median %.3f", float(np.mean(r2)), float(np.median(r2)))
    return TrainedShard(table, model, shard.genes, attrs)


def _train_test(shard, opts, seq, checkpoint_dir, threads):
    """(model, test R2 per gene) of one shard with ``opts.engine`` (the numpy one never imports TensorFlow)."""
    if opts.engine == "numpy":
        from . import model_np as M
        model, _ = M.train_shard(shard, opts, seed_seq=seq, checkpoint_dir=checkpoint_dir)
        return model, M.test_r2(model, shard)
    from ..core.device import configure_tf, tf_strategy
    from . import model as M
    configure_tf(int(seq.generate_state(1)[0]), threads=threads)
    with tf_strategy(opts.accelerator).scope():
        model, _ = M.train_shard(shard, opts, seed_seq=seq, checkpoint_dir=checkpoint_dir)
        return model, M.test_r2(model, shard)


def write_shard_table(path, table: dict) -> None:
    """Write a shard's table (`TrainedShard.table`) atomically as tab-separated text, floats ``%.6g``."""
    write_tsv(path, table, float_format="%.6g")
