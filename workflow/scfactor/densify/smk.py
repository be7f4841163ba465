"""Options and targets of the ``densify`` rule (NeuMF densification)."""

from __future__ import annotations

import shlex

# config key -> command-line option of workflow/scripts/densify.py
_OPTIONS = {
    "genes": "--genes", "layer": "--layer", "arch": "--arch", "loss": "--loss",
    "embedding_dim": "--embedding-dim", "dropout": "--dropout", "bn_layers": "--bn-layers",
    "epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "zero_keep": "--zero-keep",
    "num_neg": "--num-neg", "pretrain_epochs": "--pretrain-epochs", "heldout_frac": "--heldout-frac",
    "svd_rank": "--svd-rank", "predict_block": "--predict-block", "accelerator": "--accelerator",
    "seed": "--seed",
}


def densify_args(config: dict) -> str:
    """Command-line options of densify.py from ``config['densify']`` (validated, defaults filled)."""
    d = config["densify"]
    opts = []
    for key, flag in _OPTIONS.items():
        opts += [flag, d[key]]
    opts += ["--layers", *d["layers"]]
    return shlex.join(str(o) for o in opts)


def densify_pairs(config: dict) -> list[tuple[str, str]]:
    """(dataset, batch) pairs to densify; raises ValueError for an unknown dataset or batch."""
    pairs = []
    for name, batches in config["densify"]["targets"].items():
        if name not in config["datasets"]:
            raise ValueError(f"densify.targets: unknown dataset '{name}' "
                             f"(datasets: {', '.join(config['datasets'])})")
        ds = config["datasets"][name]
        known = ds.get("batches") or []
        if not ds.get("batch_key"):
            known = ["all"]
        for b in batches:
            if known and b not in known:
                raise ValueError(f"densify.targets.{name}: batch '{b}' is not one of {', '.join(known)}")
            pairs.append((name, b))
    return pairs
