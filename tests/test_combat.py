"""bm.pp.combat: agreement with sva::ComBat and the edge cases it handles on purpose.

Two references:
- R fixtures (``tests/reference/fixtures``, made by ``make_reference.R`` with sva 3.46):
  the first 300 rows of sva's output on the first 2000 bladderbatch probes. The input is
  read from ``../shared`` and the tests skip when it is absent. Agreement is
  max |ours - R| / (max(R) - min(R)) (decisions.md item 12).
- ``_sva_port``: a line-by-line Python transcription of sva's R code (per-gene loops, raw
  likelihood products, the missing-value branch), slow but obviously like the R source,
  used on small synthetic data for the cases the fixtures do not cover (missing values,
  reference batch with non-parametric priors, numeric covariates).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import bioml as bm
from bioml.errors import ConfigError, ConfoundedDesignError, DataValueError, DesignError, InputError
from bioml.pp._combat import combat, combat_matrix

FIXTURES = Path(__file__).resolve().parent / "reference" / "fixtures"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BLADDER = SHARED / "data" / "bladderbatch"
N_GENES = 2000

# ------------------------------------------------------------------------------------
# a transcription of sva 3.46 ComBat (R/ComBat.R, R/helper.R), loops and all
# ------------------------------------------------------------------------------------


def _sva_port(dat, batch, mod=None, par_prior=True, mean_only=False, ref=None):
    """dat: genes x samples (NaN allowed); batch: integer codes; mod: samples x q, no intercept."""
    dat = np.array(dat, dtype=np.float64)
    k = int(batch.max()) + 1
    N = dat.shape[1]
    batches = [np.flatnonzero(batch == b) for b in range(k)]
    nb = np.array([len(i) for i in batches])
    zero = set()
    for i in batches:
        if len(i) > 1:
            for g in range(dat.shape[0]):
                if np.var(dat[g, i], ddof=1) == 0:  # NaN (missing values) is not 0, as in R
                    zero.add(g)
    keep = [g for g in range(dat.shape[0]) if g not in zero]
    orig = dat.copy()
    dat = dat[keep]
    if (nb == 1).any():
        mean_only = True
    batchmod = np.zeros((N, k))
    batchmod[np.arange(N), batch] = 1
    if ref is not None:
        batchmod[:, ref] = 1
    design = batchmod if mod is None else np.hstack([batchmod, mod])
    nas = np.isnan(dat).any()

    def beta_na(y, X):
        m = ~np.isnan(y)
        d = X[m]
        return np.linalg.solve(d.T @ d, d.T @ y[m])

    if not nas:
        B = np.linalg.solve(design.T @ design, design.T @ dat.T)
    else:
        B = np.stack([beta_na(y, design) for y in dat], axis=1)
    grand = B[ref] if ref is not None else (nb / N) @ B[:k]
    resid = dat - (design @ B).T
    cols = batches[ref] if ref is not None else np.arange(N)
    if not nas:
        var_pooled = (resid[:, cols] ** 2).mean(axis=1)
    else:
        var_pooled = np.nanvar(resid[:, cols], axis=1, ddof=1)
    tmp = design.copy()
    tmp[:, :k] = 0
    stand = grand[:, None] + (tmp @ B).T
    s = (dat - stand) / np.sqrt(var_pooled)[:, None]
    bd = design[:, :k]
    if not nas:
        gamma_hat = np.linalg.solve(bd.T @ bd, bd.T @ s.T)
    else:
        gamma_hat = np.stack([beta_na(y, bd) for y in s], axis=1)
    delta_hat = np.stack(
        [np.ones(len(keep)) if mean_only else np.nanvar(s[:, i], axis=1, ddof=1) for i in batches]
    )
    gbar = gamma_hat.mean(axis=1)
    t2 = gamma_hat.var(axis=1, ddof=1)
    gamma_star = np.zeros_like(gamma_hat)
    delta_star = np.ones_like(gamma_hat)
    for b in range(k):
        if b == ref:  # overwritten with 0 and 1 by sva
            continue
        sdat = s[:, batches[b]]
        if par_prior and mean_only:
            gamma_star[b] = (t2[b] * gamma_hat[b] + gbar[b]) / (t2[b] + 1)
        elif par_prior:  # it.sol
            d = delta_hat[b]
            m, s2 = d.mean(), d.var(ddof=1)
            a, bb = (2 * s2 + m**2) / s2, (m * s2 + m**3) / s2
            n = (~np.isnan(sdat)).sum(axis=1)
            g_old, d_old, change = gamma_hat[b], d, 1.0
            while change > 1e-4:
                g_new = (t2[b] * n * gamma_hat[b] + d_old * gbar[b]) / (t2[b] * n + d_old)
                sum2 = np.nansum((sdat - g_new[:, None]) ** 2, axis=1)
                d_new = (0.5 * sum2 + bb) / (n / 2 + a - 1)
                change = max(np.max(np.abs(g_new - g_old) / g_old), np.max(np.abs(d_new - d_old) / d_old))
                g_old, d_old = g_new, d_new
            gamma_star[b], delta_star[b] = g_new, d_new
        else:  # int.eprior
            g_hat, d_hat = gamma_hat[b], delta_hat[b]
            for i in range(len(keep)):
                g, d = np.delete(g_hat, i), np.delete(d_hat, i)
                x = sdat[i][~np.isnan(sdat[i])]
                n = len(x)
                sum2 = ((x[None, :] - g[:, None]) ** 2).sum(axis=1)
                LH = 1 / (2 * np.pi * d) ** (n / 2) * np.exp(-sum2 / (2 * d))
                LH[np.isnan(LH)] = 0
                gamma_star[b, i] = (g * LH).sum() / LH.sum()
                delta_star[b, i] = (d * LH).sum() / LH.sum()
    out = s.copy()
    for b, i in enumerate(batches):
        out[:, i] = (out[:, i] - (bd[i] @ gamma_star).T) / np.sqrt(delta_star[b])[:, None]
    out = out * np.sqrt(var_pooled)[:, None] + stand
    if ref is not None:
        out[:, batches[ref]] = dat[:, batches[ref]]
    orig[keep] = out
    return orig


def _agreement(ours, ref):
    return np.nanmax(np.abs(ours - ref)) / (np.nanmax(ref) - np.nanmin(ref))


def _synthetic(n=48, G=80, k=4, seed=0, sizes=None):
    """Samples x genes log-scale data with batch location and scale effects, a 3-level factor and an age."""
    rng = np.random.default_rng(seed)
    sizes = sizes or [n // k] * k
    n = sum(sizes)
    batch = np.repeat(np.arange(k), sizes)
    cond = np.array(["ctl", "trt", "kd"])[np.arange(n) % 3]
    age = rng.uniform(20, 70, n)
    X = rng.normal(7, 1, (1, G)) + rng.normal(0, 1, (n, G)) * rng.uniform(0.3, 1, G)
    X += (cond == "trt")[:, None] * rng.normal(0, 1, G) + 0.01 * age[:, None]
    X += rng.normal(0, 0.8, (k, G))[batch]
    X *= rng.uniform(0.6, 1.6, (k, G))[batch]
    obs = pd.DataFrame(
        {
            "batch": pd.Categorical([str(b + 1) for b in batch]),
            "cond": pd.Categorical(cond, categories=["ctl", "kd", "trt"]),
            "age": age,
        },
        index=[f"s{i}" for i in range(n)],
    )
    return X, obs


def _mod(obs, covariates):
    """sva's mod without its intercept: treatment contrasts of factors, numeric columns as they are."""
    cols = []
    for c in covariates:
        s = obs[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            cols += [(s == lv).to_numpy(float) for lv in s.cat.categories[1:]]
        else:
            cols.append(s.to_numpy(float))
    return np.column_stack(cols) if cols else None


def _adata(X, obs):
    a = ad.AnnData(X.copy(), obs=obs.copy())  # combat corrects a dense float X in place
    a.var_names = [f"g{j}" for j in range(X.shape[1])]
    return a


# ------------------------------------------------------------------------------------
# agreement with the R fixtures
# ------------------------------------------------------------------------------------

R_CASES = {
    # case: (keyword arguments, tolerance)
    "combat_param": (dict(), 1e-6),
    "combat_param_mod": (dict(covariates=["cancer"]), 1e-6),
    "combat_param_mod_age": (dict(covariates=["cancer", "age"]), 1e-6),
    "combat_nonparam_mod": (dict(covariates=["cancer"], parametric=False), 1e-4),
    "combat_meanonly_mod": (dict(covariates=["cancer"], mean_only=True), 1e-6),
    "combat_nonparam_meanonly": (dict(parametric=False, mean_only=True), 1e-4),
    "combat_ref1_mod": (dict(covariates=["cancer"], ref_batch=2), 1e-6),
    "combat_singleton": (dict(), 1e-6),
    "combat_constant_gene": (dict(covariates=["cancer"]), 1e-6),
}


@pytest.fixture(scope="module")
def bladder():
    if not (BLADDER / "bladder_expr.tsv.gz").exists() or not (FIXTURES / "cases.json").exists():
        pytest.skip("bladderbatch data (../shared) or the R fixtures are absent")
    expr = pd.read_csv(BLADDER / "bladder_expr.tsv.gz", sep="\t", index_col=0, nrows=N_GENES)
    pheno = pd.read_csv(BLADDER / "bladder_pheno.tsv", sep="\t", index_col=0).loc[expr.columns]
    extra = pd.read_csv(FIXTURES / "pheno_extra.tsv", sep="\t", index_col=0).loc[expr.columns]
    obs = pd.DataFrame(
        {
            "batch": pd.Categorical(pheno["batch"].astype(str), categories=["1", "2", "3", "4", "5"]),
            "cancer": pd.Categorical(pheno["cancer"], categories=["Biopsy", "Cancer", "Normal"]),
            "age": extra["age"].astype(float),
        },
        index=expr.columns,
    )
    cases = json.loads((FIXTURES / "cases.json").read_text())["cases"]
    return ad.AnnData(expr.to_numpy().T.copy(), obs=obs, var=pd.DataFrame(index=expr.index)), cases


def _case_input(adata, case, desc):
    a = adata
    if case == "combat_singleton":
        a = adata[desc["samples"]].copy()
        a.obs["batch"] = a.obs["batch"].cat.remove_unused_categories()
    elif case == "combat_constant_gene":
        a = adata.copy()
        rows = np.array(desc["modified_rows_1based"]) - 1
        a.X[np.ix_((a.obs["batch"] == "1").to_numpy(), rows)] = desc["modified_value"]
    return a


@pytest.mark.parametrize("case", list(R_CASES))
def test_agrees_with_sva(bladder, case):
    adata, cases = bladder
    kwargs, tol = R_CASES[case]
    desc = cases[case]
    ref = pd.read_csv(FIXTURES / desc["fixture"], sep="\t", index_col=0)
    a = _case_input(adata, case, desc)
    out = combat(a, batch_key="batch", copy=True, **kwargs)
    ours = pd.DataFrame(out.X.T, index=a.var_names, columns=a.obs_names).loc[ref.index, ref.columns]
    agreement = _agreement(ours.to_numpy(), ref.to_numpy())
    assert agreement < tol, f"{case}: max |ours - R| / range = {agreement:.2e}"
    info = out.uns["bioml"]["correction"]
    if case == "combat_singleton":
        assert info["mean_only_used"]
        assert any("one batch has only one sample" in m for m in info["messages"])
    if case == "combat_constant_gene":
        assert desc["result_rows_3_7"]["unchanged_from_input"]
        probes = desc["modified_probes"]
        assert list(info["unadjusted_genes"]) == probes
        np.testing.assert_array_equal(out[:, probes].X, a[:, probes].X)
        assert not np.isnan(out.X).any()
    if case == "combat_ref1_mod":
        in_ref = (a.obs["batch"] == "2").to_numpy()
        np.testing.assert_array_equal(out.X[in_ref], a.X[in_ref])


def test_aliased_design_is_refused_like_sva(bladder):
    adata, cases = bladder
    desc = cases["combat_aliased"]
    assert "confounded" in desc["error"]
    a = adata[desc["samples"]].copy()
    a.obs["batch"] = a.obs["batch"].cat.remove_unused_categories()
    before = a.X.copy()
    with pytest.raises(ConfoundedDesignError, match="confounded"):
        combat(a, batch_key="batch", covariates=["cancer"])
    np.testing.assert_array_equal(a.X, before)
    assert "correction" not in a.uns.get("bioml", {})


# ------------------------------------------------------------------------------------
# the transcription of sva on synthetic data
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(covariates=["cond", "age"]),
        dict(covariates=["cond"], parametric=False),
        dict(covariates=["cond"], ref_batch="3", parametric=False),
        dict(covariates=["age"], ref_batch="2"),
        dict(mean_only=True, parametric=False),
    ],
    ids=["param-factor-age", "nonparam", "nonparam-ref", "ref-age", "nonparam-meanonly"],
)
@pytest.mark.parametrize("with_nan", [False, True], ids=["complete", "nan"])
def test_matches_the_transcription_of_sva(kwargs, with_nan):
    X, obs = _synthetic(n=40, G=60, sizes=[8, 12, 10, 10], seed=1)
    if with_nan:
        X[np.random.default_rng(2).random(X.shape) < 0.05] = np.nan
    codes = obs["batch"].cat.codes.to_numpy()
    ref = None if kwargs.get("ref_batch") is None else int(kwargs["ref_batch"]) - 1
    expected = _sva_port(
        X.T,
        codes,
        _mod(obs, kwargs.get("covariates", ())),
        par_prior=kwargs.get("parametric", True),
        mean_only=kwargs.get("mean_only", False),
        ref=ref,
    ).T
    out, info = combat_matrix(X, obs, batch_key="batch", nan_policy="ignore", **kwargs)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(X))
    assert _agreement(out, expected) < 1e-10
    assert info["n_nan"] == int(np.isnan(X).sum())


