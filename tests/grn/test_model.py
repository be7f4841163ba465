"""GRN between cell states (seed 003): priors, pairing, masked models, script, bad inputs, workflow."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from conftest import assert_clean_failure, run_script, snakemake
from scfactor import grn_inputs as gi
from scfactor.core.errors import InputError
from scfactor.models import grn as models

torch.set_num_threads(1)   # the shared 2-core machine: more threads only spin against other processes


# --------------------------------------------------------------------------- simulated data
def planted(n=400, p=20, t=40, density=0.25, seed=0):
    """TF matrix, a prior mask, a sparse signed true network inside it (plus one edge outside), targets."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    mask = rng.random((p, t)) < density
    true = mask & (rng.random((p, t)) < 0.5)
    w = np.zeros((p, t))
    w[true] = rng.choice([-1.0, 1.0], true.sum()) * rng.uniform(0.5, 1.5, true.sum())
    mask[0, 0], w[0, 0] = False, 2.0          # a real effect the prior does not allow
    y = x @ w + 3.0 + 0.3 * rng.normal(size=(n, t))
    return x, y, mask, w, true


def load_script(name):
    """Import workflow/scripts/<name> as a module."""
    import importlib.util
    from conftest import SCRIPTS
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py") + "_script", SCRIPTS / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_grn_inprocess(*args):
    """grn.py main() in this process (no interpreter start-up); a CompletedProcess-like result."""
    import contextlib
    import io as _io
    import types
    script = load_script("grn.py")
    err = _io.StringIO()
    with contextlib.redirect_stderr(err):
        code = script.cli.run(script.main, [str(a) for a in args])
    return types.SimpleNamespace(returncode=code, stderr=err.getvalue())


def write_prior(path, rows):
    pd.DataFrame(rows, columns=["tf", "confidence", "target", "mor"]).to_csv(path, index=False)
    return path


