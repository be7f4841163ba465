"""Shared data of the integrate tests: a small simulation (simulator (c)) written once per session."""

from __future__ import annotations

import pytest

from scfactor.integrate.cli import INTEGRATE, SIMULATE

SIM = SIMULATE.defaults(n_cells=(300, 200), n_genes=200, k_shared=5, k_specific=1, seed=3)
#: the schema defaults of the integrate step
DEFAULTS = INTEGRATE.defaults()


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    """Path of a 300 + 200 cell x 200 gene simulation with its truth."""
    from scfactor.integrate.simulate import write_simulation
    path = tmp_path_factory.mktemp("sim") / "sim.h5ad"
    write_simulation(SIM, path)
    return path
