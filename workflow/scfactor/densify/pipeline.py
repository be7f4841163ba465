"""NeuMF densification of one batch: input checks, TensorFlow set-up, train + evaluate + assemble.

The steps of ``workflow/scripts/densify.py`` as functions: `validate_input` opens and checks the
preprocessed matrix, `configure_tf` sets threads / determinism and picks the distribution
strategy, `densify` hides the held-out entries, trains (see `neumf_train.fit`), predicts the
whole matrix and returns the output AnnData and the held-out metrics table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import heldout
from ..preprocess import contract
from ..core.log import LOG
from ..core.errors import InputError, ScfactorError
from .neumf import ARCHS, COUNT_LOSSES, LOSSES
from .neumf_train import FitConfig


@dataclass
class DensifyOptions(FitConfig):
    """Model and training settings (`FitConfig`) plus the held-out evaluation and prediction ones."""

    heldout_frac: float = 0.1
    svd_rank: int = 20
    predict_block: int = 1 << 18

    def check(self) -> None:
        """Raise `ScfactorError` (one line) on an out-of-range setting."""
        bad = None
        if self.arch not in ARCHS:
            bad = f"--arch must be one of {', '.join(ARCHS)}"
        elif self.loss not in LOSSES:
            bad = f"--loss must be one of {', '.join(LOSSES)}"
        elif self.emb_dim < 1 or not self.layers or min(self.layers) < 1:
            bad = "--embedding-dim and every --layers width must be >= 1"
        elif not 0 <= self.dropout < 1:
            bad = "--dropout must be in [0, 1)"
        elif not 0 <= self.bn_layers <= len(self.layers):
            bad = "--bn-layers must be between 0 and the number of --layers"
        elif self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            bad = "--epochs and --batch-size must be >= 1 and --lr > 0"
        elif not 0 < self.zero_keep <= 1:
            bad = "--zero-keep must be in (0, 1]"
        elif self.num_neg < 1 or self.pretrain_epochs < 0:
            bad = "--num-neg must be >= 1 and --pretrain-epochs >= 0"
        elif not 0 <= self.heldout_frac < 1:
            bad = "--heldout-frac must be in [0, 1)"
        elif self.svd_rank < 1 or self.predict_block < 1:
            bad = "--svd-rank and --predict-block must be >= 1"
        if bad:
            raise ScfactorError(bad)

    def fit_config(self) -> FitConfig:
        """The `FitConfig` part of these options (the held-out fraction goes into its fingerprint)."""
        shared = {f.name: getattr(self, f.name) for f in fields(FitConfig)}
        shared["layers"] = tuple(self.layers)
        shared["extra"] = {"heldout_frac": self.heldout_frac}
        return FitConfig(**shared)


def validate_input(path, batch, genes, layer, loss):
    """Open the preprocessed matrix of ``batch`` and check it suits ``loss`` (or raise `InputError`)."""
    needs_counts = loss in COUNT_LOSSES
    try:
        adata = _load(path, batch, genes, layer, integer=needs_counts)
    except InputError as exc:
        if needs_counts and "non-integer" in exc.problem:
            raise InputError(exc.path, f"{exc.problem} (loss {loss} models counts; "
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


def _load(path, batch, genes, layer, integer):
    from .. import io
    return contract.load_preprocessed(path, batch=batch, genes=genes, layer=layer, integer=integer)


def configure_tf(accelerator: str, threads: int, seed: int):
    """Prepare TensorFlow (`scfactor.device.configure_tf`) and return the distribution strategy."""
    from ..core.device import configure_tf as prepare_tf, tf_strategy
    tf = prepare_tf(seed, threads)
    strategy = tf_strategy(accelerator)
    LOG.info("TensorFlow %s, strategy %s with %d replica(s)", tf.__version__,
             type(strategy).__name__, strategy.num_replicas_in_sync)
    if strategy.num_replicas_in_sync > 1:
        LOG.info("the global batch is split across %d replicas", strategy.num_replicas_in_sync)
    return strategy


def densify(adata, opts: DensifyOptions, strategy, checkpoint_dir=None, source=None):
    """Train on ``adata.X`` (CSR counts) with a held-out mask; return (output AnnData, metrics table)."""
    import anndata as ad
    from .neumf_train import fit, predict_dense
    x = sp.csr_matrix(adata.X)
    if opts.batch_size % strategy.num_replicas_in_sync:
        raise ScfactorError(f"--batch-size {opts.batch_size} is not divisible by the "
                            f"{strategy.num_replicas_in_sync} replicas")
    train, held = heldout.mask_nonzeros(x, opts.heldout_frac, opts.seed)
    LOG.info("%d cells x %d genes, %d nonzeros; %d hidden for evaluation", x.shape[0], x.shape[1],
             x.nnz, len(held))
    result = fit(train, opts.fit_config(), strategy, checkpoint_dir=checkpoint_dir)
    LOG.info("trained in %.1f s (%.0f samples/s); predicting %d x %d in blocks of %d entries",
             result.seconds, result.samples_per_s, x.shape[0], x.shape[1], opts.predict_block)
    dense = predict_dense(result.model, result.offset, x.shape[0], x.shape[1], opts.predict_block)
    name = f"{opts.arch}_{opts.loss}"
    if len(held):
        preds = {name: dense[held.rows, held.cols], **heldout.baselines(train, held, opts.svd_rank, opts.seed)}
        table = heldout.evaluate(preds, held)
        for _, r in table.iterrows():
            LOG.info("held-out %s: Pearson(log1p) %.4f, Spearman(log1p) %.4f, median |err| %.3f, RMSE %.3f",
                     r["method"], r["pearson_log1p"], r["spearman_log1p"], r["median_abs_error"], r["rmse"])
    else:
        table = heldout.evaluate({}, held)
    out = ad.AnnData(X=sp.csr_matrix(x, dtype=np.float32), obs=adata.obs.copy(), var=adata.var.copy())
    out.layers["counts"] = sp.csr_matrix(x, dtype=np.int32) if opts.loss in COUNT_LOSSES else x.copy()
    out.layers["neumf"] = dense
    out.uns["neumf"] = {
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
    return out, table


_PREDICTS = {
    "poisson": "expected count mu (Poisson mean, library-size offset)",
    "nb": "expected count mu (negative binomial mean, library-size offset, per-gene dispersion)",
    "mse": "count fitted by squared error, clipped at 0 (no offset)",
    "bce": "probability that the gene is detected in the cell (implicit feedback, not a count)",
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
