"""What the preprocess rule needs from the config: the data sets' inputs (a counts path or a sample sheet),
their checks at parse time, and the command line of one data set."""

from __future__ import annotations

import shlex
from typing import Callable

from ..core.config import ConfigError
from ..core.errors import ScfactorError
from .cli import STEP
from .sheet import read_sheet, sample_files


def check_datasets(config: dict) -> None:
    """Check every data set at parse time: exactly one of ``path`` and ``sheet``, and a valid sample sheet.

    A sheet data set without ``batch_key`` gets the sheet's default (its batch column, else its sample
    column), so that the rules that need batches (integration) and the report see it. Raises `ConfigError`
    with one line naming the key (and, for a bad sheet, the sheet and its line).
    """
    for name, entry in config["datasets"].items():
        has_path, has_sheet = bool(entry.get("path")), bool(entry.get("sheet"))
        if has_path == has_sheet:
            raise ConfigError(f"config key datasets.{name}: give exactly one of path (a counts file or folder) "
                              f"and sheet (a sample sheet), not {'both' if has_path else 'neither'}")
        if has_sheet:
            try:
                sheet = read_sheet(entry["sheet"])
            except ScfactorError as exc:
                raise ConfigError(f"config key datasets.{name}.sheet: {exc}") from None
            if entry.get("batch_key") is None:
                entry["batch_key"] = sheet.default_batch_key


def _entry(config: dict, name: str) -> dict:
    if name not in config["datasets"]:
        raise ValueError(f"unknown dataset '{name}' (config datasets: {', '.join(config['datasets'])})")
    return config["datasets"][name]


def preprocess_inputs(config: dict, name: str, wrap: Callable[[str], list] = lambda p: [p]) -> list[str]:
    """Input files of data set ``name``'s preprocess job: its counts path, or its sheet and every file of
    every sample (10x folders as their matrix, barcodes and features files), so that a changed sample
    reruns the job. ``wrap`` maps one path to its input list (the rule passes ``resource_inputs``, which
    adds the checksum marker for bundled files)."""
    entry = _entry(config, name)
    if entry.get("sheet"):
        sheet = read_sheet(entry["sheet"])
        paths = [entry["sheet"]] + [f for s in sheet.samples for f in sample_files(s.path)]
    else:
        paths = [entry["path"]]
    return list(dict.fromkeys(f for p in paths for f in wrap(p)))


def preprocess_source(config: dict, name: str, staged: str | None = None) -> str:
    """The input option of preprocess.py for data set ``name``: ``--input PATH`` or ``--sample-sheet TSV``
    (shell-quoted). ``staged``: the path the job sees instead of the configured one (the rule's first input,
    a copy staged from object storage when the run uses it; samples are found relative to a staged sheet)."""
    entry = _entry(config, name)
    if entry.get("sheet"):
        return shlex.join(["--sample-sheet", staged or entry["sheet"]])
    return shlex.join(["--input", staged or entry["path"]])


def preprocess_command(config: dict, name: str, staged: dict | None = None) -> str:
    """Options of preprocess.py for data set ``name`` (its entry + the global settings), shell-quoted.
    ``staged``: {file named in the config: the job's copy} (`scfactor.core.options.Step.argv`)."""
    return STEP.command(_entry(config, name), config["preprocess"], staged=staged)


def preprocess_files(config: dict, name: str) -> list[str]:
    """Files the options of data set ``name`` name (its ``gene_list``): inputs of its preprocess job."""
    return STEP.files(_entry(config, name), config["preprocess"])