# ------------------------------------------------------------------------------------
# edge cases
# ------------------------------------------------------------------------------------


def test_singleton_batch_switches_to_mean_only(caplog):
    X, obs = _synthetic(sizes=[12, 12, 1, 12])
    a = _adata(X, obs)
    with caplog.at_level(logging.WARNING, logger="bioml.pp"):
        combat(a, batch_key="batch", covariates=["cond"])
    info = a.uns["bioml"]["correction"]
    assert info["mean_only_used"] and not info["params"]["mean_only"]
    assert "one batch has only one sample" in caplog.text
    assert any("mean.only=TRUE" in m for m in info["messages"])
    assert np.isfinite(a.X).all()
    expected = _sva_port(X.T, obs["batch"].cat.codes.to_numpy(), _mod(obs, ["cond"])).T
    assert _agreement(a.X, expected) < 1e-10


def test_constant_genes_are_left_unadjusted(caplog):
    X, obs = _synthetic()
    X[obs["batch"].to_numpy() == "2", 5] = 3.25  # constant within batch 2
    X[obs["batch"].to_numpy() == "4", 9] = 0.0  # all zeros within batch 4
    a = _adata(X, obs)
    with caplog.at_level(logging.WARNING, logger="bioml.pp"):
        combat(a, batch_key="batch")
    info = a.uns["bioml"]["correction"]
    assert list(info["unadjusted_genes"]) == ["g5", "g9"] and info["n_unadjusted_genes"] == 2
    np.testing.assert_array_equal(a.X[:, [5, 9]], X[:, [5, 9]])
    assert np.isfinite(a.X).all()
    assert "uniform expression within a single batch" in caplog.text
    # the other genes are corrected with priors that leave those two out, as sva does
    expected = _sva_port(X.T, obs["batch"].cat.codes.to_numpy()).T
    assert _agreement(a.X, expected) < 1e-10


