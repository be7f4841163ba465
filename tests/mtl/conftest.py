"""Fixtures of the MTL tests: a small simulated layout and the clusters table of its first tissue."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from scfactor.mtl.cli import SIMULATE
from scfactor.mtl.simulate import simulate_layout

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: the simulator settings of the `layout` fixture
SMALL = dict(n_tissues=2, n_cells=300, n_genes=8, n_tfs=12, planted_clusters=2, support=4, seed=3)


@pytest.fixture(scope="session")
def layout(tmp_path_factory):
    """A small simulated layout (2 tissues) and its clusters table for tissue1."""
    root = tmp_path_factory.mktemp("mtl") / "layout"
    simulate_layout(root, SIMULATE.defaults(**SMALL))
    truth = pd.read_csv(root / "truth" / "genes.tsv", sep="\t")
    t1 = truth[truth["tissue"] == "tissue1"]
    cl = root.parent / "clusters.tsv"
    t1[["gene_ensembl", "cluster"]].to_csv(cl, sep="\t", index=False)
    return root, cl


def copy_layout(src, dst) -> Path:
    """A copy of a layout root that a test may damage."""
    shutil.copytree(src, dst)
    return Path(dst)


def sha(path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
