"""What the densify rules take from the config: the (dataset, batch) pairs and a valid command line."""

from __future__ import annotations

import shlex

import pytest

from scfactor.core.options import check_argv
from scfactor.densify.cli import DENSIFY
from scfactor.densify.smk import densify_command, densify_pairs


def test_rule_options_and_targets():
    cfg = {"datasets": {"kang": {"batch_key": "condition", "batches": ["ctrl", "stim"]}, "p": {}},
           "densify": {"targets": {"kang": ["ctrl"], "p": ["all"]}, "genes": "liger", "layer": "counts",
                       "arch": "neumf", "loss": "nb", "embedding_dim": 20, "dropout": 0.2, "bn_layers": 2,
                       "epochs": 3, "block_entries": 100, "lr": 0.01, "zero_keep": 1.0, "num_neg": 4,
                       "pretrain_epochs": 0, "heldout_frac": 0.1, "svd_rank": 20, "predict_block": 1000,
                       "accelerator": "auto", "seed": 0, "layers": [64, 32], "threads": 2, "mem_mb": 4000,
                       "runtime": 60}}
    assert densify_pairs(cfg) == [("kang", "ctrl"), ("p", "all")]
    args = densify_command(cfg)
    assert "--loss nb" in args and "--layers 64 32" in args and "--epochs 3" in args
    assert "--threads" not in args and "--mem-mb" not in args and "--runtime" not in args and "targets" not in args
    check_argv(DENSIFY, shlex.split(args))  # the script accepts the rule's command line
    cfg["densify"]["targets"] = {"kang": ["nope"]}
    with pytest.raises(ValueError, match="nope"):
        densify_pairs(cfg)
    cfg["densify"]["targets"] = {"nope": ["ctrl"]}
    with pytest.raises(ValueError, match="unknown dataset"):
        densify_pairs(cfg)
    cfg["densify"]["targets"] = {"kang": ["ctrl;rm"]}
    with pytest.raises(ValueError, match="not a valid name"):
        densify_pairs(cfg)
