"""What the GRN rules need from the config: the runs (``grn.transitions``), their input paths and the
command lines of ``grn.py`` and ``grn_figures.py``."""

from __future__ import annotations

from .cli import FIGURES, GRN


def grn_runs(config: dict) -> list:
    """Names of the configured transitions (the ``{run}`` wildcard), in config order."""
    return list(config["grn"]["transitions"])


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


def grn_prior(config: dict, name: str) -> str:
    """The prior network of transition ``name``: its own ``prior``, else ``grn.prior``."""
    return grn_transition(config, name).get("prior") or config["grn"]["prior"]


def grn_prior_path(config: dict, name: str) -> str:
    """The prior file of transition ``name``: ``grn.priors[<prior>_<species>]``."""
    t = grn_transition(config, name)
    g = config["grn"]
    prior = grn_prior(config, name)
    species = config["datasets"][t["dataset"]].get("species", "human")
    key = f"{prior}_{species}"
    if key not in g["priors"]:
        raise ValueError(f"grn transition '{name}': no '{prior}' prior for {species} "
                         f"(grn.priors has {', '.join(g['priors'])})")
    return g["priors"][key]


def _values(config: dict, name: str) -> tuple[dict, dict]:
    return {**config["grn"], "prior": grn_prior(config, name)}, grn_transition(config, name)


def grn_command(config: dict, name: str, staged: dict | None = None) -> str:
    """Options of grn.py for transition ``name`` (its entry + the global settings), shell-quoted.
    ``staged``: {file named in the config: the job's copy} (`scfactor.core.options.Step.argv`)."""
    return GRN.command(*_values(config, name), staged=staged)


def grn_files(config: dict, name: str) -> list[str]:
    """Files the options of transition ``name`` name (a gene-list file): inputs of its grn job."""
    return GRN.files(*_values(config, name))


def grn_figures_command(config: dict) -> str:
    """Options of grn_figures.py, shell-quoted."""
    return FIGURES.command(config["grn"])
