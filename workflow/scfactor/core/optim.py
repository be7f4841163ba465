"""Adam for TensorFlow models, its state kept in variables so that a checkpoint restores it exactly."""

from __future__ import annotations

import numpy as np


class Adam:
    """Adam with Keras' update rule over ``variables`` (a list of ``tf.Variable``).

    ``state()`` / ``set_state()`` give and take the moments and step as numpy arrays (for
    `scfactor.core.checkpoint`). ``apply`` works eagerly and inside ``tf.function``. ``lr``: a float, or a
    scalar ``tf.Variable`` to change the rate between steps without retracing a compiled step.
    """

    def __init__(self, variables, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7):
        import tensorflow as tf
        self.variables = list(variables)
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)

    def apply(self, grads) -> None:
        """One Adam step with dense ``grads`` (same order as ``variables``)."""
        import tensorflow as tf
        self.step.assign_add(1)
        t = tf.cast(self.step, self.variables[0].dtype)
        alpha = self.lr * tf.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)
        for g, var, m, v in zip(grads, self.variables, self.m, self.v):
            m.assign(self.beta1 * m + (1.0 - self.beta1) * g)
            v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(g))
            var.assign_sub(alpha * m / (tf.sqrt(v) + self.eps))

    def state(self) -> dict:
        """Moments and step as numpy arrays, keyed ``adam/m<i>``, ``adam/v<i>``, ``adam/step``."""
        out = {f"adam/m{i}": m.numpy() for i, m in enumerate(self.m)}
        out.update({f"adam/v{i}": v.numpy() for i, v in enumerate(self.v)})
        out["adam/step"] = np.asarray(self.step.numpy())
        return out

    def set_state(self, arrays: dict) -> None:
        """Restore what `state` returned."""
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            m.assign(arrays[f"adam/m{i}"])
            v.assign(arrays[f"adam/v{i}"])
        self.step.assign(int(arrays["adam/step"]))
