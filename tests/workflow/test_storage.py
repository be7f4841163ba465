"""The workflow with its inputs and outputs in object storage, as cloud executors run it (issue 17).

A real S3 endpoint on localhost (moto's server, `moto[s3]` + flask from requirements.lock) holds the run:
Snakemake's local executor with ``--default-storage-provider s3`` stages every job's inputs from the bucket
and its outputs to it; nothing is shared through the working directory (each run below starts in a fresh
one, as a new machine would).

* `test_commands_name_only_staged_paths` (dry run of the whole tiny DAG): every path in every job's
  command line is a staged copy of a declared input or output, or a checkpoint URL in the bucket.
  Gene-list files named by options are staged too.
* `test_tiny_dag_on_storage_killed_resumed_matches_local_run`: the jobs of STORAGE_TARGETS (20 of the tiny
  config's 53: a model with a checkpoint and a gene list, the MTL fan-out with its per-shard checkpoints, an
  analysis whose figure step names its input as ``source=path``, the config table) run on the bucket; the
  run is killed right after the densify job's first checkpoint reached the bucket, a fresh working directory
  finishes it (densify resuming from that checkpoint, its gene list staged from the bucket), a third has
  nothing to do, and the bucket then holds every file the local run (`tiny_run`) made for those targets,
  equal to it. That every other job of the DAG names only staged paths is the dry run's check above; running
  all 53 on the bucket as well cost a third of the test suite's CPU time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from cluster.slurm import TRAINING_STATE, different_results, same_h5ad, snakemake_cmd, snakemake_env, wait_for
from conftest import REPO, load_tiny_config, snakemake

pytest.importorskip("moto.server", reason="moto[s3] + flask (requirements.lock) provide the S3 server")
pytest.importorskip("snakemake_storage_plugin_s3", reason="snakemake-storage-plugin-s3 (requirements.lock)")

BUCKET = "scfactor-test"
#: the densify job of the storage run: more epochs (checkpoints in the bucket) and a gene-list file named by an
#: option (staged from the bucket like any input)
DENSIFY_EPOCHS = 16          # enough for the kill to land between the first checkpoint and the end
DENSIFY_OUT = ["results/densify/kang/ctrl.h5ad", "results/densify/kang/ctrl.heldout.tsv",
               "results/figures/densify/kang/ctrl.heldout.png", "results/figures/densify/kang/ctrl.heldout.pdf"]
CONFIG_OUT = "results/report/config.tsv"
#: what depends on the densify settings: compared with a local run of the same config, not with `tiny_run`
OWN_REFERENCE = [*DENSIFY_OUT, CONFIG_OUT]
GENE_LIST = "genes/kang_densify.txt"     # relative to the working directory: a key below the run prefix
CHECKPOINT_KEY = "results/densify/checkpoints/kang/ctrl/neumf.npz"
#: what the execution test runs on the bucket: densify (kill / resume, a staged gene list), the MTL fan-out
#: (shards with checkpoint URLs in the bucket, directory outputs), integrate (its figure job's
#: ``--run source=path`` arguments) and the config table, with everything upstream of them
STORAGE_TARGETS = (DENSIFY_OUT[2], "results/figures/mtl/sim_comparison.png",
                   "results/figures/integrate/sim_batches.umap.png", CONFIG_OUT)


# ------------------------------------------------------------------------------------------------
# the S3 server and the bucket

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on a free localhost port (a thread of this process); stopped after the module."""
    from moto.server import ThreadedMotoServer
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=True)   # its request log is read
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


#: the storage plugin's settings as environment variables (credentials are never put on a command line)
def s3_env(endpoint: str) -> dict:
    return {"SNAKEMAKE_STORAGE_S3_ENDPOINT_URL": endpoint, "SNAKEMAKE_STORAGE_S3_ACCESS_KEY": "testing",
            "SNAKEMAKE_STORAGE_S3_SECRET_KEY": "testing"}


@pytest.fixture
def bucket(s3_server, monkeypatch):
    """A fresh bucket on the server and a boto3 client; the bucket is emptied and deleted afterwards."""
    from scfactor.core import remote
    for k, v in s3_env(s3_server).items():
        monkeypatch.setenv(k, v)
    c = remote.client()
    c.create_bucket(Bucket=BUCKET)
    try:
        yield c
    finally:
        for key in all_keys(c):
            c.delete_object(Bucket=BUCKET, Key=key)
        c.delete_bucket(Bucket=BUCKET)


