"""What the MTL rules take from the config: runs, tissues, shard paths and valid command lines."""

from __future__ import annotations

import shlex

import pytest
import yaml
from jsonschema import Draft202012Validator, validators

from conftest import REPO, load_tiny_config
from scfactor.core.options import check_argv, load_schema
from scfactor.mtl import cli, smk


def _with_defaults(schema: str, values: dict) -> dict:
    """``values`` validated against ``schema`` with defaults filled in (as ``validate_section`` does)."""
    def set_defaults(validator, properties, instance, sch):
        for k, sub in properties.items():
            if isinstance(instance, dict) and "default" in sub:
                instance.setdefault(k, sub["default"])
        yield from Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, sch)
    v = validators.extend(Draft202012Validator, {"properties": set_defaults})(load_schema(schema))
    v.validate(values)
    return values


def _config(path) -> dict:
    cfg = yaml.safe_load(path.read_text()) if path is not None else load_tiny_config()
    cfg = {"mtl": cfg.get("mtl", {}), "simulate": {"mtl": cfg.get("simulate", {}).get("mtl", {})}}
    _with_defaults("mtl", cfg["mtl"])
    _with_defaults("simulate_mtl", cfg["simulate"]["mtl"])
    return cfg


CONFIGS = {"tiny": None, "default": REPO / "config" / "config.yaml", "paper": REPO / "config" / "paper.yaml"}


@pytest.mark.parametrize("name", CONFIGS)
def test_rule_command_lines_parse(name):
    cfg = _config(CONFIGS[name])
    check_argv(cli.SIMULATE, shlex.split(smk.simulate_command(cfg)))
    for run in smk.runs(cfg):
        for step, words in ((cli.LASSO, smk.lasso_command(cfg, run)),
                            (cli.SELECT_GENES, smk.select_genes_command(cfg, run)),
                            (cli.GENE_CLUSTERS, smk.gene_clusters_command(cfg, run))):
            check_argv(step, shlex.split(words))
        for model in smk.models(cfg):
            check_argv(cli.TRAIN_SHARD, shlex.split(smk.train_shard_command(cfg, run, model)))
    for run in smk.runs(cfg, "h5ad"):
        check_argv(cli.VELOCITY, shlex.split(smk.velocity_command(cfg, run)))
        check_argv(cli.TF_ACTIVITY, shlex.split(smk.tf_activity_command(cfg, run)))


def test_run_overrides_and_ablation():
    cfg = _config(None)
    pan = shlex.split(smk.train_shard_command(cfg, "pancreas", "lambda0"))
    assert pan[pan.index("--lam") + 1] == "0.0" and pan[pan.index("--epochs") + 1] == "2"
    sim = shlex.split(smk.train_shard_command(cfg, "sim", "tracenorm"))
    assert sim[sim.index("--lam") + 1] == "0.01"
    genes = shlex.split(smk.select_genes_command(cfg, "pancreas"))
    assert genes[genes.index("--num-genes") + 1] == "4" and genes[genes.index("--min-cells") + 1] == "100"
    assert shlex.split(smk.gene_clusters_command(cfg, "pancreas"))[-1] == "1"   # n_clusters override
    cfg["mtl"]["datasets"]["pancreas"]["epochs"] = 7
    pan = shlex.split(smk.train_shard_command(cfg, "pancreas", "tracenorm"))
    assert pan[pan.index("--epochs") + 1] == "7"
    vel = shlex.split(smk.velocity_command(cfg, "pancreas"))
    assert vel[vel.index("--tissue-key") + 1] == "clusters_coarse" and vel[vel.index("--tissues") + 1] == "Ductal"


def test_shards_and_tissues():
    cfg = _config(None)
    assert smk.tissues(cfg, "sim") == ["tissue1"] and smk.tissues(cfg, "pancreas") == ["Ductal"]
    assert smk.shards(cfg, "results", "sim") == [
        f"results/mtl/sim/tissue1/shards/{m}/c{c:02d}_r0.tsv" for m in ("tracenorm", "lambda0") for c in (0, 1)]
    assert len(smk.shards(cfg, "results", "pancreas")) == 2
    cfg["mtl"]["train"]["ablation"] = False
    assert smk.models(cfg) == ["tracenorm"]
    cfg["mtl"]["datasets"]["x"] = {"source": "h5ad", "tissue_key": "k", "tissues": ["Ngn3 high EP"]}
    assert smk.tissues(cfg, "x") == ["Ngn3_high_EP"]
    with pytest.raises(ValueError, match="unknown mtl run 'nope'"):
        smk.tissues(cfg, "nope")
