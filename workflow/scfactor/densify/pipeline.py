"""The densify steps' logic: input checks, TensorFlow set-up, train + evaluate + assemble, figure inputs.

`validate_input` reads and checks the counts of one batch block by block
(`scfactor.preprocess.contract.stream_counts`) and hides the held-out entries, keeping the training matrix on
disk (`scfactor.densify.spill`: a `MaskedBatch`), `prepare_tf` sets threads / determinism and picks the
distribution strategy (`scfactor.core.device`), `densify_batch` trains (`scfactor.densify.train.fit`), writes
the output with its counts and the whole matrix predicted one block of cells at a time, and returns the
held-out metrics table;
`train_model`, `predict_shard` and `gather_batch` are the same work split into the fan-out's jobs
(`scfactor.densify.fanout`). `heldout_figure` reads a densify output back, a block at a time, and draws its figure
(`scfactor.densify.plots`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.errors import InputError, ScfactorError
from ..core.log import LOG
from ..preprocess import contract
from . import heldout, spill, stream
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


@dataclass
class MaskedBatch:
    """One batch as densify uses it: ``meta`` (obs / var, no matrix), the training matrix ``train`` (the counts
    with the held-out entries hidden, on disk: `scfactor.densify.spill.SpilledCSR`) and the hidden entries."""

    meta: object
    train: spill.SpilledCSR
    held: heldout.HeldOut

    @property
    def n_obs(self) -> int:
        """Cells."""
        return self.meta.n_obs

    @property
    def n_vars(self) -> int:
        """Genes."""
        return self.meta.n_vars

    def count_blocks(self):
        """The batch's counts (canonical float32 CSR), consecutive blocks of rows rebuilt from the training
        matrix and the held-out entries (`scfactor.densify.heldout.unmask`)."""
        held = self.held
        for a, b, block in spill.row_chunks(self.train):
            k0, k1 = heldout.row_range(held.rows, a, b)
            part = heldout.HeldOut(held.rows[k0:k1] - a, held.cols[k0:k1], held.values[k0:k1])
            yield heldout.unmask(block, part, consume=True)


def validate_input(path, batch, opts) -> MaskedBatch:
    """Read and check the counts of ``batch`` for ``opts.loss`` (or raise `InputError`) block by block
    (`scfactor.preprocess.contract.stream_counts`), write them to disk (`scfactor.densify.spill`) and hide the
    held-out entries (`scfactor.densify.heldout.masked_blocks`) into the training matrix, also on disk: the
    counts are never whole in memory (the hidden entries are: 12 bytes each, a tenth of the counts by default)."""
    needs_counts = opts.loss in COUNT_LOSSES
    layer = opts.layer
    try:
        meta, blocks, _ = contract.stream_counts(path, batch, opts.genes, layer, integer=needs_counts)
        counts = spill.SpilledCSR.write((heldout.canonical(sp.csr_matrix(b, dtype=np.float32)) for b in blocks),
                                        meta.n_vars)
    except InputError as exc:
        if needs_counts and "non-integer" in exc.problem:
            raise InputError(exc.path, f"{exc.problem} (loss {opts.loss} models counts; "
                                       "use --loss mse for non-count data)") from None
        raise
    if counts.nnz == 0:
        raise InputError(path, f"{layer} of batch {batch!r} has no nonzero entries; nothing to learn")
    if meta.n_obs < 2 or meta.n_vars < 2:
        raise InputError(path, f"{layer} of batch {batch!r} is too small to factorise "
                               f"({meta.n_obs} cells x {meta.n_vars} genes)")
    held = heldout.hidden_entries(counts.nnz, opts.heldout_frac, counts.shape)
    train = spill.SpilledCSR.write((blk for _, _, blk in heldout.masked_blocks(counts, opts.heldout_frac, opts.seed,
                                                                              held)), meta.n_vars)
    counts.close()
    LOG.info("%d cells x %d genes, %d nonzeros; %d hidden for evaluation (training matrix %s)", meta.n_obs,
             meta.n_vars, train.nnz + len(held), len(held), "in memory" if train.in_memory else "on disk")
    return MaskedBatch(meta, train, held)


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


def _baselines(data: MaskedBatch, opts) -> dict:
    """The reference methods' predictions at the held-out entries (`scfactor.densify.heldout.baselines`),
    computed before training so that their working arrays are gone while the model trains."""
    return heldout.baselines(data.train, data.held, opts.svd_rank, opts.seed) if len(data.held) else {}


def densify_batch(data: MaskedBatch, opts, strategy, output, checkpoint_dir=None, source=None) -> pd.DataFrame:
    """Train on ``data`` (`validate_input`), write the output .h5ad to ``output`` (its counts and dense
    ``layers['neumf']`` one block of cells at a time, `scfactor.densify.stream.write_densified`) and return the
    held-out metrics table.

    ``source``: names recorded in ``uns['neumf']['params']`` besides the options (input, batch).
    """
    from .train import fit, predict_blocks
    base = _baselines(data, opts)
    result = fit(data.train, opts, strategy, checkpoint_dir=checkpoint_dir)
    n, m = data.train.shape
    LOG.info("trained in %.1f s (%.0f samples/s); predicting %d x %d in blocks of %d entries into %s",
             result.seconds, result.samples_per_s, n, m, opts.predict_block, output)
    blocks = predict_blocks(result.model, result.offset, n, m, opts.predict_block)
    return _write_output(data, base, opts, result, blocks, output, source)


def train_model(data: MaskedBatch, opts, strategy, model_path, checkpoint_dir=None) -> None:
    """The fan-out's training job: train as `densify_batch` does and write the model file
    (`scfactor.densify.fanout.save_model`) instead of predicting."""
    from . import fanout
    from .train import fit
    result = fit(data.train, opts, strategy, checkpoint_dir=checkpoint_dir)
    fanout.save_model(model_path, result, data.train, opts)
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


def gather_batch(data: MaskedBatch, opts, model_path, shard_paths, output, source=None) -> pd.DataFrame:
    """The fan-out's gather job: write the output .h5ad of `densify_batch` from the model file's record and
    the prediction shards (streamed as the same blocks), score the held-out entries, return the table."""
    from . import fanout
    ck = fanout.load_model(model_path, opts, rows=(0, 0), train=data.train)
    base = _baselines(data, opts)
    blocks = fanout.shard_blocks(shard_paths, data.n_obs, data.n_vars, opts.predict_block)
    return _write_output(data, base, opts, fanout.fit_record(ck), blocks, output, source)


def _write_output(data: MaskedBatch, base, opts, result, blocks, output, source) -> pd.DataFrame:
    """Write the output of ``data`` to ``output``: its counts (`MaskedBatch.count_blocks`, ``layers['counts']``
    int32 for the count losses), its dense layer from prediction ``blocks`` (picking the held-out entries'
    predictions on the way), ``data.meta``'s obs / var and ``result``'s training record; return the held-out
    metrics table (the model beside the ``base`` line predictions of `_baselines`)."""
    import anndata as ad
    held = data.held
    held_pred = np.empty(len(held), dtype=np.float32)
    in_rows = heldout.entries_in_rows(held.rows)

    def picked():
        for start, stop, values in blocks:
            sel = in_rows(start, stop)
            held_pred[sel] = values[held.rows[sel] - start, held.cols[sel]]
            yield start, stop, values

    table = {}

    def uns():
        table["t"] = _heldout_table(f"{opts.arch}_{opts.loss}", held_pred, base, held)
        return {"neumf": _record(opts, source, result, table["t"], held)}

    meta = ad.AnnData(obs=data.meta.obs.copy(), var=data.meta.var.copy())
    stream.write_densified(output, meta, picked(), uns, data.count_blocks(), integer_counts=opts.loss in COUNT_LOSSES)
    return table["t"]


def _heldout_table(name, pred, base: dict, held) -> pd.DataFrame:
    """The held-out metrics of the model (``pred`` at the hidden entries) and of the ``base`` lines, logged."""
    if not len(held):
        return heldout.evaluate({}, held)
    step = heldout.scored_step(len(held))
    if step > 1:
        LOG.info("scoring every %dth of the %d held-out entries (%d; heldout.SCORED_MAX)", step, len(held),
                 -(-len(held) // step))
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
        "heldout_rows": np.asarray(held.rows, dtype=np.int32),  # no copy: int32 already (`heldout.hidden_entries`)
        "heldout_cols": np.asarray(held.cols, dtype=np.int32),
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
def heldout_arrays(path):
    """(held-out entries, training matrix, NeuMF predictions at them, ``uns['neumf']``) of the densify output at
    ``path``, read a block of cells at a time with h5py: the counts (``layers['counts']``) and the dense layer are
    never whole in memory, and the training matrix (the counts without the held-out entries) goes to disk
    (`scfactor.densify.spill.SpilledCSR`), as in the densify job."""
    import h5py
    from anndata.io import read_elem

    from ..core import io
    from ..core.csr_stack import row_blocks
    from ..preprocess.counts import read_rows
    p = io.require_file(path)
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise InputError(p, f"cannot read h5ad: {exc}") from None
    with f:
        layers = f.get("layers", {})
        if "neumf" not in layers:
            raise InputError(path, "has no layers['neumf']; is it an output of densify.py?")
        if "counts" not in layers or "neumf" not in f.get("uns", {}):
            raise InputError(path, "lacks layers['counts'] or uns['neumf']; is it an output of densify.py?")
        u = read_elem(f["uns/neumf"])
        if not {"heldout_rows", "heldout_cols", "params", "trace"} <= set(u):
            raise InputError(path, "uns['neumf'] lacks its held-out entries or settings; is it an output of densify.py?")
        rows = np.asarray(u["heldout_rows"], dtype=np.int64)
        cols = np.asarray(u["heldout_cols"], dtype=np.int64)
        if rows.size == 0:
            raise InputError(path, "has no held-out entries (densify ran with --heldout-frac 0)")
        counts, dense = f["layers/counts"], f["layers/neumf"]
        shape = tuple(int(v) for v in counts.attrs.get("shape", (-1, -1)))
        if counts.attrs.get("encoding-type") != "csr_matrix" or tuple(dense.shape) != shape:
            raise InputError(path, "layers['counts'] is not a CSR matrix of layers['neumf']'s shape; "
                                   "is it an output of densify.py?")
        if rows.min() < 0 or rows.max() >= shape[0] or cols.min() < 0 or cols.max() >= shape[1]:
            raise InputError(path, f"uns['neumf'] has held-out entries outside its {shape[0]} x {shape[1]} matrix")
        indptr = counts["indptr"][()]
        in_rows = heldout.entries_in_rows(rows)
        values, pred = np.empty(rows.size), np.empty(rows.size, dtype=np.float32)

        def train_blocks():
            for a, b in row_blocks(indptr, spill.CHUNK_ENTRIES):
                block = sp.csr_matrix(read_rows(counts, a, b, indptr), dtype=np.float32)
                sel = in_rows(a, b)
                r, c = rows[sel] - a, cols[sel]
                values[sel] = np.asarray(block[r, c], dtype=np.float64).ravel()
                pred[sel] = dense[a:b][r, c]
                block = block - block.multiply(sp.csr_matrix((np.ones(r.size), (r, c)), shape=block.shape))
                yield heldout.canonical(block)
        train = spill.SpilledCSR.write(train_blocks(), int(counts.attrs["shape"][1]))
    return heldout.HeldOut(rows, cols, values), train, pred, u


def heldout_figure(path, title: str):
    """The held-out figure of the densify output at ``path`` (`heldout_arrays`): NeuMF and the SVD baseline
    recomputed with the run's rank and seed, and the loss trace."""
    from . import plots
    held, train, pred, u = heldout_arrays(path)
    params = u["params"]
    missing = [k for k in ("svd_rank", "seed", "arch", "loss") if k not in params]
    if missing:
        raise InputError(path, f"uns['neumf']['params'] lacks {', '.join(missing)}; is it an output of densify.py?")
    rank, seed = int(params["svd_rank"]), int(params["seed"])
    svd = heldout.svd_baseline(train, held, rank, seed)
    train.close()
    name = f"NeuMF ({params['arch']}, {params['loss']} loss)"
    return plots.heldout_figure(held, {name: pred, f"truncated SVD, rank {rank}": svd}, u["trace"], title)
