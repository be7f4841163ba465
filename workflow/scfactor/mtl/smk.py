"""Paths, fan-out and options of the MTL rules (seed 001), built from config.

Shard pattern: ``{results}/mtl/{dataset}/{tissue}/shards/{model}/c{cluster:02d}_r{rep}.tsv`` (+
``.weights.npz``), model = ``tracenorm`` (lambda from config) or ``lambda0`` (the ablation).
Everything is known from config, so the DAG needs no checkpoint rules.
"""

from __future__ import annotations

import shlex

from scfactor.mtl_layout import layout_files, sanitize_tissue

MODELS = ("tracenorm", "lambda0")


def mtl_datasets(config) -> list:
    """Names of the MTL datasets."""
    return list(config["mtl"]["datasets"])


def _ds(config, name):
    try:
        return config["mtl"]["datasets"][name]
    except KeyError:
        raise ValueError(f"unknown mtl dataset '{name}' (config mtl.datasets: "
                         f"{', '.join(config['mtl']['datasets'])})") from None


def mtl_tissues(config, name) -> list:
    """Tissue (hdf5 group) names of a dataset, sanitised."""
    d = _ds(config, name)
    if d["source"] == "simulated":
        return [f"tissue{i + 1}" for i in range(config["simulate"]["mtl"]["n_tissues"])]
    if d["source"] == "h5ad" and not d.get("tissue_key"):
        return ["all"]
    if not d.get("tissues"):
        raise ValueError(f"config mtl.datasets.{name}.tissues must list the tissues")
    return [sanitize_tissue(t) for t in d["tissues"]]


def mtl_root(config, results, name) -> str:
    """The layout root of a dataset."""
    d = _ds(config, name)
    if d["source"] == "simulated":
        return f"{results}/simulate/mtl"
    if d["source"] == "h5ad":
        return f"{results}/mtl/{name}/input"
    if not d.get("path"):
        raise ValueError(f"config mtl.datasets.{name}.path must name the layout root")
    return d["path"]


def mtl_layout_inputs(config, results, name, tissue=None) -> list:
    """Files of the layout a per-tissue job reads (the activity folder for generated layouts)."""
    d = _ds(config, name)
    root = mtl_root(config, results, name)
    if d["source"] == "layout":
        return layout_files(root, [tissue] if tissue else mtl_tissues(config, name))
    return layout_files(root, [])[:4] + [f"{root}/tf_activity"]


def setting(config, name, key):
    """A per-dataset override or the global mtl setting."""
    v = _ds(config, name).get(key)
    return config["mtl"][key] if v is None else v


def mtl_models(config) -> list:
    """Models trained per shard: tracenorm, plus lambda0 when the ablation is on."""
    return list(MODELS) if config["mtl"]["train"]["ablation"] else [MODELS[0]]


def shard_path(results, name, tissue, model, cluster, rep, ext="tsv") -> str:
    """Path of one shard's output."""
    return f"{results}/mtl/{name}/{tissue}/shards/{model}/c{int(cluster):02d}_r{int(rep)}.{ext}"


def mtl_shards(config, results, name) -> list:
    """Every shard TSV of a dataset (tissues x clusters x reps x models)."""
    return [shard_path(results, name, t, m, c, r)
            for t in mtl_tissues(config, name)
            for m in mtl_models(config)
            for c in range(setting(config, name, "n_clusters"))
            for r in range(config["mtl"]["reps"])]


def mtl_targets(config, results) -> list:
    """Final outputs: per dataset the R2 table, the summary and the two figures."""
    out = []
    for name in mtl_datasets(config):
        out += [f"{results}/mtl/{name}/r2.tsv", f"{results}/mtl/{name}/summary.tsv",
                f"{results}/figures/mtl/{name}_comparison.png", f"{results}/figures/mtl/{name}_clusters.png"]
    return out


def shard_args(config, wc) -> str:
    """Options of mtl_train_shard.py for one shard."""
    t = config["mtl"]["train"]
    lam = t["lam"] if wc.model == "tracenorm" else 0.0
    epochs = _ds(config, wc.dataset).get("epochs") or t["epochs"]
    opts = ["--model", wc.model, "--lam", lam, "--l1", t["l1"], "--unfold-axis", t["unfold_axis"],
            "--epochs", epochs, "--batch-size", t["batch_size"], "--learning-rate", t["learning_rate"],
            "--test-ratio", config["mtl"]["test_ratio"], "--accelerator", t["accelerator"],
            "--seed", config["mtl"]["seed"]]
    return shlex.join(str(o) for o in opts)


def lasso_args(config, name) -> str:
    """Options of mtl_lasso.py for a dataset."""
    m, la = config["mtl"], config["mtl"]["lasso"]
    opts = ["--reps", m["reps"], "--test-ratio", m["test_ratio"], "--seed", m["seed"],
            "--min-cells", setting(config, name, "min_cells"), "--max-genes", la["max_genes"],
            "--cv", la["cv"], "--n-alphas", la["n_alphas"], "--max-iter", la["max_iter"]]
    return shlex.join(str(o) for o in opts)


def velocity_args(config, name) -> str:
    """Options of mtl_velocity.py for an 'h5ad' dataset."""
    d, v = _ds(config, name), config["mtl"]["velocity"]
    opts = ["--max-cells-per-tissue", d["max_cells_per_tissue"], "--min-shared-counts", v["min_shared_counts"],
            "--n-neighbors", v["n_neighbors"], "--n-pcs", v["n_pcs"], "--perc", v["perc"],
            "--seed", config["mtl"]["seed"]]
    if d.get("tissue_key"):
        opts += ["--tissue-key", d["tissue_key"]]
        if d.get("tissues"):
            opts += ["--tissues", *d["tissues"]]
    return shlex.join(str(o) for o in opts)


def tf_activity_args(config, name) -> str:
    """Options of mtl_tf_activity.py for an 'h5ad' dataset."""
    d, a = _ds(config, name), config["mtl"]["tf_activity"]
    opts = ["--species", d["species"], "--confidence", *a["confidence"], "--tissues", *mtl_tissues(config, name)]
    return shlex.join(str(o) for o in opts)


def simulate_args(config) -> str:
    """Options of simulate_mtl.py."""
    s = config["simulate"]["mtl"]
    opts = []
    for k in ("n_tissues", "n_cells", "n_genes", "n_tfs", "n_clusters", "rank", "support", "noise",
              "max_missing", "extra_edges", "seed"):
        opts += ["--" + k.replace("_", "-"), s[k]]
    return shlex.join(str(o) for o in opts)
