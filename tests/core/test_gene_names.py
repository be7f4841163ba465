"""Gene names (`scfactor.core.gene_names`): exact matching with a case warning, Ensembl IDs, var_names."""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from scfactor.core import gene_names as gn
from scfactor.core.errors import InputError


def test_match_genes_exact_with_case_warning(caplog):
    caplog.set_level(logging.WARNING, logger="scfactor")
    m = gn.match_genes(["STAT1", "Irf1", "irf9", "NOPE"], ["IRF1", "STAT1", "IRF9", "MYC"], what="TF list")
    assert m.found == ["STAT1"] and m.n_found == 1 and m.n_wanted == 4 and m.n_ignoring_case == 3
    warn = [r.getMessage() for r in caplog.records]
    assert len(warn) == 1 and "TF list: 1 of its 4 names match" in warn[0] and "3 would match ignoring case" in warn[0]
    caplog.clear()
    m = gn.match_genes(["MYC", "IRF1"], ["IRF1", "STAT1", "MYC"])
    assert m.found == ["IRF1", "MYC"] and not caplog.records                    # data order; no warning
    m = gn.match_genes(["MYC", "GENE_X", "IRF1", "nope", "GENE_X"], ["IRF1", "STAT1", "MYC"], what="gene list g.txt",
                       where="x.h5ad")
    assert m.found == ["IRF1", "MYC"] and [r.getMessage() for r in caplog.records] == [
        "gene list g.txt: 2 of its 4 names are not genes of x.h5ad and are left out (first: GENE_X, nope)"]


def test_looks_like_ids():
    assert gn.looks_like_ids(["ENSG00000187634", "ENSMUSG00000051951.5", "MT-CO1"])
    assert not gn.looks_like_ids(["CD3E", "LYZ", "ENSG00000187634"])
    assert not gn.looks_like_ids([])


def _adata(var_names, **columns):
    return ad.AnnData(np.zeros((2, len(var_names))), var=pd.DataFrame(columns, index=var_names))


def test_set_gene_names():
    a = gn.set_gene_names(_adata(["ENSG1", "ENSG2"], sym=["A", "B"]), "f", "symbols", symbol_column="sym")
    assert list(a.var_names) == ["A", "B"] and list(a.var["symbol"]) == ["A", "B"]
    a = gn.set_gene_names(_adata(["ENSG1", "ENSG2"], sym=["A", "B"]), "f", "ids", symbol_column="sym")
    assert list(a.var_names) == ["ENSG1", "ENSG2"] and list(a.var["symbol"]) == ["A", "B"]
    a = gn.set_gene_names(_adata(["A", "B"], ens=["E1", "E2"]), "f", "ids", id_column="ens")
    assert list(a.var_names) == ["E1", "E2"]
    with pytest.raises(InputError, match="duplicated gene names .* make_unique"):
        gn.set_gene_names(_adata(["A", "B", "C"], sym=["X", "X", "Y"]), "f", symbol_column="sym")
    a = gn.set_gene_names(_adata(["A", "B", "C"], sym=["X", "X", "Y"]), "f", symbol_column="sym", make_unique=True)
    assert list(a.var_names) == ["X", "X-1", "Y"]
    with pytest.raises(InputError, match="no value for 1 genes"):
        gn.set_gene_names(_adata(["A", "B"], sym=["X", None]), "f", symbol_column="sym")
