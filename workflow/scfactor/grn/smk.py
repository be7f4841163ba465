"""Options of ``grn.py`` for one configured transition (config section ``grn``)."""

from __future__ import annotations

import shlex


def grn_transition(config: dict, name: str) -> dict:
    """The config entry of transition ``name`` (a readable error on a typo or an unknown dataset)."""
    trans = config["grn"]["transitions"]
    if name not in trans:
        raise ValueError(f"unknown grn transition '{name}' (configured: {', '.join(trans) or 'none'})")
    t = trans[name]
    if t["dataset"] not in config["datasets"]:
        raise ValueError(f"grn transition '{name}': unknown dataset '{t['dataset']}' "
                         f"(config datasets: {', '.join(config['datasets'])})")
    return t


def grn_prior_path(config: dict, name: str) -> str:
    """The prior file of transition ``name``: ``grn.priors[<prior>_<species>]``."""
    t = grn_transition(config, name)
    g = config["grn"]
    prior = t.get("prior") or g["prior"]
    species = config["datasets"][t["dataset"]].get("species", "human")
    key = f"{prior}_{species}"
    if key not in g["priors"]:
        raise ValueError(f"grn transition '{name}': no '{prior}' prior for {species} "
                         f"(grn.priors has {', '.join(g['priors'])})")
    return g["priors"][key]


def grn_args(config: dict, name: str) -> str:
    """Command-line options of grn.py for transition ``name`` (inputs and outputs excluded)."""
    t = grn_transition(config, name)
    g = config["grn"]
    opts = ["--name", name, "--prior-format", t.get("prior") or g["prior"],
            "--confidence", *g["confidence"], "--label-key", t.get("label_key", "label"),
            "--fill-unlabelled", t.get("fill_unlabelled", "none"),
            "--knn-k", g["knn"]["k"], "--knn-min-agreement", g["knn"]["min_agreement"],
            "--genes", g["genes"], "--min-frac", g["min_frac"], "--pairing", g["pairing"],
            "--n-pairs", g["n_pairs"], "--n-pcs", g["n_pcs"], "--test-fraction", g["test_fraction"],
            "--l1", g["l1"], "--l2", g["l2"], "--max-iter", g["max_iter"], "--tol", g["tol"],
            "--mlp-hidden", g["mlp"]["hidden"], "--mlp-epochs", g["mlp"]["epochs"],
            "--mlp-lr", g["mlp"]["lr"], "--mlp-l2", g["mlp"]["l2"], "--top-edges", g["top_edges"],
            "--cv-folds", g["cv_folds"], "--seed", g["seed"], "--device", g["device"]]
    if g["l1_grid"]:
        opts += ["--l1-grid", *g["l1_grid"]]
    for side, flag in (("source", "source"), ("target", "target")):
        state = t[side]
        if state.get("labels"):
            opts += [f"--{flag}-labels", *state["labels"]]
        if state.get("batches"):
            opts += [f"--{flag}-batches", *state["batches"]]
    if t.get("expected_tfs"):
        opts += ["--expected-tfs", *t["expected_tfs"]]
    return shlex.join(str(o) for o in opts)
