"""The GRN optimiser comparison: a planted masked-lasso problem, and its two fits, FISTA (ours,
`scfactor.grn.model.fit_masked_linear`) and the cell-state GRN notebook's optimiser (Adam, lr 0.01, on
MSE + lambda * L1 from ``torch.rand`` weights; a bias added so that both minimise the same objective)."""

from __future__ import annotations

import numpy as np


def planted_problem(seed: int = 0, n: int = 1000, p: int = 100, t: int = 1000, density: float = 0.03) -> dict:
    """Standardised TFs ``x`` (n x p), targets ``y`` (n x t) from a sparse planted ``w`` on a prior ``mask``
    (``density`` of the TF x target pairs; half of the prior edges are true, weights +-U(0.3, 1))."""
    from scfactor.grn import model as models
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    mask = rng.random((p, t)) < density
    true = mask & (rng.random((p, t)) < 0.5)
    w = np.zeros((p, t))
    w[true] = rng.choice([-1.0, 1.0], true.sum()) * rng.uniform(0.3, 1.0, true.sum())
    y = x @ w + 1.0 + 0.5 * rng.normal(size=(n, t))
    xs, _, _ = models.standardise(x)
    return {"x": xs, "y": y, "mask": mask, "true": true, "w": w}


def objective(prob: dict, w: np.ndarray, b: np.ndarray, l1: float) -> float:
    """``1/(2n) ||y - x w - b||^2 + l1 ||w||_1`` (the masked lasso both optimisers minimise)."""
    r = prob["x"] @ w + b - prob["y"]
    return float(0.5 * (r * r).sum() / len(r) + l1 * np.abs(w).sum())


def recovery(prob: dict, w: np.ndarray) -> dict:
    """Exact zeros among the prior edges and the share of true edges with the planted sign."""
    mask, true = prob["mask"], prob["true"]
    return {"exact_zeros_in_mask": int((w[mask] == 0).sum()),
            "sign_recovery_true_edges": float(np.mean(np.sign(w[true]) == np.sign(prob["w"][true])))}


def fit_fista(prob: dict, l1: float, tol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Our fit; (weights, bias, iterations)."""
    from scfactor.grn import model as models
    m, fit = models.fit_masked_linear(prob["x"], prob["y"], prob["mask"], l1=l1, l2=0.0, tol=tol, max_iter=max_iter)
    return m.weight().detach().numpy(), m.bias.detach().numpy(), fit.iterations


def fit_adam(prob: dict, l1: float, epochs: int, seed: int, target: float | None = None):
    """The notebook's optimiser for ``epochs`` epochs, or until its loss is at most ``target``;
    (weights, bias, epochs run)."""
    import torch
    from scfactor.grn import model as models
    torch.manual_seed(seed)
    lin = models.MaskedLinear(prob["mask"], dtype=torch.float64)
    with torch.no_grad():
        lin.values.uniform_(0, 1)                       # the notebook initialises with torch.rand
    xt, yt = torch.as_tensor(prob["x"]), torch.as_tensor(prob["y"])
    n = len(xt)
    opt = torch.optim.Adam(lin.parameters(), lr=0.01)
    done = 0
    for done in range(epochs):
        opt.zero_grad()
        loss = 0.5 * ((lin(xt) - yt) ** 2).sum() / n + l1 * lin.values.abs().sum()
        if target is not None and loss.item() <= target:
            break
        loss.backward()
        opt.step()
    else:
        done = epochs
    return lin.weight().detach().numpy(), lin.bias.detach().numpy(), done
