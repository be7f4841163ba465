"""Options of the multilayer NMF scripts built from ``config['layers']`` / ``config['simulate']['blocks']``."""

from __future__ import annotations

import shlex


def simulate_blocks_args(config: dict) -> str:
    """Command-line options of simulate_blocks.py from ``config['simulate']['blocks']``."""
    c = config["simulate"]["blocks"]
    opts = ["--n-cells", c["n_cells"], "--n-genes", c["n_genes"], "--n-factors", c["n_factors"],
            "--mode", c["mode"], "--alpha", c["alpha"], "--eps", c["eps"], "--beta-shape", c["beta_shape"],
            "--beta-eps", c["beta_eps"], "--noise-prop", c["noise_prop"], "--seed", c["seed"]]
    return shlex.join(str(o) for o in opts)


def layers_args(config: dict) -> str:
    """Command-line options of layers.py from ``config['layers']``."""
    c = config["layers"]
    opts = ["--genes", c["genes"], "--layer", c["layer"], "--layers", *c["layers"], "--solver", c["solver"],
            "--epochs", c["epochs"], "--lr", c["lr"], "--inner-iters", c["inner_iters"], "--seed", c["seed"],
            "--device", c["device"]]
    return shlex.join(str(o) for o in opts)


def layers_levels(config: dict) -> list[int]:
    """Layer numbers 1..L of the configured network."""
    return list(range(1, len(config["layers"]["layers"]) + 1))


def loading_figure_args(config: dict) -> str:
    """Options of layers_gene_loading.py (top_n, max_thresh)."""
    c = config["layers"]
    opts = ["--top-n", c["top_n"]]
    if c.get("max_thresh") is not None:
        opts += ["--max-thresh", c["max_thresh"]]
    return shlex.join(str(o) for o in opts)


def check_layers_datasets(config: dict) -> None:
    """Fail before any job runs when ``layers.datasets`` names a dataset the config does not define."""
    known = set(config.get("datasets", {}))
    for name in config["layers"]["datasets"]:
        if name not in known:
            raise ValueError(f"invalid config key layers.datasets: unknown dataset '{name}' "
                             f"(config datasets: {', '.join(sorted(known))})")
