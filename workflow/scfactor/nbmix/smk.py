"""What ``workflow/rules/nbmix.smk`` needs from the config: run and simulation names, input paths, and the
command lines of the nbmix scripts (`scfactor.core.options.Step.command`, from the validated config)."""

from __future__ import annotations

from .cli import FIGURES, FIT, LEIDEN, SIMULATE


def nbmix_runs(config: dict) -> list[str]:
    """Names of the data sets the NB mixture is run on (keys of ``config['nbmix']['runs']``)."""
    return list(config["nbmix"]["runs"])


def simulations(config: dict) -> list[str]:
    """Names of the NB-mixture simulations (keys of ``config['simulate']['nbmix']``)."""
    return list(config.get("simulate", {}).get("nbmix", {}))


def nbmix_input(config: dict, run: str) -> str:
    """The .h5ad run ``run`` reads: a simulation output or the preprocessed dataset of that name."""
    sims = config.get("simulate", {}).get("nbmix", {})
    in_sim, in_data = run in sims, run in config.get("datasets", {})
    if in_sim and in_data:
        raise ValueError(f"nbmix run '{run}' is both a simulate.nbmix entry and a dataset; rename one")
    if in_sim:
        return f"{config['results']}/simulate/nbmix/{run}.h5ad"
    if in_data:
        return f"{config['results']}/preprocess/{run}.h5ad"
    raise ValueError(f"nbmix run '{run}' is neither a simulate.nbmix entry ({', '.join(sims) or 'none'}) "
                     f"nor a dataset ({', '.join(config.get('datasets', {}))})")


def _run(config: dict, run: str) -> dict:
    runs = config["nbmix"]["runs"]
    if run not in runs:
        raise ValueError(f"unknown nbmix run '{run}' (config nbmix.runs: {', '.join(runs) or 'none'})")
    return runs[run]


def fit_command(config: dict, run: str, staged: dict | None = None) -> str:
    """Options of nbmix_fit.py for run ``run`` (the ``nbmix`` settings + the run's entry), shell-quoted.
    ``staged``: {file named in the config: the job's copy} (`scfactor.core.options.Step.argv`)."""
    return FIT.command(config["nbmix"], _run(config, run), staged=staged)


def leiden_command(config: dict, run: str, staged: dict | None = None) -> str:
    """Options of nbmix_leiden.py for run ``run`` (``nbmix.leiden`` + the run's entry), shell-quoted.
    ``staged`` as in `fit_command`."""
    return LEIDEN.command(config["nbmix"].get("leiden", {}), _run(config, run), staged=staged)


def figures_command(config: dict) -> str:
    """Options of nbmix_figures.py (``figure_max_cells``, ``seed``) from ``config['nbmix']``, shell-quoted."""
    return FIGURES.command(config["nbmix"])


def run_files(config: dict, run: str) -> list[str]:
    """Files the options of run ``run`` name (a gene-list file): inputs of its nbmix and nbmix_leiden jobs."""
    return list(dict.fromkeys(FIT.files(config["nbmix"], _run(config, run))
                              + LEIDEN.files(config["nbmix"].get("leiden", {}), _run(config, run))))


def simulate_command(config: dict, sim: str) -> str:
    """Options of simulate_nbmix.py for simulation ``sim`` (its ``simulate.nbmix`` entry), shell-quoted."""
    sims = config.get("simulate", {}).get("nbmix", {})
    if sim not in sims:
        raise ValueError(f"unknown simulation '{sim}' (config simulate.nbmix: {', '.join(sims) or 'none'})")
    return SIMULATE.command(sims[sim])