def test_nan_error_names_count_and_first_position():
    X, obs = _synthetic()
    X[3, 7] = np.nan
    X[10, 2] = np.nan
    a = _adata(X, obs)
    with pytest.raises(DataValueError, match=r"2 missing \(NaN\) values.*sample 's3'.*gene 'g7'"):
        combat(a, batch_key="batch")
    assert "bioml" not in a.uns
    np.testing.assert_array_equal(a.X, X)


def test_nan_ignore_keeps_nan_and_corrects_the_rest():
    X, obs = _synthetic()
    X[3, 7] = np.nan
    X[obs["batch"].to_numpy() == "1", 11] = np.nan  # a gene with no value in batch 1
    a = _adata(X, obs)
    combat(a, batch_key="batch", covariates=["cond"], nan_policy="ignore")
    np.testing.assert_array_equal(np.isnan(a.X), np.isnan(X))
    info = a.uns["bioml"]["correction"]
    assert "g11" in list(info["unadjusted_genes"])
    np.testing.assert_array_equal(a.X[:, 11], X[:, 11])
    assert np.isfinite(a.X[:, 7][~np.isnan(X[:, 7])]).all()
    assert any("missing values" in m for m in info["messages"])


def test_infinite_values_are_refused():
    X, obs = _synthetic()
    X[0, 0] = np.inf
    with pytest.raises(DataValueError, match="infinite"):
        combat_matrix(X, obs, batch_key="batch", nan_policy="ignore")


