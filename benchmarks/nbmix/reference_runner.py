#!/usr/bin/env python
"""Run the reference batch EM (aksarkar/mpebpm@gam-mix, src/mpebpm/gam_mix.py) on one data set, on the CPU.

Needs only torch, numpy and scipy (tensorboard is stubbed when absent), so the project's venv can run it.
The reference sources are read from --src (a folder holding mpebpm/{__init__,gam_mix,sgd,sparse}.py extracted
by bench_nbmix.py, never committed); its hard-coded ``.cuda()`` calls are switched to ``.cpu()`` in memory
before the module is executed. Runs from the reference's own random start, or from the responsibilities ``z``
stored with the data (the same-start comparison). Writes an .npz with the responsibilities and the wall and CPU
time of the fit call.
"""

import argparse
import importlib.util
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch


def stub_tensorboard():
    """An empty ``torch.utils.tensorboard`` when tensorboard is not installed: the reference imports it at the
    top of its modules but uses it only with a log_dir, which the benchmark never gives."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        sys.modules["torch.utils.tensorboard"] = types.ModuleType("torch.utils.tensorboard")


def load_reference(src: Path):
    """Import mpebpm.{sparse,sgd,gam_mix} from ``src`` with every ``.cuda()`` replaced by ``.cpu()``."""
    stub_tensorboard()
    pkg = types.ModuleType("mpebpm")
    pkg.__path__ = [str(src / "mpebpm")]
    sys.modules["mpebpm"] = pkg
    for name in ("sparse", "sgd", "gam_mix"):
        path = src / "mpebpm" / f"{name}.py"
        code = path.read_text().replace(".cuda()", ".cpu()")
        spec = importlib.util.spec_from_loader(f"mpebpm.{name}", loader=None, origin=str(path))
        mod = importlib.util.module_from_spec(spec)
        mod.__file__ = str(path)
        sys.modules[f"mpebpm.{name}"] = mod
        exec(compile(code, str(path), "exec"), mod.__dict__)
        setattr(pkg, name, mod)
    return sys.modules["mpebpm.gam_mix"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", required=True, type=Path)
    p.add_argument("--data", required=True, help=".npz with x [n, p] and optionally z [n, k] (the start)")
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--num-epochs", type=int, default=50)
    p.add_argument("--max-em-iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--output", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    gam_mix = load_reference(a.src)
    with np.load(a.data) as f:
        x = f["x"]
        z = f["z"] if "z" in f else None
    torch.manual_seed(a.seed)  # as in the seed notebook
    t0, c0 = time.perf_counter(), time.process_time()
    fit = gam_mix.ebpm_gam_mix_em(x=x, s=x.sum(axis=1, keepdims=True), k=a.k, z=z, lr=a.lr,
                                  num_epochs=a.num_epochs, max_em_iters=a.max_em_iters, log_dir=None)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    np.savez(a.output, resp=fit[-1], log_mean=fit[0], log_inv_disp=fit[1], seconds=sec, cpu_seconds=cpu)
    print(f"reference fit: {sec:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
