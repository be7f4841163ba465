"""The batched trace-norm MTL model of `scfactor.mtl.model` in numpy, gradients written out (the ``numpy`` engine).

Same network, loss, initial weights, batches and Adam rule as the TensorFlow engine, in float32; only
the order of floating-point sums differs (tests/mtl/test_model_np.py checks losses, gradients and
trained weights against the TensorFlow engine on the same data). A shard process that uses it never
imports TensorFlow, whose import and tracing otherwise dominate the CPU time of a small shard.

Backward pass (``d`` = dLoss/dpred, ``m_i`` = ReLU masks)::

    d = -2 (y - yhat) / (genes x batch);  dW_i = h_{i-1}^T dz_i;  dz_i = (dz_{i+1} W_{i+1}^T) * m_i  (i >= 2)
    trace norm: + lam/2 (M M^T)^(-1/2) M  (= U V^T, one eigendecomposition of the small Gram matrix);
    L1: + l1/genes sign(kernel)

The first layer, ``h0 = m0 * (e w + c)`` (``w``, ``c``: per gene and TF, ``A``, ``C`` folded into ``w0``, ``c0``),
is where the genes x batch x TFs arrays live. With ``Q1 = (m0 e)^T dz1`` and ``Q0 = m0^T dz1`` (genes x TFs
x 64, two batched matmuls)::

    dW1 = w Q1 + c Q0;  sum_b(dz0 e) = sum_j W1 Q1;  sum_b(dz0) = sum_j W1 Q0
    dw0 = A * sum_b(dz0 e) + C * sum_b(dz0);  dc0 = sum_b(dz0)

so the backward pass never forms ``dz0 = (dz1 W1^T) * m0`` (genes x batch x TFs): the same three
batch x TFs x 64 matmuls per gene as the direct route (forward, ``dW1``, ``dz1 W1^T``), and per step six
elementwise passes over genes x batch x TFs (gather, x w, + c, mask, ReLU, mask x e) instead of nine,
all into preallocated buffers. No array of a step is allocated inside it (buffers per batch shape), the later
layers' ReLU masks are kept from the forward pass, and the weights and gradients are views of two flat
vectors (`NumpyMTL.flat`, `NumpyMTL.grad_flat`) that Adam updates as one array.
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

    With ``K = m m^T = U diag(s^2) U^T`` (the smaller Gram matrix: ``m^T m`` for a tall ``m``), the
    singular values are ``s`` and ``U V^T = U diag(1/s) U^T m``: one eigendecomposition of the small
    Gram matrix and one product with ``m`` (a shard's W1 unfolds to 25 x 12800: the Gram matrix and that
    product are its two 25 x 25 x 12800 products). The Gram matrix and its eigendecomposition are float64,
    so that small singular values keep float32 accuracy; the product is float32, like the TensorFlow
    engine's float32 SVD (relative error about eps32 x max(s) / min(s)). Directions with ``s^2`` at the
    Gram matrix's rounding level (below ``max(s^2) x max(shape) x eps64``: s below ~1e-6 max(s) for W1) are
    left out of the gradient: a valid subgradient at a rank-deficient ``m``, where the SVD's ``U V^T`` is
    arbitrary in those directions.
    """
    wide = m.shape[0] <= m.shape[1]
    m64 = m.astype(np.float64) if wide else m.T.astype(np.float64)
    gram = m64 @ m64.T
    if not grad:
        return np.float32(np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0, None)).sum()), None
    ev, u = np.linalg.eigh(gram)
    ev = np.clip(ev, 0, None)
    s = np.sqrt(ev)
    keep = ev > ev[-1] * max(m.shape) * np.finfo(np.float64).eps
    uk = u[:, keep]
    g = ((uk / s[keep]) @ uk.T).astype(np.float32) @ (m if wide else m.T)
    return np.float32(s.sum()), (g if wide else g.T)


def trace_norm(w: np.ndarray, axis: int, grad: bool = True):
    """(Tensor trace norm of ``w`` unfolded along ``axis``, its gradient folded back, or None)."""
    value, g = nuclear_norm(unfold(w, axis), grad)
    return value, (fold(g, axis, w.shape) if grad else None)


