#!/usr/bin/env python
"""Time the NB mixture (scfactor batch EM) against the reference batch EM (aksarkar/mpebpm@gam-mix), side by side.

Data: ``scfactor.nbmix.simulate(n, p, k, s=1e4, seed=data seed)`` (default 1000 x 2000, k=4, data seed 1).
Parts (--parts):

* ``defaults``: each side at its own defaults (ours: the schema's, k-means first; the reference: the notebook's
  settings, its own random start after ``torch.manual_seed(fit seed)``);
* ``same-start``: both from the same random responsibilities (``scfactor.nbmix.starts.random_responsibilities``
  with the fit seed) for the same number of EM rounds (--iters; ours with tol 0 and one restart, so that it
  never stops early; the reference's max_em_iters).

Each run is its own process (this script with ``--_ours``, or reference_runner.py), with one thread; the pairs
(ours, reference) alternate --pairs times. Recorded per run: CPU and wall seconds of the fit call and of the whole
process (CPU from the children's resource usage), accuracy, ARI and the mean per-cell log-likelihood of the
returned parameters (the reference's evaluated with our exact likelihood, mixing weights = mean responsibility).
Writes <out>.tsv and <out>.md, each starting with the command that wrote it; all text in them comes from the
arguments and the measurements.

    python benchmarks/nbmix/bench_nbmix.py --ref-python <python> --ref-git-dir <mpebpm .git>
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "workflow"))
sys.path.insert(0, str(HERE))

import common  # noqa: E402

PARTS = ("defaults", "same-start")


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def ours_process(npz: str, out: str, k: int, seed: int, iters: int | None) -> None:
    """The ``--_ours`` mode: fit the data of ``npz`` (from its start ``z`` for ``iters`` rounds when given) and
    save the parameters, responsibilities and the fit call's times to ``out``."""
    import numpy as np
    import torch
    torch.set_num_threads(1)
    with np.load(npz) as f:
        x = f["x"]
        z = f["z"] if "z" in f else None
    over = {} if z is None else dict(nrep=1, max_iters=iters, tol=0.0)
    fit, wall, cpu = common.run_ours(x, k, seed, init_resp=z, **over)
    np.savez(out, resp=fit.resp, log_mean=fit.log_mean, log_inv_disp=fit.log_inv_disp, seconds=wall,
             cpu_seconds=cpu)


def run_ours_process(x, k: int, seed: int, tag: str, z=None, iters: int | None = None):
    """This script's ``--_ours`` mode in a subprocess: ``(npz contents, process wall s, process CPU s)``."""
    import numpy as np
    data, out = common.OUT / f"{tag}.x.npz", common.OUT / f"{tag}.ours.npz"
    np.savez(data, x=x, **({} if z is None else {"z": z}))
    c0, t0 = children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, __file__, "--_ours", str(data), str(out), str(k), str(seed), str(iters or 0)],
                   check=True, env=common.thread_env(1))
    wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    with np.load(out) as f:
        return {key: f[key] for key in f.files}, wall, cpu


def loglik_per_cell(x, log_mean, log_inv_disp, resp) -> float:
    """Mean per-cell log-likelihood of parameters under our exact likelihood (mixing weights = mean resp)."""
    from scfactor.nbmix.model import predict_proba
    return predict_proba(x, log_mean, log_inv_disp, resp.mean(0))[1] / x.shape[0]


def one_pair(args, src, x, truth, part: str, pair: int) -> list[dict]:
    """One (ours, reference) pair of ``part``; ours first on even pairs, the reference first on odd ones."""
    import numpy as np

    from scfactor.nbmix.starts import random_responsibilities
    seed = args.seed + pair
    z = random_responsibilities(len(x), args.k, seed) if part == "same-start" else None
    iters = args.iters if part == "same-start" else None
    rows = []

    def ours():
        res, wall, cpu = run_ours_process(x, args.k, seed, f"{part}_{pair}", z=z, iters=iters)
        rows.append(("scfactor EM", res, wall, cpu))

    def ref():
        c0 = children_cpu()
        resp, fwall, fcpu, wall = common.run_reference(args.ref_python, src, x, args.k, seed, f"{part}_{pair}", z=z,
                                                        max_em_iters=args.iters if part == "same-start" else 10)
        out = np.load(common.OUT / f"{part}_{pair}.ref.npz")
        rows.append(("reference EM (mpebpm gam-mix)", {"resp": resp, "seconds": fwall, "cpu_seconds": fcpu,
                                                       "log_mean": out["log_mean"],
                                                       "log_inv_disp": out["log_inv_disp"]},
                     wall, children_cpu() - c0))

    for run in ((ours, ref) if pair % 2 == 0 else (ref, ours)):
        run()
    out = []
    for method, res, wall, cpu in rows:
        resp = res["resp"]
        out.append({"part": part, "pair": pair, "fit_seed": seed, "method": method, "n": x.shape[0], "p": x.shape[1],
                    "k": args.k, "data_seed": args.data_seed, "iters": iters or "",
                    **common.scores(truth, resp.argmax(1), resp),
                    "loglik_per_cell": loglik_per_cell(x, res["log_mean"], res["log_inv_disp"], resp),
                    "fit_cpu_s": float(res["cpu_seconds"]), "fit_wall_s": float(res["seconds"]),
                    "process_cpu_s": cpu, "process_wall_s": wall})
        print({key: out[-1][key] for key in ("part", "method", "accuracy_majority", "fit_cpu_s")}, file=sys.stderr,
              flush=True)
    return out


