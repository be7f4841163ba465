"""What the multilayer NMF rules need from the config: command lines (from the schemas), layer numbers, checks."""

from __future__ import annotations

from .cli import FIT, LOADING_FIGURE, SIMULATE, THETA_FIGURE


def simulate_blocks_command(config: dict) -> str:
    """Options of simulate_blocks.py from ``config['simulate']['blocks']``, shell-quoted."""
    return SIMULATE.command(config["simulate"]["blocks"])


def layers_command(config: dict, staged: dict | None = None) -> str:
    """Options of layers.py from ``config['layers']``, shell-quoted. ``staged``: {file named in the config:
    the job's copy} (`scfactor.core.options.Step.argv`)."""
    return FIT.command(config["layers"], staged=staged)


def layers_files(config: dict) -> list[str]:
    """Files the layers options name (a gene-list file): inputs of the layers rule."""
    return FIT.files(config["layers"])


def theta_figure_command(config: dict) -> str:
    """Options of layers_theta_clustermap.py (max_rows, seed) from ``config['layers']``, shell-quoted."""
    return THETA_FIGURE.command(config["layers"])


def loading_figure_command(config: dict) -> str:
    """Options of layers_gene_loading.py (top_n, max_thresh) from ``config['layers']``, shell-quoted."""
    return LOADING_FIGURE.command(config["layers"])


def layers_levels(config: dict) -> list[int]:
    """Layer numbers 1..L of the configured network."""
    return list(range(1, len(config["layers"]["layers"]) + 1))


def check_layers_datasets(config: dict) -> list[str]:
    """``layers.datasets`` (wildcard ``{dataset}``), each checked to be an entry of ``datasets``.

    Run at parse time, so that a typo fails before any job with `ValueError` naming the key.
    """
    known = set(config.get("datasets", {}))
    names = list(config["layers"]["datasets"])
    for name in names:
        if name not in known:
            raise ValueError(f"invalid config key layers.datasets: unknown dataset '{name}' "
                             f"(config datasets: {', '.join(sorted(known))})")
    return names