def all_keys(c, prefix: str = "") -> list[str]:
    pages = c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def upload_resources(c, run: str, placeholders: bool = False) -> None:
    """The bundled data where a storage run looks for it: the config's (absolute) paths below the prefix."""
    for p in sorted((REPO / "resources").rglob("*")):
        if p.is_file():
            key = f"{run}/{str(p).lstrip('/')}"
            if placeholders:
                c.put_object(Bucket=BUCKET, Key=key, Body=b"")
            else:
                c.upload_file(str(p), BUCKET, key)


def storage_args(run: str) -> list[str]:
    return ["--default-storage-provider", "s3", "--default-storage-prefix", f"s3://{BUCKET}/{run}"]


def workdir(path: Path, cfg: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------------
# comparing the bucket with a local run

def download(c, run: str, dest: Path) -> Path:
    """Every object below ``run/`` into ``dest`` (the bucket's layout = a local run's working directory)."""
    for key in all_keys(c, f"{run}/"):
        out = dest / key[len(run) + 1:]
        out.parent.mkdir(parents=True, exist_ok=True)
        c.download_file(BUCKET, key, str(out))
    return dest


def unstaged(text: str, stage: str) -> str:
    """A path a job recorded (e.g. its input in ``uns``) as a local run would have: without the staging folder."""
    for top in ("results", "logs", GENE_LIST.split("/")[0]):       # the relative paths of the configs
        text = text.replace(f"{stage}/{top}/", f"{top}/")
    return text.replace(f"{stage}/", "/")                           # absolute ones (the bundled resources)


def _unstage_value(v, stage):
    import numpy as np
    if isinstance(v, dict):
        return {k: _unstage_value(x, stage) for k, x in v.items()}
    if isinstance(v, str):
        return unstaged(v, stage)
    if isinstance(v, np.ndarray) and v.dtype.kind in "UO":
        return np.array([_unstage_value(x, stage) for x in v.ravel().tolist()], dtype=v.dtype).reshape(v.shape)
    return v


def same_unstaged(remote_file: Path, local_file: Path, stage: str, tmp: Path) -> bool:
    """Equal once the staging folder is taken out of recorded paths (text files, and ``uns`` of .h5ad files)."""
    if remote_file.suffix == ".h5ad":
        import anndata as ad
        a = ad.read_h5ad(remote_file)
        a.uns = _unstage_value(dict(a.uns), stage)
        fixed = tmp / "unstaged.h5ad"
        a.write_h5ad(fixed)
        return same_h5ad(fixed, local_file)
    try:
        return unstaged(remote_file.read_text(), stage) == local_file.read_text()
    except UnicodeDecodeError:
        return False


def differences(remote_root: Path, local_root: Path, stage: str, tmp: Path, skip=(), only=None) -> list[str]:
    """Files under results/ of the bucket that differ from the local run's (the local run may hold more):
    `different_results`' comparison, then paths recorded in the files taken out of the staging folder.
    ``skip``: files not compared; ``only``: compare just these."""
    bad = different_results(remote_root, local_root, a_is_subset=True)
    bad = [rel for rel in bad if rel not in skip and (only is None or rel in only)]
    return [rel for rel in bad if not (
        (local_root / rel).exists() and same_unstaged(remote_root / rel, local_root / rel, stage, tmp))]


# ------------------------------------------------------------------------------------------------
# tests

@contextlib.contextmanager
def request_log():
    """The requests moto's server answers inside the block, as 'METHOD kind' (kind: bucket, object, listing)."""
    seen = []

    class Handler(logging.Handler):
        def emit(self, record):
            m = re.search(r'"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP', re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage()))
            if m:
                path = m.group(2)
                kind = "listing" if "prefix=" in path or "list-type" in path else \
                    "bucket" if "/" not in path.split("?")[0].strip("/") else "object"
                seen.append(f"{m.group(1)} {kind}")

    handler = Handler()
    log = logging.getLogger("werkzeug")
    log.addHandler(handler)
    try:
        yield seen
    finally:
        log.removeHandler(handler)


