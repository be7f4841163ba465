"""What the batch scheduler granted a job, and a memory guard that fails fast when it is too little.

On clusters where SLURM does not enforce memory (no cgroups) a step given too little memory swaps or
is killed by the kernel hours into the run; where it is enforced the job dies with OUT_OF_MEMORY and
no message from the step itself. `check_memory` turns "this step needs more memory than the job was
granted" into one line at start-up and a non-zero exit, so Snakemake's `retries` resubmit the job with
the next attempt's `mem_mb` (every rule's `mem_mb` grows with `attempt`).

The requirement comes from ``SCFACTOR_MIN_MEM_MB``: either one number of MB for every step, or
comma-separated ``<step>=<MB>`` pairs where ``<step>`` is the step function's name, which is the
script's name without ``.py`` (``preprocess=6000,mtl_train_shard=2000``). SLURM passes the submitting environment to the job
(the Snakemake SLURM plugin submits with ``sbatch --export=ALL``), so exporting the variable before
``snakemake --profile profiles/slurm`` reaches every job.

`trim_heap` hands memory that a library freed but the C allocator kept back to the system.
"""

from __future__ import annotations

import os
import re

from .errors import ScfactorError

MIN_MEM_ENV = "SCFACTOR_MIN_MEM_MB"


class ResourceError(ScfactorError):
    """The job was granted fewer resources than the step needs."""


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*$", re.IGNORECASE)
_UNIT_MB = {"": 1.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024}


def _mb(value: str, name: str) -> int:
    """SLURM memory value (``4000``, ``4000M``, ``4G``; default unit MB) as integer MB."""
    m = _SIZE.match(value)
    if not m:
        raise ResourceError(f"{name}={value!r} is not a memory size (expected e.g. 4000 or 4G)")
    return int(float(m.group(1)) * _UNIT_MB[m.group(2).upper()])


def _scontrol_memory_mb(job_id: str) -> int | None:
    """Memory per node (MB) of SLURM job ``job_id`` from ``scontrol show job`` (None if unknown)."""
    import subprocess

    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    node = re.search(r"\bMinMemoryNode=(\S+)", out)
    if node:
        return _mb(node.group(1), "MinMemoryNode")
    cpu = re.search(r"\bMinMemoryCPU=(\S+)", out)
    cpus = re.search(r"\bNumCPUs=(\d+)", out)
    if cpu:
        return _mb(cpu.group(1), "MinMemoryCPU") * (int(cpus.group(1)) if cpus else 1)
    return None


def granted_memory_mb(env=None, query=_scontrol_memory_mb) -> int | None:
    """Memory (MB) the scheduler granted this job, or None outside a batch job that set a limit.

    SLURM sets ``SLURM_MEM_PER_NODE`` for ``--mem`` and ``SLURM_MEM_PER_CPU`` for ``--mem-per-cpu``
    (multiplied by the CPUs of the job on this node) in the batch script. The Snakemake SLURM plugin
    runs each job's command in an ``srun`` step after removing every ``SLURM_*`` variable except the
    job id, so there the memory is asked of the controller (``scontrol show job $SLURM_JOB_ID``).
    """
    env = os.environ if env is None else env
    if env.get("SLURM_MEM_PER_NODE"):
        return _mb(env["SLURM_MEM_PER_NODE"], "SLURM_MEM_PER_NODE")
    if env.get("SLURM_MEM_PER_CPU"):
        per_cpu = _mb(env["SLURM_MEM_PER_CPU"], "SLURM_MEM_PER_CPU")
        cpus = env.get("SLURM_CPUS_ON_NODE") or env.get("SLURM_CPUS_PER_TASK") or "1"
        try:
            return per_cpu * max(1, int(cpus.split("(")[0]))
        except ValueError:
            return per_cpu
    job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if job_id and query is not None:
        return query(job_id)
    return None


def required_memory_mb(step: str, env=None) -> int | None:
    """The minimum memory (MB) ``SCFACTOR_MIN_MEM_MB`` asks for step ``step`` (None: no requirement)."""
    env = os.environ if env is None else env
    raw = (env.get(MIN_MEM_ENV) or "").strip()
    if not raw:
        return None
    if "=" not in raw:
        return _mb(raw, MIN_MEM_ENV)
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ResourceError(f"{MIN_MEM_ENV}={raw!r}: expected <MB> or <step>=<MB>[,<step>=<MB>...]")
        if name.strip() == step:
            return _mb(value, MIN_MEM_ENV)
    return None


def check_memory(step: str, env=None) -> tuple[int | None, int | None]:
    """Raise `ResourceError` when the job was granted less memory than ``step`` requires.

    Returns ``(granted, required)`` in MB (either may be None when unknown / not set).
    """
    env = os.environ if env is None else env
    required = required_memory_mb(step, env)
    if required is None:
        return None, None          # nothing to check: do not ask the controller
    granted = granted_memory_mb(env)
    if required is not None and granted is not None and granted < required:
        job = env.get("SLURM_JOB_ID", "?")
        raise ResourceError(
            f"{step}: SLURM job {job} was granted {granted} MB but this step needs {required} MB "
            f"({MIN_MEM_ENV}); retry with a larger mem_mb (rules grow it with each attempt)")
    return granted, required


def trim_heap() -> None:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim(0)``; nothing on other C libraries).

    Libraries that allocate many mid-sized arrays (pynndescent's k-NN search) leave the heap fragmented: what they
    free stays resident and the process's later large arrays, mapped separately, come on top of it. Trimmed after
    the PCA and the k-NN graph, the Leiden baseline's peak at a million cells fell from 12.34 to 11.06 GiB
    (`benchmarks/results/scale_1m_nbmix_load_counts.md`, `scale_1m_leiden_trim.md`). Frees nothing in use, so no
    result changes."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = getattr(libc, "malloc_trim", None)
    except OSError:
        trim = None
    if trim is not None:
        trim(0)
