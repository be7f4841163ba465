#!/usr/bin/env python
"""NB mixture: where would each stopping rule end an EM run, and how far is that from the end of a long run?

    python benchmarks/nbmix/stop_rule.py --input /tmp/kang14k/pre.h5ad --k 8 --rounds 100 \
        --starts kmeans:0 kmeans++:1 --out benchmarks/results/nbmix_stop_rule_kang14k

The run's cells as the NB-mixture step loads them (`scfactor.nbmix.pipeline.load_cells`: ``--batch``, ``--genes``,
the ``counts`` layer). From each start (``kind:seed``, `scfactor.nbmix.starts.Starts`) one EM runs exactly
``--rounds`` rounds at the schema's other defaults, with no early stop, one thread. Every round records the change
of the mean per-cell log-likelihood, the largest responsibility change over all cells and components (the
quantity `resp_tol` bounded until commit 8efc9b3), the mean over cells of each cell's largest responsibility change, the
fraction of cells whose most likely component changed, and the ARI of the round's partition with the last round's
and with the labels (``--labels-key`` in ``obs``, when present).

For each rule (``tol`` on the log-likelihood change per cell, with a bound on the maximum or the mean
responsibility change, or none) the summary gives the first round that meets it, the log-likelihood per cell
there below the last round's, and its partition's ARI with the last round's and with the labels. Writes
``<out>.tsv`` (the rules), ``<out>_rounds.tsv`` (every round) and ``<out>.md``, the command on their first line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_run_cells_options, em_kwargs, label_codes, run_cells  # noqa: E402
from results_file import checkout_commit, command_line, write_results  # noqa: E402

#: (name, tol, bound on the largest responsibility change, bound on the mean per-cell largest change)
RULES = [("max resp 1e-3 (8efc9b3's default)", 1e-4, 1e-3, None), ("mean resp 1e-3", 1e-4, None, 1e-3),
         ("mean resp 1e-4", 1e-4, None, 1e-4), ("log-likelihood only", 1e-4, None, None)]


def em_rounds(x, k: int, kind: str, seed: int, rounds: int, truth) -> pd.DataFrame:
    """One EM from the start ``kind`` drawn with ``seed``, ``rounds`` rounds with no early stop: one row per round."""
    from sklearn.metrics import adjusted_rand_score
    from scfactor.nbmix import model
    from scfactor.nbmix.starts import Starts
    kw = em_kwargs(k)
    data = model.CountData(x, device="cpu", dtype=kw["dtype"])
    z0 = Starts(data.csr, k, kw["n_pcs"], kw["leiden_resolution"], seed).responsibilities(kind, seed)
    run = model.EMRun(data, z0, model.StopRule(rounds, -1.0, -1.0), kw["newton_steps"], kw["first_newton_steps"],
                      0, f"{kind}:{seed}")
    rows, labels, prev, t0 = [], [], run.w.argmax(1).numpy(), time.process_time()
    for it in range(rounds):
        run.advance(it + 1)  # its round record holds the changes the stopping rule reads
        lab = run.w.argmax(1).numpy()
        rec = run.rounds[-1]
        rows.append({"start": f"{kind}:{seed}", "round": it + 1, "loglik_per_cell": run.loglik / data.n,
                     **{key: rec[key] for key in ("loglik_change_per_cell", "max_resp_change", "mean_resp_change")},
                     "labels_changed": float((lab != prev).mean()), "cpu_s": time.process_time() - t0})
        labels.append(lab)
        prev = lab
    table = pd.DataFrame(rows)
    table["ari_vs_last"] = [adjusted_rand_score(labels[-1], lab) for lab in labels]
    if truth is not None:
        table["ari_vs_labels"] = [adjusted_rand_score(truth[truth >= 0], lab[truth >= 0]) for lab in labels]
    return table


def stop_round(table: pd.DataFrame, tol: float, max_bound, mean_bound):
    """First round (from the second) whose changes meet the rule, or None."""
    ok = table["loglik_change_per_cell"].abs() <= tol
    if max_bound is not None:
        ok &= table["max_resp_change"] <= max_bound
    if mean_bound is not None:
        ok &= table["mean_resp_change"] <= mean_bound
    hits = table.index[ok & (table["round"] > 1)]
    return None if len(hits) == 0 else hits[0]


def rule_rows(table: pd.DataFrame):
    """One row per rule in `RULES`: where it stops the run ``table`` and how far that is from the last round."""
    last = table.iloc[-1]
    for name, tol, max_bound, mean_bound in RULES:
        at = stop_round(table, tol, max_bound, mean_bound)
        row = table.loc[at] if at is not None else last
        yield {"start": last["start"], "rule": name, "stops_at_round": int(row["round"]) if at is not None else None,
               "cpu_s": row["cpu_s"], "loglik_per_cell_below_last": last["loglik_per_cell"] - row["loglik_per_cell"],
               "ari_vs_last": row["ari_vs_last"],
               **({"ari_vs_labels": row["ari_vs_labels"], "last_ari_vs_labels": last["ari_vs_labels"]}
                  if "ari_vs_labels" in table else {})}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_cells_options(ap)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--starts", nargs="+", default=["kmeans:0", "kmeans++:1"], help="kind:seed of each EM's start")
    ap.add_argument("--labels-key", default="label", help="obs column of the labels ARI is scored against")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "nbmix_stop_rule"))
    a = ap.parse_args(argv)
    code = checkout_commit()  # before the runs: the code they ran
    import torch
    torch.set_num_threads(1)
    adata = run_cells(a)
    truth = label_codes(adata.obs, a.labels_key)
    starts = [(kind, int(seed)) for kind, seed in (s.rsplit(":", 1) for s in a.starts)]
    per_round = pd.concat([em_rounds(adata.X, a.k, kind, seed, a.rounds, truth) for kind, seed in starts],
                          ignore_index=True)
    rules = pd.DataFrame([row for _, t in per_round.groupby("start", sort=False)
                          for row in rule_rows(t.reset_index(drop=True))])
    command = command_line(__file__)
    intro = (f"# NB mixture: where each stopping rule ends EM ({adata.n_obs} cells x {adata.n_vars} genes of "
             f"{Path(a.input).name}{f', batch {a.batch}' if a.batch else ''}, k {a.k}, {a.rounds} rounds with no "
             f"early stop, one thread; code {code})\n\n"
             "Every rule also needs the log-likelihood change per cell at most 1e-4 (`tol`). `max resp`: the largest "
             "responsibility change over all cells; `mean resp`: the mean over cells of each cell's largest change. "
             "`stops_at_round` empty: the rule never held; its row then shows the last round. "
             f"Every round: `{Path(a.out).name}_rounds.tsv`.")
    write_results(a.out, command, rules, intro, floatfmt=".4g")
    with open(f"{a.out}_rounds.tsv", "w") as fh:
        fh.write(f"# {command}\n")
        per_round.to_csv(fh, sep="\t", index=False, float_format="%.6g")
    print(rules.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
