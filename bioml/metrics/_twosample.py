"""Two-sample metrics: is a generated set distributed like a real (held-out) one?

Used by the flux VAE and the interface GAN to score generated vectors against held-out
real ones, and to compute the noise floor between two independent real sets.

- :func:`mmd` -- unbiased squared maximum mean discrepancy with a Gaussian kernel and a
  permutation p-value (Gretton et al. 2012, JMLR 13:723);
- :func:`classifier_auc` -- the classifier two-sample test (Lopez-Paz & Oquab 2017): the
  cross-validated ROC AUC of a scikit-learn classifier telling the sets apart, 0.5 ideal;
- :func:`ks_per_feature` -- the two-sample Kolmogorov-Smirnov statistic per feature;
- :func:`nn_diversity` -- mean nearest-neighbour distance within each set, against mode
  collapse (a generator repeating a few points has a ratio near 0);
- :func:`two_sample_table` -- all of them as one tidy table.

None of the functions rescales features: standardise them first when their scales differ
(e.g. with the training set's mean and standard deviation), or the largest feature
dominates every distance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InputError

__all__ = ["mmd", "classifier_auc", "ks_per_feature", "nn_diversity", "two_sample_table"]


def _pair(x, y, *, min_n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if y.ndim == 1:
        y = y[:, None]
    if x.ndim != 2 or y.ndim != 2:
        raise InputError(f"two-sample metrics need 2-D arrays (samples x features), got {x.shape}, {y.shape}")
    if x.shape[1] != y.shape[1]:
        raise InputError(f"the two sets have different numbers of features: {x.shape[1]} and {y.shape[1]}")
    if x.shape[0] < min_n or y.shape[0] < min_n:
        raise InputError(f"each set needs at least {min_n} samples, got {x.shape[0]} and {y.shape[0]}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("the samples hold NaN or inf values")
    return x, y


def _subsample(a: np.ndarray, max_n: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_n is None or a.shape[0] <= max_n:
        return a
    return a[np.sort(rng.choice(a.shape[0], max_n, replace=False))]


def _sq_dists(a: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", a, a)
    d = sq[:, None] + sq[None, :] - 2.0 * (a @ a.T)
    np.maximum(d, 0.0, out=d)
    np.fill_diagonal(d, 0.0)
    return d


def mmd(
    x,
    y,
    *,
    bandwidth: float | str = "median",
    n_permutations: int = 200,
    seed: int = 0,
    max_n: int | None = 2000,
) -> dict[str, float]:
    """Unbiased squared MMD with a Gaussian kernel, and its permutation p-value.

    ``k(a, b) = exp(-||a - b||^2 / (2 h^2))``. The statistic is the unbiased estimator
    ``MMD^2_u`` (diagonal terms excluded), so it can be slightly negative when the two
    sets come from one distribution. The p-value is ``(1 + #{perm >= observed}) /
    (1 + n_permutations)`` over random relabellings of the pooled samples; all
    permutations are evaluated at once from one kernel matrix.

    Parameters
    ----------
    x, y
        Samples x features arrays with the same number of features.
    bandwidth
        The kernel width ``h``, or ``"median"``: the median pairwise distance of the
        pooled samples (the median heuristic).
    n_permutations
        Number of permutations for the p-value (0: no p-value, returned as NaN).
    seed
        Seed of the subsampling and the permutations.
    max_n
        Each set is randomly subsampled to at most this many samples (the kernel matrix is
        ``(n + m)^2``); None keeps all.

    Returns
    -------
    dict
        ``mmd2`` (float), ``pvalue`` (float) and ``bandwidth`` (the ``h`` used).

    Raises
    ------
    InputError
        Arrays that are not 2-D, differ in feature count, hold non-finite values, or have
        fewer than 2 samples.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> res = mmd(rng.normal(size=(200, 3)), rng.normal(size=(200, 3)) + 1.0)
    >>> res["pvalue"] < 0.01
    True
    """
    x, y = _pair(x, y)
    rng = np.random.default_rng(seed)
    x, y = _subsample(x, max_n, rng), _subsample(y, max_n, rng)
    n, m = x.shape[0], y.shape[0]
    pooled = np.vstack([x, y])
    d2 = _sq_dists(pooled)
    if isinstance(bandwidth, str):
        if bandwidth != "median":
            raise InputError(f"bandwidth must be a positive number or 'median', got {bandwidth!r}")
        iu = np.triu_indices(n + m, k=1)
        h = float(np.sqrt(np.median(d2[iu])))
        if h == 0.0:
            h = 1.0
    else:
        h = float(bandwidth)
        if not h > 0:
            raise InputError(f"bandwidth must be positive, got {bandwidth!r}")
    k = np.exp(-d2 / (2.0 * h * h))
    np.fill_diagonal(k, 0.0)  # unbiased estimator: no i == j terms

    def stat(a: np.ndarray) -> np.ndarray:
        # a: (P, n + m) indicators of the first set. sums over pairs with zero diagonal.
        ka = k @ a.T  # (n + m, P)
        sxx = np.einsum("pi,ip->p", a, ka)
        sxy = np.einsum("pi,ip->p", 1.0 - a, ka)
        syy = k.sum() - sxx - 2.0 * sxy
        return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)

    observed = float(stat(np.r_[np.ones(n), np.zeros(m)][None, :])[0])
    pvalue = float("nan")
    if n_permutations > 0:
        base = np.r_[np.ones(n), np.zeros(m)]
        perms = np.stack([rng.permutation(base) for _ in range(n_permutations)])
        null = stat(perms)
        pvalue = float((1 + np.sum(null >= observed)) / (1 + n_permutations))
    return {"mmd2": observed, "pvalue": pvalue, "bandwidth": h}


def classifier_auc(x, y, *, cv: int = 5, seed: int = 0, classifier=None) -> dict[str, float]:
    """Classifier two-sample test: cross-validated ROC AUC of telling ``x`` from ``y``.

    0.5 means the classifier cannot tell the sets apart (ideal for a generator); 1.0 means
    it always can. The folds are stratified and shuffled with ``seed``.

    Parameters
    ----------
    x, y
        Samples x features arrays (e.g. real and generated).
    cv
        Number of folds.
    seed
        Seed of the folds and of the default classifier.
    classifier
        A scikit-learn classifier with ``predict_proba``; default a
        :class:`~sklearn.ensemble.HistGradientBoostingClassifier` (non-linear, fast,
        no scaling needed).

    Returns
    -------
    dict
        ``auc`` (mean over folds) and ``auc_sd`` (standard deviation over folds).

    Raises
    ------
    InputError
        Bad shapes, non-finite values, or a set smaller than ``cv``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> res = classifier_auc(rng.normal(size=(300, 4)), rng.normal(size=(300, 4)))
    >>> 0.35 < res["auc"] < 0.65
    True
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits

    x, y = _pair(x, y, min_n=max(2, cv))
    data = np.vstack([x, y])
    target = np.r_[np.ones(x.shape[0], dtype=int), np.zeros(y.shape[0], dtype=int)]
    clf = classifier if classifier is not None else HistGradientBoostingClassifier(random_state=seed)
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    # One OpenMP thread: on these small sets the gradient-boosting threads only contend
    # (measured 27x slower with the default threads on a loaded 2-core node).
    with threadpool_limits(limits=1, user_api="openmp"):
        scores = cross_val_score(clf, data, target, cv=folds, scoring="roc_auc")
    return {"auc": float(scores.mean()), "auc_sd": float(scores.std())}


def ks_per_feature(x, y, names=None) -> pd.DataFrame:
    """Two-sample Kolmogorov-Smirnov statistic and p-value for every feature (column).

    Parameters
    ----------
    x, y
        Samples x features arrays.
    names
        Feature names (default ``0 .. p-1``).

    Returns
    -------
    pandas.DataFrame
        Columns ``feature``, ``ks`` (the statistic, 0 = same empirical distribution,
        1 = disjoint) and ``pvalue``, one row per feature.

    Raises
    ------
    InputError
        Bad shapes, non-finite values, or a name count that does not match the features.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ks_per_feature(rng.normal(size=(100, 2)), rng.normal(size=(100, 2)), names=["a", "b"]).shape
    (2, 3)
    """
    x, y = _pair(x, y, min_n=1)
    p = x.shape[1]
    if names is None:
        names = list(range(p))
    names = list(names)
    if len(names) != p:
        raise InputError(f"{len(names)} feature names for {p} features")
    res = stats.ks_2samp(x, y, axis=0)
    return pd.DataFrame({"feature": names, "ks": np.atleast_1d(res.statistic).astype(float),
                         "pvalue": np.atleast_1d(res.pvalue).astype(float)})


def _mean_nn_distance(a: np.ndarray) -> float:
    from sklearn.neighbors import NearestNeighbors

    dist, _ = NearestNeighbors(n_neighbors=2).fit(a).kneighbors(a)
    return float(dist[:, 1].mean())


def nn_diversity(generated, real) -> dict[str, float]:
    """Mean nearest-neighbour distance within the generated set and within the real set.

    Mode collapse shows as ``ratio = nn_generated / nn_real`` far below 1 (generated
    points crowd together); a ratio far above 1 means generated points are more spread
    out than real ones. Compare sets of similar size, since the distance shrinks as
    ``n`` grows.

    Parameters
    ----------
    generated, real
        Samples x features arrays.

    Returns
    -------
    dict
        ``nn_generated``, ``nn_real`` and ``ratio``.

    Raises
    ------
    InputError
        Bad shapes, non-finite values, or fewer than 2 samples in a set.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> real = rng.normal(size=(200, 3))
    >>> nn_diversity(np.repeat(real[:5], 40, axis=0), real)["ratio"]
    0.0
    """
    g, r = _pair(generated, real)
    ng, nr = _mean_nn_distance(g), _mean_nn_distance(r)
    return {"nn_generated": ng, "nn_real": nr, "ratio": ng / nr if nr > 0 else float("inf")}


def two_sample_table(x, y, *, names=None, seed: int = 0, n_permutations: int = 200) -> pd.DataFrame:
    """All two-sample metrics of ``x`` (e.g. generated) against ``y`` (e.g. held-out real).

    Parameters
    ----------
    x, y
        Samples x features arrays, already on comparable scales.
    names
        Feature names, for the KS rows.
    seed
        Seed of the MMD permutations and the classifier folds.
    n_permutations
        Permutations of the MMD p-value.

    Returns
    -------
    pandas.DataFrame
        Tidy table with columns ``metric`` and ``value`` and rows ``mmd2``,
        ``mmd_pvalue``, ``classifier_auc``, ``ks_median``, ``ks_max``, ``nn_ratio``.

    Raises
    ------
    InputError
        As :func:`mmd`, :func:`classifier_auc`, :func:`ks_per_feature`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> two_sample_table(rng.normal(size=(100, 3)), rng.normal(size=(100, 3)))["metric"].tolist()
    ['mmd2', 'mmd_pvalue', 'classifier_auc', 'ks_median', 'ks_max', 'nn_ratio']
    """
    m = mmd(x, y, seed=seed, n_permutations=n_permutations)
    auc = classifier_auc(x, y, seed=seed)
    ks = ks_per_feature(x, y, names=names)["ks"]
    div = nn_diversity(x, y)
    rows = [
        ("mmd2", m["mmd2"]),
        ("mmd_pvalue", m["pvalue"]),
        ("classifier_auc", auc["auc"]),
        ("ks_median", float(ks.median())),
        ("ks_max", float(ks.max())),
        ("nn_ratio", div["ratio"]),
    ]
    return pd.DataFrame(rows, columns=["metric", "value"])