def write_md(rows, args, commit, path):
    """Per part: the median of each measurement per method, and the CPU ratios reference / ours."""
    import pandas as pd
    df = pd.DataFrame(rows)
    lines = common.header(__file__, "NB mixture: scfactor EM vs the reference EM")
    lines += [f"Data: `simulate(n={args.n}, p={args.p}, k={args.k}, s=1e4, seed={args.data_seed})`. Reference: "
              f"aksarkar/mpebpm gam-mix commit {commit} (`ebpm_gam_mix_em`, lr 1e-2, 50 epochs per EM round, "
              "`.cuda()` -> `.cpu()`), run by reference_runner.py with the python given. One thread each side; every "
              f"run its own process; {args.pairs} pair(s) per part, alternating which side runs first. Medians over "
              "the pairs.", ""]
    for part, sub in df.groupby("part", sort=False):
        what = ("each side at its own defaults" if part == "defaults" else
                f"same random start, {args.iters} EM rounds each")
        lines += [f"## {part}: {what}", "", "| method | accuracy (majority) | ARI | log-lik per cell | fit CPU s | "
                  "fit wall s | process CPU s | process wall s |", "|---|---|---|---|---|---|---|---|"]
        med = sub.groupby("method", sort=False).median(numeric_only=True)
        for method, r in med.iterrows():
            lines.append(f"| {method} | {r.accuracy_majority:.4f} | {r.ari:.4f} | {r.loglik_per_cell:.4f} | "
                         f"{r.fit_cpu_s:.2f} | {r.fit_wall_s:.2f} | {r.process_cpu_s:.2f} | {r.process_wall_s:.2f} |")
        if len(med) == 2:
            ref, ours = med.iloc[[m.startswith("reference") for m in med.index]].iloc[0], med.loc["scfactor EM"]
            lines += ["", f"Reference / scfactor: fit {ref.fit_cpu_s / ours.fit_cpu_s:.1f}x CPU "
                          f"({ref.fit_wall_s / ours.fit_wall_s:.1f}x wall), whole process "
                          f"{ref.process_cpu_s / ours.process_cpu_s:.1f}x CPU "
                          f"({ref.process_wall_s / ours.process_wall_s:.1f}x wall)."]
        lines.append("")
    Path(path).write_text("\n".join(lines))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_ours"]:
        npz, out, k, seed, iters = argv[1:6]
        return ours_process(npz, out, int(k), int(seed), int(iters) or None)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref-python", required=True, help="python that runs reference_runner.py (torch, numpy, scipy)")
    p.add_argument("--ref-git-dir", default=None, help="git dir of aksarkar/mpebpm (default: clone from GitHub)")
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    p.add_argument("--n", type=int, default=1000, help="cells")
    p.add_argument("--p", type=int, default=2000, help="genes")
    p.add_argument("--k", type=int, default=4, help="components")
    p.add_argument("--data-seed", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="fit seed of the first pair (pair i: seed + i)")
    p.add_argument("--pairs", type=int, default=3, help="(ours, reference) pairs per part")
    p.add_argument("--iters", type=int, default=10, help="EM rounds of the same-start part (the reference's default)")
    p.add_argument("--out", default=str(common.REPO / "benchmarks/results/nbmix"),
                   help="output prefix (.tsv and .md are added)")
    args = p.parse_args(argv)
    import torch

    from scfactor.nbmix.simulate import simulate
    torch.set_num_threads(1)
    common.OUT.mkdir(parents=True, exist_ok=True)
    src, commit = common.extract_reference(args.ref_git_dir)
    x, z, _, _ = simulate(args.n, args.p, args.k, common.S, seed=args.data_seed)
    truth = z.argmax(1)
    rows = [row for part in args.parts for pair in range(args.pairs)
            for row in one_pair(args, src, x, truth, part, pair)]
    common.write_tsv(rows, args.out + ".tsv", __file__)
    write_md(rows, args, commit, args.out + ".md")
    print(Path(args.out + ".md").read_text())


if __name__ == "__main__":
    main()