def test_float32_in_float32_out():
    X, obs = _synthetic()
    out64, _ = combat_matrix(X, obs, batch_key="batch", covariates=["cond"])
    out32, _ = combat_matrix(X.astype(np.float32), obs, batch_key="batch", covariates=["cond"])
    assert out64.dtype == np.float64 and out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-5, atol=1e-5)
    outi, _ = combat_matrix(np.rint(X * 100).astype(np.int32), obs, batch_key="batch")
    assert outi.dtype == np.float64
    # in place (contiguous batches: the blocks are views of X) == into a new array
    for dtype in (np.float32, np.float64):
        for cov in ([], ["age"], ["cond", "age"]):
            Y = X.astype(dtype)
            new, _ = combat_matrix(Y, obs, batch_key="batch", covariates=cov)
            combat_matrix(Y, obs, batch_key="batch", covariates=cov, out=Y)
            np.testing.assert_array_equal(Y, new)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_gives_the_dense_result(fmt):
    X, obs = _synthetic(G=90)
    X[X < 6] = 0.0  # sparse-looking data; some genes are all zeros in a batch
    dense, info_d = combat_matrix(X, obs, batch_key="batch", covariates=["cond", "age"])
    sp = sparse.csr_matrix(X) if fmt == "csr" else sparse.csc_matrix(X)
    out, info_s = combat_matrix(sp, obs, batch_key="batch", covariates=["cond", "age"], chunk_size=7)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, dense, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(info_s["unadjusted"], info_d["unadjusted"])
    assert info_d["unadjusted"].any()
    # with missing values and a reference batch
    X[2, 3] = X[20, 50] = np.nan
    kw = dict(batch_key="batch", covariates=["cond"], ref_batch="2", nan_policy="ignore")
    dense, _ = combat_matrix(X, obs, **kw)
    out, _ = combat_matrix(
        sparse.csr_matrix(X) if fmt == "csr" else sparse.csc_matrix(X), obs, chunk_size=11, **kw
    )
    np.testing.assert_allclose(out, dense, rtol=0, atol=1e-10)


