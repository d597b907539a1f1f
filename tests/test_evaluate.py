"""Evaluation: integration metrics (extremes, scikit-learn, scanpy and scib-metrics agreement),
ground-truth metrics on simulations, the confounding sweep, the evaluation figures."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import bioml as bm
from bioml.errors import InputError

REF = Path(__file__).resolve().parent / "reference"


def _blobs(separate_batches: bool, n_per=40, seed=0):
    """3 labels x 3 batches of tight blobs; batches on top of each other or far apart."""
    rng = np.random.default_rng(seed)
    X, batch, label = [], [], []
    for lab in range(3):
        for b in range(3):
            centre = np.zeros(6)
            centre[lab] = 20.0
            if separate_batches:
                centre[3 + b] = 20.0
            X.append(centre + rng.normal(scale=0.5, size=(n_per, 6)))
            batch += [f"b{b}"] * n_per
            label += [f"l{lab}"] * n_per
    return np.vstack(X), np.array(batch), np.array(label)


def _adata(X, batch, label, key="X_rep"):
    a = ad.AnnData(
        obs=pd.DataFrame({"batch": batch, "label": label}, index=np.arange(len(batch)).astype(str))
    )
    a.obsm[key] = X
    return a


# ----------------------------------------------------------------------- extremes
def test_metrics_reach_their_extremes():
    mixed = bm.metrics.integration_metrics(_adata(*_blobs(False)), label_key="label", use_rep="X_rep")
    sep = bm.metrics.integration_metrics(_adata(*_blobs(True)), label_key="label", use_rep="X_rep")
    m, s = (t.set_index("metric")["value"] for t in (mixed, sep))
    # batch removal: perfect mixing vs batches far apart
    assert m["asw_batch"] > 0.9 and s["asw_batch"] < 0.1
    assert m["ilisi"] > 0.8 and s["ilisi"] < 0.01
    assert m["kbet"] > 0.85 and s["kbet"] == 0.0
    assert m["pcr_batch"] < 0.01 and s["pcr_batch"] > 0.45
    assert m["graph_connectivity"] == 1.0 and s["graph_connectivity"] == pytest.approx(1 / 3, abs=1e-9)
    # biology: labels perfectly separated in both
    for t in (m, s):
        assert t["clisi"] == pytest.approx(1.0, abs=1e-6)
    assert m["asw_label"] > 0.95 and m["nmi"] > 0.8 and m["ari"] > 0.8
    assert list(mixed.columns) == ["representation", "metric", "value", "kind", "higher_is_better"]
    assert set(mixed["kind"]) == {"batch", "bio"}
    assert not mixed.set_index("metric").loc["pcr_batch", "higher_is_better"]


def test_label_metrics_fall_for_random_labels():
    X, b, lab = _blobs(False)
    rng = np.random.default_rng(1)
    t = bm.metrics.integration_metrics(
        _adata(X, b, rng.permutation(lab)), label_key="label", use_rep="X_rep"
    ).set_index("metric")["value"]
    assert t["clisi"] < 0.25 and t["ari"] < 0.05 and t["nmi"] < 0.05 and 0.4 < t["asw_label"] < 0.55


# ----------------------------------------------------------- agreement with libraries
def test_fast_silhouettes_and_neighbours_match_sklearn():
    from sklearn.metrics import silhouette_samples
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 8))
    lab = rng.integers(0, 4, 400)
    b = rng.integers(0, 3, 400)
    X[np.arange(400), lab] += 2
    assert bm.metrics.asw_label(X, lab) == pytest.approx(
        (silhouette_samples(X, lab).mean() + 1) / 2, abs=1e-12
    )
    _, per = bm.metrics.asw_batch(X, b, lab, return_per_label=True)
    for name, v in per.items():
        m = lab.astype(str) == name
        assert v == pytest.approx(np.mean(1 - np.abs(silhouette_samples(X[m], b[m]))), abs=1e-12)
    knn = bm.metrics.neighbors(X, max_neighbors=30)
    d, i = NearestNeighbors(n_neighbors=30, algorithm="brute").fit(X).kneighbors(X)
    np.testing.assert_array_equal(knn.indices, i)
    np.testing.assert_allclose(knn.distances, d, atol=1e-6)
    assert (knn.indices[:, 0] == np.arange(400)).all()
    assert abs(knn.connectivities - knn.connectivities.T).max() < 1e-6


def test_leiden_is_scanpys():
    import scanpy as sc

    X, b, lab = _blobs(False, n_per=15)
    knn = bm.metrics.neighbors(X + np.random.default_rng(0).normal(scale=3, size=X.shape))
    a = ad.AnnData(obs=pd.DataFrame(index=np.arange(len(lab)).astype(str)))
    for seed in (0, 1):
        sc.tl.leiden(
            a,
            resolution=1.0,
            random_state=seed,
            adjacency=knn.connectivities,
            flavor="igraph",
            n_iterations=2,
            directed=False,
        )
        np.testing.assert_array_equal(bm.metrics.leiden_clusters(knn, seed=seed), a.obs["leiden"].to_numpy())


def _scib():
    ref = json.loads((REF / "scib_metrics.json").read_text())
    df = pd.read_csv(REF / "fixtures" / "scib_fixture.tsv.gz", sep="\t", float_precision="round_trip")
    return ref, df.filter(like="d").to_numpy(), df["batch"].to_numpy(), df["label"].to_numpy()


def test_agrees_with_scib_metrics():
    """scib-metrics' values on a fixed fixture (tests/reference/make_scib_fixture.py)."""
    ref, X, batch, label = _scib()
    knn = bm.metrics.neighbors(X, n_neighbors=15, max_neighbors=90)
    tol = 1e-3
    assert bm.metrics.asw_label(X, label) == pytest.approx(ref["silhouette_label"], abs=tol)
    assert bm.metrics.asw_batch(X, batch, label) == pytest.approx(ref["silhouette_batch"], abs=tol)
    assert bm.metrics.ilisi(knn, batch) == pytest.approx(ref["ilisi"], abs=tol)
    assert bm.metrics.clisi(knn, label) == pytest.approx(ref["clisi"], abs=tol)
    np.testing.assert_allclose(bm.metrics.lisi(knn, batch)[:10], ref["lisi_batch_per_cell_first10"], atol=tol)
    assert bm.metrics.kbet(knn, batch) == pytest.approx(ref["kbet"], abs=tol)
    assert bm.metrics.kbet(knn, batch, k=50) == pytest.approx(ref["kbet_k50"], abs=tol)
    assert bm.metrics.pcr_batch(X, batch) == pytest.approx(ref["pcr_batch"], abs=tol)
    # scib-metrics' graph: the directed 15-NN distance graph, strong components
    idx, dist = knn.subset(15)
    n = len(X)
    G = sparse.csr_matrix((dist.ravel(), idx.ravel(), np.arange(0, n * 15 + 1, 15)), shape=(n, n))
    assert bm.metrics.graph_connectivity(G, label) == pytest.approx(
        ref["graph_connectivity_knn15_strong"], abs=tol
    )
    # documented differences (not within 1e-3 by design): kBET per label and Leiden
    per_label = bm.metrics.kbet(X, batch, label)
    assert 0 <= per_label <= 1 and abs(per_label - ref["kbet_per_label"]) < 0.25


