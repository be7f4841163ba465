"""Inputs of the GRN analysis (the cell-state GRN notebook): prior TF -> target networks, cell states, cell pairing.

* `read_prior` reads DoRothEA (``tf,confidence,target,mor``) or TRRUST (``TF, Target, Regulation,
  Reference``) into one signed edge list (``tf, target, sign`` with sign in {-1, 0, +1});
  `match_prior_names` matches its gene names to the data's (exactly, or ignoring case on request) and warns
  when ignoring case would match more TFs or targets.
* `select_state` picks the cells of a state by ``obs['label']`` and/or ``obs['batch']`` (compared as text);
  `transfer_labels` fills unlabelled cells from their labelled neighbours (kNN in PCA space).
* `regression_genes` chooses the TFs (inputs) and targets (outputs) and builds the prior mask.
* `pair_cells` pairs cells of state A with cells of state B, at random or by optimal transport
  (exact assignment on PCA distances).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.errors import InputError
from ..core.io import read_table, require_columns
from ..core.log import LOG
from ..core.metrics import label_strings

PRIOR_FORMATS = ("auto", "dorothea", "trrust")
MATCH_CASE = ("exact", "insensitive")
PAIRINGS = ("random", "ot")


# --------------------------------------------------------------------------- priors
def read_prior(path, fmt: str = "auto", confidence=None) -> pd.DataFrame:
    """Signed prior edges ``tf, target, sign`` (one row per pair, sorted).

    ``fmt``: ``dorothea``, ``trrust`` or ``auto`` (told from the columns). DoRothEA: rows with a
    confidence level in ``confidence`` (None: every level); sign = sign of ``mor``. TRRUST:
    ``Activation`` = +1, ``Repression`` = -1, ``Unknown`` = 0. A pair listed with both signs gets
    sign 0 (unknown). Raises `InputError` for a missing column, an unknown format or no edge left.
    """
    df = read_table(path)
    if fmt == "auto":
        if {"tf", "target", "mor"} <= set(df.columns):
            fmt = "dorothea"
        elif {"TF", "Target", "Regulation"} <= set(df.columns):
            fmt = "trrust"
        else:
            raise InputError(path, "cannot tell the prior format: expected DoRothEA columns tf,confidence,"
                                   "target,mor or TRRUST columns TF,Target,Regulation")
    if fmt == "dorothea":
        require_columns(df, ["tf", "confidence", "target", "mor"], path, "DoRothEA prior")
        if confidence is not None:
            df = df[df["confidence"].astype(str).isin(list(confidence))]
        mor = pd.to_numeric(df["mor"], errors="coerce")
        if mor.isna().any():
            raise InputError(path, f"{int(mor.isna().sum())} non-numeric 'mor' values")
        edges = pd.DataFrame({"tf": df["tf"].astype(str), "target": df["target"].astype(str),
                              "sign": np.sign(mor.to_numpy()).astype(int)})
    elif fmt == "trrust":
        require_columns(df, ["TF", "Target", "Regulation"], path, "TRRUST prior")
        code = df["Regulation"].astype(str).map({"Activation": 1, "Repression": -1, "Unknown": 0})
        if code.isna().any():
            bad = df["Regulation"][code.isna()].iloc[0]
            raise InputError(path, f"unknown Regulation value {bad!r} (expected Activation/Repression/Unknown)")
        edges = pd.DataFrame({"tf": df["TF"].astype(str), "target": df["Target"].astype(str),
                              "sign": code.astype(int).to_numpy()})
    else:
        raise InputError(path, f"unknown prior format {fmt!r}; choose one of {', '.join(PRIOR_FORMATS)}")
    edges = edges[edges["tf"] != edges["target"]]
    if edges.empty:
        levels = ", ".join(confidence) if confidence is not None else "all"
        raise InputError(path, f"no prior edge left (confidence levels {levels})")
    return _merge_edges(edges)


def _merge_edges(edges: pd.DataFrame) -> pd.DataFrame:
    """One row per (tf, target), sorted; a pair listed with both signs gets sign 0; self loops dropped."""
    edges = edges[edges["tf"] != edges["target"]]
    agg = edges.groupby(["tf", "target"], sort=True)["sign"].agg(["min", "max"])
    sign = np.where(agg["min"] == agg["max"], agg["max"], 0).astype(int)
    return pd.DataFrame({"tf": agg.index.get_level_values(0), "target": agg.index.get_level_values(1),
                         "sign": sign}).reset_index(drop=True)


def match_prior_names(prior: pd.DataFrame, var_names, mode: str, prior_path, data_path) -> pd.DataFrame:
    """The prior with its gene names matched to the data's gene names ``var_names``.

    Exact names always match. With ``mode='insensitive'`` a prior name without an exact match is renamed to the
    one data gene equal to it up to case (a name equal to several genes up to case stays unmatched), and edges
    that become duplicates are merged as in `read_prior`. Whenever ignoring case matches more prior TFs or
    targets than exact names, one line gives both counts: a warning with ``exact`` (those genes are left out),
    an info line with ``insensitive``.
    """
    if mode not in MATCH_CASE:
        raise ValueError(f"unknown match_case {mode!r}; choose one of {', '.join(MATCH_CASE)}")
    genes = pd.Index(np.asarray(var_names).astype(str))
    exact = set(genes)
    by_case = pd.Series(genes, index=genes.str.upper())
    unique_case = by_case[~by_case.index.duplicated(keep=False)]
    names = pd.Index(pd.unique(pd.concat([prior["tf"], prior["target"]])))
    folded = pd.Series(unique_case.reindex(names.str.upper()).to_numpy(), index=names, dtype=object)
    folded[names.isin(list(exact))] = names[names.isin(list(exact))]

    def counts(col):
        uniq = pd.Index(prior[col].unique())
        return int(uniq.isin(list(exact)).sum()), int(folded.reindex(uniq).notna().sum()), len(uniq)

    (tf_exact, tf_any, n_tf), (tg_exact, tg_any, n_tg) = counts("tf"), counts("target")
    if tf_any > tf_exact or tg_any > tg_exact:
        text = (f"exact gene names match {tf_exact} of its {n_tf} TFs and {tg_exact} of its {n_tg} targets in "
                f"{data_path}; ignoring case matches {tf_any} TFs and {tg_any} targets")
        if mode == "exact":
            LOG.warning("prior %s: %s (match_case: insensitive uses them)", prior_path, text)
        else:
            LOG.info("prior %s: %s (match_case: insensitive, used)", prior_path, text)
    if mode == "exact" or (tf_any == tf_exact and tg_any == tg_exact):
        return prior
    rename = folded.dropna()
    out = prior.assign(tf=prior["tf"].map(rename).fillna(prior["tf"]),
                       target=prior["target"].map(rename).fillna(prior["target"]))
    return _merge_edges(out)


# --------------------------------------------------------------------------- cell states
@dataclass
class StateSpec:
    """A cell state: cells whose label is in ``labels`` and batch in ``batches`` (empty = any)."""
    name: str
    labels: tuple = ()
    batches: tuple = ()

    def __post_init__(self):
        # labels and batches are compared as text (an integer 3 in a config selects the cells labelled 3)
        self.labels = tuple(map(str, self.labels))
        self.batches = tuple(map(str, self.batches))

    def describe(self) -> str:
        """The state in words, for messages."""
        parts = []
        if self.labels:
            parts.append("label in [" + ", ".join(self.labels) + "]")
        if self.batches:
            parts.append("batch in [" + ", ".join(self.batches) + "]")
        return f"cell state {self.name!r} ({' and '.join(parts) or 'all cells'})"


def transfer_labels(adata, *, k: int, n_pcs: int, min_agreement: float, seed: int) -> pd.Series:
    """``obs['label']`` with unlabelled cells filled by a kNN vote of labelled cells in PCA space.

    PCA of the z-scored log expression of the highly variable genes (all genes when
    ``var['highly_variable']`` is absent); each unlabelled cell gets the majority label of its
    ``k`` nearest labelled cells (Euclidean; ties go to the alphabetically first label) when at
    least ``min_agreement`` of them agree, else stays NaN. The neighbours come from a tree over the labelled
    cells (`sklearn.neighbors.NearestNeighbors`), queried in blocks of unlabelled cells: no all-pairs distance
    matrix, memory linear in the cells.
    """
    from sklearn.neighbors import NearestNeighbors
    lab = adata.obs["label"].astype(object)
    known = lab.notna().to_numpy()
    if known.all() or not known.any():
        return lab
    z = state_pca(adata, n_pcs, seed)
    classes, codes = np.unique(lab[known].astype(str).to_numpy(), return_inverse=True)
    k = min(k, int(known.sum()))
    zk, zu = z[known], z[~known]
    votes = np.zeros((len(zu), len(classes)))
    tree = NearestNeighbors(n_neighbors=k).fit(zk)
    for start in range(0, len(zu), 65536):                      # bounded memory on large data sets
        nn = tree.kneighbors(zu[start:start + 65536], return_distance=False)
        np.add.at(votes, (np.arange(start, start + len(nn))[:, None], codes[nn]), 1.0)
    best = votes.argmax(axis=1)
    ok = votes[np.arange(len(best)), best] / k >= min_agreement
    filled = lab.copy()
    filled[~known] = np.where(ok, classes[best], None)
    return filled


def state_pca(adata, n_pcs: int, seed: int) -> np.ndarray:
    """PCA coordinates of the cells of ``adata`` (z-scored log expression of HVGs).

    Exact and deterministic: eigenvectors of the gene covariance (`scipy.linalg.eigh`), each signed so
    that its largest-magnitude loading is positive (``seed`` is accepted for interface stability).
    """
    from scipy.linalg import eigh
    x = adata.X
    if "highly_variable" in adata.var and adata.var["highly_variable"].any():
        x = x[:, adata.var["highly_variable"].to_numpy(bool)]
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    x = x.astype(np.float64)
    sd = x.std(axis=0)
    x = (x[:, sd > 0] - x[:, sd > 0].mean(axis=0)) / sd[sd > 0]
    n = max(1, min(n_pcs, x.shape[0] - 1, x.shape[1]))
    cov = x.T @ x / max(x.shape[0] - 1, 1)
    _, vec = eigh(cov, subset_by_index=(x.shape[1] - n, x.shape[1] - 1))
    vec = vec[:, ::-1]
    vec *= np.where(vec[np.abs(vec).argmax(axis=0), np.arange(n)] < 0, -1.0, 1.0)
    return x @ vec


def select_state(obs: pd.DataFrame, spec: StateSpec, path, labels: pd.Series | None = None) -> np.ndarray:
    """Boolean mask of the cells of ``spec``; `InputError` when a column is missing or no cell matches.

    Labels (``labels``, else ``obs['label']``) and batches are compared as text (`scfactor.core.metrics.
    label_strings`): an integer-coded label 3, also one stored as 3.0, is selected by ``3`` or ``"3"``.
    """
    keep = np.ones(len(obs), dtype=bool)
    lab = labels if labels is not None else obs.get("label")
    text = None if lab is None else pd.Series(label_strings(lab), dtype=object)
    if spec.labels:
        if text is None:
            raise InputError(path, f"has no obs['label'] to select {spec.describe()}")
        keep &= text.isin(spec.labels).to_numpy()
    if spec.batches:
        if "batch" not in obs:
            raise InputError(path, f"has no obs['batch'] to select {spec.describe()}")
        keep &= pd.Series(label_strings(obs["batch"]), dtype=object).isin(spec.batches).to_numpy()
    if not keep.any():
        known = sorted(text.dropna().unique()) if text is not None else []
        raise InputError(path, f"{spec.describe()} is empty: no cell matches (labels: {', '.join(known[:12])})")
    return keep


# --------------------------------------------------------------------------- genes and mask
def symbols_as_names(adata, path):
    """``adata`` named by gene symbols, the language of the priors, when its names are Ensembl IDs and
    ``var['symbol']`` holds the symbols (``gene_names: ids`` in preprocess); genes whose symbol is missing or shared
    by another gene are left out (logged). Other data are returned as they are."""
    from ..core.gene_names import looks_like_ids
    if not looks_like_ids(adata.var_names) or "symbol" not in adata.var:
        return adata
    sym = adata.var["symbol"].astype(str)
    keep = (~sym.duplicated(keep=False) & ~sym.isin(["", "nan", "None"])).to_numpy()
    LOG.info("%s: genes named by Ensembl IDs; the prior is matched on var['symbol'] (%d genes left out: no symbol, "
             "or one shared with another gene)", path, int((~keep).sum()))
    adata = adata[:, keep].copy()
    adata.var_names = sym[keep].to_numpy()
    return adata


@dataclass
class RegressionGenes:
    """TFs (inputs), targets (outputs), the prior mask (TF x target) and the prior signs."""
    tfs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray          # bool, len(tfs) x len(targets)
    prior_sign: np.ndarray    # int8, same shape, 0 outside the mask or for unsigned edges


def regression_genes(prior: pd.DataFrame, var_names, x_source, x_target, prior_path, data_path, *,
                     target_pool, min_frac: float) -> RegressionGenes:
    """TFs expressed in >= ``min_frac`` of source cells, their prior targets expressed in >= ``min_frac``
    of target cells (restricted to ``target_pool`` when given), and the prior mask between them.

    Fails with one line when the prior and the data share no gene name (with a hint when names only
    differ in case, i.e. the wrong species), when no prior TF is among the genes, or no target is left.
    """
    genes = pd.Index(np.asarray(var_names).astype(str))
    prior_genes = pd.Index(pd.unique(pd.concat([prior["tf"], prior["target"]])))
    common = genes.intersection(prior_genes)
    if len(common) == 0:
        upper = set(genes.str.upper())
        hits = [g for g in prior_genes[:5000] if g.upper() in upper]
        hint = (f"; names differ only in case (prior {hits[0]!r}): wrong species? (or set match_case: "
                f"insensitive)" if hits else
                f" (prior e.g. {prior_genes[0]!r}, data e.g. {genes[0]!r})")
        raise InputError(prior_path, f"mismatched gene names: no gene in common with {data_path}{hint}")
    tf_all = pd.Index(prior["tf"].unique())
    tf_in = tf_all.intersection(genes)
    if len(tf_in) == 0:
        raise InputError(prior_path, f"none of its {len(tf_all)} TFs is among the {len(genes)} genes of {data_path}")
    frac_src = _detected_fraction(x_source)
    frac_tgt = _detected_fraction(x_target)
    pos = pd.Series(np.arange(len(genes)), index=genes)
    tf_ok = [t for t in tf_in if frac_src[pos[t]] >= min_frac]
    if not tf_ok:
        raise InputError(prior_path, f"none of its TFs among the genes of {data_path} is detected in "
                                     f">= {min_frac:g} of the source cells")
    edges = prior[prior["tf"].isin(tf_ok) & prior["target"].isin(genes)]
    if target_pool is not None:
        edges = edges[edges["target"].isin(pd.Index(target_pool))]
    tgt = pd.Index(sorted(edges["target"].unique()))
    tgt = tgt[frac_tgt[pos[tgt].to_numpy()] >= min_frac] if len(tgt) else tgt
    edges = edges[edges["target"].isin(tgt)]
    if edges.empty:
        raise InputError(prior_path, f"no prior target of the {len(tf_ok)} usable TFs is detected in "
                                     f">= {min_frac:g} of the target cells of {data_path}")
    tfs = np.array(sorted(edges["tf"].unique()))
    targets = np.array(sorted(edges["target"].unique()))
    ti = pd.Series(np.arange(len(tfs)), index=tfs)[edges["tf"]].to_numpy()
    gi = pd.Series(np.arange(len(targets)), index=targets)[edges["target"]].to_numpy()
    mask = np.zeros((len(tfs), len(targets)), dtype=bool)
    mask[ti, gi] = True
    sign = np.zeros(mask.shape, dtype=np.int8)
    sign[ti, gi] = edges["sign"].to_numpy()
    return RegressionGenes(tfs, targets, mask, sign)


def _detected_fraction(x) -> np.ndarray:
    n = max(x.shape[0], 1)
    if sp.issparse(x):
        return np.asarray((x > 0).sum(axis=0)).ravel() / n
    return (np.asarray(x) > 0).sum(axis=0) / n


# --------------------------------------------------------------------------- pairing
def pair_cells(z_a: np.ndarray, z_b: np.ndarray, method: str, n_pairs: int, seed: int):
    """Pair cells of A with cells of B; returns ``(idx_a, idx_b)``.

    Both sides are first subsampled (seeded, without replacement) to the same size
    ``n = min(len(A), len(B), n_pairs)`` (``n_pairs`` 0 = no cap). ``random``: the two subsamples are
    paired in random order (as the notebook, but without replacement). ``ot``: the exact
    optimal-transport (assignment) pairing minimising the summed squared Euclidean distance between
    PCA coordinates (`scipy.optimize.linear_sum_assignment`); with uniform weights on balanced
    samples the optimal plan is a permutation, so this is exact discrete OT.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist
    if method not in PAIRINGS:
        raise ValueError(f"unknown pairing {method!r}")
    rng = np.random.default_rng(seed)
    n = min(len(z_a), len(z_b), n_pairs if n_pairs > 0 else len(z_a) + len(z_b))
    ia = np.sort(rng.choice(len(z_a), size=n, replace=False))
    ib = np.sort(rng.choice(len(z_b), size=n, replace=False))
    if method == "random":
        return ia, ib[rng.permutation(n)]
    cost = cdist(z_a[ia], z_b[ib], metric="sqeuclidean")
    rows, cols = linear_sum_assignment(cost)
    return ia[rows], ib[cols]


def pair_cost(z_a, z_b, idx_a, idx_b) -> float:
    """Mean squared Euclidean distance between paired cells."""
    d = z_a[idx_a] - z_b[idx_b]
    return float(np.mean(np.sum(d * d, axis=1)))

