"""What the NB-mixture benchmarks share: the command line they record, the reference (aksarkar/mpebpm@gam-mix)
extracted and run in a subprocess, our EM at the schema's defaults, and result rows."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from child import thread_env, workflow_of  # noqa: E402

OUT = REPO / "benchmarks" / "out" / "nbmix"
REF_FILES = ("__init__", "gam_mix", "sgd", "sparse")
#: the notebook's size factor (simulate_nbmix.schema.yaml default)
S = 1e4


def command_line(script: str) -> str:
    """The exact command that is running: ``python <script relative to the repo> <arguments>``."""
    rel = Path(script).resolve().relative_to(REPO)
    return "python " + shlex.join([str(rel), *sys.argv[1:]])


def header(script: str, title: str) -> list[str]:
    """First lines of a results .md: the command (first line), then the title."""
    return [f"Command: `{command_line(script)}`", "", f"# {title}", ""]


def git(git_dir: str, *args) -> str:
    """Output of ``git --git-dir <git_dir> <args>``."""
    return subprocess.run(["git", "--git-dir", git_dir, *args], check=True, capture_output=True,
                          text=True).stdout


def extract_reference(git_dir: str | None, ref: str = "gam-mix") -> tuple[Path, str]:
    """Copy mpebpm@gam-mix's sources into benchmarks/out (clone from GitHub when no git dir is given);
    returns (folder, commit)."""
    dest = OUT / "mpebpm-gam-mix"
    (dest / "mpebpm").mkdir(parents=True, exist_ok=True)
    if git_dir is None:
        git_dir = str(OUT / "mpebpm.git")
        if not Path(git_dir).exists():
            subprocess.run(["git", "clone", "--bare", "https://github.com/aksarkar/mpebpm", git_dir], check=True)
    for name in REF_FILES:
        (dest / "mpebpm" / f"{name}.py").write_text(git(git_dir, "show", f"{ref}:src/mpebpm/{name}.py"))
    return dest, git(git_dir, "rev-parse", ref).strip()


def run_reference(ref_python: str, src: Path, x, k: int, seed: int, tag: str, z=None, max_em_iters: int = 10,
                  threads: int = 1):
    """The reference's ``ebpm_gam_mix_em`` (the notebook's settings; ``z`` = starting responsibilities,
    default its own random start after ``torch.manual_seed(seed)``) in a subprocess:
    ``(resp, wall s, CPU s of the fit call, whole-process wall s)``."""
    import numpy as np
    data, out = OUT / f"{tag}.x.npz", OUT / f"{tag}.ref.npz"
    np.savez(data, x=x, **({} if z is None else {"z": z}))
    t0 = time.perf_counter()
    proc = subprocess.run([ref_python, str(Path(__file__).with_name("reference_runner.py")), "--src", str(src),
                           "--data", str(data), "--k", str(k), "--seed", str(seed), "--output", str(out),
                           "--max-em-iters", str(max_em_iters), "--threads", str(threads)],
                          capture_output=True, text=True, env=thread_env(1))
    whole = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"reference failed on {tag}:\n{proc.stderr[-3000:]}")
    with np.load(out) as f:
        return f["resp"], float(f["seconds"]), float(f["cpu_seconds"]), whole


def em_kwargs(k: int, **over) -> dict:
    """`fit_em` settings: the schema defaults (`FIT.defaults`) with ``over``."""
    from scfactor.nbmix.cli import FIT
    from scfactor.nbmix.pipeline import em_settings
    return em_settings(FIT.defaults(k=k, **over))


def run_ours(x, k: int, seed: int, init_resp=None, **over):
    """Our batch EM at the schema's defaults but ``over`` (from ``init_resp`` when given): ``(fit, wall s, CPU s)``
    of the fit call."""
    from scfactor.nbmix import model
    kw = em_kwargs(k, **over)
    if init_resp is not None:
        kw["init_resp"] = init_resp
    t0, c0 = time.perf_counter(), time.process_time()
    fit = model.fit_em(x, k, seed=seed, log_every=0, **kw)
    return fit, time.perf_counter() - t0, time.process_time() - c0


def scores(truth, pred, resp=None) -> dict:
    """Accuracy (majority and one-to-one), NMI and ARI of ``pred`` against ``truth``."""
    from scfactor.core import metrics
    sc = metrics.clustering_scores(truth, pred, resp)
    return {key: sc[key] for key in ("accuracy_majority", "accuracy_hungarian", "nmi", "ari")}


def write_tsv(rows: list[dict], path: str, script: str) -> None:
    """Rows as a TSV whose first line is ``# <command>``."""
    import pandas as pd
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(f"# {command_line(script)}\n")
        pd.DataFrame(rows).to_csv(f, sep="\t", index=False)


