"""Gene names: matching a gene list or prior against a data set's genes, telling Ensembl IDs from symbols,
choosing the var_names of a freshly read count matrix.

`match_genes` is the one way a list of gene names (a ``gene_list`` file, a TF list, a prior network's
genes) is matched to a data set: exactly, with one warning line when matching without regard to case
would find more genes (``MYC`` vs ``Myc``), so that a list in another case never keeps half its genes
without a word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import InputError
from .log import LOG

#: an Ensembl gene ID (human ENSG..., mouse ENSMUSG..., zebrafish ENSDARG..., with an optional version)
ENSEMBL_ID = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")


@dataclass(frozen=True)
class GeneMatch:
    """The result of `match_genes`: the matched names (as spelled in the data) and the counts."""

    found: list = field(default_factory=list)
    n_wanted: int = 0
    n_ignoring_case: int = 0

    @property
    def n_found(self) -> int:
        """How many names matched exactly."""
        return len(self.found)


def match_genes(wanted: Iterable[str], available: Sequence[str], what: str = "gene list",
                where: str = "the data") -> GeneMatch:
    """Match the names ``wanted`` exactly against ``available`` (a data set's genes).

    Returns the matched names in the order of ``available``. When matching without regard to case would
    match more of ``wanted`` than exact matching, logs one warning line with both counts; else, when some
    names match nothing, one with their count and the first few (``what`` names the list, ``where`` the data;
    e.g. ``"gene list genes.txt"``, ``"results/preprocess/x.h5ad"``).
    Exact matching is kept: gene symbols are case-sensitive across species (human ``MYC``, mouse ``Myc``).
    """
    wanted = [str(w) for w in wanted]
    want = set(wanted)
    avail = pd.Index(available).astype(str)
    present = set(avail)
    found = [g for g in avail if g in want]
    n_exact = len(want & present)
    absent = [w for w in dict.fromkeys(wanted) if w not in present]
    lower = {g.lower() for g in avail}
    n_nocase = len({w for w in want if w.lower() in lower})
    if absent and n_exact and n_nocase == n_exact:
        LOG.warning("%s: %d of its %d names are not genes of %s and are left out (first: %s)", what, len(absent),
                    len(want), where, ", ".join(absent[:5]))
    if n_nocase > n_exact:
        LOG.warning("%s: %d of its %d names match the genes of %s exactly, %d would match ignoring case "
                    "(only exact matches are used; fix the case of the list, e.g. human MYC vs mouse Myc)",
                    what, n_exact, len(want), where, n_nocase)
    return GeneMatch(found, len(want), n_nocase)


def looks_like_ids(names: Sequence[str], min_fraction: float = 0.5) -> bool:
    """Whether most of ``names`` (at least ``min_fraction`` of a sample of 1000) are Ensembl gene IDs."""
    names = list(map(str, names))
    if not names:
        return False
    if len(names) > 1000:
        names = [names[i] for i in np.linspace(0, len(names) - 1, 1000).astype(int)]
    return sum(bool(ENSEMBL_ID.match(n)) for n in names) >= min_fraction * len(names)


def gene_columns(adata, path, symbol_column: str | None = None, id_column: str | None = None):
    """Copy the var columns named by ``symbol_column`` / ``id_column`` to ``var['symbol']`` / ``var['gene_id']``.

    (10x inputs read by `scfactor.core.io.read_counts` already have both.) A named column that is absent
    or has empty values is an `InputError`.
    """
    for column, target in ((symbol_column, "symbol"), (id_column, "gene_id")):
        if column is None:
            continue
        if column not in adata.var:
            raise InputError(path, f"has no var column {column!r} ({target} column; var columns: "
                                   f"{', '.join(map(str, adata.var.columns[:10])) or 'none'})")
        values = adata.var[column].astype(object)
        n_missing = int(values.isna().sum() + (values.astype(str).str.strip() == "").sum())
        if n_missing:
            raise InputError(path, f"var column {column!r} has no value for {n_missing} genes")
        adata.var[target] = values.astype(str).to_numpy()
    return adata


def choose_gene_names(adata, path, gene_names: str = "symbols", make_unique: bool = False):
    """Set ``var_names`` from ``var['symbol']`` (``gene_names='symbols'``) or ``var['gene_id']`` (``'ids'``)
    where that column exists (else the stored names stay), then deal with duplicated names: one `InputError`
    line suggesting ``make_unique`` / ``gene_names: ids``, or with ``make_unique`` anndata's ``-1``, ``-2``
    suffixes and one log line with the count."""
    source = {"symbols": "symbol", "ids": "gene_id"}[gene_names]
    if source in adata.var:
        adata.var_names = pd.Index(adata.var[source].astype(str).to_numpy())
    adata.var_names.name = None
    dup = adata.var_names[adata.var_names.duplicated()]
    if len(dup):
        if not make_unique:
            hint = "set make_unique: true (--make-unique)"
            if gene_names == "symbols" and "gene_id" in adata.var:
                hint += " or gene_names: ids (--gene-names ids)"
            raise InputError(path, f"{len(dup)} duplicated gene names (first: {dup[0]!r}); {hint}")
        adata.var_names_make_unique()
        LOG.info("%s: made %d duplicated gene names unique (%d genes renamed with -1, -2, ... suffixes, "
                 "e.g. %s -> %s-1)", path, len(set(dup)), len(dup), dup[0], dup[0])
    return adata


def set_gene_names(adata, path, gene_names: str = "symbols", symbol_column: str | None = None,
                   id_column: str | None = None, make_unique: bool = False):
    """Choose ``adata.var_names`` in place and keep the symbols in ``var['symbol']`` where they are known.

    10x inputs (read by `scfactor.core.io.read_counts`) carry both ``var['symbol']`` and ``var['gene_id']``;
    other inputs have the names they were saved with, plus any var column named by ``symbol_column`` (copied
    to ``var['symbol']``) or ``id_column`` (copied to ``var['gene_id']``): `gene_columns`. ``gene_names``
    picks which one becomes ``var_names``; duplicates fail or are made unique: `choose_gene_names`.
    """
    gene_columns(adata, path, symbol_column, id_column)
    return choose_gene_names(adata, path, gene_names, make_unique)