@pytest.fixture
def toy(tmp_path):
    """A preprocessed-like .h5ad with two states and a DoRothEA-format prior over its genes."""
    import anndata as ad
    rng = np.random.default_rng(1)
    tfs = [f"TF{i}" for i in range(6)]
    targets = [f"G{i}" for i in range(30)]
    genes = tfs + targets
    n = 240
    counts = rng.poisson(2.0, size=(n, len(genes))).astype(np.float32)
    x = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)
    a = ad.AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
                   var=pd.DataFrame(index=genes))
    a.obs["label"] = pd.Categorical(np.where(np.arange(n) < n // 2, "stemA", "stemB"))
    a.obs["batch"] = pd.Categorical(["all"] * n)
    a.var["highly_variable"] = True
    h5 = tmp_path / "toy.h5ad"
    a.write_h5ad(h5)
    rows = [(tf, "A", g, 1.0 if (i + j) % 3 else -1.0) for i, tf in enumerate(tfs)
            for j, g in enumerate(targets) if (i * 7 + j) % 4 == 0]
    prior = write_prior(tmp_path / "prior.csv", rows)
    return h5, prior, tmp_path


def outputs(d, stem="o"):
    return {k: d / f"{stem}.{k}.{ext}" for k, ext in
            (("edges", "tsv"), ("weights", "npz"), ("r2", "tsv"), ("metrics", "tsv"))}


def grn_cmd(h5, prior, outs, *extra):
    args = ["--input", h5, "--prior", prior, "--source-labels", "stemA", "--target-labels", "stemB",
            "--mlp-epochs", "20", "--n-pcs", "5", "--device", "cpu"]
    for k, v in outs.items():
        args += [f"--{k}", v]
    return [*args, *extra]


# --------------------------------------------------------------------------- priors
def test_read_prior_dorothea_signs_and_confidence(tmp_path):
    p = write_prior(tmp_path / "p.csv", [("T1", "A", "G1", 1.0), ("T1", "B", "G2", -1.0),
                                         ("T1", "D", "G3", 1.0), ("T2", "A", "G1", 1.0),
                                         ("T2", "C", "G1", -1.0), ("T2", "A", "T2", 1.0)])
    e = gi.read_prior(p, confidence=("A", "B", "C"))
    got = {(r.tf, r.target): r.sign for r in e.itertuples()}
    assert got == {("T1", "G1"): 1, ("T1", "G2"): -1, ("T2", "G1"): 0}   # D dropped, conflict -> 0, no self loop


def test_read_prior_trrust(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("TF\tTarget\tRegulation\tReference\nA\tB\tActivation\t1\nA\tC\tRepression\t2\n"
                 "A\tD\tUnknown\t3\nA\tB\tActivation\t4\n")
    e = gi.read_prior(p)
    assert list(e["sign"]) == [1, -1, 0] and list(e["target"]) == ["B", "C", "D"]


def test_bundled_priors_read():
    from conftest import RESOURCES
    hs = gi.read_prior(RESOURCES / "priors" / "dorothea_hs_ABC.csv")
    mm = gi.read_prior(RESOURCES / "priors" / "dorothea_mm_ABC.csv")
    assert "STAT1" in set(hs["tf"]) and "Pdx1" in set(mm["tf"])
    assert set(hs["sign"]) <= {-1, 0, 1} and (hs["sign"] == -1).any()


# --------------------------------------------------------------------------- models
def test_masked_linear_recovers_planted_signs_and_keeps_zeros():
    x, y, mask, w, true = planted()
    xs, _, _ = models.standardise(x)
    model, fit = models.fit_masked_linear(xs, y, mask, l1=0.02, l2=0.0, tol=1e-9, max_iter=5000)
    west = model.weight().detach().numpy()
    assert fit.converged
    assert np.all(west[~mask] == 0.0)                       # exactly zero, incl. the planted (0, 0) edge
    assert np.mean(np.sign(west[true]) == np.sign(w[true])) >= 0.98
    decoys = mask & ~true
    assert np.abs(west[decoys]).mean() < 0.1 * np.abs(west[true]).mean()
    assert np.allclose(model.bias.detach().numpy(), y.mean(0))      # x centred: bias = target mean
    agree = models.sign_agreement(west, np.sign(w).astype(np.int8) * mask, mask)
    assert agree["agreement"] >= 0.98 and agree["pvalue"] < 1e-6


def test_masked_linear_matches_sklearn_elastic_net():
    from sklearn.linear_model import ElasticNet
    x, y, mask, _, _ = planted(n=200, p=12, t=6, density=0.5, seed=3)
    xs, _, _ = models.standardise(x)
    l1, l2 = 0.05, 0.03
    model, _ = models.fit_masked_linear(xs, y, mask, l1=l1, l2=l2, tol=1e-12, max_iter=20000)
    west = model.weight().detach().numpy()
    for j in range(y.shape[1]):
        f = np.flatnonzero(mask[:, j])
        ref = ElasticNet(alpha=l1 + l2, l1_ratio=l1 / (l1 + l2), tol=1e-13, max_iter=100000).fit(xs[:, f], y[:, j])
        np.testing.assert_allclose(west[f, j], ref.coef_, atol=1e-6)
        assert abs(model.bias[j].item() - ref.intercept_) < 1e-6


def test_masked_mlp_is_restricted_to_prior_tfs():
    x, y, mask, _, _ = planted(n=100, p=10, t=8, seed=4)
    model, _ = models.fit_masked_mlp(x, y, mask, hidden=3, epochs=5, seed=0)
    base = models.predict(model, x)
    for tf in range(mask.shape[0]):
        x2 = x.copy()
        x2[:, tf] += 5.0
        changed = np.abs(models.predict(model, x2) - base).max(axis=0) > 0
        assert not np.any(changed & ~mask[tf])              # targets without this prior TF never move


def test_masked_mlp_fits_nonlinear_target_better_than_linear():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 4))
    y = np.stack([np.abs(x[:, 0]) * 2, x[:, 1] ** 2, np.maximum(x[:, 2], 0) * 3], axis=1) + 0.1 * rng.normal(size=(300, 3))
    mask = np.eye(4, 3, dtype=bool)
    tr, te = slice(0, 200), slice(200, None)
    lin, _ = models.fit_masked_linear(x[tr], y[tr], mask, l1=0.0, l2=0.0)
    mlp, _ = models.fit_masked_mlp(x[tr], y[tr], mask, hidden=8, epochs=250, lr=0.03, l2=0.0, seed=0)
    r_lin = models.r2_per_target(y[te], models.predict(lin, x[te]))
    r_mlp = models.r2_per_target(y[te], models.predict(mlp, x[te]))
    assert np.all(r_mlp > 0.95) and np.all(r_mlp > r_lin + 0.2), (r_lin, r_mlp)


def test_mlp_deterministic():
    x, y, mask, _, _ = planted(n=80, p=8, t=5, seed=6)
    torch.set_num_threads(1)
    a = models.predict(models.fit_masked_mlp(x, y, mask, hidden=2, epochs=10, seed=7)[0], x)
    b = models.predict(models.fit_masked_mlp(x, y, mask, hidden=2, epochs=10, seed=7)[0], x)
    assert np.array_equal(a, b)


# --------------------------------------------------------------------------- pairing, states
def test_ot_pairing_is_the_exact_optimum():
    rng = np.random.default_rng(0)
    za, zb = rng.normal(size=(6, 3)), rng.normal(size=(7, 3)) + 2
    ia, ib = gi.pair_cells(za, zb, "ot", 6, seed=1)
    assert len(set(ia)) == len(set(ib)) == 6
    best = min(sum(((za[ia[k]] - zb[ib[p[k]]]) ** 2).sum() for k in range(6))
               for p in itertools.permutations(range(6)))
    assert gi.pair_cost(za, zb, ia, ib) * 6 == pytest.approx(best)
    ra, rb = gi.pair_cells(za, zb, "random", 6, seed=1)
    assert gi.pair_cost(za, zb, ia, ib) <= gi.pair_cost(za, zb, ra, rb)
    assert np.array_equal(gi.pair_cells(za, zb, "random", 6, seed=1)[1], rb)


def test_transfer_labels_fills_from_neighbours():
    import anndata as ad
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (60, 20)), rng.normal(6, 1, (60, 20))]).astype(np.float32)
    lab = np.array(["a"] * 60 + ["b"] * 60, dtype=object)
    hidden = rng.random(120) < 0.5
    obs = pd.DataFrame({"label": pd.Categorical(np.where(hidden, None, lab))}, index=[f"c{i}" for i in range(120)])
    a = ad.AnnData(X=x, obs=obs)
    filled = gi.transfer_labels(a, k=5, n_pcs=5)
    assert (filled.to_numpy() == lab).all()


