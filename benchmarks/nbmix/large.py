#!/usr/bin/env python
"""NB mixture on many cells (issue 19): restarts on a subsample + one EM on all cells, against the full EM.

    python benchmarks/nbmix/large.py                                   # 10k and 20k cells x 2000 genes
    python benchmarks/nbmix/large.py --sizes 3000 --restart-cells 1000 --genes 500 --out /tmp/nbl  # a quick check

For each size N the scale benchmark's simulator (``workflow/scripts/simulate_batches.py``: two batches,
``--groups`` shared groups and one batch-specific group per batch) writes N cells x ``--genes`` genes; the
NB mixture (``k`` = the planted labels unless ``--k``) is then fitted twice at the schema's defaults (nrep 3:
kmeans, kmeans++, subsample):

* ``full``: every restart an EM on all cells (``restart_subsample_above`` = N);
* ``subsample``: the restarts on ``--restart-cells`` random cells, then one EM on all cells from the best
  (``restart_subsample_above`` = 0), for each value of ``--restart-cells`` below N (the others would be the
  full EM again); at most ``full_max_iters`` (schema default) rounds on all cells.

Reported per fit: ARI against the planted labels and against the full EM's partition, the mean per-cell
log-likelihood (and its difference to the full EM's), the number of E steps over all cells (full-data passes;
each EM round is one E step and one M step over all cells), EM rounds of the kept fit and of all restarts,
restarts at the best. No timings (the machine is shared). Writes ``<out>.tsv`` and ``<out>.md``, the command on
their first line.

The full EM is the slow part: every fit's result (labels and the reported numbers) is saved under ``--work``,
and ``--reuse`` reads it from there instead of fitting again (the .md then says so); ``--fits`` runs only some
(e.g. the full EM and the subsample fits in two processes, then one ``--reuse`` run writes the table).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "workflow"))
sys.path.insert(0, str(HERE))
from common import REPO, command_line, em_kwargs, thread_env  # noqa: E402

COLUMNS = ["cells", "genes", "k", "fit", "restart_cells", "ari_truth", "ari_vs_full", "loglik_per_cell",
           "loglik_per_cell_minus_full", "full_e_steps", "kept_rounds", "restart_rounds", "kept_start", "n_at_best",
           "converged"]
#: what is saved of a fit (`save_fit`): these attributes and its labels
SAVED = ("loglik", "full_e_steps", "n_iter", "restart_rounds", "init", "n_at_best", "converged", "restart_cells")


def simulate(n: int, genes: int, groups: int, path: Path) -> None:
    """The scale benchmark's simulation of ``n`` cells (two batches, seed 0) written to ``path``."""
    argv = [sys.executable, str(REPO / "workflow" / "scripts" / "simulate_batches.py"), "--n-cells", str(n // 2),
            str(n - n // 2), "--n-genes", str(genes), "--k-shared", str(groups), "--k-specific", "1",
            "--chunk", "10000", "--seed", "0", "--output", str(path)]
    subprocess.run(argv, check=True, env=thread_env(1), capture_output=True)


def load(path: Path):
    """``(counts CSR, labels)`` of the simulated cells with a nonzero total count."""
    import anndata as ad
    import scipy.sparse as sp
    a = ad.read_h5ad(path)
    x = sp.csr_matrix(a.layers["counts"] if "counts" in a.layers else a.X)
    keep = np.asarray(x.sum(1)).ravel() > 0
    return x[keep], a.obs["label"].astype(str).to_numpy()[keep]


class Saved:
    """A fit read back from `save_fit` (the `NBMixFit` attributes that `row` reads)."""

    def __init__(self, path: Path):
        with np.load(path, allow_pickle=False) as f:
            self.labels = f["labels"]
            for key in SAVED:
                setattr(self, key, f[key].item())


def save_fit(fit, path: Path) -> None:
    """Save what `row` reads of ``fit`` (its labels and the `SAVED` numbers) to ``path`` (.npz)."""
    np.savez(path, labels=fit.labels, **{key: np.asarray(getattr(fit, key)) for key in SAVED})


def row(n, p, k, name, fit, truth, full=None) -> dict:
    """One results row of ``fit`` (compared with ``full`` when given)."""
    from scfactor.core.metrics import ari
    nan = float("nan")
    ll = fit.loglik / n
    return {"cells": n, "genes": p, "k": k, "fit": name, "restart_cells": fit.restart_cells,
            "ari_truth": ari(truth, fit.labels), "ari_vs_full": nan if full is None else ari(full.labels, fit.labels),
            "loglik_per_cell": ll, "loglik_per_cell_minus_full": nan if full is None else ll - full.loglik / n,
            "full_e_steps": fit.full_e_steps, "kept_rounds": fit.n_iter, "restart_rounds": fit.restart_rounds,
            "kept_start": fit.init, "n_at_best": fit.n_at_best, "converged": fit.converged}


def write(rows: list[dict], out: Path, command: str, reused: bool = False) -> None:
    """``<out>.tsv`` and ``<out>.md``, the command on their first line."""
    table = pd.DataFrame(rows, columns=COLUMNS)
    d = em_kwargs(1)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".tsv"), "w") as f:
        f.write(f"# {command}\n")
        table.to_csv(f, sep="\t", index=False)
    md = [f"Command: `{command}`", "", "# NB mixture on many cells: subsample restarts + one full EM vs the full EM",
          "", f"Schema defaults (nrep {d['nrep']}: {d['init']}, {', '.join(d['restarts'])}; max_iters {d['max_iters']}; "
          f"full_max_iters {d['full_max_iters']}); `full`: every restart an EM on all cells; `subsample`: the restarts on `restart_cells` random cells, then one E step and "
          "at most full_max_iters EM rounds on all cells from the best. `full_e_steps`: E steps over all cells (full-data passes; one per EM round on all cells, plus one "
          "per subsample start). `restart_rounds`: EM rounds of all restarts together (on the restarts' cells). ARI "
          "against the planted labels (`ari_truth`) and the full EM's partition.", "",
          *(["Fits saved under --work by earlier runs of this script were read back (--reuse).", ""]
            if reused else []),
          table.to_markdown(index=False, floatfmt=".6g"), ""]
    out.with_suffix(".md").write_text("\n".join(md))