def shell_commands(text: str) -> list[str]:
    return [ln.split("Shell command: ", 1)[1] for ln in text.splitlines() if "Shell command: " in ln]


def test_commands_name_only_staged_paths(tmp_path, bucket, s3_server):
    """Dry run of the whole tiny DAG on storage: no job is handed a path of the working directory."""
    upload_resources(bucket, "dry", placeholders=True)
    cfg = load_tiny_config()
    # gene lists named by options (a file instead of a gene-set keyword) are inputs like any other
    cfg["densify"]["genes"] = GENE_LIST
    cfg["datasets"]["kang"]["gene_list"] = GENE_LIST
    cfg["nbmix"]["runs"]["pbmc3k"]["genes"] = GENE_LIST
    bucket.put_object(Bucket=BUCKET, Key=f"dry/{GENE_LIST}", Body=b"")
    wd = workdir(tmp_path / "wd", cfg)
    with request_log() as requests:
        proc = snakemake(wd, "-n", "-p", "--forceall", *storage_args("dry"), env=s3_env(s3_server))
    # every existence check came from one listing of the run's prefix (scfactor.core.s3inventory), none
    # file by file (the plugin alone: a HEAD per file, three per missing output)
    assert requests == ["GET listing"], requests
    cmds = shell_commands(proc.stdout + proc.stderr)
    assert len(cmds) > 40, proc.stdout[-3000:]
    stage = f".snakemake/storage/s3/{BUCKET}/dry/"
    checkpoints, gene_lists = [], []
    for cmd in cmds:
        words = shlex.split(cmd)
        for prev, w in zip([""] + words, words):
            if prev == "--config-json":          # report_config: the config as data, not a path to open
                continue
            if w.endswith(GENE_LIST):
                gene_lists.append(w)
                assert w == stage + GENE_LIST, cmd
            if prev == "--checkpoint-dir":
                checkpoints.append(w)
                assert w.startswith(f"s3://{BUCKET}/dry/results/"), cmd
            elif re.search(r"(^|/)(results|logs|resources)/", w):
                path = re.sub(r"^\w+=", "", w)   # integrate_figures: --run <source>=<path>
                assert path.startswith(stage), f"{w!r} is not staged from the bucket in: {cmd[:400]}"
    assert len(checkpoints) >= 2 and all("/checkpoints/" in c for c in checkpoints), checkpoints
    # preprocess kang, densify kang/ctrl, nbmix and nbmix_leiden of pbmc3k
    assert len(gene_lists) == 4, gene_lists


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_tiny_dag_on_storage_killed_resumed_matches_local_run(tmp_path, bucket, s3_server, request):
    """The jobs of STORAGE_TARGETS with their inputs and outputs in the bucket (densify with more epochs and a
    gene-list file that only the bucket holds):

    1. a machine runs them and is killed (Snakemake and its jobs at once) right after the densify
       job's first checkpoint reached the bucket;
    2. another machine (fresh working directory) finishes the run: the gene list is staged from the bucket and
       densify resumes from the checkpoint there;
    3. a third machine has nothing to do;
    4. the bucket holds every file the local run of the tiny config (`tiny_run`) made for these targets,
       equal to it (paths the
       steps record taken out of the staging folder); what depends on the densify settings (its outputs, the
       config table) equals an uninterrupted local run of the same config.
    """
    run = "full"
    upload_resources(bucket, run)
    genes = _gene_list()
    bucket.put_object(Bucket=BUCKET, Key=f"{run}/{GENE_LIST}", Body=genes.encode())
    cfg = load_tiny_config()
    cfg["densify"] = {**cfg["densify"], "epochs": DENSIFY_EPOCHS, "genes": GENE_LIST}
    env = snakemake_env(**s3_env(s3_server))
    args = ["--cores", "2", *storage_args(run)]
    targets = [*args, *STORAGE_TARGETS]

    # 1. killed right after the densify job's first checkpoint is in the bucket
    wd1 = workdir(tmp_path / "machine1", cfg)
    log1 = open(wd1 / "snakemake.log", "w")
    proc = subprocess.Popen(snakemake_cmd(wd1, *targets), cwd=wd1, env=env, stdout=log1, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_for(lambda: f"{run}/{CHECKPOINT_KEY}" in all_keys(bucket, f"{run}/results/densify/")
                 or proc.poll() is not None, timeout=1200, every=0.1, what="the densify checkpoint in the bucket")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)       # the machine is gone: Snakemake and its jobs at once
        proc.wait()
        log1.close()
    text1 = (wd1 / "snakemake.log").read_text()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed:\n{text1[-3000:]}"
    assert f"{run}/results/densify/kang/ctrl.h5ad" not in all_keys(bucket, f"{run}/results/densify/")

    # 2. another machine finishes the run
    proc2 = snakemake(workdir(tmp_path / "machine2", cfg), *targets, "-p", env=env)
    assert f".snakemake/storage/s3/{BUCKET}/{run}/{GENE_LIST}" in proc2.stdout + proc2.stderr
    log = bucket.get_object(Bucket=BUCKET, Key=f"{run}/logs/densify/kang/ctrl.log")["Body"].read().decode()
    m = re.search(r"resuming from epoch (\d+)", log)
    assert m and 1 <= int(m.group(1)) < DENSIFY_EPOCHS, log[-3000:]

    # 3. a third machine has nothing to do
    proc3 = snakemake(workdir(tmp_path / "machine3", cfg), *targets, env=env)
    assert "Nothing to be done" in proc3.stdout + proc3.stderr, proc3.stderr[-3000:]

    # 4. the bucket equals the local runs
    tiny_run = request.getfixturevalue("tiny_run")   # asked for only now: made meanwhile by another stream
    remote_root = download(bucket, run, tmp_path / "bucket")
    stage = f".snakemake/storage/s3/{BUCKET}/{run}"
    expected = target_outputs(tiny_run, STORAGE_TARGETS)
    assert len(expected) > 30 and any("/shards/" in rel for rel in expected), expected
    missing = [rel for rel in expected if not (remote_root / rel).exists()]
    assert missing == [], f"made by the local run, not in the bucket: {missing[:20]}"
    made = {str(q.relative_to(remote_root)) for q in (remote_root / "results").rglob("*") if q.is_file()}
    extra = sorted(rel for rel in made - set(expected) if not TRAINING_STATE.search(rel))
    assert extra == [], f"in the bucket, not an output of the targets' jobs: {extra[:20]}"
    assert differences(remote_root, tiny_run, stage, tmp_path, skip=OWN_REFERENCE) == []
    ref = workdir(tmp_path / "reference", cfg)
    (ref / GENE_LIST).parent.mkdir(parents=True)
    (ref / GENE_LIST).write_text(genes)
    for rel in ("results/preprocess/kang.h5ad", "results/checks/resources.sha256.ok"):
        (ref / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tiny_run / rel, ref / rel)
    snakemake(ref, "--cores", "1", DENSIFY_OUT[2], CONFIG_OUT)
    assert "resuming" not in (ref / "logs/densify/kang/ctrl.log").read_text()
    assert all((remote_root / rel).exists() and (ref / rel).exists() for rel in OWN_REFERENCE)
    assert differences(remote_root, ref, stage, tmp_path, only=OWN_REFERENCE) == []


def target_outputs(wd: Path, targets) -> list[str]:
    """Every output file (below results/) of the jobs that ``targets`` need, as made in the finished run ``wd``
    (``snakemake --summary``: read only, no lock, so other test processes may read ``wd`` meanwhile)."""
    proc = snakemake(wd, "--summary", "--nolock", *targets)
    rows = [ln.split("\t") for ln in proc.stdout.splitlines()[1:] if ln.startswith("results/")]
    files = []
    for row in rows:
        path = wd / row[0]
        files += ([str(p.relative_to(wd)) for p in path.rglob("*") if p.is_file()] if path.is_dir() else [row[0]])
    return sorted(rel for rel in files if not TRAINING_STATE.search(rel))


def _gene_list(n: int = 300) -> str:
    """The ``n`` genes with the most counts in the bundled Kang data (kept by preprocessing: it drops no genes),
    in name order: a gene list unlike the default LIGER selection."""
    import anndata as ad
    import numpy as np
    a = ad.read_h5ad(load_tiny_config()["datasets"]["kang"]["path"])
    totals = np.asarray(a.X.sum(axis=0)).ravel()
    names = sorted(a.var_names[np.argsort(-totals, kind="stable")[:n]])
    return "".join(f"{g}\n" for g in names)
