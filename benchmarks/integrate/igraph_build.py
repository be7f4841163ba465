#!/usr/bin/env python
"""Building the Leiden step's igraph graph from an edge array: python-igraph's ``Graph(edges=array)`` (its
element-by-element conversion, the integrate step's route before) against `scfactor.core.graphs.igraph_graph`
(a temporary edge-list file read by igraph's C reader, the route now).

Each build runs in its own process with one thread, the routes alternating for ``--rounds`` rounds; the edges are
``--edges`` seeded random pairs among ``--cells`` vertices (a million cells' SNN graph holds about 34 M edges once
per pair: 6.8 M at 200,000 cells, `integrate_memory_200k.md`). Reported per build: the build's wall and CPU
seconds (inside the process), the process's peak memory and the memory it holds after the build (the graph and
the edge arrays), so ``peak - after`` is what the route holds beyond its result.

    python benchmarks/integrate/igraph_build.py --edges 34000000 --cells 1000000

Writes ``--out``.tsv / .md headed by this command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[1] / "workflow"))

ROUTES = ("python_pairs", "edge_file")


def build_once(route: str, edges: int, cells: int, seed: int) -> dict:
    """One build of ``route`` on the seeded edges: build wall / CPU seconds, memory after it (MiB), edge count."""
    import igraph as ig
    import numpy as np

    from rss import current_mib
    from scfactor.core.graphs import igraph_graph

    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, cells, edges).astype(np.int32), rng.integers(0, cells, edges).astype(np.int32)
    t0, c0 = time.perf_counter(), time.process_time()
    if route == "python_pairs":
        g = ig.Graph(n=cells, edges=np.column_stack([rows, cols]), directed=False)
    else:
        g = igraph_graph(cells, rows, cols)
    out = {"build_wall_s": time.perf_counter() - t0, "build_cpu_s": time.process_time() - c0,
           "after_mib": current_mib(), "graph_edges": g.ecount(), "graph_vertices": g.vcount()}
    if (g.ecount(), g.vcount()) != (edges, cells):
        raise SystemExit(f"error: {route} built {g.ecount()} edges / {g.vcount()} vertices")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--edges", type=int, default=34_000_000)
    p.add_argument("--cells", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/integrate_igraph_build")
    p.add_argument("--child", choices=ROUTES, help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        Path(a.json).write_text(json.dumps(build_once(a.child, a.edges, a.cells, a.seed)))
        return 0

    import tempfile

    import pandas as pd

    from child import run_child, thread_env
    from results_file import command_line, run_conditions, write_summary_and_runs

    command, load_before, runs = command_line(__file__), os.getloadavg()[0], []
    with tempfile.TemporaryDirectory() as tmp:
        res = Path(tmp) / "out.json"
        for rnd in range(1, a.rounds + 1):
            for route in ROUTES:
                proc = run_child([sys.executable, __file__, "--child", route, "--json", res, "--edges", a.edges,
                                  "--cells", a.cells, "--seed", a.seed], thread_env(1))
                row = {"route": route, "round": rnd, **json.loads(res.read_text()),
                       "process_cpu_s": proc["cpu_s"], "process_wall_s": proc["wall_s"],
                       "peak_mib": proc["peak_rss_mb"]}  # ru_maxrss KiB / 1024
                row["beyond_graph_mib"] = row["peak_mib"] - row["after_mib"]
                runs.append(row)
                print(row, file=sys.stderr, flush=True)
    runs = pd.DataFrame(runs)
    summary = runs.drop(columns="round").groupby("route", sort=False).mean().reset_index()
    intro = (f"{run_conditions(load_before)} One thread; routes alternating, {a.rounds} round(s), means below. "
             f"{a.edges} random edges among {a.cells} vertices (seed {a.seed}). `peak_mib`: the build process's "
             "peak; `after_mib`: its memory after the build (edge arrays and graph); `beyond_graph_mib`: the "
             "difference, what the route held beyond its result.")
    write_summary_and_runs(a.out, command, summary, runs, intro)
    print(Path(a.out).with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
