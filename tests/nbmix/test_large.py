"""NB-mixture EM on many cells: restarts on a subsample, then one EM on all cells (``restart_subsample_above``)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from scfactor.core import metrics
from scfactor.nbmix import model as nbmix
from scfactor.nbmix.cli import FIT
from scfactor.nbmix.pipeline import em_settings
from scfactor.nbmix.simulate import simulate
from scfactor.nbmix.starts import subsample_rows

torch.set_num_threads(1)
#: log-likelihood of the default fit below, recorded with the code before the subsample restarts existed
#: (commit 33bab60): below the threshold the fit must not change by a single bit
BASELINE_LOGLIK = float.fromhex("-0x1.eb5a45457115ep+14")


def em(**over):
    """`fit_em` settings: the schema defaults (nrep 3), seed 0, no logging, then ``over``."""
    kw = em_settings(FIT.defaults(k=3))
    kw.update(seed=0, log_every=0)
    kw.update(over)
    return kw


@pytest.fixture(scope="module")
def sim():
    x, z, _, _ = simulate(300, 60, 3, 1e4, seed=5)
    return sp.csr_matrix(x), z.argmax(1)


@pytest.fixture(scope="module")
def full(sim):
    return nbmix.fit_em(sim[0], 3, **em())


def test_below_the_threshold_the_fit_is_unchanged(sim, full):
    x, _ = sim
    assert full.loglik == BASELINE_LOGLIK and full.rep < 3 and full.restart_cells == 300
    # E steps over all cells: one per round of each restart, plus the subsample start's E step on all cells
    assert full.full_e_steps == sum(r["n_iter"] for r in full.restarts) + 1
    at = nbmix.fit_em(x, 3, **em(restart_subsample_above=300, restart_subsample_cells=100))
    assert at.loglik == full.loglik and np.array_equal(at.resp, full.resp)


def test_above_the_threshold_restarts_run_on_a_subsample(sim, full):
    x, truth = sim
    fit = nbmix.fit_em(x, 3, **em(restart_subsample_above=200, restart_subsample_cells=150))
    assert [r["cells"] for r in fit.restarts] == [150] * 3 and fit.restart_cells == 150
    # the restarts are exactly those of a fit to the subsample's cells
    rows = subsample_rows(300, 3, 150 / 300, 0)
    sub = nbmix.fit_em(x[rows], 3, **em())
    assert [r["loglik"] for r in fit.restarts] == [r["loglik"] for r in sub.restarts]
    # then one EM on all cells from the best restart's parameters: its rounds are restart nrep, and kept
    assert fit.rep == 3 and fit.init == f"{sub.init} (subsample)"
    assert [r["round"] for r in fit.rounds if r["restart"] == 3] == list(range(1, fit.n_iter + 1))
    w0 = nbmix.predict_proba(x, sub.log_mean, sub.log_inv_disp, sub.pi)[0]
    again = nbmix.fit_em(x, 3, **em(nrep=1, init_resp=w0))
    assert again.loglik == fit.loglik
    assert fit.full_e_steps == fit.n_iter + 1 < full.full_e_steps
    # same optimum as the full EM here
    assert metrics.ari(full.labels, fit.labels) == 1.0 and metrics.ari(truth, fit.labels) == 1.0
    np.testing.assert_allclose(fit.loglik, full.loglik, rtol=1e-9)