def test_sparse_statistics_are_read_in_gene_chunks(monkeypatch):
    """The sparse matrix is densified one gene chunk at a time, never whole."""
    X, obs = _synthetic(G=50)
    sp = sparse.csc_matrix(np.where(X > 6, X, 0.0))
    widths = []
    real = sparse.csc_matrix.toarray

    def spy(self, *args, **kwargs):
        widths.append(self.shape[1])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(sparse.csc_matrix, "toarray", spy)
    combat_matrix(sp, obs, batch_key="batch", chunk_size=8)
    assert widths and max(widths) <= 8


def test_dense_output_memory_check():
    X, obs = _synthetic()
    with pytest.raises(InputError, match=r"MiB.*max_dense_bytes.*highly_variable_genes"):
        combat_matrix(sparse.csr_matrix(X), obs, batch_key="batch", max_dense_bytes=1000)
    combat_matrix(sparse.csr_matrix(X), obs, batch_key="batch", max_dense_bytes=X.nbytes)


def test_anndata_in_place_uns_and_h5ad(tmp_path):
    X, obs = _synthetic()
    a = _adata(X.astype(np.float32), obs)
    buf = a.X
    assert combat(a, batch_key="batch", covariates=["cond"], ref_batch=3) is None
    assert a.X is buf and a.X.dtype == np.float32  # corrected in place
    info = a.uns["bioml"]["correction"]
    assert info["method"] == "combat"
    params = dict(info["params"])
    assert list(params.pop("covariates")) == ["cond"]
    assert params == dict(
        batch_key="batch", parametric=True, mean_only=False, ref_batch="3", nan_policy="error"
    )
    assert info["mean_only_used"] is False and info["n_unadjusted_genes"] == 0
    assert len(info["unadjusted_genes"]) == 0
    a.write_h5ad(tmp_path / "c.h5ad")  # no None values anywhere
    back = ad.read_h5ad(tmp_path / "c.h5ad").uns["bioml"]["correction"]
    assert back["params"]["ref_batch"] == "3" and list(back["params"]["covariates"]) == ["cond"]
    assert len(back["unadjusted_genes"]) == 0
    # empty lists too
    b = _adata(X, obs)
    combat(b, batch_key="batch")
    b.write_h5ad(tmp_path / "d.h5ad")
    back = ad.read_h5ad(tmp_path / "d.h5ad").uns["bioml"]["correction"]
    assert len(back["params"]["covariates"]) == 0 and len(back["messages"]) == 0


