"""The batched trace-norm MTL model of `scfactor.mtl.model` in numpy, gradients written out (the ``numpy`` engine).

Same network, loss, initial weights, batches and Adam rule as the TensorFlow engine, in float32; only
the order of floating-point sums differs (tests/mtl/test_model_np.py checks losses, gradients and
trained weights against the TensorFlow engine on the same data). A shard process that uses it never
imports TensorFlow, whose import and tracing otherwise dominate the CPU time of a small shard.

Backward pass (``d`` = dLoss/dpred, ``m_i`` = ReLU masks)::

    d = -2 (y - yhat) / (genes x batch);  dW_i = h_{i-1}^T dz_i;  dz_i = (dz_{i+1} W_{i+1}^T) * m_i
    dw0 = A * sum_b(dz0 * e) + C * sum_b(dz0);  dc0 = sum_b(dz0)
    trace norm: + lam/2 U V^T (thin SVD of each unfolded kernel);  L1: + l1/genes sign(kernel)
"""

from __future__ import annotations

import numpy as np

from . import training
from .data import ShardData
from .training import HIDDEN, UNFOLD_AXES


def unfold(w: np.ndarray, axis: int) -> np.ndarray:
    """Mode-``axis`` unfolding of a 3-way array: that axis becomes the rows."""
    perm = [axis] + [a for a in range(3) if a != axis]
    return np.transpose(w, perm).reshape(w.shape[axis], -1)


def fold(m: np.ndarray, axis: int, shape) -> np.ndarray:
    """Inverse of `unfold`: the 3-way array of ``shape`` whose mode-``axis`` unfolding is ``m``."""
    perm = [axis] + [a for a in range(3) if a != axis]
    return np.transpose(m.reshape([shape[a] for a in perm]), np.argsort(perm))


def nuclear_norm(m: np.ndarray, grad: bool = True):
    """(Sum of singular values of ``m``, its gradient ``U V^T`` or None), through the float64 Gram matrix.

    ``U``: eigenvectors of the smaller Gram matrix (``m m^T``, or ``m^T m`` for a tall ``m``); the rows
    of ``U^T m`` are ``s_i v_i``, so their norms are the singular values and, normalised, the right
    singular vectors. As accurate as a float32 SVD, in a fraction of its time (a shard's W1 unfolds to
    25 x 12800), and like the SVD every direction with a nonzero singular value contributes ``u_i v_i^T``.
    """
    wide = m.shape[0] <= m.shape[1]
    m64 = m.astype(np.float64) if wide else m.T.astype(np.float64)
    u = np.linalg.eigh(m64 @ m64.T)[1]
    b = u.T @ m64                                              # rows s_i v_i^T
    s = np.sqrt(np.einsum("ij,ij->i", b, b))
    value = np.float32(s.sum())
    if not grad:
        return value, None
    keep = s > 0
    g = u[:, keep] @ (b[keep] / s[keep, None])
    return value, (g if wide else g.T).astype(np.float32)


def trace_norm(w: np.ndarray, axis: int, grad: bool = True):
    """(Tensor trace norm of ``w`` unfolded along ``axis``, its gradient folded back, or None)."""
    value, g = nuclear_norm(unfold(w, axis), grad)
    return value, (fold(g, axis, w.shape) if grad else None)


class NumpyMTL:
    """The per-gene networks of one shard as gene-batched float32 arrays (``vars``, in the order ``names``)."""

    def __init__(self, init: dict, hidden=HIDDEN):
        self.names = list(init)
        self.vars = {k: np.array(v, dtype=np.float32) for k, v in init.items()}
        self.hidden = tuple(hidden)
        self.G, self.T = self.vars["w0"].shape[:2]

    def arrays(self) -> dict:
        """The weights as numpy arrays, by name (copies)."""
        return {k: self.vars[k].copy() for k in self.names}

    def l1_kernels(self) -> list:
        """Names of the kernels that carry the L1 penalty (per-TF, 64, 32, 16 layers)."""
        return ["w0"] + [f"W{i + 1}" for i in range(len(self.hidden))]

    def forward(self, e, A, C):
        """(predictions genes x batch, ReLU outputs of every layer) for gathered expression ``e`` (genes x batch x TFs)."""
        v = self.vars
        w_eff = (A * v["w0"]).sum(-1)                              # genes x TFs
        c_eff = (C * v["w0"]).sum(-1) + v["c0"]
        h = e * w_eff[:, None, :]
        h += c_eff[:, None, :]
        hs = [np.maximum(h, 0, out=h)]
        for i in range(len(self.hidden)):
            hs.append(np.maximum(hs[-1] @ v[f"W{i + 1}"] + v[f"b{i + 1}"][:, None, :], 0))
        return (hs[-1] @ v["w_out"])[..., 0] + v["b_out"], hs

    def __call__(self, e, A, C):
        """Predictions (genes x batch) from gathered expression ``e`` (genes x batch x TFs)."""
        return self.forward(e, A, C)[0]

    def gradients(self, e, y, A, C, lam: float, l1: float, axis: int):
        """(loss, mse, trace norm, gradients by name) of one batch; ``y``: genes x batch targets."""
        v = self.vars
        pred, hs = self.forward(e, A, C)
        r = y - pred
        mse = np.mean(np.square(r))
        d = r * np.float32(-2.0 / r.size)                          # dLoss/dpred
        g = {"b_out": d.sum(1, keepdims=True), "w_out": hs[-1].transpose(0, 2, 1) @ d[..., None]}
        dh = d[..., None] * v["w_out"][:, None, :, 0]
        for i in reversed(range(len(self.hidden))):
            dz = dh * (hs[i + 1] > 0)
            g[f"W{i + 1}"] = hs[i].transpose(0, 2, 1) @ dz
            g[f"b{i + 1}"] = dz.sum(1)
            dh = dz @ v[f"W{i + 1}"].transpose(0, 2, 1)
        dz0 = dh * (hs[0] > 0)
        dc = dz0.sum(1)
        g["c0"] = dc
        g["w0"] = A * (dz0 * e).sum(1)[..., None] + C * dc[..., None]
        tn1, g1 = trace_norm(v["W1"], axis, grad=lam != 0)
        tn2, g2 = trace_norm(v["W2"], axis, grad=lam != 0)
        tn = np.float32(0.5) * (tn1 + tn2)
        loss = mse + np.float32(lam) * tn
        if lam != 0:
            g["W1"] = g["W1"] + np.float32(0.5 * lam) * g1
            g["W2"] = g["W2"] + np.float32(0.5 * lam) * g2
        if l1 != 0:
            pen = sum(np.abs(v[k]).sum(dtype=np.float32) for k in self.l1_kernels()) / np.float32(self.G)
            loss = loss + np.float32(l1) * pen
            for k in self.l1_kernels():
                g[k] = g[k] + np.float32(l1 / self.G) * np.sign(v[k])
        return float(loss), float(mse), float(tn), g


