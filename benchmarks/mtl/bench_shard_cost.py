#!/usr/bin/env python
"""Benchmark: where the CPU time of ONE mtl_train_shard process goes, at a config's shard size, per engine.

The shard size comes from the config (default config/config.yaml + config/paper.yaml, merged as `make paper`
merges them): the simulated layout's settings
(``simulate.mtl``, one tissue), ``mtl.num_genes / mtl.n_clusters`` genes per shard, the ``sim`` run's
training settings (``mtl.train`` with the run's overrides). The genes are the first ``num_genes`` simulated
genes, in the planted clusters when there are ``n_clusters`` of them (else dealt round-robin).

Per engine and repeat (engines alternate), two child processes, each with one thread:

* ``whole``: the real script ``workflow/scripts/mtl_train_shard.py``; CPU (user + system, from wait4) and wall.
  Both children get ``--checkpoint-dir`` as the rule passes it and the config's ``--checkpoint-seconds`` (a
  checkpoint after an epoch once that much wall time has passed, counted in ``build``; removed at the end).
* ``phases``: this file in ``--child`` mode runs the same ``mtl_train_shard`` function in-process and reads
  the process CPU clock (getrusage) at the phase boundaries: ``start`` (interpreter start, up to this
  file's first line), ``imports`` (the modules the shard imports, TensorFlow and Keras for engine
  tensorflow), ``data`` (clusters table, layout, shard), ``setup`` (TensorFlow thread / device set-up),
  ``build`` (weights, optimizer, graph objects, batch drawing, checkpoints, loop overhead), ``tracing``
  (first epoch minus the median later epoch), ``epochs`` (all epochs minus ``tracing``), ``test``
  (test predictions and R2), ``write`` (weights .npz and table), ``other`` (the rest: argument parsing,
  logging). Fixed cost = start + imports + setup + build + tracing; its share of the phases' total is
  reported.

Writes <out>.tsv (one row per engine and repeat) and <out>.md (medians); the first line of each is the
command that produced it. One thread on a shared machine gives noisy seconds: run it on an idle machine.

    python benchmarks/mtl/bench_shard_cost.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from child import run_child, thread_env  # noqa: E402
from results_file import machine  # noqa: E402
SCRIPT = REPO / "workflow" / "scripts" / "mtl_train_shard.py"
PHASES = ("start", "imports", "data", "setup", "build", "tracing", "epochs", "test", "write", "other")
FIXED = ("start", "imports", "setup", "build", "tracing")


def cpu() -> float:
    """User + system CPU seconds of this process so far (interpreter start included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def command_line() -> str:
    """The command that is running, as typed from the repository root."""
    return "python " + shlex.join([str(Path(__file__).resolve().relative_to(REPO)), *sys.argv[1:]])


# --------------------------------------------------------------------------- child: one shard, phase by phase
def child(argv, engine: str, cpu0: float) -> None:
    """Run ``mtl_train_shard(argv)`` in this process; print the phases' CPU seconds as JSON."""
    sys.path.insert(0, str(REPO / "workflow"))
    marks = {"start": cpu0}
    import h5py  # noqa: F401
    import scfactor.core.checkpoint  # noqa: F401
    import scfactor.mtl.cli as cli_mod
    import scfactor.mtl.data  # noqa: F401
    import scfactor.mtl.layout  # noqa: F401
    import scfactor.mtl.shard as shard_mod
    import scfactor.mtl.training as training
    if engine == "numpy":
        import scfactor.mtl.model_np  # noqa: F401
    else:
        import tensorflow as tf
        import scfactor.core.device  # noqa: F401
        import scfactor.mtl.model  # noqa: F401
        tf.keras.utils  # noqa: B018  (configure_tf uses it: Keras is imported here, not in "setup")
    marks["imports_end"] = cpu()
    events = {}

    def timed(module, name, record=None):
        fn = getattr(module, name)

        def wrapper(*a, **k):
            events[f"{name}_enter"] = cpu()
            out = fn(*a, **k)
            events[f"{name}_exit"] = cpu()
            if record:
                record(out)
            return out
        setattr(module, name, wrapper)

    timed(shard_mod, "train_shard")
    timed(shard_mod, "_train_test")
    timed(training, "fit", record=lambda out: events.__setitem__("history", out[1]))
    rc = cli_mod.mtl_train_shard(argv)
    end = cpu()
    if rc:
        raise SystemExit(rc)
    ep = [h["cpu_seconds"] for h in events["history"]]
    later = sorted(ep[1:])
    tracing = max(0.0, ep[0] - later[len(later) // 2]) if later else 0.0
    ph = {"start": cpu0, "imports": marks["imports_end"] - cpu0,
          "data": events["_train_test_enter"] - events["train_shard_enter"],
          "setup": events["fit_enter"] - events["_train_test_enter"],
          "build": events["fit_exit"] - events["fit_enter"] - sum(ep),
          "tracing": tracing, "epochs": sum(ep) - tracing,
          "test": events["_train_test_exit"] - events["fit_exit"],
          "write": end - events["train_shard_exit"]}
    ph["other"] = end - sum(ph.values())
    ph["total"] = end
    print(json.dumps(ph))


# --------------------------------------------------------------------------- parent
def merged_config(paths) -> dict:
    """The config files merged as Snakemake merges several ``--configfile``s (later keys win, recursively),
    validated and with the schema defaults filled in."""
    import yaml
    sys.path.insert(0, str(REPO / "workflow"))
    from scfactor.core.config import validate_config

    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(a.get(k) or {}, v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a
    cfg = {}
    for path in paths:
        merge(cfg, yaml.safe_load((REPO / path).read_text()) or {})
    return validate_config(cfg)


def shard_settings(cfg: dict, run: str) -> dict:
    """Simulator settings (one tissue), genes and clusters per tissue, the run's shard options, from a config."""
    from scfactor.mtl.smk import resolved, train_shard_command
    mtl = resolved(cfg, run)
    return dict(sim=dict(cfg["simulate"]["mtl"], n_tissues=1), num_genes=int(mtl["num_genes"]),
                n_clusters=int(mtl["n_clusters"]), train=train_shard_command(cfg, run, "tracenorm"))


def make_layout(tmp: Path, settings: dict):
    """Simulated layout (one tissue) and a clusters table of ``num_genes`` genes in ``n_clusters`` clusters."""
    sys.path.insert(0, str(REPO / "workflow"))
    import pandas as pd
    from scfactor.mtl.cli import SIMULATE
    from scfactor.mtl.simulate import simulate_layout
    root = simulate_layout(tmp / "layout", SIMULATE.defaults(**settings["sim"]))
    truth = pd.read_csv(root / "truth" / "genes.tsv", sep="\t")
    truth = truth[truth["tissue"] == "tissue1"].head(settings["num_genes"])
    k = settings["n_clusters"]
    labels = truth["cluster"].to_numpy() if truth["cluster"].nunique() == k else [i % k for i in range(len(truth))]
    clusters = tmp / "clusters.tsv"
    pd.DataFrame({"gene_ensembl": truth["gene_ensembl"], "cluster": labels}).to_csv(clusters, sep="\t", index=False)
    return root, clusters


def run_whole(cmd, env) -> dict:
    """CPU (wait4 rusage) and wall seconds of one child process."""
    usage = run_child(cmd, env)
    return {"whole_cpu": usage["cpu_s"], "whole_wall": usage["wall_s"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["config/config.yaml", "config/paper.yaml"],
                   help="config files, merged in this order (as `make paper` passes them)")
    p.add_argument("--run", default="sim", help="the mtl.datasets run whose training settings are used")
    p.add_argument("--engines", nargs="+", default=["numpy", "tensorflow"], choices=["numpy", "tensorflow"])
    p.add_argument("--repeats", type=int, default=3, help="runs per engine (engines alternate)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "mtl_shard_cost"))
    args = p.parse_args(argv)
    import pandas as pd
    settings = shard_settings(merged_config(args.configs), args.run)
    env = thread_env(1, TF_CPP_MIN_LOG_LEVEL="2")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root, clusters = make_layout(tmp, settings)
        for rep in range(args.repeats):
            for engine in args.engines:
                shard_args = ["--layout", str(root), "--tissue", "tissue1", "--clusters", str(clusters),
                              "--cluster", "0", "--rep", "0", *shlex.split(settings["train"]),
                              "--engine", engine, "--threads", "1", "--checkpoint-dir", str(tmp / f"ckpt_{engine}"),
                              "--output", str(tmp / f"{engine}.tsv"), "--weights", str(tmp / f"{engine}.npz")]
                row = dict(engine=engine, repeat=rep, load_avg=os.getloadavg()[0])
                row.update(run_whole([sys.executable, str(SCRIPT), *shard_args], env))
                out = subprocess.run([sys.executable, __file__, "--child", engine, *shard_args], env=env,
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    raise SystemExit(out.stderr[-3000:])
                row.update(json.loads(out.stdout.strip().splitlines()[-1]))
                row["fixed"] = sum(row[k] for k in FIXED)
                row["fixed_share"] = row["fixed"] / row["total"]
                rows.append(row)
                print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        mean_r2 = {e: float(pd.read_csv(tmp / f"{e}.tsv", sep="\t")["r2"].mean()) for e in args.engines}
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = command_line()
    with open(f"{out}.tsv", "w") as fh:
        fh.write(f"# {cmd}\n")
        df.round(4).to_csv(fh, sep="\t", index=False)
    cols = ["whole_cpu", "whole_wall", "total", *PHASES, "fixed", "fixed_share"]
    med = df.groupby("engine", sort=False)[cols].median().round(3)
    s = settings["sim"]
    genes = settings["num_genes"] // settings["n_clusters"]
    md = [f"<!-- {cmd} -->", "",
          "# CPU seconds of one mtl_train_shard process, by phase (median of "
          f"{args.repeats} run(s) per engine, 1 thread)", "",
          f"Shard: {genes} genes x {s['n_tfs']} TFs x {s['n_cells']} cells (simulated as `{' + '.join(args.configs)}`'s "
          f"simulate.mtl, one tissue); training options `{settings['train']}` (run `{args.run}`).  ",
          f"Machine: {machine()}; 1-minute load average during the runs "
          f"{df['load_avg'].min():.2f}-{df['load_avg'].max():.2f} (seconds are only meaningful when it stays "
          "near 0). Mean test R2 of the last run: " + ", ".join(f"{e} {v:.4f}" for e, v in mean_r2.items()) + ".",
          "", "`whole_cpu` / `whole_wall`: the real script; the other columns: the phases of the instrumented "
          "child (`total` = their sum); `fixed` = " + " + ".join(FIXED) + ", `fixed_share` = fixed / total.", "",
          med.reset_index().to_markdown(index=False), ""]
    Path(f"{out}.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[3:], sys.argv[2], cpu())
    else:
        raise SystemExit(main())
