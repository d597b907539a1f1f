"""bioml.pp: QC, normalisation and highly variable genes for counts and log data."""

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import bioml as bm
from bioml.errors import ConfigError


def _counts(n_obs=120, n_vars=300, seed=0):
    rng = np.random.default_rng(seed)
    mu = rng.lognormal(0.5, 1.0, n_vars)
    X = rng.poisson(mu, size=(n_obs, n_vars)).astype(np.float32)
    a = ad.AnnData(X)
    a.obs_names = [f"s{i}" for i in range(n_obs)]
    a.var_names = [f"g{j}" for j in range(n_vars)]
    a.obs["batch"] = pd.Categorical(np.repeat(["b0", "b1", "b2"], n_obs // 3))
    return a


def _log(n_obs=30, n_vars=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(8, 1, size=(n_obs, n_vars)) * rng.uniform(0.2, 2, n_vars)
    a = ad.AnnData(X.astype(np.float64))
    a.obs_names = [f"s{i}" for i in range(n_obs)]
    a.var_names = [f"p{j}" for j in range(n_vars)]
    a.obs["batch"] = pd.Categorical(np.repeat(["1", "2", "3"], n_obs // 3))
    return a


def test_counts_filters_normalises_and_keeps_raw():
    a = _counts()
    a.X[:5, :] = 0
    a.X[:5, :3] = 1  # five poor samples detecting 3 genes
    a.X[:, 10] = 0  # a gene never detected
    a.X[:2, 11] = 4
    a.X[2:, 11] = 0  # a gene detected in 2 samples
    raw = a.copy()
    bm.pp.qc(a, batch_key="batch", min_genes=50, min_samples=3, n_top_genes=100)
    assert a.n_obs == raw.n_obs - 5
    assert "g10" not in a.var_names and "g11" not in a.var_names
    np.testing.assert_array_equal(a.layers["counts"], raw[a.obs_names, a.var_names].X)
    # X is log1p of counts scaled to 1e4 per sample (over the genes kept by the filter)
    sums = np.expm1(a.X.astype(np.float64)).sum(axis=1)
    np.testing.assert_allclose(sums, 1e4, rtol=1e-4)
    assert a.var["highly_variable"].sum() == 100
    info = a.uns["bioml"]["qc"]
    assert info["filter"]["samples_removed"] == 5
    assert info["filter"]["genes_removed"] >= 2
    assert info["hvg"]["params"]["batch_key"] == "batch"


def test_qc_removing_everything_names_the_threshold():
    a = _counts()
    with pytest.raises(ConfigError, match="min_genes"):
        bm.pp.qc(a, min_genes=10_000)


def test_mitochondrial_filter():
    a = _counts()
    a.var_names = [("MT-" if j < 5 else "G") + str(j) for j in range(a.n_vars)]
    a.X[:4, :5] = 1e4  # four samples dominated by MT counts
    bm.pp.filter_samples_genes(a, min_genes=0, max_pct_mt=20)
    assert a.n_obs == 116
    assert (a.obs["pct_counts_mt"] <= 20).all()


def test_log_data_passes_through_unchanged_but_drops_constant_genes():
    a = _log()
    a.X[:, 7] = 5.0  # constant gene
    before = a.copy()
    bm.pp.qc(a, data_type="log", batch_key="batch", n_top_genes=50)
    assert "p7" not in a.var_names and a.n_vars == 199 and a.n_obs == 30
    np.testing.assert_array_equal(a.X, before[:, a.var_names].X)  # no log1p, no scaling
    assert "counts" not in a.layers
    assert len(a.uns["bioml"]["qc"]["normalize"]["steps"]) == 0


def test_log_hvg_by_variance_matches_numpy():
    a = _log()
    bm.pp.highly_variable_genes(a, data_type="log", n_top_genes=20)
    expected = set(a.var_names[np.argsort(-a.X.var(axis=0, ddof=1))[:20]])
    assert set(a.var_names[a.var["highly_variable"]]) == expected


def test_batch_aware_log_hvg_ignores_pure_batch_shifts():
    a = _log()
    codes = a.obs["batch"].cat.codes.to_numpy()
    a.X[:, 0] = 8 + 10.0 * codes + np.random.default_rng(1).normal(0, 0.01, a.n_obs)
    bm.pp.highly_variable_genes(a, data_type="log", n_top_genes=10)
    assert a.var.loc["p0", "highly_variable"]  # naive ranking prefers the batch-shifted gene
    bm.pp.highly_variable_genes(a, data_type="log", n_top_genes=10, batch_key="batch")
    assert not a.var.loc["p0", "highly_variable"]
    assert a.var.loc["p0", "highly_variable_rank"] > 150


def test_counts_hvg_singleton_batch_falls_back_with_warning(caplog):
    a = _counts()
    a.obs["batch"] = pd.Categorical(["lonely"] + ["b"] * (a.n_obs - 1))
    bm.pp.normalize(a)
    with caplog.at_level(logging.WARNING, logger="bioml.pp"):
        bm.pp.highly_variable_genes(a, n_top_genes=50, batch_key="batch")
    assert "lonely" in caplog.text
    assert a.var["highly_variable"].sum() == 50
    assert "batch_key" not in a.uns["bioml"]["qc"]["hvg"]["params"]


def test_hvg_subset_and_unknown_batch_key():
    a = _counts()
    bm.pp.normalize(a)
    with pytest.raises(ConfigError, match="'nope'"):
        bm.pp.highly_variable_genes(a, batch_key="nope")
    bm.pp.highly_variable_genes(a, n_top_genes=40, subset=True)
    assert a.n_vars == 40


def test_qc_result_round_trips_h5ad(tmp_path):
    a = _counts()
    bm.pp.qc(a, batch_key="batch", min_genes=10, n_top_genes=50)
    a.write_h5ad(tmp_path / "q.h5ad")
    b = ad.read_h5ad(tmp_path / "q.h5ad")
    assert b.uns["bioml"]["qc"]["hvg"]["n_highly_variable"] == 50


def test_qc_summary_and_figure():
    a = _counts()
    n0 = a.shape
    bm.pp.qc(a, batch_key="batch", min_genes=10, n_top_genes=50)
    s = bm.pp.qc_summary(a, n_obs_before=n0[0], n_vars_before=n0[1]).set_index("metric")["value"]
    assert s["samples_before"] == 120 and s["highly_variable_genes"] == 50
    assert s["normalisation_steps"] == "normalize_total,log1p"
    fig = bm.pl.qc_metrics(a, batch_key="batch")
    assert len(fig.axes) == 3
    b = _log()
    bm.pp.qc(b, data_type="log", n_top_genes=10)
    assert len(bm.pl.qc_metrics(b, batch_key="batch").axes) == 2


def test_simulated_counts_through_qc():
    a = bm.sim.simulate_counts(n_obs=300, n_vars=400, seed=1)
    bm.pp.qc(a, batch_key="batch", min_genes=10, n_top_genes=100)
    assert a.var["highly_variable"].sum() == 100
    assert np.isfinite(a.X).all()


@pytest.mark.parametrize("flavor", ["seurat", "cell_ranger", "seurat_v3", "variance"])
def test_every_counts_flavour_flags_n_top_genes(flavor):
    a = _counts()
    bm.pp.qc(a, batch_key="batch", min_genes=10, n_top_genes=60, hvg_flavor=flavor)
    assert a.var["highly_variable"].sum() == 60
    assert sorted(a.var["highly_variable_rank"]) == list(range(a.n_vars))
    assert a.uns["bioml"]["qc"]["hvg"]["params"]["flavor"] == flavor