class NumpyAdam:
    """Adam with Keras' update rule (as `scfactor.core.optim.Adam`) on float32 arrays, updated in place.

    ``state()`` / ``set_state()`` use `core.optim.Adam`'s names (``adam/m<i>``, ``adam/v<i>``, ``adam/step``).
    """

    def __init__(self, params: list, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7):
        self.params = params
        self.lr, self.beta1, self.beta2, self.eps = (np.float32(x) for x in (lr, beta1, beta2, eps))
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.step = 0

    def apply(self, grads: list) -> None:
        """One Adam step with ``grads`` (same order as ``params``)."""
        self.step += 1
        t, one = np.float32(self.step), np.float32(1.0)
        alpha = self.lr * np.sqrt(one - self.beta2 ** t) / (one - self.beta1 ** t)
        for g, p, m, v in zip(grads, self.params, self.m, self.v):
            m *= self.beta1
            m += (one - self.beta1) * g
            v *= self.beta2
            v += (one - self.beta2) * np.square(g)
            p -= alpha * m / (np.sqrt(v) + self.eps)

    def state(self) -> dict:
        """Moments and step as arrays."""
        out = {f"adam/m{i}": m.copy() for i, m in enumerate(self.m)}
        out.update({f"adam/v{i}": v.copy() for i, v in enumerate(self.v)})
        out["adam/step"] = np.asarray(self.step, dtype=np.int64)
        return out

    def set_state(self, arrays: dict) -> None:
        """Restore what `state` returned."""
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            m[...] = arrays[f"adam/m{i}"]
            v[...] = arrays[f"adam/v{i}"]
        self.step = int(arrays["adam/step"])


class NumpyEngine:
    """The numpy engine of `training.fit`: a `NumpyMTL`, `NumpyAdam` and the shard's arrays."""

    def __init__(self, shard: ShardData, opts, init: dict):
        self.model = NumpyMTL(init)
        self.opt = NumpyAdam([self.model.vars[k] for k in self.model.names], lr=opts.learning_rate)
        self.E, self.A, self.C = shard.expr, shard.A, shard.C
        self.Y = np.nan_to_num(shard.y)
        self.lam, self.l1, self.axis = opts.lam, opts.l1, UNFOLD_AXES[opts.unfold_axis]
        self.rows = np.arange(shard.n_genes)[:, None]

    def step(self, idx):
        """One Adam step on a genes x batch index array; (loss, mse, trace norm)."""
        loss, mse, tn, g = self.model.gradients(self.E[idx], self.Y[self.rows, idx], self.A, self.C,
                                                self.lam, self.l1, self.axis)
        self.opt.apply([g[k] for k in self.model.names])
        return loss, mse, tn

    def state(self) -> dict:
        """The full training state as named arrays (model variables + Adam state) for `core.checkpoint`."""
        return training.engine_state(self.model, self.opt)

    def restore(self, arrays) -> None:
        """Restore what `state` returned (in place: the optimizer keeps its references)."""
        for k in self.model.names:
            self.model.vars[k][...] = arrays[f"var/{k}"]
        self.opt.set_state(arrays)


def train_shard(shard: ShardData, opts, *, seed_seq: np.random.SeedSequence, checkpoint_dir=None,
                log_every: int = 1):
    """Train the batched model in numpy on a shard (`training.fit`); returns (`NumpyMTL`, history)."""
    engine, history = training.fit(shard, opts, lambda init: NumpyEngine(shard, opts, init), seed_seq=seed_seq,
                                   engine_name="numpy", checkpoint_dir=checkpoint_dir, log_every=log_every)
    return engine.model, history


def predictor(model: NumpyMTL, shard: ShardData):
    """``idx -> genes x n`` predictions of a `NumpyMTL` on the cells ``idx`` (genes x n)."""
    return lambda idx: model(shard.expr[idx], shard.A, shard.C)


def test_r2(model: NumpyMTL, shard: ShardData) -> np.ndarray:
    """Test R2 per gene (velocities standardised with training stats; R2 is unaffected)."""
    return training.test_r2(predictor(model, shard), shard)
