"""Linear-model removal (limma's removeBatchEffect), per-gene batch tests, confounding checks."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from conftest import agreement, load_reference
from statsmodels.stats.anova import anova_lm

import bioml as bm
from bioml.design import build_design
from bioml.errors import ConfoundedDesignError, DesignError

# ------------------------------------------------------------------ limma agreement

LIMMA_CASES = {
    "limma_batch": dict(batch_key="batch"),
    "limma_batch_design": dict(batch_key="batch", covariates=["cancer"]),
    "limma_two_batches_cov": dict(
        batch_key="batch", batch_key2="batch2", batch_covariates=["conc"], covariates=["cancer"]
    ),
    "limma_design_age": dict(batch_key="batch", covariates=["cancer", "age"]),
}


@pytest.mark.parametrize("case", sorted(LIMMA_CASES))
def test_remove_batch_effect_matches_limma(bladder, case):
    a = bladder.copy()
    a.obs["batch2"] = a.obs["batch2"].astype("category")
    bm.pp.remove_batch_effect(a, **LIMMA_CASES[case])
    ref = load_reference(case)
    ours = a[:, ref.index].X.T  # probes x samples, as R
    assert list(ref.columns) == list(a.obs_names)
    assert agreement(ours, ref.to_numpy()) < 1e-8


def test_batch_only_centres_on_unweighted_mean_of_batch_means(bladder):
    a = bladder.copy()
    bm.pp.remove_batch_effect(a, batch_key="batch")
    codes = a.obs["batch"].cat.codes.to_numpy()
    X0 = bladder.X
    means = np.stack([X0[codes == b].mean(axis=0) for b in range(5)])
    for b in range(5):
        np.testing.assert_allclose(a.X[codes == b].mean(axis=0), means.mean(axis=0), atol=1e-10)


def test_float32_stays_float32_and_close_to_float64(bladder):
    a32 = bladder.copy()
    a32.X = a32.X.astype(np.float32)
    a64 = bladder.copy()
    bm.pp.remove_batch_effect(a32, batch_key="batch", covariates=["cancer"])
    bm.pp.remove_batch_effect(a64, batch_key="batch", covariates=["cancer"])
    assert a32.X.dtype == np.float32
    np.testing.assert_allclose(a32.X, a64.X, atol=1e-4)


def test_aliased_design_is_refused_and_nothing_changes(bladder):
    sub = bladder[bladder.obs["batch"].isin(["1", "3", "4"])].copy()
    before = sub.X.copy()
    with pytest.raises(ConfoundedDesignError) as e:
        bm.pp.remove_batch_effect(sub, batch_key="batch", covariates=["cancer"])
    msg = str(e.value)
    for fragment in (
        "batch=1 only has cancer=Cancer",
        "batch=3 only has cancer=Normal",
        "batch=4 only has cancer=Biopsy",
        "drop the confounded covariate",
        "merge",
    ):
        assert fragment in msg
    np.testing.assert_array_equal(sub.X, before)
    with pytest.raises(ConfoundedDesignError):
        bm.pp.correct(sub, method="none", batch_key="batch", covariates=["cancer"])


def test_singleton_batch_is_erased_as_limma_with_warning(caplog):
    rng = np.random.default_rng(0)
    X = rng.normal(5, 1, (9, 30))
    obs = pd.DataFrame(
        {"batch": pd.Categorical(["a"] * 4 + ["b"] * 4 + ["c"])}, index=[f"s{i}" for i in range(9)]
    )
    a = ad.AnnData(X, obs=obs)
    with caplog.at_level("WARNING", logger="bioml.pp"):
        bm.pp.remove_batch_effect(a, batch_key="batch")
    assert "single sample" in caplog.text
    centre = np.mean([X[:4].mean(0), X[4:8].mean(0), X[8]], axis=0)
    np.testing.assert_allclose(a.X[8], centre, atol=1e-12)
    assert list(a.uns["bioml"]["correction"]["singleton_batches"]) == ["batch=c"]


def test_nan_input_is_a_clear_error():
    a = ad.AnnData(np.ones((6, 3)), obs=pd.DataFrame({"batch": list("aabbcc")}, index=list("uvwxyz")))
    a.X[1, 2] = np.nan
    with pytest.raises(bm.errors.DataValueError, match="1 NaN"):
        bm.pp.remove_batch_effect(a)


def test_design_builder_codings():
    obs = pd.DataFrame(
        {"b": pd.Categorical(["x", "y", "z", "x", "y", "z"]), "c": [0.1, 0.5, 0.2, 0.9, 0.3, 0.7]}
    )
    s = build_design(obs, batch_key="b", covariates=["c"])
    assert s.columns == ["intercept", "c", "b[S.x]", "b[S.y]"]
    np.testing.assert_array_equal(s.matrix[:3, 2:], [[1, 0], [0, 1], [-1, -1]])
    i = build_design(obs, batch_key="b", covariates=["c"], intercept=False, batch_coding="indicator")
    assert i.columns == ["c", "b[x]", "b[y]", "b[z]"]
    with pytest.raises(DesignError, match="single level"):
        build_design(obs.assign(b="x"), batch_key="b")
    with pytest.raises(DesignError, match="'nope'"):
        build_design(obs, batch_key="nope")


# -------------------------------------------------------------- per-gene batch tests


def test_batch_tests_match_statsmodels_anova(bladder):
    table = bm.pp.batch_effect_tests(bladder, batch_key="batch", covariates=["cancer"], inplace=False)
    for g in (0, 17, 1234):
        df = bladder.obs[["batch", "cancer"]].copy()
        df["y"] = bladder.X[:, g]
        full = smf.ols("y ~ C(cancer) + C(batch)", df).fit()
        reduced = smf.ols("y ~ C(cancer)", df).fit()
        res = anova_lm(reduced, full)
        assert table["F"].iloc[g] == pytest.approx(res["F"].iloc[1], rel=1e-9)
        assert table["pvalue"].iloc[g] == pytest.approx(res["Pr(>F)"].iloc[1], rel=1e-7)
    from statsmodels.stats.multitest import multipletests

    np.testing.assert_allclose(table["fdr"], multipletests(table["pvalue"], method="fdr_bh")[1])


def test_batch_tests_before_and_after_linear_removal():
    adata = bm.sim.simulate_counts(600, 300, confounding=0.3, seed=2)
    bm.pp.qc(adata, min_genes=10, n_top_genes=100)
    bm.pp.batch_effect_tests(adata, batch_key="batch", covariates=["condition"])
    before = adata.uns["batch_test"]["fraction_significant"]
    bm.pp.remove_batch_effect(adata, batch_key="batch", covariates=["condition"])
    after = bm.pp.batch_effect_tests(adata, batch_key="batch", covariates=["condition"], inplace=False)
    assert before > 0.5
    assert (after["fdr"] < 0.05).mean() == 0.0
    assert after["F"].max() < 1e-6


# ------------------------------------------------------------------ confounding


def test_bladderbatch_passes_with_quantified_warning(bladder):
    r = bm.pp.check_confounding(bladder, batch_key="batch", covariates=["cancer"])
    assert r["status"] == "warn"
    assert r["design_rank"] == 7 and len(r["design_columns"]) == 7
    assert r["associations"][0]["value"] == pytest.approx(0.7428, abs=1e-4)
    vif = r["variance_inflation"]
    assert vif["cancer[T.Cancer]"] == pytest.approx(2.3265, abs=1e-4)
    assert vif["cancer[T.Normal]"] == pytest.approx(2.7025, abs=1e-4)
    assert r["associations"][0]["table"]["3"] == {"Biopsy": 0, "Cancer": 0, "Normal": 4}
    assert "confounding" in bladder.uns
    t = bm.pp.confounding_table(r)
    assert t["flagged"].all() and (t["status"] == "warn").all()


def test_aliased_bladder_subset_is_refused(bladder):
    sub = bladder[bladder.obs["batch"].isin(["1", "3", "4"])].copy()
    with pytest.raises(ConfoundedDesignError, match="only has cancer"):
        bm.pp.check_confounding(sub, batch_key="batch", covariates=["cancer"])
    r = bm.pp.check_confounding(sub, batch_key="batch", covariates=["cancer"], raise_on_aliased=False)
    assert r["status"] == "refused" and "only has cancer" in r["message"]
    assert r["associations"][0]["value"] == pytest.approx(1.0)


def test_confounding_sweep_on_the_simulator():
    statuses, vs = [], []
    for c in (0.0, 0.7, 0.9, 1.0):  # V is close to c, so 0.5 sits on the warning threshold
        a = bm.sim.simulate_counts(900, 10, confounding=c, seed=0)
        r = bm.pp.check_confounding(a, batch_key="batch", covariates=["condition"], raise_on_aliased=False)
        statuses.append(r["status"])
        vs.append(r["associations"][0]["value"])
    assert statuses == ["ok", "warn", "warn", "refused"]
    assert vs == sorted(vs)


def test_continuous_covariate_r2_and_singletons():
    obs = pd.DataFrame(
        {"batch": pd.Categorical(list("aaabbbc")), "age": [1.0, 1.1, 0.9, 5.0, 5.2, 4.9, 3.0]},
        index=[f"s{i}" for i in range(7)],
    )
    r = bm.pp.check_confounding(obs, batch_key="batch", covariates=["age"])
    a = r["associations"][0]
    assert a["statistic"] == "r2" and a["value"] > 0.9 and a["flagged"]
    assert r["singleton_batches"] == ["batch=c"]
    assert r["status"] == "warn"


def test_limma_silently_leaves_aliased_batch_in_place_we_refuse(bladder):
    """On the aliased subset limma returns its input unchanged ("Coefficients not
    estimable"); bioml refuses instead of pretending to have corrected."""
    sub = bladder[bladder.obs["batch"].isin(["1", "3", "4"])].copy()
    ref = load_reference("limma_aliased")
    assert list(ref.columns) == list(sub.obs_names)
    assert agreement(sub[:, ref.index].X.T, ref.to_numpy()) < 1e-12  # R changed nothing
    with pytest.raises(ConfoundedDesignError):
        bm.pp.remove_batch_effect(sub, batch_key="batch", covariates=["cancer"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inputs_are_never_modified(dtype):
    rng = np.random.default_rng(3)
    obs = pd.DataFrame({"batch": pd.Categorical(list("aabbcc") * 3)}, index=[f"s{i}" for i in range(18)])
    a = ad.AnnData(rng.normal(5, 1, (18, 7)).astype(dtype), obs=obs)
    X0 = a.X.copy()
    bm.pp.batch_effect_tests(a, batch_key="batch", inplace=False)
    np.testing.assert_array_equal(a.X, X0)
    b = bm.pp.remove_batch_effect(a, batch_key="batch", copy=True)
    np.testing.assert_array_equal(a.X, X0)
    assert b.X.dtype == dtype and not np.array_equal(b.X, X0)


def test_views_and_layers_leave_the_parent_untouched():
    rng = np.random.default_rng(4)
    obs = pd.DataFrame({"batch": pd.Categorical(list("aabbcc") * 4)}, index=[f"s{i}" for i in range(24)])
    parent = ad.AnnData(rng.normal(5, 1, (24, 6)), obs=obs)
    parent.layers["log"] = parent.X.copy() + 1
    X0 = parent.X.copy()
    view = parent[:12]
    bm.pp.remove_batch_effect(view, batch_key="batch")
    np.testing.assert_array_equal(parent.X, X0)
    bm.pp.remove_batch_effect(parent, batch_key="batch", layer="log")
    np.testing.assert_array_equal(parent.X, X0)
    expected = bm.pp.remove_batch_effect(ad.AnnData(X0 + 1, obs=obs), batch_key="batch", copy=True).X
    np.testing.assert_allclose(parent.layers["log"], expected, atol=1e-12)
