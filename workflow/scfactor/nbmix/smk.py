"""Options of the nbmix scripts built from ``config`` (used by workflow/rules/nbmix.smk)."""

from __future__ import annotations

import shlex


def nbmix_runs(config: dict) -> list[str]:
    """Names of the data sets the NB mixture is run on (keys of ``config['nbmix']['runs']``)."""
    return list(config["nbmix"]["runs"])


def nbmix_input(config: dict, name: str) -> str:
    """The .h5ad a run reads: a simulation output or the preprocessed dataset."""
    sims = config.get("simulate", {}).get("nbmix", {})
    in_sim, in_data = name in sims, name in config.get("datasets", {})
    if in_sim and in_data:
        raise ValueError(f"nbmix run '{name}' is both a simulate.nbmix entry and a dataset; rename one")
    if in_sim:
        return f"{config['results']}/simulate/nbmix/{name}.h5ad"
    if in_data:
        return f"{config['results']}/preprocess/{name}.h5ad"
    raise ValueError(f"nbmix run '{name}' is neither a simulate.nbmix entry ({', '.join(sims) or 'none'}) "
                     f"nor a dataset ({', '.join(config.get('datasets', {}))})")


def _data_opts(config: dict, name: str) -> list:
    run = config["nbmix"]["runs"][name]
    opts = ["--dataset", name, "--genes", run["genes"], "--labels", run["labels"]]
    if run.get("batch"):
        opts += ["--batch", run["batch"]]
    if run.get("drop_empty_cells"):
        opts += ["--drop-empty-cells"]
    return opts


def nbmix_fit_args(config: dict, name: str) -> str:
    """Command-line options of nbmix_fit.py for run ``name``."""
    c = config["nbmix"]
    am = c["amortized"]
    opts = _data_opts(config, name) + [
        "--k", c["runs"][name]["k"], "--method", c["method"], "--init", c["init"], "--nrep", c["nrep"],
        "--seed", c["seed"], "--max-iters", c["max_iters"], "--tol", c["tol"], "--newton-steps", c["newton_steps"],
        "--first-newton-steps", c["first_newton_steps"], "--n-pcs", c["n_pcs"], "--dtype", c["dtype"],
        "--device", c["device"], "--leiden-resolution", c["leiden"]["resolution"],
        "--epochs", am["epochs"], "--batch-size", am["batch_size"], "--lr", am["lr"], "--hidden", am["hidden"],
        "--init-subsample", am["init_subsample"]]
    return shlex.join(str(o) for o in opts)


def nbmix_leiden_args(config: dict, name: str) -> str:
    """Command-line options of nbmix_leiden.py for run ``name``."""
    lc = config["nbmix"]["leiden"]
    opts = _data_opts(config, name) + ["--n-pcs", lc["n_pcs"], "--n-neighbors", lc["n_neighbors"],
                                       "--resolution", lc["resolution"], "--seed", lc["seed"]]
    return shlex.join(str(o) for o in opts)


def simulate_nbmix_args(config: dict, name: str) -> str:
    """Command-line options of simulate_nbmix.py for simulation ``name``."""
    s = config["simulate"]["nbmix"][name]
    opts = ["--name", name, "--n", s["n"], "--p", s["p"], "--k", s["k"], "--s", s["s"], "--seed", s["seed"]]
    return shlex.join(str(o) for o in opts)