def sum_features(p: np.ndarray) -> np.ndarray:
    """``p.sum(-1)`` for the short feature axis (5): added left to right, as numpy's reduction adds fewer
    than 8 numbers (the same bits), in four whole-array additions instead of a reduction per row."""
    out = p[..., 0] + p[..., 1]
    for i in range(2, p.shape[-1]):
        out += p[..., i]
    return out


def flat_views(flat: np.ndarray, shapes) -> list:
    """Consecutive views of the 1-d array ``flat`` with ``shapes`` (which fill it exactly)."""
    out, o = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append(flat[o:o + n].reshape(shape))
        o += n
    assert o == flat.size, (o, flat.size)
    return out


class NumpyMTL:
    """The per-gene networks of one shard as gene-batched float32 arrays (``vars``, in the order ``names``).

    All weights are views of one flat vector (``flat``) and all gradients views of another (``grad_flat``),
    so that the optimizer updates every weight with a few passes over one array instead of a dozen passes
    over each of thirteen small ones.
    """

    def __init__(self, init: dict, hidden=HIDDEN):
        self.names = list(init)
        self.shapes = [np.shape(init[k]) for k in self.names]
        self.flat = np.empty(sum(int(np.prod(s)) for s in self.shapes), dtype=np.float32)
        self.vars = dict(zip(self.names, flat_views(self.flat, self.shapes)))
        for k in self.names:
            self.vars[k][...] = init[k]
        self.grad_flat = np.zeros_like(self.flat)
        self.grads = dict(zip(self.names, flat_views(self.grad_flat, self.shapes)))
        self.hidden = tuple(hidden)
        self.G, self.T = self.vars["w0"].shape[:2]
        self._buffers = {}

    def arrays(self) -> dict:
        """The weights as numpy arrays, by name (copies)."""
        return {k: self.vars[k].copy() for k in self.names}

    def l1_kernels(self) -> list:
        """Names of the kernels that carry the L1 penalty (per-TF, 64, 32, 16 layers)."""
        return ["w0"] + [f"W{i + 1}" for i in range(len(self.hidden))]

    def buffers(self, shape) -> dict:
        """Work arrays of one batch shape (genes x batch x TFs), kept per shape (a shard's batches have at most
        two): `work_arrays` plus ``e`` (the gathered expression), ``me`` (mask x expression), ``q1``, ``q0``
        (genes x TFs x 64) and per later hidden layer ``d<i>`` (dLoss / its output)."""
        shape = tuple(shape)
        if shape not in self._buffers:
            G, B, T = shape
            buf = self.work_arrays(shape)
            buf.update({k: np.empty(shape, dtype=np.float32) for k in ("e", "me")})
            for k in ("q1", "q0"):
                buf[k] = np.empty((G, T, self.hidden[0]), dtype=np.float32)
            for i, n in enumerate(self.hidden):
                buf[f"d{i + 1}"] = np.empty((G, B, n), dtype=np.float32)
            self._buffers[shape] = buf
        return self._buffers[shape]

    def work_arrays(self, shape) -> dict:
        """New arrays of the forward pass for ``shape`` (genes x batch x TFs): ``h0`` and ``m0`` (the first
        layer's ReLU output and mask as 0/1), per later hidden layer ``z<i>`` and ``m<i>`` (the same)."""
        G, B, T = shape
        buf = {k: np.empty(shape, dtype=np.float32) for k in ("h0", "m0")}
        for i, n in enumerate(self.hidden):
            for k in ("z", "m"):
                buf[f"{k}{i + 1}"] = np.empty((G, B, n), dtype=np.float32)
        return buf

    def _first_layer(self, e, A, C, h0, m0):
        """Per gene and TF the folded weight ``w`` and bias ``c`` of the first layer; ``h0 = relu(e w + c)`` is
        written into ``h0`` and the mask ``h0 > 0`` (as 0/1) into ``m0``."""
        v = self.vars
        w = sum_features(A * v["w0"])                              # genes x TFs
        c = sum_features(C * v["w0"]) + v["c0"]
        np.multiply(e, w[:, None, :], out=h0)
        h0 += c[:, None, :]
        np.greater(h0, 0, out=m0)
        h0 *= m0
        return w, c

    def _hidden(self, h0, buf):
        """The predictions (genes x batch) from the first layer's output ``h0``; the later layers' ReLU outputs
        and masks go to ``buf`` (`work_arrays`)."""
        v = self.vars
        h = h0
        for i in range(len(self.hidden)):
            z, m = buf[f"z{i + 1}"], buf[f"m{i + 1}"]
            np.matmul(h, v[f"W{i + 1}"], out=z)
            z += v[f"b{i + 1}"][:, None, :]
            np.greater(z, 0, out=m)
            h = np.multiply(z, m, out=z)
        return (h @ v["w_out"])[..., 0] + v["b_out"]

    def forward(self, e, A, C):
        """Predictions (genes x batch) for gathered expression ``e`` (genes x batch x TFs)."""
        buf = self.work_arrays(e.shape)
        self._first_layer(e, A, C, buf["h0"], buf["m0"])
        return self._hidden(buf["h0"], buf)

    def __call__(self, e, A, C):
        """Predictions (genes x batch) from gathered expression ``e`` (genes x batch x TFs)."""
        return self.forward(e, A, C)

    def gradients(self, e, y, A, C, lam: float, l1: float, axis: int):
        """(loss, mse, trace norm, gradients by name) of one batch; ``y``: genes x batch targets.

        The gradients are views of ``grad_flat``, overwritten by the next call."""
        v, g = self.vars, self.grads
        buf = self.buffers(e.shape)
        w, c = self._first_layer(e, A, C, buf["h0"], buf["m0"])
        pred = self._hidden(buf["h0"], buf)
        r = y - pred
        mse = np.mean(np.square(r))
        d = r * np.float32(-2.0 / r.size)                          # dLoss/dpred
        n = len(self.hidden)
        np.sum(d, axis=1, keepdims=True, out=g["b_out"])
        np.matmul(buf[f"z{n}"].transpose(0, 2, 1), d[..., None], out=g["w_out"])
        dh = np.multiply(d[..., None], v["w_out"][:, None, :, 0], out=buf[f"d{n}"])
        for i in range(n, 1, -1):                                  # layers n .. 2: dz_i = dh_i * m_i
            dz = np.multiply(dh, buf[f"m{i}"], out=dh)
            np.matmul(buf[f"z{i - 1}"].transpose(0, 2, 1), dz, out=g[f"W{i}"])
            np.sum(dz, axis=1, out=g[f"b{i}"])
            dh = np.matmul(dz, v[f"W{i}"].transpose(0, 2, 1), out=buf[f"d{i - 1}"])
        dz1 = np.multiply(dh, buf["m1"], out=dh)
        np.sum(dz1, axis=1, out=g["b1"])
        me = np.multiply(e, buf["m0"], out=buf["me"])
        q1 = np.matmul(me.transpose(0, 2, 1), dz1, out=buf["q1"])          # genes x TFs x 64
        q0 = np.matmul(buf["m0"].transpose(0, 2, 1), dz1, out=buf["q0"])
        s1 = np.einsum("gtj,gtj->gt", v["W1"], q1)                 # sum_b dz0 * e
        dc = np.einsum("gtj,gtj->gt", v["W1"], q0, out=g["c0"])   # sum_b dz0
        q1 *= w[..., None]
        q0 *= c[..., None]
        np.add(q1, q0, out=g["W1"])                                # w Q1 + c Q0
        np.multiply(A, s1[..., None], out=g["w0"])
        g["w0"] += C * dc[..., None]
        tn1, g1 = trace_norm(v["W1"], axis, grad=lam != 0)
        tn2, g2 = trace_norm(v["W2"], axis, grad=lam != 0)
        tn = np.float32(0.5) * (tn1 + tn2)
        loss = mse + np.float32(lam) * tn
        if lam != 0:
            g["W1"] += np.float32(0.5 * lam) * g1
            g["W2"] += np.float32(0.5 * lam) * g2
        if l1 != 0:
            pen = sum(np.abs(v[k]).sum(dtype=np.float32) for k in self.l1_kernels()) / np.float32(self.G)
            loss = loss + np.float32(l1) * pen
            for k in self.l1_kernels():
                g[k] += np.float32(l1 / self.G) * np.sign(v[k])
        return float(loss), float(mse), float(tn), {k: g[k] for k in self.names}