def add_run_options(ap, name: str) -> None:
    """``--seed``, ``--work`` (default /tmp/scfactor-bench-<name>) and ``--out`` (benchmarks/results/<name>)."""
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=f"/tmp/scfactor-bench-{name.replace('_', '-')}")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / name))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000], help="cells")
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--groups", type=int, default=10, help="planted shared groups")
    ap.add_argument("--k", type=int, default=None, help="mixture components (default: the planted labels)")
    ap.add_argument("--restart-cells", type=int, nargs="*", default=[2500, 5000, 10000],
                    help="subsample sizes of the restarts (none: the full EM only)")
    ap.add_argument("--fits", nargs="*", choices=["full", "subsample"], default=["full", "subsample"],
                    help="fits to run (the others only read back with --reuse)")
    ap.add_argument("--reuse", action="store_true", help="read the fits saved under --work when there")
    add_run_options(ap, "nbmix_large")
    a = ap.parse_args(argv)
    import torch
    from scfactor.nbmix import model
    torch.set_num_threads(1)
    command = command_line(__file__)
    work, out, rows = Path(a.work), Path(a.out), []
    work.mkdir(parents=True, exist_ok=True)
    for n in a.sizes:
        path = work / f"sim_{n}.h5ad"
        simulate(n, a.genes, a.groups, path)
        x, truth = load(path)
        k = a.k or len(np.unique(truth))
        m = x.shape[0]
        tag = f"{m}x{a.genes}_k{k}_seed{a.seed}"

        def fitted(name, saved, **over):
            """The fit read back from ``saved`` (--reuse) or fitted now and saved there."""
            if a.reuse and saved.exists():
                return Saved(saved)
            if name not in a.fits:
                return None
            fit = model.fit_em(x, k, seed=a.seed, log_every=0, **em_kwargs(k, **over))
            save_fit(fit, saved)
            return fit

        full = fitted("full", work / f"full_{tag}.npz", restart_subsample_above=m)
        if full is not None:
            rows.append(row(m, a.genes, k, "full", full, truth, full))
        for c in (c for c in a.restart_cells if c < m):  # a subsample of all cells would be the full EM again
            sub = fitted("subsample", work / f"subsample{c}_{tag}.npz", restart_subsample_above=0,
                         restart_subsample_cells=c)
            if sub is not None:
                rows.append(row(m, a.genes, k, "subsample", sub, truth, full))
        write(rows, out, command, a.reuse)  # after every size, so that a long run leaves its finished sizes
        path.unlink()
        print(pd.DataFrame(rows, columns=COLUMNS).tail(1 + len(a.restart_cells)).to_string(index=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
