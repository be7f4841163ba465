"""What the MTL rules need from the config: runs, tissues, layout roots, shard paths and command lines.

A run is an entry of ``mtl.datasets`` (wildcard ``{run}``). Shard pattern:
``{results}/mtl/{run}/{tissue}/shards/{model}/c{cluster:02d}_r{rep}.tsv`` (+ ``.weights.npz``), model =
``tracenorm`` (lambda from config) or ``lambda0`` (the ablation). Everything is known from the config, so
the DAG needs no checkpoint rules. A run's overrides (``min_cells``, ``num_genes``, ``n_clusters``,
``epochs``; null = the global setting) are resolved here, before `STEP.command` builds the command line.
"""

from __future__ import annotations

from .cli import (GENE_CLUSTERS, LASSO, SELECT_GENES, SIMULATE, TF_ACTIVITY, TRAIN_SHARD, VELOCITY)
from .layout import layout_files, sanitize_tissue
from .pipeline import ABLATION, MODELS

#: per-run keys that override the global setting of the same name (``epochs`` overrides ``train.epochs``)
OVERRIDES = ("min_cells", "num_genes", "n_clusters")


def runs(config, source: str | None = None) -> list:
    """Names of the MTL runs (keys of ``mtl.datasets``), those of one ``source`` when given."""
    return [n for n, d in config["mtl"]["datasets"].items() if source is None or d["source"] == source]


def run_entry(config, run) -> dict:
    """The config entry of MTL run ``run`` (a readable error for an unknown name)."""
    try:
        return config["mtl"]["datasets"][run]
    except KeyError:
        raise ValueError(f"unknown mtl run '{run}' (config mtl.datasets: "
                         f"{', '.join(config['mtl']['datasets'])})") from None


def tissues(config, run) -> list:
    """Tissue (hdf5 group) names of a run, sanitised (`layout.sanitize_tissue`: safe wildcard values)."""
    d = run_entry(config, run)
    if d["source"] == "simulated":
        return [f"tissue{i + 1}" for i in range(config["simulate"]["mtl"]["n_tissues"])]
    if d["source"] == "h5ad" and not d.get("tissue_key"):
        return ["all"]
    if not d.get("tissues"):
        raise ValueError(f"config mtl.datasets.{run}.tissues must list the tissues")
    return [sanitize_tissue(t) for t in d["tissues"]]


def layout_root(config, results, run) -> str:
    """The layout root of a run."""
    d = run_entry(config, run)
    if d["source"] == "simulated":
        return f"{results}/simulate/mtl"
    if d["source"] == "h5ad":
        return f"{results}/mtl/{run}/input"
    if not d.get("path"):
        raise ValueError(f"config mtl.datasets.{run}.path must name the layout root")
    return d["path"]


def layout_inputs(config, results, run, tissue=None) -> list:
    """Files of the layout a per-tissue job reads (the activity folder for generated layouts)."""
    d = run_entry(config, run)
    root = layout_root(config, results, run)
    if d["source"] == "layout":
        return layout_files(root, [tissue] if tissue else tissues(config, run))
    return layout_files(root, [])[:4] + [f"{root}/tf_activity"]


def setting(config, run, key):
    """A run's override of ``mtl.<key>`` (or of ``mtl.train.epochs``), else the global setting."""
    v = run_entry(config, run).get(key)
    if v is not None:
        return v
    return config["mtl"]["train"]["epochs"] if key == "epochs" else config["mtl"][key]


def resolved(config, run) -> dict:
    """The ``mtl`` section with run ``run``'s overrides applied."""
    return dict(config["mtl"], **{k: setting(config, run, k) for k in OVERRIDES})


def models(config) -> list:
    """Models trained per shard: tracenorm, plus lambda0 when the ablation is on."""
    return list(MODELS) if config["mtl"]["train"]["ablation"] else [MODELS[0]]


def shard_path(results, run, tissue, model, cluster, rep, ext="tsv") -> str:
    """Path of one shard's output."""
    return f"{results}/mtl/{run}/{tissue}/shards/{model}/c{int(cluster):02d}_r{int(rep)}.{ext}"


def shards(config, results, run) -> list:
    """Every shard TSV of a run (tissues x models x clusters x reps)."""
    return [shard_path(results, run, t, m, c, r)
            for t in tissues(config, run)
            for m in models(config)
            for c in range(setting(config, run, "n_clusters"))
            for r in range(config["mtl"]["reps"])]


def targets(config, results) -> list:
    """Final outputs: per run the R2 table, the summary and the two figures."""
    out = []
    for run in runs(config):
        out += [f"{results}/mtl/{run}/r2.tsv", f"{results}/mtl/{run}/summary.tsv",
                f"{results}/figures/mtl/{run}_comparison.png", f"{results}/figures/mtl/{run}_clusters.png"]
    return out


# --------------------------------------------------------------------------- command lines
def simulate_command(config) -> str:
    """Options of simulate_mtl.py (``simulate.mtl``), shell-quoted."""
    return SIMULATE.command(config["simulate"]["mtl"])


def velocity_command(config, run) -> str:
    """Options of mtl_velocity.py for an 'h5ad' run."""
    return VELOCITY.command(run_entry(config, run), config["mtl"]["velocity"], config["mtl"])


def tf_activity_command(config, run, **files) -> str:
    """Options of mtl_tf_activity.py for an 'h5ad' run: prior files from ``mtl.tf_activity``, or ``files``
    (``prior``, ``tf_list``, ``orthologs``: the rule's input paths, which differ from the config's on
    object storage)."""
    return TF_ACTIVITY.command(run_entry(config, run), {**config["mtl"]["tf_activity"], **files})


def lasso_command(config, run) -> str:
    """Options of mtl_lasso.py for a run."""
    return LASSO.command(resolved(config, run), config["mtl"]["lasso"])


def select_genes_command(config, run) -> str:
    """Options of mtl_select_genes.py for a run."""
    return SELECT_GENES.command(resolved(config, run))


def gene_clusters_command(config, run) -> str:
    """Options of mtl_gene_clusters.py for a run."""
    return GENE_CLUSTERS.command(resolved(config, run))


def train_shard_command(config, run, model) -> str:
    """Options of mtl_train_shard.py for a shard of ``run`` trained as ``model`` (lambda 0 for the ablation)."""
    train = dict(config["mtl"]["train"], epochs=setting(config, run, "epochs"))
    if model == ABLATION:
        train["lam"] = 0.0
    return TRAIN_SHARD.command(resolved(config, run), train)
