#!/usr/bin/env python
"""What keeping densify's training matrix on disk costs the training loop (issue 19): the time to draw a
training tile (`scfactor.densify.pairs.BlockStream`: its cells' rows read, densified, cut to the tile's genes,
weighted) from the matrix on disk (`scfactor.densify.spill.SpilledCSR`, one ``preadv`` per row and file) and from
the same matrix in memory (a scipy CSR matrix), one thread, the two sides alternating ``--repeats`` times over
the first ``--tiles`` tiles of epoch 0 (the same tiles, checked equal). The training step that consumes a tile
is timed elsewhere (`tower_variants.py`: about 30 ms for the MLP tower's tile at the defaults).

Setup (not timed): the densify job's own reading and masking (`scfactor.densify.pipeline.validate_input`, schema
defaults) with the matrix forced to disk, then a copy of it in memory. Writes ``<out>.tsv`` / ``.md`` headed by
this command.

    python benchmarks/densify/spill_tiles.py --input /tmp/scale1m/n1000000/pre.h5ad \
        --out benchmarks/results/densify_spill_tiles_1m
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from results_file import command_line, run_conditions, write_results  # noqa: E402


def _tiles(stream, tiles: int) -> tuple[float, float, list]:
    """(CPU s, wall s, a checksum per tile) of drawing the first ``tiles`` tiles of epoch 0."""
    c0, w0 = time.process_time(), time.perf_counter()
    sums = [float(y.sum()) for _, _, y, _ in stream.epoch(0, tiles)]
    return time.process_time() - c0, time.perf_counter() - w0, sums


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="preprocessed .h5ad (e.g. the scale benchmark's pre.h5ad)")
    p.add_argument("--batch", default=None)
    p.add_argument("--tiles", type=int, default=2000, help="tiles drawn per side and repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", required=True, help="results stem")
    a = p.parse_args()
    command = command_line(__file__)
    load0 = os.getloadavg()[0]
    from scfactor.densify import spill
    from scfactor.densify.cli import DENSIFY
    from scfactor.densify.pairs import BlockStream
    from scfactor.densify.pipeline import validate_input
    from scfactor.densify.train import tile_shape
    opts = DENSIFY.defaults()
    spill.IN_MEMORY_MAX = 0
    data = validate_input(a.input, a.batch, opts)
    disk = data.train
    memory = disk[0:disk.shape[0]]
    cells, genes = tile_shape(opts.block_entries, opts.block_genes, *disk.shape)
    streams = {side: BlockStream(x, cells, opts.seed, zero_keep=opts.zero_keep, num_neg=opts.num_neg,
                                 genes_per_block=genes) for side, x in (("disk", disk), ("memory", memory))}
    rows, sums = [], {}
    for repeat in range(a.repeats):
        for side in ("disk", "memory") if repeat % 2 == 0 else ("memory", "disk"):
            cpu, wall, sums[side] = _tiles(streams[side], a.tiles)
            rows.append({"repeat": repeat, "side": side, "tiles": a.tiles, "cpu_s": cpu, "wall_s": wall,
                         "cpu_ms_per_tile": 1000 * cpu / a.tiles, "wall_ms_per_tile": 1000 * wall / a.tiles})
        if sums["disk"] != sums["memory"]:
            raise SystemExit("spill_tiles.py: the tiles drawn from disk and from memory differ")
    runs = pd.DataFrame(rows)
    table = runs.groupby("side", as_index=False)[["cpu_ms_per_tile", "wall_ms_per_tile"]].median()
    intro = (f"Training tiles of {cells} cells x {genes} genes (schema defaults) drawn from the densify training "
             f"matrix of {disk.shape[0]} cells x {disk.shape[1]} genes ({disk.nnz} stored counts) on disk and in "
             f"memory, one thread, alternating, {a.repeats} repeats of {a.tiles} tiles each (the same tiles: "
             f"checked equal); medians per tile, every run below. {run_conditions(load0)}")
    write_results(a.out, command, table, intro + "\n\nEvery run:\n\n" + runs.to_markdown(index=False, floatfmt=".3f"),
                  floatfmt=".3f")
    print(Path(a.out).with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
