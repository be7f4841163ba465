"""The densify steps' logic: input checks, TensorFlow set-up, train + evaluate + assemble, figure inputs.

`validate_input` reads and checks the counts of one batch block by block
(`scfactor.preprocess.contract.load_counts`), `prepare_tf` sets threads / determinism and picks the distribution
strategy (`scfactor.core.device`),
`densify_batch` hides the held-out entries, trains (`scfactor.densify.train.fit`), writes the output
with the whole matrix predicted one block of cells at a time, and returns the held-out metrics table;
`train_model`, `predict_shard` and `gather_batch` are the same work split into the fan-out's jobs
(`scfactor.densify.fanout`). `heldout_figure` reads a densify output back and draws its figure
(`scfactor.densify.plots`).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.errors import InputError, ScfactorError
from ..core.log import LOG
from ..preprocess import contract
from . import heldout, stream
from .model import COUNT_LOSSES

_PREDICTS = {
    "poisson": "expected count mu (Poisson mean, library-size offset)",
    "nb": "expected count mu (negative binomial mean, library-size offset, per-gene dispersion)",
    "mse": "count fitted by squared error, clipped at 0 (no offset)",
    "bce": "probability that the gene is detected in the cell (implicit feedback, not a count)",
}


def check_options(opts) -> None:
    """Raise `ScfactorError` (one line) on settings the schema cannot check alone."""
    if not opts.layers:
        raise ScfactorError("--layers needs at least one width")
    if opts.bn_layers > len(opts.layers):
        raise ScfactorError("--bn-layers must be between 0 and the number of --layers")


def validate_input(path, batch, opts):
    """Read and check the counts of ``batch`` for ``opts.loss`` (or raise `InputError`), block by block
    (`scfactor.preprocess.contract.load_counts`: the matrix is never dense in memory)."""
    needs_counts = opts.loss in COUNT_LOSSES
    layer = opts.layer
    try:
        adata = contract.load_counts(path, batch, opts.genes, layer, integer=needs_counts, dtype=np.float32)
    except InputError as exc:
        if needs_counts and "non-integer" in exc.problem:
            raise InputError(exc.path, f"{exc.problem} (loss {opts.loss} models counts; "
                                       "use --loss mse for non-count data)") from None
        raise
    x = sp.csr_matrix(adata.X)
    x.eliminate_zeros()
    if x.nnz == 0:
        raise InputError(path, f"{layer} of batch {batch!r} has no nonzero entries; nothing to learn")
    if adata.n_obs < 2 or adata.n_vars < 2:
        raise InputError(path, f"{layer} of batch {batch!r} is too small to factorise "
                               f"({adata.n_obs} cells x {adata.n_vars} genes)")
    adata.X = x
    return adata


def prepare_tf(opts, threads: int):
    """Prepare TensorFlow (`scfactor.core.device.configure_tf`) and return the strategy for ``opts.accelerator``."""
    from ..core.device import configure_tf, tf_strategy
    tf = configure_tf(opts.seed, threads)
    strategy = tf_strategy(opts.accelerator)
    LOG.info("TensorFlow %s, strategy %s with %d replica(s)", tf.__version__,
             type(strategy).__name__, strategy.num_replicas_in_sync)
    if strategy.num_replicas_in_sync > 1:
        LOG.info("each block of cells is split across %d replicas", strategy.num_replicas_in_sync)
    return strategy


def _masked(adata, opts):
    """(training matrix, held-out entries) of ``adata.X`` (CSR counts): a seeded share of nonzeros hidden.

    ``adata.X`` is released (set to None): the counts are the training matrix plus the held-out entries,
    rebuilt by `scfactor.densify.heldout.unmask` for the output (growing the training matrix's own arrays),
    so only one copy of them is in memory while the model trains and while they are rebuilt.
    """
    x = sp.csr_matrix(adata.X)
    adata.X = None
    train, held = heldout.mask_nonzeros(x, opts.heldout_frac, opts.seed)
    LOG.info("%d cells x %d genes, %d nonzeros; %d hidden for evaluation", x.shape[0], x.shape[1],
             x.nnz, len(held))
    return train, held


def _baselines(train, held, opts) -> dict:
    """The reference methods' predictions at the held-out entries (`scfactor.densify.heldout.baselines`),
    computed before training so that their working copy is gone while the model trains."""
    return heldout.baselines(train, held, opts.svd_rank, opts.seed) if len(held) else {}


def densify_batch(adata, opts, strategy, output, checkpoint_dir=None, source=None) -> pd.DataFrame:
    """Train on ``adata.X`` (CSR counts) with a held-out mask, write the output .h5ad to ``output`` (its
    dense ``layers['neumf']`` one block of cells at a time, `scfactor.densify.stream.write_densified`) and
    return the held-out metrics table. ``adata.X`` is released on the way (`_masked`): the output's
    counts are rebuilt from the training matrix and the held-out entries.

    ``source``: names recorded in ``uns['neumf']['params']`` besides the options (input, batch).
    """
    from .train import fit, predict_blocks
    train, held = _masked(adata, opts)
    base = _baselines(train, held, opts)
    result = fit(train, opts, strategy, checkpoint_dir=checkpoint_dir)
    n, m = train.shape
    LOG.info("trained in %.1f s (%.0f samples/s); predicting %d x %d in blocks of %d entries into %s",
             result.seconds, result.samples_per_s, n, m, opts.predict_block, output)
    # the counts grow out of train's own arrays (train is left empty): only the output holds them from here on
    out = _output_anndata(adata, heldout.unmask(train, held, consume=True), opts)
    blocks = predict_blocks(result.model, result.offset, n, m, opts.predict_block)
    return _write_output(out, held, base, opts, result, blocks, output, source)


def train_model(adata, opts, strategy, model_path, checkpoint_dir=None) -> None:
    """The fan-out's training job: train as `densify_batch` does and write the model file
    (`scfactor.densify.fanout.save_model`) instead of predicting."""
    from . import fanout
    from .train import fit
    train, _ = _masked(adata, opts)
    result = fit(train, opts, strategy, checkpoint_dir=checkpoint_dir)
    fanout.save_model(model_path, result, train, opts)
    LOG.info("trained in %.1f s (%.0f samples/s); wrote the model to %s", result.seconds, result.samples_per_s,
             model_path)


def predict_shard(model_path, opts, strategy, shard: int, shards: int, output) -> tuple[int, int]:
    """The fan-out's prediction job: predict cells ``fanout.shard_cells(...)`` from their rows of the model
    file (cell embeddings, size factors) and the gene-side weights, a block at a time, into shard file
    ``output``; returns the shard's cells ``(start, stop)``."""
    from . import fanout
    from .model import NeuMF
    from .train import predict_blocks
    meta = fanout.load_model(model_path, opts, rows=(0, 0)).meta
    n, m = int(meta["cells"]), int(meta["genes"])
    start, stop = fanout.shard_cells(n, m, opts.predict_block, shards, shard)
    ck = fanout.load_model(model_path, opts, rows=(start, stop))
    with strategy.scope():
        model = NeuMF(stop - start, m, arch=opts.arch, loss=opts.loss, embedding_dim=opts.embedding_dim,
                      layers=opts.layers, dropout=opts.dropout, bn_layers=opts.bn_layers, seed=opts.seed)
    missing = set(model.state_names) - set(ck.arrays)
    if missing:
        raise InputError(model_path, f"lacks {', '.join(sorted(missing)[:3])}; is it a densify model file?")
    model.set_state(ck.arrays)
    LOG.info("shard %d of %d: predicting cells %d:%d of %d x %d genes in blocks of %d entries into %s",
             shard, shards, start, stop, n, m, opts.predict_block, output)
    # the shard starts on a block boundary: its local blocks are the single job's blocks
    blocks = predict_blocks(model, ck.arrays["offset"], stop - start, m, opts.predict_block)
    fanout.write_shard(output, blocks, stop - start, m)
    return start, stop


def gather_batch(adata, opts, model_path, shard_paths, output, source=None) -> pd.DataFrame:
    """The fan-out's gather job: write the output .h5ad of `densify_batch` from the model file's record and
    the prediction shards (streamed as the same blocks), score the held-out entries, return the table."""
    from . import fanout
    train, held = _masked(adata, opts)
    ck = fanout.load_model(model_path, opts, rows=(0, 0), train=train)
    base = _baselines(train, held, opts)
    out = _output_anndata(adata, heldout.unmask(train, held, consume=True), opts)
    blocks = fanout.shard_blocks(shard_paths, *out.shape, opts.predict_block)
    return _write_output(out, held, base, opts, fanout.fit_record(ck), blocks, output, source)


def _output_anndata(adata, x, opts):
    """The output without its dense layer: ``X`` = counts ``x`` as float32 CSR (not copied when it is one),
    ``layers['counts']`` (int32 for the count losses, sharing ``X``'s sparsity pattern: only its values are a
    second array) and ``adata``'s ``obs`` / ``var``."""
    import anndata as ad
    x = sp.csr_matrix(x, dtype=np.float32)
    counts = (sp.csr_matrix((x.data.astype(np.int32), x.indices, x.indptr), shape=x.shape)
              if opts.loss in COUNT_LOSSES else x)
    out = ad.AnnData(X=x, obs=adata.obs.copy(), var=adata.var.copy())
    out.layers["counts"] = counts
    return out


def _write_output(out, held, base, opts, result, blocks, output, source) -> pd.DataFrame:
    """Write ``out`` (`_output_anndata`) to ``output`` with its dense layer from prediction ``blocks`` (picking
    the held-out entries' predictions on the way) and ``result``'s training record; return the held-out
    metrics table (the model beside the ``base`` line predictions of `_baselines`), computed after ``out``'s
    count matrices are written and released (`scfactor.densify.stream.write_densified`)."""
    held_pred = np.empty(len(held), dtype=np.float32)
    order = np.argsort(held.rows, kind="stable")
    sorted_rows = held.rows[order]

    def picked():
        for start, stop, values in blocks:
            sel = order[np.searchsorted(sorted_rows, start):np.searchsorted(sorted_rows, stop)]
            held_pred[sel] = values[held.rows[sel] - start, held.cols[sel]]
            yield start, stop, values

    table = {}

    def uns():
        table["t"] = _heldout_table(f"{opts.arch}_{opts.loss}", held_pred, base, held)
        return {"neumf": _record(opts, source, result, table["t"], held)}

    stream.write_densified(output, out, picked(), uns)
    return table["t"]


def _heldout_table(name, pred, base: dict, held) -> pd.DataFrame:
    """The held-out metrics of the model (``pred`` at the hidden entries) and of the ``base`` lines, logged."""
    if not len(held):
        return heldout.evaluate({}, held)
    table = heldout.evaluate({name: pred, **base}, held)
    for _, r in table.iterrows():
        LOG.info("held-out %s: Pearson(log1p) %.4f, Spearman(log1p) %.4f, median |err| %.3f, RMSE %.3f",
                 r["method"], r["pearson_log1p"], r["spearman_log1p"], r["median_abs_error"], r["rmse"])
    return table


def _record(opts, source, result, table, held) -> dict:
    """``uns['neumf']`` of the output: every setting, what the layer means, the trace and the held-out scores."""
    return {
        "params": {**_plain(asdict(opts)), **_plain(source or {})},
        "predicts": _PREDICTS[opts.loss],
        "trace": {phase: pd.DataFrame(t).to_dict(orient="list") for phase, t in result.trace.items()},
        "train_seconds": float(result.seconds),
        "samples_per_s": float(result.samples_per_s),
        "heldout": {r["method"]: {k: r[k] for k in table.columns if k != "method"}
                    for _, r in table.iterrows()},
        "heldout_rows": held.rows.astype(np.int32),
        "heldout_cols": held.cols.astype(np.int32),
    }


def _plain(d: dict) -> dict:
    """A dict that h5ad can store: None -> '', tuples -> arrays."""
    out = {}
    for k, v in d.items():
        if v is None:
            out[k] = ""
        elif isinstance(v, (tuple, list)):
            out[k] = np.asarray(v)
        elif isinstance(v, dict):
            out[k] = _plain(v)
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------- the figure's inputs
def heldout_arrays(adata, path):
    """(held-out entries, training matrix, NeuMF predictions at them) from a densify output .h5ad."""
    if "neumf" not in adata.layers:
        raise InputError(path, "has no layers['neumf']; is it an output of densify.py?")
    if "counts" not in adata.layers or "neumf" not in adata.uns:
        raise InputError(path, "lacks layers['counts'] or uns['neumf']; is it an output of densify.py?")
    u = adata.uns["neumf"]
    rows = np.asarray(u["heldout_rows"], dtype=np.int64)
    cols = np.asarray(u["heldout_cols"], dtype=np.int64)
    if rows.size == 0:
        raise InputError(path, "has no held-out entries (densify ran with --heldout-frac 0)")
    counts = sp.csr_matrix(adata.layers["counts"])
    obs = np.asarray(counts[rows, cols], dtype=np.float64).ravel()
    held = heldout.HeldOut(rows, cols, obs)
    mask = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=counts.shape)
    train = counts - counts.multiply(mask)
    train.eliminate_zeros()
    pred = np.asarray(adata.layers["neumf"])[rows, cols]
    return held, sp.csr_matrix(train), pred


def heldout_figure(adata, path, title: str):
    """The held-out figure of densify output ``adata`` (read from ``path``): NeuMF and the SVD baseline
    recomputed with the run's rank and seed, and the loss trace."""
    from . import plots
    held, train, pred = heldout_arrays(adata, path)
    params = adata.uns["neumf"]["params"]
    missing = [k for k in ("svd_rank", "seed", "arch", "loss") if k not in params]
    if missing:
        raise InputError(path, f"uns['neumf']['params'] lacks {', '.join(missing)}; is it an output of densify.py?")
    rank, seed = int(params["svd_rank"]), int(params["seed"])
    svd = heldout.svd_baseline(train, held, rank, seed)
    name = f"NeuMF ({params['arch']}, {params['loss']} loss)"
    return plots.heldout_figure(held, {name: pred, f"truncated SVD, rank {rank}": svd},
                                adata.uns["neumf"]["trace"], title)