# ----------------------------------------------------------------------- inputs
def test_metric_inputs_are_checked():
    X, b, lab = _blobs(False, n_per=5)
    with pytest.raises(InputError, match="obsm"):
        bm.metrics.integration_metrics(_adata(X, b, lab), label_key="label", use_rep="X_missing")
    with pytest.raises(InputError, match="obs column"):
        bm.metrics.integration_metrics(_adata(X, b, lab), label_key="cell_type", use_rep="X_rep")
    with pytest.raises(InputError):
        bm.metrics.ilisi(X, np.zeros(len(X)))
    with pytest.raises(InputError):
        bm.metrics.kbet(X, b[:-1])


# ------------------------------------------------------------------------ truth
@pytest.fixture(scope="module")
def sim():
    adata, twin = bm.sim.simulate_counts(400, 300, confounding=0.0, return_batch_free=True, seed=2)
    names = adata.var_names.copy()
    keep = np.asarray((adata.X > 0).sum(0) >= 3).ravel()
    adata, twin = adata[:, keep].copy(), twin[:, keep].copy()
    bm.pp.normalize(adata)
    twin = bm.metrics.process_like(twin, adata)
    return adata, twin, names


def test_truth_metrics_on_simulation(sim):
    adata, twin, names = sim
    on_twin = bm.metrics.condition_effect_recovery(twin, truth=adata.uns["sim"], truth_var_names=names)
    assert on_twin["effect_correlation"] > 0.85 and on_twin["de_detected"] > 0.8
    assert on_twin["de_false_positive"] < 0.1
    # effects estimated exactly as group-mean differences
    est = bm.metrics.estimate_condition_effects(twin)
    c = twin.obs["condition"].to_numpy()
    X = np.asarray(twin.X, dtype=np.float64)
    np.testing.assert_allclose(est["effect"][0], X[c == "cond1"].mean(0) - X[c == "cond0"].mean(0), atol=1e-9)
    corrected = bm.pp.correct(adata, method="combat", covariates=["condition"], copy=True)
    rec = bm.metrics.condition_effect_recovery(corrected, truth_var_names=names, reference=twin)
    assert 0.85 < rec["effect_retained"] < 1.15
    assert rec["reference_de_detected"] == on_twin["de_detected"]
    # removing the condition from the data removes its effect
    wiped = corrected.copy()
    W = np.asarray(wiped.X, dtype=np.float64)
    grand = W.mean(0)
    for lv in np.unique(c):
        m = c == lv
        W[m] = W[m] - W[m].mean(0) + grand
    wiped.X = W
    gone = bm.metrics.condition_effect_recovery(wiped, truth_var_names=names, reference=twin)
    assert abs(gone["effect_retained"]) < 1e-6 and gone["de_detected"] == 0.0
    with pytest.raises(InputError, match="truth_var_names"):
        bm.metrics.condition_effect_recovery(corrected)