def test_empty_state_error():
    obs = pd.DataFrame({"label": ["x", "y"], "batch": ["b", "b"]})
    with pytest.raises(InputError, match="is empty"):
        gi.select_state(obs, gi.StateSpec("A", ("z",)), "d.h5ad")


# --------------------------------------------------------------------------- script
def test_script_outputs_and_determinism(toy):
    h5, prior, d = toy
    o1, o2 = outputs(d, "a"), outputs(d, "b")
    proc = run_script("grn.py", *grn_cmd(h5, prior, o1))
    assert proc.returncode == 0, proc.stderr
    assert "FISTA iterations" in proc.stderr and "mlp epoch" in proc.stderr
    assert run_grn_inprocess(*grn_cmd(h5, prior, o2)).returncode == 0    # second run in-process
    for k in ("edges", "r2", "metrics"):
        assert o1[k].read_bytes() == o2[k].read_bytes(), k
    edges = pd.read_csv(o1["edges"], sep="\t")
    assert list(edges.columns) == ["tf", "target", "weight", "sign", "prior_sign"]
    pr = gi.read_prior(prior)
    allowed = set(zip(pr["tf"], pr["target"]))
    assert set(zip(edges["tf"], edges["target"])) <= allowed
    assert (np.sign(edges["weight"]) == edges["sign"]).all()
    with np.load(o1["weights"]) as f:
        assert np.all(f["weight"][~f["mask"]] == 0) and f["mask"].sum() == len(edges)
        assert f["y_test"].shape == f["pred_linear"].shape == f["pred_mlp"].shape
    m = pd.read_csv(o1["metrics"], sep="\t")
    assert {"linear", "mlp", "mean_baseline", "pairing"} <= set(m["model"])
    r2 = pd.read_csv(o1["r2"], sep="\t")
    assert len(r2) == edges["target"].nunique()
    assert run_script("grn.py", "--help").returncode == 0