def add_run_cells_options(ap, k: int = 8) -> None:
    """The options that name a run's cells and components: ``--input``, ``--batch``, ``--genes``, ``--k``."""
    ap.add_argument("--input", required=True, help="a preprocessed .h5ad (the preprocess step's output)")
    ap.add_argument("--batch", default=None, help="only the cells of this batch (as the run's `batch`)")
    ap.add_argument("--genes", default="hvg", help="the run's `genes` (hvg or all)")
    ap.add_argument("--k", type=int, default=k)


def run_cells(a):
    """The cells of ``a.input`` as the NB-mixture step loads them (`scfactor.nbmix.pipeline.load_cells` with
    ``a.batch``, ``a.genes`` and the ``counts`` layer), from the ``scfactor`` package first on ``sys.path``."""
    from types import SimpleNamespace
    from scfactor.nbmix.pipeline import load_cells
    return load_cells(a.input, SimpleNamespace(batch=a.batch, genes=a.genes, layer="counts", drop_empty_cells=True))


def label_codes(obs, key: str):
    """Integer codes of ``obs[key]`` (-1 where missing), or None without the column or any label."""
    import numpy as np
    import pandas as pd
    if key not in obs:
        return None
    codes = np.asarray(pd.Categorical(obs[key].astype("object")).codes)
    return codes if (codes >= 0).any() else None


def add_code_side_options(ap, out: str) -> None:
    """The options of a working-tree-vs-commit benchmark (`alternate_code_sides`): ``--repeats``, ``--code-commit``,
    ``--out`` (default ``benchmarks/results/<out>``) and the children's hidden ``--child``, ``--code``, ``--result``."""
    import argparse
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--code-commit", required=True, help="the other side: the package of this commit")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / out))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--code", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)


def alternate_code_sides(script: str, child_args: list[str], code_commit: str, repeats: int, stub: str):
    """Run ``script --child`` with the package of ``code_commit`` and of the working tree, alternating (the order
    reversed every other repeat), one thread each, ``repeats`` times. Each child gets ``--code <workflow/>
    --result <.npy>`` after ``child_args`` and prints one JSON line. Returns ``(runs, before, after)``: one dict
    per run (``side``, ``repeat`` and the child's JSON) and the two sides' last saved arrays."""
    import json

    import numpy as np
    OUT.mkdir(parents=True, exist_ok=True)
    sides = {f"commit {code_commit}": ("before", workflow_of(code_commit)),
             "working tree": ("after", workflow_of(None))}
    runs = []
    for rep in range(repeats):
        # ABBA order: the side that runs first in a process pair pays for cold file and page caches (the same code
        # on both sides measured 1.3-1.4x "faster" second), so the sides take turns at going first
        for side, (tag, root) in list(sides.items())[::1 if rep % 2 == 0 else -1]:
            out = subprocess.run([sys.executable, script, "--child", *child_args, "--code", str(root), "--result",
                                  str(OUT / f"{stub}_{tag}.npy")], check=True, capture_output=True, text=True,
                                 env=thread_env(1)).stdout
            runs.append({"side": side, "repeat": rep + 1, **json.loads(out.strip().splitlines()[-1])})
            print(runs[-1], flush=True)
    before, after = (np.load(OUT / f"{stub}_{tag}.npy") for tag in ("before", "after"))
    return runs, before, after