# ------------------------------------------------------------------------ sweep
def test_confounding_sweep_refuses_at_1_and_shows_naive_loss_at_0_9():
    t = bm.tl.confounding_sweep([0.0, 0.9, 1.0], n_obs=300, n_vars=200, seed=1)
    assert list(t.columns) == bm.tl.SWEEP_COLUMNS and len(t) == 6
    r = t.set_index(["level", "model"])
    assert r.loc[(1.0, "with_covariate"), "status"] == "refused"
    assert r.loc[(1.0, "with_covariate"), "check_status"] == "refused"
    assert "confounded" in r.loc[(1.0, "with_covariate"), "message"]
    assert np.isnan(r.loc[(1.0, "with_covariate"), "effect_retained"])
    assert r.loc[(0.9, "with_covariate"), "check_status"] == "warn"
    assert r.loc[(0.0, "with_covariate"), "check_status"] == "ok"
    # with the covariate the effect survives; naive correction erases most of it
    assert r.loc[(0.9, "with_covariate"), "effect_retained"] > 0.8
    assert r.loc[(0.9, "naive"), "effect_retained"] < 0.5
    assert r.loc[(0.9, "naive"), "de_detected"] < r.loc[(0.9, "with_covariate"), "de_detected"] - 0.2
    assert r.loc[(1.0, "naive"), "effect_retained"] < 0.1
    assert (
        abs(r.loc[(0.0, "naive"), "effect_retained"] - r.loc[(0.0, "with_covariate"), "effect_retained"])
        < 0.05
    )
    fig = bm.pl.confounding_sweep(t)
    assert len(fig.axes) == 2


def test_evaluation_figures():
    X, b, lab = _blobs(True, n_per=10)
    t = bm.metrics.integration_metrics(
        _adata(X, b, lab), label_key="label", use_rep="X_rep", representation="a"
    )
    t2 = t.assign(representation="b")
    fig = bm.pl.integration_metrics(pd.concat([t, t2]))
    assert len(fig.axes) == 2
    obs = pd.DataFrame({"batch": b, "label": lab})
    fig = bm.pl.embeddings({"one": X, "two": X[:, ::-1]}, obs, color=["batch", "label"])
    assert len(fig.axes) == 4
    with pytest.raises(InputError):
        bm.pl.embeddings({"one": X[:5]}, obs, color=["batch"])
