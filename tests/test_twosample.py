"""Tests of bioml.metrics two-sample metrics against direct (loop) computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bioml.errors import InputError
from bioml.metrics import classifier_auc, ks_per_feature, mmd, nn_diversity, two_sample_table


def _mmd2_direct(x, y, h):
    def k(a, b):
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * h * h))

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean())


def test_mmd_matches_direct_formula():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(55, 3)) + 0.3
    res = mmd(x, y, bandwidth=1.7, n_permutations=0)
    assert res["mmd2"] == pytest.approx(_mmd2_direct(x, y, 1.7), rel=1e-10, abs=1e-12)
    assert np.isnan(res["pvalue"])
    pooled = np.vstack([x, y])
    d = np.sqrt(((pooled[:, None] - pooled[None]) ** 2).sum(-1))
    med = np.median(d[np.triu_indices(len(pooled), 1)])
    assert mmd(x, y, n_permutations=0)["bandwidth"] == pytest.approx(med)


def test_mmd_permutation_pvalue_null_and_shift():
    rng = np.random.default_rng(1)
    pvals = [mmd(rng.normal(size=(60, 2)), rng.normal(size=(60, 2)), n_permutations=99, seed=s)["pvalue"]
             for s in range(20)]
    # under the null the p-value is uniform: not all small, and mostly above 0.05
    assert np.mean(np.array(pvals) < 0.05) <= 0.2 and np.median(pvals) > 0.2
    shifted = mmd(rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 0.8, n_permutations=199)
    assert shifted["pvalue"] == pytest.approx(1 / 200)
    assert shifted["mmd2"] > 0.05


def test_mmd_seeded_and_subsampled():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(300, 2))
    assert mmd(x, y, seed=4, max_n=100) == mmd(x, y, seed=4, max_n=100)


def test_classifier_auc_null_and_separable():
    rng = np.random.default_rng(3)
    same = classifier_auc(rng.normal(size=(200, 3)), rng.normal(size=(200, 3)))
    assert 0.35 < same["auc"] < 0.65
    apart = classifier_auc(rng.normal(size=(200, 3)), rng.normal(size=(200, 3)) + 3.0)
    assert apart["auc"] > 0.98


def test_ks_per_feature_matches_scipy_columnwise():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(80, 4)), rng.exponential(size=(70, 4))
    tab = ks_per_feature(x, y, names=list("abcd"))
    for j, name in enumerate("abcd"):
        ref = stats.ks_2samp(x[:, j], y[:, j])
        row = tab.set_index("feature").loc[name]
        assert row["ks"] == pytest.approx(ref.statistic)
        assert row["pvalue"] == pytest.approx(ref.pvalue)
    with pytest.raises(InputError, match="3 feature names for 4"):
        ks_per_feature(x, y, names=list("abc"))


def test_nn_diversity_direct_and_collapse():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(50, 3))
    gen = rng.normal(size=(60, 3)) * 2
    d = np.sqrt(((gen[:, None] - gen[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    res = nn_diversity(gen, real)
    assert res["nn_generated"] == pytest.approx(d.min(1).mean())
    assert res["ratio"] > 1.3
    assert nn_diversity(np.repeat(real[:3], 10, axis=0), real)["ratio"] == 0.0


def test_two_sample_table_and_errors():
    rng = np.random.default_rng(6)
    tab = two_sample_table(rng.normal(size=(80, 3)), rng.normal(size=(90, 3)), n_permutations=50)
    expected = ["mmd2", "mmd_pvalue", "classifier_auc", "ks_median", "ks_max", "nn_ratio"]
    assert tab["metric"].tolist() == expected
    assert np.isfinite(tab["value"]).all()
    with pytest.raises(InputError, match="different numbers of features"):
        mmd(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(InputError, match="NaN"):
        mmd(np.full((5, 2), np.nan), np.zeros((5, 2)))
