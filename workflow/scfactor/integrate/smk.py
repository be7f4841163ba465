"""What the integrate and simulate_batches rules need from the config: input paths, sources per data set, and
the command lines (`scfactor.integrate.cli.INTEGRATE` / `SIMULATE`)."""

from __future__ import annotations

from .cli import INTEGRATE, SIMULATE


def _values(config: dict, dataset: str, source: str) -> tuple[dict, dict]:
    section = config["integrate"]
    if source == "counts":
        return section, config["datasets"][dataset]
    return {**section, "mode": "batch"}, {}


def integrate_command(config: dict, dataset: str, source: str, staged: dict | None = None) -> str:
    """Options of integrate.py for ``dataset`` and ``source`` (the integrate section + the data set's batches).

    The neumf source always runs in batch mode (online mode streams one counts file) and reads one file per
    configured batch, so the batches are not passed again. ``staged``: {file named in the config: the job's
    copy} (`scfactor.core.options.Step.argv`).
    """
    return INTEGRATE.command(*_values(config, dataset, source), staged=staged)


def integrate_files(config: dict, dataset: str, source: str) -> list[str]:
    """Files the integrate options name (a gene-list file): inputs of the integrate rule."""
    return INTEGRATE.files(*_values(config, dataset, source))


def integrate_inputs(config: dict, results: str, dataset: str, source: str) -> list[str]:
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


def simulate_batches_command(config: dict) -> str:
    """Options of simulate_batches.py from ``simulate.batches``, shell-quoted."""
    return SIMULATE.command(config["simulate"]["batches"])
