"""The nbmix command lines: options and defaults from the schemas, rule command lines valid for the scripts."""

from __future__ import annotations

import copy
import shlex

import pytest
import yaml

from conftest import REPO, load_tiny_config, run_cli
from scfactor.core import cli
from scfactor.core.options import check_argv
from scfactor.nbmix.cli import FIT, LEIDEN, SIMULATE, nbmix_figures, nbmix_fit, nbmix_leiden, nbmix_summary, \
    simulate_nbmix
from scfactor.nbmix.smk import fit_command, leiden_command, nbmix_input, nbmix_runs, simulate_command, simulations


def _configs():
    return {"default": yaml.safe_load((REPO / "config" / "config.yaml").read_text()),
            "paper": yaml.safe_load((REPO / "config" / "paper.yaml").read_text()),
            "tiny": load_tiny_config()}


@pytest.mark.parametrize("name", ["default", "paper", "tiny"])
def test_rule_command_lines_parse(name):
    """Every command line the rules build from a shipped config is accepted by its script's options."""
    config = _configs()[name]
    config.setdefault("results", "results")
    assert nbmix_runs(config)
    for run in nbmix_runs(config):
        nbmix_input(config, run)
        check_argv(FIT, shlex.split(fit_command(config, run)))
        check_argv(LEIDEN, shlex.split(leiden_command(config, run)))
    for sim in simulations(config):
        check_argv(SIMULATE, shlex.split(simulate_command(config, sim)))


def test_script_defaults_are_the_schema_defaults():
    """The disagreements of issue 13: nrep (1 on the command line, 3 in the schema) and drop_empty_cells (off on
    the command line, on in the workflow) now have one source."""
    p = cli.parser(nbmix_fit, FIT)
    opts = FIT.from_args(p.parse_args(["--k", "2"]))
    assert opts == FIT.defaults(k=2)
    assert opts.nrep == 3 and opts.drop_empty_cells is True and opts.leiden_resolution == 1.0
    assert LEIDEN.defaults().drop_empty_cells is True and not hasattr(LEIDEN.defaults(), "k")


def test_commands_carry_config_values():
    config = copy.deepcopy(_configs()["default"])
    config["nbmix"]["leiden"] = {"resolution": 0.7, "n_pcs": 20}
    config["nbmix"]["runs"]["kang"]["drop_empty_cells"] = False
    fit = shlex.split(fit_command(config, "kang"))
    assert fit[fit.index("--nrep") + 1] == "2"  # config.yaml's explicit demo value
    # the leiden initialisation of EM takes the baseline's resolution, nothing else of nbmix.leiden
    assert fit[fit.index("--leiden-resolution") + 1] == "0.7" and "--n-neighbors" not in fit
    assert "--no-drop-empty-cells" in fit and fit[fit.index("--batch") + 1] == "ctrl"
    lei = shlex.split(leiden_command(config, "kang"))
    assert lei[lei.index("--resolution") + 1] == "0.7" and lei[lei.index("--n-pcs") + 1] == "20"
    assert "--k" not in lei
    # an unset value takes the schema default
    assert fit[fit.index("--max-iters") + 1] == "100"


def test_unknown_names_are_named():
    config = _configs()["tiny"]
    with pytest.raises(ValueError, match="unknown nbmix run 'nope'"):
        fit_command(config, "nope")
    with pytest.raises(ValueError, match="unknown simulation 'nope'"):
        simulate_command(config, "nope")
    with pytest.raises(ValueError, match="neither a simulate.nbmix entry"):
        nbmix_input(config, "nope")


@pytest.mark.parametrize("step", [nbmix_fit, nbmix_leiden, nbmix_figures, nbmix_summary, simulate_nbmix])
def test_help(step):
    proc = run_cli(step, "--help")
    assert proc.returncode == 0 and step.__doc__.splitlines()[0][:40] in " ".join(proc.stdout.split())


def test_bad_option_is_one_line(tmp_path):
    proc = run_cli(nbmix_fit, "--input", tmp_path / "x.h5ad", "--k", 2, "--nrep", 0, "--output", tmp_path / "o",
                   "--metrics", tmp_path / "m", "--trace", tmp_path / "t")
    assert proc.returncode == 2
    errs = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errs) == 1 and "--nrep" in errs[0] and "Traceback" not in proc.stderr
