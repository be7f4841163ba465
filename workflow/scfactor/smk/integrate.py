"""Options and inputs of the integrate and simulate_batches rules, built from ``config``."""

from __future__ import annotations

import shlex

#: integrate config keys passed 1:1 as --<key-with-dashes>
_PASS = ("k", "max_iters", "thresh", "nrep", "seed", "solver", "hals_sweeps", "online_epochs",
         "online_minibatch", "quantiles", "min_cells", "knn_k", "leiden_resolution", "n_neighbors",
         "agreement_dims", "agreement_k", "umap_min_dist", "device", "mode")


def integrate_args(config: dict, dataset: str, source: str) -> str:
    """Command-line options of integrate.py (everything but inputs and outputs)."""
    c = config["integrate"]
    opts = ["--source", source, "--lambda", c["lambda"], "--threads", c["threads"]]
    for key in _PASS:
        if key == "mode" and source != "counts":
            continue
        opts += [f"--{key.replace('_', '-')}", c[key]]
    if c.get("ref_batch"):
        opts += ["--ref-batch", c["ref_batch"]]
    batches = config["datasets"][dataset].get("batches") or []
    if source == "counts" and batches:
        opts += ["--batches", *batches]
    return shlex.join(str(o) for o in opts)


def integrate_input_paths(config: dict, results: str, dataset: str, source: str) -> list[str]:
    """Input files of one integrate job: the preprocessed .h5ad, or one densified .h5ad per batch."""
    if dataset not in config["datasets"]:
        raise ValueError(f"integrate.datasets names '{dataset}', which is not in datasets: "
                         f"{', '.join(config['datasets'])}")
    if not config["datasets"][dataset].get("batch_key"):
        raise ValueError(f"integrate.datasets: dataset '{dataset}' has no batch_key; integration needs "
                         f">= 2 batches (set datasets.{dataset}.batch_key)")
    if source == "counts":
        return [f"{results}/preprocess/{dataset}.h5ad"]
    batches = config["datasets"][dataset].get("batches") or []
    if len(batches) < 2:
        raise ValueError(f"integrate source 'neumf' needs datasets.{dataset}.batches to list >= 2 batches")
    return [f"{results}/densify/{dataset}/{b}.h5ad" for b in batches]


def integrate_sources(config: dict, dataset: str) -> list[str]:
    """Sources integrated for ``dataset``: the configured ones, ``neumf`` only where densify runs.

    LIGER on the NeuMF layer needs every batch densified, i.e. the dataset listed under
    ``densify.targets``; other datasets (e.g. simulations) are integrated on counts only.
    """
    targets = (config.get("densify") or {}).get("targets") or {}
    return [s for s in config["integrate"]["sources"] if s != "neumf" or dataset in targets]


def simulate_batches_args(config: dict) -> str:
    """Command-line options of simulate_batches.py from config['simulate']['batches']."""
    c = config["simulate"]["batches"]
    opts = ["--n-cells", *c["n_cells"], "--n-genes", c["n_genes"], "--k-shared", c["k_shared"],
            "--k-specific", c["k_specific"], "--specific-fraction", c["specific_fraction"],
            "--library-size", c["library_size"], "--v-fraction", c["v_fraction"],
            "--v-scale", c["v_scale"], "--seed", c["seed"], "--chunk", c["chunk"]]
    if c["batch_names"]:
        opts += ["--batch-names", *c["batch_names"]]
    return shlex.join(str(o) for o in opts)
