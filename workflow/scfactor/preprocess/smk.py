"""What the preprocess rule needs from the config: the input path and the command line of one data set."""

from __future__ import annotations

from .cli import STEP


def preprocess_command(config: dict, name: str) -> str:
    """Options of preprocess.py for data set ``name`` (its entry + the global settings), shell-quoted."""
    return STEP.command(config["datasets"][name], config["preprocess"])
