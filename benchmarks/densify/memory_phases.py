#!/usr/bin/env python
"""Peak resident memory of one densify job, phase by phase (issue 19: densify at atlas scale).

Runs the densify step (`scfactor.densify.cli.densify`, schema defaults, one epoch, CPU) in this process on a
preprocessed ``.h5ad``. Each phase of the job (reading and checking the counts and hiding the held-out entries,
with the training matrix written to disk, `scfactor.densify.spill`; the SVD baseline; building the model; each
training phase; rebuilding the counts, predicting and writing the output) gets its wall time, the memory when it started and its exact peak: the kernel's peak (VmHWM) is read
and reset at every phase boundary (`rss.reset_peak`), so a spike of any length counts, and the stretches
between the phases get a row of their own. Training is cut to ``--tiles`` tiles per epoch: a tile has the
same shape at every size (``block_entries``), so the training phase's memory does not depend on how many
tiles run, and a million-cell job can be measured without its 80-minute CPU epoch; every other phase runs in
full. With ``--figure`` the densify_figure step then runs on the output, as one more row (its peak includes
what the process still holds: compare it with the memory at its start). The results (``<out>.tsv`` / ``.md``)
start with this command.

    python benchmarks/densify/memory_phases.py --input /tmp/scale1m/n1000000/pre.h5ad --work /tmp/dm \
        --out benchmarks/results/densify_memory_1m
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import rss  # noqa: E402
from results_file import checkout_commit, command_line, write_results  # noqa: E402

#: (module, function, phase name): the densify job's phases, in the order they run
PHASES = (("pipeline", "validate_input", "read, check and spill the counts; hide the held-out entries"),
          ("pipeline", "_baselines", "SVD baseline"),
          ("train", "build_model", "build a model"),
          ("train", "train_phase", "train (cut to --tiles tiles per epoch)"),
          ("pipeline", "_write_output", "rebuild the counts, predict and write the output"))


class PhasePeaks:
    """Exact peak resident memory of each phase and of the stretches between phases: the kernel's peak (VmHWM) is
    read and reset at every boundary (`rss.reset_peak`), so short spikes count and no phase's peak carries into
    the next one."""

    def __init__(self):
        if not rss.reset_peak():
            raise SystemExit("memory_phases.py: needs Linux /proc/self/clear_refs to reset the peak memory")
        self.overall = self.outside = rss.current_mib()
        self.running = None

    def start(self, phase: str) -> float:
        """Begin ``phase``: fold the stretch before it into the outside peak; return the memory now (MiB)."""
        if self.running is not None:
            raise RuntimeError(f"phase {phase!r} started inside phase {self.running!r}")
        self.running = phase
        self.outside = max(self.outside, rss.peak_mib())
        rss.reset_peak()
        return rss.current_mib()

    def stop(self) -> float:
        """End the running phase and return its peak (MiB)."""
        peak = rss.peak_mib()
        self.overall, self.running = max(self.overall, peak), None
        rss.reset_peak()
        return peak

    def whole(self) -> float:
        """Peak of the whole process so far (MiB)."""
        self.outside = max(self.outside, rss.peak_mib())
        return max(self.overall, self.outside)


def instrument(peaks: PhasePeaks, rows: list) -> None:
    """Wrap every function of `PHASES` so that each call appends (phase, seconds, start GiB, peak GiB) to ``rows``."""
    from scfactor.densify import pipeline, train
    modules = {"pipeline": pipeline, "train": train}
    for mod_name, fn_name, phase in PHASES:
        mod = modules[mod_name]
        fn = getattr(mod, fn_name)

        def timed(*a, _fn=fn, _phase=phase, **k):
            start, t0 = peaks.start(_phase), time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                seconds, peak = time.perf_counter() - t0, peaks.stop()
                rows.append({"phase": _phase, "seconds": round(seconds, 2),
                             "rss_at_start_gib": round(start / 1024, 3), "peak_rss_gib": round(peak / 1024, 3)})
        setattr(mod, fn_name, timed)


def cut_epochs(tiles: int) -> None:
    """Make every training epoch stop after ``tiles`` tiles."""
    from scfactor.densify import pairs
    whole = pairs.BlockStream.epoch
    pairs.BlockStream.epoch = lambda self, epoch, max_blocks=None: whole(self, epoch, tiles)


def figure_row(peaks: PhasePeaks, rows: list, work: Path) -> None:
    """Run the densify_figure step on ``work``/dn.h5ad in this process and append its row (after the job's)."""
    import gc

    from scfactor.densify.cli import densify_figure
    gc.collect()
    start, t0 = peaks.start("figure"), time.perf_counter()
    rc = densify_figure(["--input", str(work / "dn.h5ad"), "--figure", str(work / "dn.png")])
    seconds, peak = time.perf_counter() - t0, peaks.stop()
    if rc:
        raise SystemExit(f"memory_phases.py: densify_figure failed ({rc})")
    rows.append({"phase": "the figure step (densify_figure: another job, run here after the densify job)",
                 "seconds": round(seconds, 2), "rss_at_start_gib": round(start / 1024, 3),
                 "peak_rss_gib": round(peak / 1024, 3)})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="preprocessed .h5ad (e.g. the scale benchmark's pre.h5ad)")
    p.add_argument("--work", required=True, help="folder for the densify output and checkpoints")
    p.add_argument("--tiles", type=int, default=3, help="training tiles per epoch")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shared-machine", action="store_true",
                   help="the machine runs other jobs: the results say that the times are not valid")
    p.add_argument("--figure", action="store_true",
                   help="then also run the densify_figure step on the output, in this process, as one more row")
    p.add_argument("--out", required=True, help="results stem")
    a = p.parse_args()
    command = command_line(__file__)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    peaks, rows = PhasePeaks(), []
    instrument(peaks, rows)
    cut_epochs(a.tiles)
    from scfactor.densify.cli import densify
    t0, cpu0 = time.perf_counter(), time.process_time()
    rc = densify(["--input", a.input, "--epochs", "1", "--accelerator", "cpu", "--threads", str(a.threads),
                  "--checkpoint-dir", str(work / "ckpt"), "--output", str(work / "dn.h5ad"),
                  "--heldout-table", str(work / "dn.tsv")])
    hwm = peaks.whole() / 1024  # before anything else is read
    if rc:
        return rc
    import h5py
    with h5py.File(work / "dn.h5ad", "r") as f:  # the sizes only (reading the output would load its layers)
        cells, nnz = int(f["X"].attrs["shape"][0]), int(f["X"]["data"].shape[0])
    rows.append({"phase": "outside these phases (imports, set-up, between phases)", "seconds": float("nan"),
                 "rss_at_start_gib": float("nan"), "peak_rss_gib": round(peaks.outside / 1024, 3)})
    if a.figure:
        figure_row(peaks, rows, work)
    table = pd.DataFrame(rows)
    intro = (f"One densify job (schema defaults, 1 epoch cut to {a.tiles} tiles, {a.threads} thread(s), CPU) on "
             f"{cells} cells, {nnz} stored counts; code {checkout_commit()}; {os.cpu_count()} cores. Whole process: "
             f"{time.perf_counter() - t0:.0f} s wall, {time.process_time() - cpu0:.0f} CPU s, peak resident memory "
             f"(VmHWM) **{hwm:.2f} GiB**, {hwm * 2 ** 30 / nnz:.1f} bytes per stored count, {hwm * 2 ** 30 / cells:.0f} "
             f"bytes per cell; the training matrix on disk (in $TMPDIR, unlinked) while it ran. Per phase: wall "
             "seconds, resident memory when it started and its exact peak (GiB: the kernel's VmHWM, reset at every "
             "phase boundary, so short spikes count). The training "
             "phase's memory does not depend on the number of tiles (each tile has the same shape).")
    if a.shared_machine:
        intro += (" The machine ran other jobs: the times are not valid timings; resident memory does not depend "
                  "on the load.")
    write_results(a.out, command, table, intro, floatfmt=".3f")
    print(Path(a.out).with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