@pytest.mark.parametrize("rows, mentions", [
    ([("STAT1", "A", "G1", 1.0), ("IRF9", "A", "G2", -1.0)], "TFs is among"),           # no prior TF in the data
    ([("tf0", "A", "g1", 1.0), ("tf1", "A", "g2", -1.0)], "mismatched gene names"),    # other species' symbols
], ids=["no_prior_tf_among_genes", "mismatched_gene_names"])
def test_bad_input_prior_genes(toy, rows, mentions):
    h5, _, d = toy
    o = outputs(d)
    proc = run_grn_inprocess(*grn_cmd(h5, write_prior(d / "p.csv", rows), o))
    assert_clean_failure(proc, mentions=mentions, outputs=o.values())


def test_bad_input_empty_cell_state(toy):
    h5, prior, d = toy
    o = outputs(d)
    args = grn_cmd(h5, prior, o)
    args[args.index("stemB")] = "no such state"
    proc = run_grn_inprocess(*args)
    assert_clean_failure(proc, mentions="is empty", outputs=o.values())


def test_bad_input_unreadable_prior(toy):
    h5, _, d = toy
    bad = d / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    o = outputs(d)
    assert_clean_failure(run_grn_inprocess(*grn_cmd(h5, bad, o)), mentions="bad.csv", outputs=o.values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_cuda_device_fails_clearly(toy):
    h5, prior, d = toy
    o = outputs(d)
    args = grn_cmd(h5, prior, o)
    args[args.index("cpu")] = "cuda"
    assert_clean_failure(run_grn_inprocess(*args), mentions="cuda", outputs=o.values())


# --------------------------------------------------------------------------- workflow
@pytest.mark.workflow
def test_workflow_tiny(tiny_workdir):
    import yaml
    cfg = yaml.safe_load((tiny_workdir / "config.yaml").read_text())
    names = list(cfg["grn"]["transitions"])
    figs = [f"results/figures/grn/{names[0]}_{k}.png" for k in ("edges", "residuals", "signs")]  # one set: time
    snakemake(tiny_workdir, "--cores", "2", "results/grn/summary.tsv", *figs)
    summary = pd.read_csv(tiny_workdir / "results/grn/summary.tsv", sep="\t")
    assert sorted(summary["transition"]) == sorted(names)
    assert (summary["data:n_prior_edges"] > 0).all() and (summary["linear:fista_converged"] == 1).all()
    for n in names:
        edges = pd.read_csv(tiny_workdir / f"results/grn/{n}/edges.tsv", sep="\t")
        assert len(edges) > 0 and set(edges["prior_sign"]) <= {-1, 0, 1}
        assert (edges["weight"] != 0).any()
    for k in ("edges", "residuals", "signs"):
        assert (tiny_workdir / f"results/figures/grn/{names[0]}_{k}.png").stat().st_size > 10_000
        assert (tiny_workdir / f"results/figures/grn/{names[0]}_{k}.pdf").exists()
    kang = pd.read_csv(tiny_workdir / f"results/grn/{names[0]}/edges.tsv", sep="\t")
    assert kang["tf"].str.isupper().all()                      # human prior on human data
    panc = pd.read_csv(tiny_workdir / f"results/grn/{names[1]}/edges.tsv", sep="\t")
    assert not panc["tf"].str.isupper().all()                  # mouse prior (Pdx1-style symbols)