class NumpyAdam:
    """Adam with Keras' update rule (as `scfactor.core.optim.Adam`) on one flat float32 vector, updated in place.

    ``flat``: the parameters (e.g. `NumpyMTL.flat`), ``shapes``: the parameters it concatenates, in order;
    ``state()`` / ``set_state()`` use `core.optim.Adam`'s names per parameter (``adam/m<i>``, ``adam/v<i>``,
    ``adam/step``).
    """

    def __init__(self, flat: np.ndarray, shapes, lr: float, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-7):
        self.p, self.shapes = flat, list(shapes)
        self.lr, self.beta1, self.beta2, self.eps = (np.float32(x) for x in (lr, beta1, beta2, eps))
        self.m, self.v = np.zeros_like(flat), np.zeros_like(flat)
        self._t1, self._t2 = np.empty_like(flat), np.empty_like(flat)
        self.step = 0

    def apply(self, g: np.ndarray) -> None:
        """One Adam step with the flat gradient ``g``; the same float32 operations, in the same order, as
        ``m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= alpha m / (sqrt(v) + eps)``, written into two
        work arrays instead of new arrays."""
        self.step += 1
        t, one = np.float32(self.step), np.float32(1.0)
        alpha = self.lr * np.sqrt(one - self.beta2 ** t) / (one - self.beta1 ** t)
        m, v, t1, t2 = self.m, self.v, self._t1, self._t2
        m *= self.beta1
        m += np.multiply(one - self.beta1, g, out=t1)
        v *= self.beta2
        np.square(g, out=t1)
        v += np.multiply(one - self.beta2, t1, out=t1)
        np.sqrt(v, out=t1)
        t1 += self.eps
        np.multiply(alpha, m, out=t2)
        self.p -= np.divide(t2, t1, out=t2)

    def state(self) -> dict:
        """Moments (per parameter) and step as arrays."""
        out = {f"adam/m{i}": m.copy() for i, m in enumerate(flat_views(self.m, self.shapes))}
        out.update({f"adam/v{i}": v.copy() for i, v in enumerate(flat_views(self.v, self.shapes))})
        out["adam/step"] = np.asarray(self.step, dtype=np.int64)
        return out

    def set_state(self, arrays: dict) -> None:
        """Restore what `state` returned."""
        for i, (m, v) in enumerate(zip(flat_views(self.m, self.shapes), flat_views(self.v, self.shapes))):
            m[...] = arrays[f"adam/m{i}"]
            v[...] = arrays[f"adam/v{i}"]
        self.step = int(arrays["adam/step"])


class NumpyEngine:
    """The numpy engine of `training.fit`: a `NumpyMTL`, `NumpyAdam` and the shard's arrays."""

    def __init__(self, shard: ShardData, opts, init: dict):
        self.model = NumpyMTL(init)
        self.opt = NumpyAdam(self.model.flat, self.model.shapes, lr=opts.learning_rate)
        self.E, self.A, self.C = shard.expr, shard.A, shard.C
        self.Y = np.nan_to_num(shard.y)
        self.lam, self.l1, self.axis = opts.lam, opts.l1, UNFOLD_AXES[opts.unfold_axis]
        self.rows = np.arange(shard.n_genes)[:, None]

    def step(self, idx):
        """One Adam step on a genes x batch index array; (loss, mse, trace norm)."""
        e = np.take(self.E, idx, axis=0, out=self.model.buffers((*idx.shape, self.E.shape[1]))["e"],
                    mode="clip")                                   # cell indices are in range: no checked copy
        loss, mse, tn, _ = self.model.gradients(e, self.Y[self.rows, idx], self.A, self.C, self.lam, self.l1,
                                                self.axis)
        self.opt.apply(self.model.grad_flat)
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
