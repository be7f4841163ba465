"""Options of ``preprocess.py`` for one dataset."""

from __future__ import annotations

import shlex


def preprocess_args(config: dict, name: str) -> str:
    """Command-line options of preprocess.py for dataset ``name`` (its entry + global settings)."""
    d = config["datasets"][name]
    pp = config["preprocess"]
    opts = ["--dataset", name, "--format", d["format"], "--layer", d["layer"],
            "--max-cells-per-batch", d["max_cells_per_batch"], "--seed", d["seed"],
            "--min-genes", pp["min_genes"], "--min-counts", pp["min_counts"],
            "--min-cells", pp["min_cells"], "--max-pct-mito", pp["max_pct_mito"],
            "--mito-pattern", pp["mito_pattern"], "--target-sum", pp["target_sum"],
            "--liger-var-thresh", pp["liger_var_thresh"],
            "--liger-alpha-thresh", pp["liger_alpha_thresh"], "--n-hvg", pp["n_hvg"]]
    if d.get("batch_key"):
        opts += ["--batch-key", d["batch_key"]]
    if d.get("batches"):
        opts += ["--batches", *d["batches"]]
    if d.get("label_key"):
        opts += ["--label-key", d["label_key"]]
    if d.get("gene_list"):
        opts += ["--gene-list", d["gene_list"]]
    return shlex.join(str(o) for o in opts)
