"""Device selection for PyTorch (``--device``) and TensorFlow (``--accelerator``) steps.

``auto`` always works: it picks CUDA / a TPU / GPUs when present and otherwise the CPU. Asking
explicitly for a device that is absent raises `DeviceError` (one readable line, exit 2).
"""

from __future__ import annotations

import os

from .errors import DeviceError

TORCH_CHOICES = ("auto", "cpu", "cuda")
TF_CHOICES = ("auto", "cpu", "gpu", "tpu")


def torch_device(choice: str = "auto"):
    """A ``torch.device`` for ``auto|cpu|cuda`` (``cuda:N`` allowed)."""
    import torch
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {choice} requested but no CUDA device is available "
                              "(use --device auto or cpu)")
        return torch.device(choice)
    if choice == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device {choice!r}; choose one of {', '.join(TORCH_CHOICES)}")


def configure_tf(seed: int, threads: int = 1):
    """Prepare TensorFlow before its first op: thread pools, GPU memory growth, seeds, op determinism.

    Returns the ``tensorflow`` module. Thread pools can only be set once per process; later calls (tests)
    keep the existing pools.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, int(threads)))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, int(threads)))
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # already initialised in this process
        pass
    tf.keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()
    return tf


def _tpu_resolver():
    """A connected TPUClusterResolver, or None when no TPU is reachable."""
    import tensorflow as tf
    if not (os.environ.get("TPU_NAME") or os.environ.get("TPU_ACCELERATOR_TYPE")
            or os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0")):
        return None
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", "local"))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return resolver
    except (ValueError, RuntimeError, tf.errors.OpError):
        return None


def tf_strategy(choice: str = "auto"):
    """A ``tf.distribute.Strategy`` for ``auto|cpu|gpu|tpu``.

    ``tpu``: TPUStrategy through TPUClusterResolver (TPU VM or a Slurm TPU partition);
    ``gpu``: MirroredStrategy over all visible GPUs; ``cpu``: the default strategy on ``/cpu:0``;
    ``auto``: TPU if reachable, else GPUs if any, else CPU.
    """
    import tensorflow as tf
    if choice not in TF_CHOICES:
        raise DeviceError(f"unknown accelerator {choice!r}; choose one of {', '.join(TF_CHOICES)}")
    if choice in ("tpu", "auto"):
        resolver = _tpu_resolver()
        if resolver is not None:
            return tf.distribute.TPUStrategy(resolver)
        if choice == "tpu":
            raise DeviceError("--accelerator tpu requested but no TPU is reachable "
                              "(set TPU_NAME on a TPU VM / partition, or use --accelerator auto)")
    gpus = tf.config.list_physical_devices("GPU")
    if choice == "gpu" and not gpus:
        raise DeviceError("--accelerator gpu requested but TensorFlow sees no GPU (use --accelerator auto or cpu)")
    if gpus and choice in ("gpu", "auto"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def configure_torch(seed: int, threads: int = 1):
    """Prepare PyTorch: intra-op threads (the rule's threads) and the global seed; returns ``torch``."""
    import torch
    torch.set_num_threads(max(1, int(threads)))
    torch.manual_seed(int(seed))
    return torch
