#!/usr/bin/env python
"""Peak resident memory of one densify job, phase by phase (issue 19: densify at atlas scale).

Runs the densify step (`scfactor.densify.cli.densify`, schema defaults, one epoch, CPU) in this process on a
preprocessed ``.h5ad`` and samples the process's resident memory (``VmRSS``) every 20 ms. Each phase of the job
(reading and checking the counts, hiding the held-out entries, the SVD baseline, building the model, each
training phase, rebuilding the counts, predicting and writing the output) gets its wall time, the memory when
it started and its peak. Training is cut to ``--tiles`` tiles per epoch: a tile has the same shape at every
size (``block_entries``), so the training phase's memory does not depend on how many tiles run, and a
million-cell job can be measured without its 80-minute CPU epoch; every other phase runs in full. The results
(``<out>.tsv`` / ``.md``) start with this command.

    python benchmarks/densify/memory_phases.py --input /tmp/scale1m/n1000000/pre.h5ad --work /tmp/dm \
        --out benchmarks/results/densify_memory_1m
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from results_file import checkout_commit, command_line, write_results  # noqa: E402

#: (module, function, phase name): the densify job's phases, in the order they run
PHASES = (("pipeline", "validate_input", "read and check the counts"),
          ("pipeline", "_masked", "hide the held-out entries"),
          ("pipeline", "_baselines", "SVD baseline"),
          ("train", "build_model", "build a model"),
          ("train", "train_phase", "train (cut to --tiles tiles per epoch)"),
          ("heldout", "unmask", "rebuild the counts"),
          ("pipeline", "_write_output", "predict and write the output"))


def _rss_gib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 2 ** 20
    return float("nan")


class Sampler:
    """Resident memory sampled every ``every`` seconds in a thread; `peak` since the last `mark`."""

    def __init__(self, every: float = 0.02):
        self.peak, self.every = _rss_gib(), every
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            self.peak = max(self.peak, _rss_gib())
            time.sleep(self.every)

    def mark(self) -> float:
        """Reset the peak to the current memory and return that."""
        now = _rss_gib()
        self.peak = now
        return now


def instrument(sampler: Sampler, rows: list) -> None:
    """Wrap every function of `PHASES` so that each call appends (phase, seconds, start GiB, peak GiB) to ``rows``."""
    from scfactor.densify import heldout, pipeline, train
    modules = {"pipeline": pipeline, "train": train, "heldout": heldout}
    for mod_name, fn_name, phase in PHASES:
        mod = modules[mod_name]
        fn = getattr(mod, fn_name)

        def timed(*a, _fn=fn, _phase=phase, **k):
            start, t0 = sampler.mark(), time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                rows.append({"phase": _phase, "seconds": round(time.perf_counter() - t0, 2),
                             "rss_at_start_gib": round(start, 3), "peak_rss_gib": round(max(sampler.peak, start), 3)})
        setattr(mod, fn_name, timed)


def cut_epochs(tiles: int) -> None:
    """Make every training epoch stop after ``tiles`` tiles."""
    from scfactor.densify import pairs
    whole = pairs.BlockStream.epoch
    pairs.BlockStream.epoch = lambda self, epoch, max_blocks=None: whole(self, epoch, tiles)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="preprocessed .h5ad (e.g. the scale benchmark's pre.h5ad)")
    p.add_argument("--work", required=True, help="folder for the densify output and checkpoints")
    p.add_argument("--tiles", type=int, default=3, help="training tiles per epoch")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shared-machine", action="store_true",
                   help="the machine runs other jobs: the results say that the times are not valid")
    p.add_argument("--out", required=True, help="results stem")
    a = p.parse_args()
    command = command_line(__file__)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    sampler, rows = Sampler(), []
    instrument(sampler, rows)
    cut_epochs(a.tiles)
    from scfactor.densify.cli import densify
    t0, cpu0 = time.perf_counter(), time.process_time()
    rc = densify(["--input", a.input, "--epochs", "1", "--accelerator", "cpu", "--threads", str(a.threads),
                  "--checkpoint-dir", str(work / "ckpt"), "--output", str(work / "dn.h5ad"),
                  "--heldout-table", str(work / "dn.tsv")])
    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # before anything else is read
    if rc:
        return rc
    import h5py
    with h5py.File(work / "dn.h5ad", "r") as f:  # the sizes only (reading the output would load its layers)
        cells, nnz = int(f["X"].attrs["shape"][0]), int(f["X"]["data"].shape[0])
    table = pd.DataFrame(rows)
    intro = (f"One densify job (schema defaults, 1 epoch cut to {a.tiles} tiles, {a.threads} thread(s), CPU) on "
             f"{cells} cells, {nnz} stored counts; code {checkout_commit()}; {os.cpu_count()} cores. Whole process: "
             f"{time.perf_counter() - t0:.0f} s wall, {time.process_time() - cpu0:.0f} CPU s, peak resident memory "
             f"(VmHWM) **{hwm:.2f} GiB**, {hwm * 2 ** 30 / nnz:.1f} bytes per stored count. Per phase: wall "
             "seconds, resident memory when it started and its peak (GiB, sampled every 20 ms). The training "
             "phase's memory does not depend on the number of tiles (each tile has the same shape).")
    if a.shared_machine:
        intro += (" The machine ran other jobs: the times are not valid timings; resident memory does not depend "
                  "on the load.")
    write_results(a.out, command, table, intro, floatfmt=".3f")
    print(Path(a.out).with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
