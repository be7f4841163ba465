"""What the densify rules need from the config: the (dataset, batch) pairs, the command line, the prediction shards."""

from __future__ import annotations

from ..core.config import check_names
from .cli import DENSIFY


def densify_command(config: dict, staged: dict | None = None) -> str:
    """Options of densify.py from ``config['densify']`` (validated, defaults filled), shell-quoted.
    ``staged``: {file named in the config: the job's copy} (`scfactor.core.options.Step.argv`)."""
    return DENSIFY.command(config["densify"], staged=staged)


def densify_files(config: dict) -> list[str]:
    """Files the densify options name (a gene-list file): inputs of the densify rule."""
    return DENSIFY.files(config["densify"])


def densify_pairs(config: dict) -> list[tuple[str, str]]:
    """(dataset, batch) pairs to densify; raises ValueError for an unknown dataset or batch or a bad name."""
    pairs = []
    targets = config["densify"]["targets"]
    check_names("densify.targets", targets)
    for name, batches in targets.items():
        if name not in config["datasets"]:
            raise ValueError(f"densify.targets: unknown dataset '{name}' "
                             f"(datasets: {', '.join(config['datasets'])})")
        check_names(f"densify.targets.{name}", batches)
        ds = config["datasets"][name]
        known = ds.get("batches") or []
        if not ds.get("batch_key"):
            known = ["all"]
        for b in batches:
            if known and b not in known:
                raise ValueError(f"densify.targets.{name}: batch '{b}' is not one of {', '.join(known)}")
            pairs.append((name, b))
    return pairs


def predict_shards(config: dict) -> int:
    """Prediction jobs per (dataset, batch): 1 = the single densify job, K > 1 = the fan-out's K shards."""
    return int(config["densify"]["predict_shards"])


def shard_files(pattern: str, config: dict, **wildcards) -> list[str]:
    """The fan-out's prediction shard files of one (dataset, batch), in order: ``pattern`` (with ``{shard}``
    and the ``wildcards``' names) formatted for shards 0 .. K - 1."""
    return [pattern.format(shard=k, **wildcards) for k in range(predict_shards(config))]
