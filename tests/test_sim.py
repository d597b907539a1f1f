"""Tests of bioml.sim: the count simulator's knobs, its ground truth and the writers."""

from __future__ import annotations

import gzip
import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from scipy.stats import chi2_contingency

import bioml as bm
from bioml.errors import ConfigError, DataValueError, InputError


# ----------------------------------------------------------------------------- helpers
def cramers_v(a: pd.Series, b: pd.Series) -> float:
    table = pd.crosstab(a, b).to_numpy()
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    chi2 = chi2_contingency(table, correction=False)[0]
    return math.sqrt(chi2 / (table.sum() * (min(table.shape) - 1)))


def log_norm(adata: ad.AnnData) -> np.ndarray:
    """log1p of counts scaled to 10^4 per sample (what sc.pp.normalize_total + log1p do)."""
    x = sc.pp.normalize_total(adata, target_sum=1e4, inplace=False)["X"]
    return np.log1p(np.asarray(x))


def group_means(x: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    return np.stack([x[codes == k].mean(0) for k in range(n)])


def assert_uns_equal(a, b, where="uns"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for k in a:
            assert_uns_equal(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, np.ndarray):
        b = np.asarray(b)
        assert a.shape == b.shape and a.dtype.kind == b.dtype.kind, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert type(a) is type(b) and a == b, where


@pytest.fixture(scope="module")
def pair():
    """Balanced design (c = 0), data and batch-free twin, strong enough to measure."""
    return bm.sim.simulate_counts(
        1500, 600, n_batches=3, n_conditions=3, confounding=0.0, de_fraction=0.2,
        batch_shift_sd=0.5, batch_scale_sd=0.3, n_anomalies=5, return_batch_free=True,
        seed=11,
    )


# ------------------------------------------------------------------------ shape, dtypes
def test_shape_dtypes_and_keys():
    adata = bm.sim.simulate_counts(200, 300, n_batches=4, n_conditions=2, seed=1)
    assert adata.shape == (200, 300)
    assert isinstance(adata.X, np.ndarray) and adata.X.dtype == np.float32
    assert np.all(adata.X >= 0) and np.array_equal(adata.X, np.round(adata.X))
    assert adata.X.sum() > 0 and (adata.X == 0).any()
    assert adata.obs_names[0] == "cell0000" and adata.obs_names[-1] == "cell0199"
    assert adata.var_names[0] == "gene0000" and adata.var_names[-1] == "gene0299"
    assert list(adata.obs["batch"].cat.categories) == ["batch0", "batch1", "batch2", "batch3"]
    assert list(adata.obs["condition"].cat.categories) == ["cond0", "cond1"]
    assert adata.obs["is_anomaly"].dtype == bool and not adata.obs["is_anomaly"].any()
    assert (adata.obs["library_size_factor"] > 0).all()
    assert adata.var["is_de"].dtype == bool
    np.testing.assert_allclose(adata.var["base_mean"].sum(), 10_000.0)

    sim = adata.uns["sim"]
    assert sim["true_condition_lfc"].shape == (2, 300)
    assert np.all(sim["true_condition_lfc"][0] == 0)
    assert sim["true_batch_shift"].shape == (4, 300)
    assert sim["true_batch_scale"].shape == (4, 300) and np.all(sim["true_batch_scale"] > 0)
    assert sim["true_batch_library"].shape == (4,)
    np.testing.assert_array_equal(sim["de_genes"], sim["true_condition_lfc"] != 0)
    np.testing.assert_array_equal(adata.var["is_de"], sim["de_genes"].any(0))
    assert sim["de_genes"][1].sum() == round(0.1 * 300)
    assert sim["batch_free"] is False
    # 4 batches over 2 conditions: contiguous halves
    assert {k: v.tolist() for k, v in sim["home_batches"].items()} == {
        "cond0": [0, 1], "cond1": [2, 3]
    }
    params = sim["params"]
    assert params["n_obs"] == 200 and params["seed"] == 1 and params["confounding"] == 0.0
    assert all(type(v) in (int, float, bool) for v in params.values())


def test_many_batches_get_padded_names_in_order():
    adata = bm.sim.simulate_counts(60, 20, n_batches=12, n_conditions=3, seed=0)
    assert list(adata.obs["batch"].cat.categories) == [f"batch{b}" for b in range(12)]


def test_seed_reproducible_and_different():
    a = bm.sim.simulate_counts(150, 200, n_anomalies=3, seed=5)
    b = bm.sim.simulate_counts(150, 200, n_anomalies=3, seed=5)
    c = bm.sim.simulate_counts(150, 200, n_anomalies=3, seed=6)
    np.testing.assert_array_equal(a.X, b.X)
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.var, b.var)
    assert_uns_equal(a.uns["sim"], b.uns["sim"])
    assert not np.array_equal(a.X, c.X)
    assert not np.array_equal(a.var["base_mean"], c.var["base_mean"])
    assert not a.obs["batch"].equals(c.obs["batch"])


def test_threads_do_not_change_the_result():
    # several chunks of rows (1001 genes -> 261 rows per chunk)
    a = bm.sim.simulate_counts(700, 1001, seed=2, n_threads=1)
    b = bm.sim.simulate_counts(700, 1001, seed=2, n_threads=3)
    np.testing.assert_array_equal(a.X, b.X)
    assert "n_threads" not in a.uns["sim"]["params"]


# --------------------------------------------------------------------------- confounding
def test_confounding_knob_raises_association_monotonically():
    levels = [0.0, 0.5, 0.9, 1.0]
    runs = [bm.sim.simulate_counts(2000, 30, confounding=c, seed=4) for c in levels]
    v = [cramers_v(r.obs["batch"], r.obs["condition"]) for r in runs]
    assert v[0] < 0.1
    assert all(x < y for x, y in zip(v, v[1:])), v
    assert v[-1] == pytest.approx(1.0)
    # at c = 1 each batch holds exactly one condition (its owner)
    table = pd.crosstab(runs[-1].obs["batch"], runs[-1].obs["condition"])
    assert ((table > 0).sum(axis=1) == 1).all()
    assert np.array_equal(np.argmax(table.to_numpy(), axis=1), [0, 1, 2])
    # at c = 0.5 the home probability is c + (1 - c) |H| / B = 2/3
    obs = runs[1].obs
    at_home = obs["batch"].cat.codes.to_numpy() == obs["condition"].cat.codes.to_numpy()
    assert at_home.mean() == pytest.approx(0.5 + 0.5 / 3, abs=0.04)
    # at c = 0 batches are balanced within every condition
    shares = pd.crosstab(runs[0].obs["condition"], runs[0].obs["batch"], normalize="index")
    np.testing.assert_allclose(shares.to_numpy(), 1 / 3, atol=0.05)


def test_confounding_with_more_batches_than_conditions_and_fewer():
    six = bm.sim.simulate_counts(1200, 10, n_batches=6, n_conditions=3, confounding=1.0, seed=0)
    table = pd.crosstab(six.obs["batch"], six.obs["condition"])
    assert table.shape == (6, 3)
    np.testing.assert_array_equal(np.argmax(table.to_numpy(), axis=1), [0, 0, 1, 1, 2, 2])
    assert ((table > 0).sum(axis=1) == 1).all()

    two = bm.sim.simulate_counts(900, 10, n_batches=2, n_conditions=3, confounding=1.0, seed=0)
    homes = {k: v.tolist() for k, v in two.uns["sim"]["home_batches"].items()}
    assert homes == {"cond0": [0], "cond1": [1], "cond2": [0]}  # k mod B
    for cond, batches in homes.items():
        got = two.obs.loc[two.obs["condition"] == cond, "batch"].astype(str).unique()
        assert got.tolist() == [f"batch{batches[0]}"]


def test_confounding_sweep_keeps_the_biology():
    lo = bm.sim.simulate_counts(800, 100, confounding=0.2, seed=9)
    hi = bm.sim.simulate_counts(800, 100, confounding=0.8, seed=9)
    np.testing.assert_array_equal(lo.var["base_mean"], hi.var["base_mean"])
    for key in ("true_condition_lfc", "true_batch_shift", "true_batch_scale"):
        np.testing.assert_array_equal(lo.uns["sim"][key], hi.uns["sim"][key])
    assert lo.obs["condition"].equals(hi.obs["condition"])
    # raising c only moves samples into their home batch
    cond = lo.obs["condition"].cat.codes.to_numpy()
    home_lo = lo.obs["batch"].cat.codes.to_numpy() == cond
    home_hi = hi.obs["batch"].cat.codes.to_numpy() == cond
    assert np.all(home_hi[home_lo]) and home_hi.sum() > home_lo.sum()
    same = lo.obs["batch"].to_numpy() == hi.obs["batch"].to_numpy()
    assert np.all(same[home_lo])


# ------------------------------------------------------------------------ rare condition
@pytest.mark.parametrize("fraction", [0.05, 0.2])
def test_rare_fraction_sets_the_share_of_the_last_condition(fraction):
    adata = bm.sim.simulate_counts(2000, 10, n_conditions=3, rare_fraction=fraction, seed=3)
    counts = adata.obs["condition"].value_counts()
    assert counts["cond2"] / adata.n_obs == pytest.approx(fraction, abs=1e-3)
    assert abs(counts["cond0"] - counts["cond1"]) <= 1
    assert counts["cond0"] + counts["cond1"] + counts["cond2"] == 2000


def test_balanced_without_rare_fraction():
    counts = bm.sim.simulate_counts(100, 10, n_conditions=3, seed=3).obs["condition"].value_counts()
    assert sorted(counts.tolist()) == [33, 33, 34]


# ------------------------------------------------------------------ effects recoverable
def test_batch_shift_is_recoverable_and_absent_from_the_twin(pair):
    adata, twin = pair
    sim = adata.uns["sim"]
    keep = adata.var["base_mean"].to_numpy() > 20
    assert keep.sum() > 50
    codes = adata.obs["batch"].cat.codes.to_numpy()
    for data, expect_effect in ((adata, True), (twin, False)):
        x = log_norm(data)
        means = group_means(x, codes, 3)
        for i, j in [(1, 0), (2, 0), (2, 1)]:
            est = (means[i] - means[j])[keep]
            true = (sim["true_batch_shift"][i] - sim["true_batch_shift"][j])[keep]
            r = np.corrcoef(est, true)[0, 1]
            if expect_effect:
                assert r > 0.8, (i, j, r)
            else:
                assert abs(r) < 0.3, (i, j, r)
    # fraction of the per-gene variance explained by batch: large in the data, ~0 in the twin
    def batch_fraction(data):
        x = log_norm(data)[:, keep]
        between = group_means(x, codes, 3)[codes].var(0)
        return np.median(between / x.var(0))

    assert batch_fraction(adata) > 0.1
    assert batch_fraction(twin) < 0.01
    assert batch_fraction(twin) < batch_fraction(adata) / 20


def test_batch_scale_changes_the_spread():
    adata = bm.sim.simulate_counts(
        1200, 500, n_conditions=1, batch_scale_sd=0.4, batch_shift_sd=0.5, seed=3
    )
    sim = adata.uns["sim"]
    keep = adata.var["base_mean"].to_numpy() > 20
    x = log_norm(adata)[:, keep]
    codes = adata.obs["batch"].cat.codes.to_numpy()
    var = np.stack([x[codes == b].var(0) for b in range(3)])
    est = np.log(var[1] / var[0])
    true = 2 * np.log(sim["true_batch_scale"][1] / sim["true_batch_scale"][0])[keep]
    assert np.corrcoef(est, true)[0, 1] > 0.8


def test_condition_effects_are_recoverable(pair):
    adata, twin = pair
    sim = twin.uns["sim"]
    codes = twin.obs["condition"].cat.codes.to_numpy()
    expressed = twin.var["base_mean"].to_numpy() > 5
    # library-normalised mean counts per condition, log ratio against the reference
    x = np.asarray(sc.pp.normalize_total(twin, target_sum=1e4, inplace=False)["X"])
    means = group_means(x, codes, 3)
    for k in (1, 2):
        de = sim["de_genes"][k] & expressed
        assert de.sum() > 30
        est = np.log((means[k] + 0.1) / (means[0] + 0.1))
        r_de = np.corrcoef(est[de], sim["true_condition_lfc"][k][de])[0, 1]
        assert r_de > 0.9, r_de
        # non-DE genes have near-zero estimated changes compared with DE genes
        null = ~sim["de_genes"][k] & expressed
        assert np.median(np.abs(est[null])) < 0.5 * np.median(np.abs(est[de]))
    # condition-0 rows of the truth are zeros
    assert not sim["de_genes"][0].any()


def test_twin_shares_the_biology(pair):
    adata, twin = pair
    assert twin.uns["sim"]["batch_free"] is True
    assert np.all(twin.uns["sim"]["true_batch_shift"] == 0)
    assert np.all(twin.uns["sim"]["true_batch_scale"] == 1)
    for key in ("batch", "condition", "is_anomaly"):
        assert adata.obs[key].equals(twin.obs[key])
    pd.testing.assert_frame_equal(adata.var, twin.var)
    for key in ("true_condition_lfc", "de_genes", "anomaly_index", "anomaly_lfc"):
        np.testing.assert_array_equal(adata.uns["sim"][key], twin.uns["sim"][key])
    lib = np.exp(adata.uns["sim"]["true_batch_library"])[adata.obs["batch"].cat.codes]
    np.testing.assert_allclose(
        adata.obs["library_size_factor"], twin.obs["library_size_factor"] * lib, rtol=1e-12
    )


def test_twin_equals_data_when_there_is_no_batch_effect():
    adata, twin = bm.sim.simulate_counts(
        300, 400, batch_shift_sd=0.0, batch_scale_sd=0.0, batch_library_sd=0.0,
        n_anomalies=2, return_batch_free=True, seed=8,
    )
    np.testing.assert_array_equal(adata.X, twin.X)


def test_counts_are_overdispersed_as_specified():
    adata = bm.sim.simulate_counts(
        3000, 200, n_batches=1, n_conditions=1, library_size_sd=0.0, batch_library_sd=0.0,
        batch_shift_sd=0.0, batch_scale_sd=0.0, seed=12,
    )
    mu = adata.var["base_mean"].to_numpy()
    phi = adata.var["dispersion"].to_numpy()
    keep = (mu > 2) & (mu < 200)
    mean, var = adata.X.mean(0)[keep], adata.X.var(0)[keep]
    np.testing.assert_allclose(mean, mu[keep], rtol=0.15)
    est_phi = (var - mean) / mean**2
    assert np.corrcoef(np.log(np.maximum(est_phi, 1e-3)), np.log(phi[keep]))[0, 1] > 0.8


# ------------------------------------------------------------------------------ anomalies
def test_anomalies_are_flagged_and_visible(pair):
    adata, twin = pair
    sim = adata.uns["sim"]
    assert adata.obs["is_anomaly"].sum() == 5
    np.testing.assert_array_equal(np.flatnonzero(adata.obs["is_anomaly"]), sim["anomaly_index"])
    lfc = sim["anomaly_lfc"]
    assert lfc.shape == (5, 600)
    assert np.all((lfc != 0).sum(1) == 60) and set(np.unique(np.abs(lfc))) == {0.0, 3.0}
    # in the twin (no batch effect), affected expressed genes move by about +-strength;
    # scale by the true size factor (normalize_total would shift every gene, since the
    # up-regulated genes take a large share of the anomaly's library)
    x = np.log1p(twin.X / twin.obs["library_size_factor"].to_numpy()[:, None])
    normal = ~twin.obs["is_anomaly"].to_numpy()
    codes = twin.obs["condition"].cat.codes.to_numpy()
    ref = group_means(x[normal], codes[normal], 3)
    expressed = twin.var["base_mean"].to_numpy() > 10
    for row, cell in enumerate(sim["anomaly_index"]):
        dev = x[cell] - ref[codes[cell]]
        up = (lfc[row] > 0) & expressed
        down = (lfc[row] < 0) & expressed
        assert dev[up].mean() > 2.0 and dev[down].mean() < -1.5, (dev[up].mean(), dev[down].mean())
        assert abs(dev[(lfc[row] == 0) & expressed].mean()) < 0.2


def test_no_anomalies_by_default():
    adata = bm.sim.simulate_counts(50, 20, seed=0)
    assert adata.uns["sim"]["anomaly_lfc"].shape == (0, 20)
    assert adata.uns["sim"]["anomaly_index"].size == 0


# ---------------------------------------------------------------------------- round trip
def test_uns_round_trips_through_h5ad(tmp_path):
    adata, twin = bm.sim.simulate_counts(
        120, 80, n_batches=5, n_conditions=3, n_anomalies=2, rare_fraction=0.1,
        return_batch_free=True, seed=4,
    )
    for data in (adata, twin):
        path = tmp_path / "sim.h5ad"
        data.write_h5ad(path)
        back = ad.read_h5ad(path)
        np.testing.assert_array_equal(back.X, data.X)
        pd.testing.assert_frame_equal(back.obs, data.obs)
        pd.testing.assert_frame_equal(back.var, data.var)
        assert_uns_equal(data.uns["sim"], back.uns["sim"])


# -------------------------------------------------------------------------------- writers
@pytest.fixture
def small():
    return bm.sim.simulate_counts(40, 25, seed=2)


def test_write_10x_round_trip(tmp_path, small):
    out = tmp_path / "run" / "filtered_feature_bc_matrix"
    assert bm.sim.write_10x(small, out) == out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["barcodes.tsv.gz", "features.tsv.gz", "matrix.mtx.gz"]
    back = sc.read_10x_mtx(out)
    np.testing.assert_array_equal(back.X.toarray(), small.X)
    assert back.var_names.equals(small.var_names)
    assert back.obs_names.equals(small.obs_names)
    assert back.var["feature_types"].eq("Gene Expression").all()
    header = gzip.open(out / "matrix.mtx.gz", "rt").readline()
    assert header.startswith("%%MatrixMarket matrix coordinate integer general")
    # the same data gives the same bytes (gzip mtime 0)
    again = bm.sim.write_10x(small, tmp_path / "again")
    assert (again / "matrix.mtx.gz").read_bytes() == (out / "matrix.mtx.gz").read_bytes()
    # no temporary folders left behind
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_write_10x_refuses_to_overwrite(tmp_path, small):
    out = tmp_path / "tenx"
    bm.sim.write_10x(small, out)
    other = bm.sim.simulate_counts(40, 25, seed=3)
    with pytest.raises(InputError, match=str(out)):
        bm.sim.write_10x(other, out)
    np.testing.assert_array_equal(sc.read_10x_mtx(out).X.toarray(), small.X)  # untouched
    bm.sim.write_10x(other, out, overwrite=True)
    np.testing.assert_array_equal(sc.read_10x_mtx(out).X.toarray(), other.X)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tenx"]
    # an existing empty folder is fine; a file is not
    (tmp_path / "empty").mkdir()
    bm.sim.write_10x(small, tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        bm.sim.write_10x(small, tmp_path / "file", overwrite=True)


def test_write_10x_failure_leaves_nothing(tmp_path, small):
    bad = small.copy()
    bad.X[0, 0] = 0.5
    with pytest.raises(DataValueError, match="non-integer"):
        bm.sim.write_10x(bad, tmp_path / "tenx")
    bad.X[0, 0] = -1
    with pytest.raises(DataValueError, match="negative"):
        bm.sim.write_10x(bad, tmp_path / "tenx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "orientation", "sep"),
    [
        ("expr.csv", "genes_x_samples", ","),
        ("expr.tsv.gz", "genes_x_samples", "\t"),
        ("expr.tsv", "samples_x_genes", "\t"),
        ("expr.csv.gz", "samples_x_genes", ","),
    ],
)
def test_write_table(tmp_path, small, name, orientation, sep):
    path = bm.sim.write_table(small, tmp_path / name, orientation=orientation)
    if name.endswith(".gz"):
        with gzip.open(path, "rt") as fh:
            first = fh.readline()
    else:
        first = path.read_text().splitlines()[0]
    cells = first.rstrip("\n").split(sep)
    df = pd.read_csv(path, sep=sep, index_col=0)
    if orientation == "genes_x_samples":
        assert cells[0] == "gene_id" and cells[1:] == list(small.obs_names)
        np.testing.assert_array_equal(df.to_numpy(), small.X.T)
        assert list(df.index) == list(small.var_names)
    else:
        assert cells[0] == "sample_id" and cells[1:] == list(small.var_names)
        np.testing.assert_array_equal(df.to_numpy(), small.X)
        assert list(df.index) == list(small.obs_names)
    assert df.dtypes.map(lambda d: d.kind == "i").all()  # counts written as integers
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_write_table_bad_orientation(tmp_path, small):
    with pytest.raises(ConfigError, match="orientation"):
        bm.sim.write_table(small, tmp_path / "x.csv", orientation="cells_x_genes")


def test_write_sample_sheet(tmp_path, small):
    path = bm.sim.write_sample_sheet(small, tmp_path / "samples.tsv")
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["sample_id", "batch", "condition"]
    sheet = pd.read_csv(path, sep="\t")
    assert sheet["sample_id"].tolist() == list(small.obs_names)
    assert sheet["batch"].tolist() == small.obs["batch"].astype(str).tolist()
    assert sheet["condition"].tolist() == small.obs["condition"].astype(str).tolist()

    csv = bm.sim.write_sample_sheet(
        small, tmp_path / "s.csv", columns=["condition"], id_column="cell"
    )
    assert csv.read_text().splitlines()[0] == "cell,condition"
    with pytest.raises(InputError, match="donor"):
        bm.sim.write_sample_sheet(small, tmp_path / "bad.tsv", columns=("batch", "donor"))
    with pytest.raises(ConfigError):
        bm.sim.write_sample_sheet(small, tmp_path / "bad.tsv", id_column="batch")
    assert not (tmp_path / "bad.tsv").exists()


# ------------------------------------------------------------------------------- bad args
@pytest.mark.parametrize(
    "kwargs",
    [
        {"confounding": 1.5},
        {"confounding": -0.1},
        {"confounding": float("nan")},
        {"n_batches": 0},
        {"n_conditions": 0},
        {"rare_fraction": 1.0},
        {"rare_fraction": 1.5},
        {"rare_fraction": -0.1},
        {"rare_fraction": 0.1, "n_conditions": 1},
        {"n_obs": 0},
        {"n_obs": 2, "n_conditions": 3},
        {"n_vars": 2.5},
        {"n_batches": True},
        {"de_fraction": 1.1},
        {"batch_shift_sd": -1.0},
        {"library_size_mean": 0.0},
        {"n_anomalies": 11},
        {"n_anomalies": -1},
        {"anomaly_gene_fraction": 0.0},
        {"dispersion_asymptote": 0.0, "dispersion_trend": 0.0},
        {"seed": -1},
        {"seed": 1.5},
        {"return_batch_free": "yes"},
        {"n_threads": 0},
    ],
)
def test_bad_arguments_raise_config_error(kwargs):
    args = {"n_obs": 10, "n_vars": 5, **kwargs}
    with pytest.raises(ConfigError):
        bm.sim.simulate_counts(**args)


def test_config_error_names_the_argument():
    with pytest.raises(ConfigError, match=r"confounding must be in \[0, 1\], got 1.5"):
        bm.sim.simulate_counts(10, 5, confounding=1.5)