def test_copy_and_layer():
    X, obs = _synthetic()
    a = _adata(np.zeros_like(X), obs)
    a.layers["log"] = X.copy()
    out = combat(a, batch_key="batch", layer="log", copy=True)
    np.testing.assert_array_equal(a.layers["log"], X)  # original untouched
    assert (out.X == 0).all()  # X untouched, the layer corrected
    expected, _ = combat_matrix(X, obs, batch_key="batch")
    np.testing.assert_array_equal(out.layers["log"], expected)
    with pytest.raises(InputError, match="layer 'nope'"):
        combat(a, batch_key="batch", layer="nope")


def test_view_is_not_written_through():
    X, obs = _synthetic()
    parent = _adata(X, obs)
    view = parent[:, :40]
    combat(view, batch_key="batch")
    np.testing.assert_array_equal(parent.X, X)
    assert not view.is_view and "correction" in view.uns["bioml"]
    assert "bioml" not in parent.uns


def test_ref_batch_is_returned_unchanged_and_others_move_to_it():
    X, obs = _synthetic()
    out, info = combat_matrix(X, obs, batch_key="batch", covariates=["cond"], ref_batch=2)
    in_ref = obs["batch"].to_numpy() == "2"
    np.testing.assert_array_equal(out[in_ref], X[in_ref])
    assert info["ref_batch"] == "2"
    assert (info["gamma_star"][1] == 0).all() and (info["delta_star"][1] == 1).all()
    # each other batch's mean moves towards the reference batch's mean
    for b in ["1", "3", "4"]:
        sel = obs["batch"].to_numpy() == b
        before = np.abs(X[sel].mean(0) - X[in_ref].mean(0)).mean()
        after = np.abs(out[sel].mean(0) - X[in_ref].mean(0)).mean()
        assert after < before
    with pytest.raises(ConfigError, match="levels: 1, 2, 3, 4"):
        combat_matrix(X, obs, batch_key="batch", ref_batch="9")


