"""The block simulator of the multilayer NMF notebook: determinism, planted blocks, noise genes, dense mode."""

from __future__ import annotations

import numpy as np
import pytest

from scfactor.layers.cli import SIMULATE
from scfactor.layers.simulate import generate_data, simulate


def blocks(n_cells, n_factors, n_genes, **kw):
    """A simulation with the schema's settings except the sizes and ``kw``."""
    return simulate(SIMULATE.defaults(n_cells=n_cells, n_factors=n_factors, n_genes=n_genes, **kw))


def test_simulator_deterministic_and_seeded():
    a = blocks(60, 3, 90, seed=7)
    b = blocks(60, 3, 90, seed=7)
    c = blocks(60, 3, 90, seed=8)
    for f in ("x", "theta", "beta", "cell_block", "gene_block"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.x, c.x)


def test_simulator_plants_blocks():
    sim = blocks(300, 3, 600, seed=1)
    assert sim.x.shape == (300, 600) and sim.x.dtype.kind == "i" and (sim.x >= 0).all()
    np.testing.assert_array_equal(np.bincount(sim.cell_block), [100, 100, 100])
    np.testing.assert_array_equal(np.bincount(sim.gene_block), [200, 200, 200])
    for k in range(3):
        own = sim.theta[sim.cell_block == k, k].mean()
        other = sim.theta[sim.cell_block != k, k].mean()
        assert own > 3 * other  # Gamma(3, scale 2) vs Gamma(1, 1): means 6 vs 1
        assert sim.beta[sim.gene_block == k, k].mean() > 5 * sim.beta[sim.gene_block != k, k].mean()
    # the counts carry the blocks: block-k cells express block-k genes most
    means = np.array([[sim.x[np.ix_(sim.cell_block == i, sim.gene_block == j)].mean() for j in range(3)]
                      for i in range(3)])
    assert (means.argmax(axis=1) == np.arange(3)).all()


def test_simulator_noise_genes_and_dense_mode():
    sim = blocks(40, 4, 100, seed=0, noise_prop=0.2)
    assert (sim.gene_block[80:] == -1).all() and (sim.gene_block[:80] >= 0).all()
    dense = blocks(40, 4, 100, mode="dense", seed=0)
    assert (dense.cell_block == -1).all()
    with pytest.raises(ValueError, match="mode"):
        blocks(10, 2, 10, mode="blocks")


def test_simulator_takes_every_setting():
    """No setting of the simulator has a default of its own (the schema holds them)."""
    import inspect
    params = inspect.signature(generate_data).parameters
    assert all(p.default is inspect.Parameter.empty for p in params.values())
    assert set(params) == {o.dest for o in SIMULATE.options}
