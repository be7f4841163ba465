"""The package's own rules, checked as tests: import boundaries, thin scripts, one source per option,
docstrings on every public function."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from conftest import REPO
from scfactor.core import cli, options

PKG = REPO / "workflow" / "scfactor"
SCRIPTS = REPO / "workflow" / "scripts"
ANALYSES = ("densify", "integrate", "mtl", "nbmix", "layers", "grn")
SHARED = ("core", "preprocess")
MAX_SCRIPT_LINES = 20


def _modules(folder: Path):
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _scfactor_imports(path: Path, root: Path = PKG) -> set[str]:
    """Top-level scfactor subpackages a module imports (absolute or relative); ``root`` is the package folder."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(root).parts  # e.g. ("nbmix", "model.py")
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[:-1])[: len(rel) - node.level]
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [mod + ("." + a.name if not node.module and not base else "") for a in node.names]
                if not base and not node.module:
                    names = [a.name for a in node.names]
            elif node.module and node.module.startswith("scfactor"):
                names = [node.module.removeprefix("scfactor").lstrip(".")] if node.module != "scfactor" \
                    else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.removeprefix("scfactor.") for a in node.names if a.name.startswith("scfactor.")]
        for n in names:
            if n:
                found.add(n.split(".")[0])
    return found


def test_package_layout():
    """Shared code in core/ and preprocess/, one package per analysis, nothing else at the top level."""
    top = {p.name for p in PKG.iterdir() if not p.name.startswith("__")}
    expected = set(SHARED) | set(ANALYSES)
    assert top <= expected, f"modules outside core/, preprocess/ and the analysis packages: {sorted(top - expected)}"
    for name in expected:
        assert (PKG / name / "__init__.py").exists(), f"missing package scfactor.{name}"


@pytest.mark.parametrize("pkg", SHARED + ANALYSES)
def test_import_boundaries(pkg):
    """core imports nothing else; preprocess only core; an analysis only core, preprocess and itself."""
    allowed = {"core": {"core"}, "preprocess": {"core", "preprocess"}}.get(pkg, {"core", "preprocess", pkg})
    bad = {}
    for mod in _modules(PKG / pkg):
        wrong = _scfactor_imports(mod) - allowed
        if wrong:
            bad[str(mod.relative_to(PKG))] = sorted(wrong)
    assert not bad, f"imports across package boundaries: {bad}"


def test_boundary_check_catches_a_cross_import(tmp_path):
    """The boundary test itself: a module of one analysis importing another is detected."""
    fake = tmp_path / "nbmix" / "_boundary_probe.py"      # outside the package: tests run in parallel
    fake.parent.mkdir()
    fake.write_text("from ..grn import model\nfrom scfactor.core import io\n")
    assert _scfactor_imports(fake, root=tmp_path) == {"grn", "core"}


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_scripts_are_thin(script):
    """Each script is at most 20 lines and calls one step function of a package's cli module."""
    text = (SCRIPTS / script).read_text()
    assert len(text.splitlines()) <= MAX_SCRIPT_LINES, f"{script}: {len(text.splitlines())} lines"
    m = re.search(r"^from scfactor\.(\w+\.cli|core\.steps) import (\w+)", text, re.M)
    assert m, f"{script}: does not import a step function from a package's cli module"
    assert "raise SystemExit(run(" in text, f"{script}: does not run its step through scfactor.core.cli.run"


class _Captured(Exception):
    def __init__(self, parser):
        self.parser = parser


def _step_parser(module: str, func: str, monkeypatch):
    """The argparse parser a step function builds (captured when it starts parsing)."""
    mod = importlib.import_module(module)

    def capture(p, argv=None):
        raise _Captured(p)

    monkeypatch.setattr(cli, "start", capture)
    with pytest.raises(_Captured) as exc:
        getattr(mod, func)([])
    return exc.value.parser


def _schema_keys(step) -> set[str]:
    keys = set()
    for g in step.groups:
        node = options.schema_at(options.load_schema(g.schema), g.at)
        found = set(node.get("properties", {}))
        if g.include is not None:       # a group of a few keys: only those are the step's
            found &= {i.split(".")[0] for i in g.include}
        keys |= found
    return keys


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_cli_defaults_come_from_the_schema(script, monkeypatch):
    """Every option of a script that the schema defines has the schema's default, type and choices; no
    hand-written option repeats a schema key of the same step."""
    text = (SCRIPTS / script).read_text()
    m = re.search(r"^from (scfactor\.(?!core\.cli)[\w.]+) import (\w+)  # noqa", text, re.M)
    assert m, script
    module, func = m.groups()
    parser = _step_parser(module, func, monkeypatch)
    steps = [v for v in vars(importlib.import_module(module)).values() if isinstance(v, options.Step)]
    # a cli module with several steps: the script's own one (Step name == step function name), since two
    # steps may share an option name with different defaults (``seed`` of a fit and of a simulator)
    steps = [s for s in steps if s.name == func] or steps
    by_dest = {o.dest: o for s in steps for o in s.options}
    schema_keys = set().union(*(_schema_keys(s) for s in steps)) if steps else set()
    for action in parser._actions:
        if action.dest in ("help", "threads", "verbose"):
            continue
        opt = by_dest.get(action.dest)
        if opt is None:
            assert action.dest not in schema_keys, \
                f"{script}: --{action.dest} is written by hand but defined in the schema"
            continue
        default = tuple(action.default) if isinstance(action.default, list) else action.default
        if not opt.required:
            assert default == opt.default, f"{script}: --{action.dest} default {default!r} != schema {opt.default!r}"


def test_cli_and_schema_disagreement_is_caught(monkeypatch):
    """The defaults test itself: a parser default that differs from the schema is detected."""
    step = options.Step("probe", options.Group("config", "preprocess"))
    p = cli.parser("probe", step)
    p.set_defaults(n_hvg=7)
    opt = {o.dest: o for o in step.options}["n_hvg"]
    assert p.get_default("n_hvg") != opt.default


def test_public_functions_have_docstrings():
    """Every public function and class of the package has a docstring."""
    missing = []
    for mod in _modules(PKG):
        tree = ast.parse(mod.read_text())
        if not ast.get_docstring(tree):
            missing.append(f"{mod.relative_to(PKG)} (module)")
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                    and not node.name.startswith("_") and not ast.get_docstring(node):
                missing.append(f"{mod.relative_to(PKG)}:{node.name}")
    assert not missing, f"public definitions without a docstring: {missing}"


def test_no_test_loads_a_script_by_path():
    """Tests import the package; scripts are only run as CLIs by Snakemake."""
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("*.py")
                 if re.search(r"spec_from_file_location|workflow/scripts|SCRIPTS\s*/", p.read_text())
                 and p.name != "test_structure.py"]
    assert not offenders, offenders


def test_rule_files_do_not_shadow_each_others_names():
    """All .smk files share one namespace: a helper imported (or a constant set) by two rule files under the
    same name silently replaces the first one (as two `simulate_command`s once did)."""
    import collections

    seen = collections.defaultdict(set)
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for m in re.finditer(r"^from scfactor[\w.]* import (\([^)]*\)|[^\n]*)", text, re.M):
            for item in re.sub(r"#[^\n]*", "", m.group(1)).strip("()").split(","):
                if item.strip():
                    seen[item.split(" as ")[-1].strip()].add(smk.name)
        for m in re.finditer(r"^([A-Za-z_]\w*) = ", text, re.M):
            seen[m.group(1)].add(smk.name)
    clashes = {name: sorted(files) for name, files in seen.items() if len(files) > 1}
    assert not clashes, clashes