def test_mean_only_shifts_each_batch_without_rescaling():
    X, obs = _synthetic()
    out, info = combat_matrix(X, obs, batch_key="batch", mean_only=True)
    assert info["mean_only_used"] and (info["delta_star"] == 1).all()
    for b in obs["batch"].cat.categories:
        sel = obs["batch"].to_numpy() == b
        shift = out[sel] - X[sel]
        np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-12)


def test_design_errors_come_from_the_design_builder():
    X, obs = _synthetic()
    a = _adata(X, obs)
    with pytest.raises(DesignError, match="'batchx'"):
        combat(a, batch_key="batchx")
    with pytest.raises(DesignError, match="'nope'"):
        combat(a, batch_key="batch", covariates=["nope"])
    # a covariate aliased with batch: refused, adata unchanged
    a.obs["site"] = pd.Categorical(np.where(obs["batch"].isin(["1", "2"]), "A", "B"))
    with pytest.raises(ConfoundedDesignError):
        combat(a, batch_key="batch", covariates=["site"])
    np.testing.assert_array_equal(a.X, X)
    assert "bioml" not in a.uns


def test_bad_arguments():
    X, obs = _synthetic()
    with pytest.raises(ConfigError, match="nan_policy"):
        combat_matrix(X, obs, batch_key="batch", nan_policy="drop")
    with pytest.raises(InputError, match="rows"):
        combat_matrix(X[:-1], obs, batch_key="batch")
    with pytest.raises(ConfigError, match="single sample"):
        X1, obs1 = _synthetic(sizes=[12, 1, 12, 12])
        combat_matrix(X1, obs1, batch_key="batch", ref_batch="2")


def test_many_cells_and_noncontiguous_batches_give_the_same_result():
    """Interleaved batches (gathered rows) and many design cells take other code paths."""
    X, obs = _synthetic(n=60, G=40)
    perm = np.random.default_rng(5).permutation(len(obs))
    out, _ = combat_matrix(X, obs, batch_key="batch", covariates=["cond"])
    out_p, _ = combat_matrix(X[perm], obs.iloc[perm], batch_key="batch", covariates=["cond"])
    np.testing.assert_allclose(out_p, out[perm], atol=1e-12)
    out_f, _ = combat_matrix(
        np.asfortranarray(X[perm]), obs.iloc[perm], batch_key="batch", covariates=["cond"]
    )
    np.testing.assert_allclose(out_f, out[perm], atol=1e-12)
    # a factor making more cells than allowed (64): handled as numeric columns
    X, obs = _synthetic(n=160, G=40)
    obs2 = obs.assign(donor=pd.Categorical([f"d{i % 23:02d}" for i in range(len(obs))]))
    out2, _ = combat_matrix(X, obs2, batch_key="batch", covariates=["donor"])
    expected = _sva_port(X.T, obs2["batch"].cat.codes.to_numpy(), _mod(obs2, ["donor"])).T
    assert _agreement(out2, expected) < 1e-9


def test_exported_from_bm_pp():
    assert combat.__module__ == "bioml.pp._combat"
    if hasattr(bm.pp, "combat"):
        assert bm.pp.combat is combat
