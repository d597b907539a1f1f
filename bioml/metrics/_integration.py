"""Integration metrics on an embedding: batch mixing and label conservation (scIB style).

Conventions follow scIB (Luecken et al. 2022, ``scib.metrics``) so that values compare:
higher is better for every score, all in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.metrics import silhouette_samples

from ..errors import InputError

__all__ = [
    "silhouette_batch",
    "silhouette_label",
    "asw_batch",
    "asw_label",
    "Neighbors",
    "neighbors",
    "lisi",
    "ilisi",
    "clisi",
    "kbet",
    "pcr_batch",
    "graph_connectivity",
    "leiden_clusters",
    "nmi_ari_leiden",
    "integration_metrics",
]


def _check(X, *labels) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise InputError(f"the embedding must be a 2-D array (samples x dimensions), got shape {X.shape}")
    for lab in labels:
        if len(lab) != X.shape[0]:
            raise InputError(f"{len(lab)} labels for {X.shape[0]} samples")
    if not np.isfinite(X).all():
        raise InputError("the embedding holds NaN or inf values")
    return X


def silhouette_label(X, labels, *, metric: str = "euclidean") -> float:
    """Label ASW rescaled to ``[0, 1]`` (scIB ``silhouette``): ``(mean silhouette + 1) / 2``.

    Parameters
    ----------
    X
        Embedding, samples x dimensions (e.g. ``adata.obsm["X_bae"]``).
    labels
        Biological label per sample (cell type, condition).
    metric
        Distance metric for :func:`sklearn.metrics.silhouette_samples`.

    Returns
    -------
    float
        1: labels form compact, separated clusters; 0.5: overlapping; 0: worse than random.

    Raises
    ------
    InputError
        Shape mismatch, non-finite values, or fewer than 2 labels.

    Examples
    --------
    >>> import numpy as np
    >>> import bioml as bm
    >>> X = np.r_[np.zeros((20, 2)), np.full((20, 2), 10.0)] + np.random.default_rng(0).normal(size=(40, 2))
    >>> round(bm.metrics.silhouette_label(X, ["a"] * 20 + ["b"] * 20), 2)  # doctest: +SKIP
    0.95
    """
    labels = np.asarray(pd.Series(labels).astype(str))
    X = _check(X, labels)
    n_lab = np.unique(labels).size
    if n_lab < 2 or n_lab >= X.shape[0]:
        raise InputError(f"silhouette_label needs 2 <= number of labels < n samples, got {n_lab}")
    if metric == "euclidean":
        codes, names = pd.factorize(pd.Series(labels), sort=True)
        _, _, sums = _distance_pass(X, groups=codes, n_groups=len(names))
        s = _silhouette_from_sums(sums, np.bincount(codes).astype(np.float64), codes)
    else:
        s = silhouette_samples(X, labels, metric=metric)
    return float((s.mean() + 1) / 2)


def silhouette_batch(X, batch, labels, *, metric: str = "euclidean", return_per_label: bool = False):
    """Batch ASW (scIB ``silhouette_batch``): batch mixing within each label.

    For each label, the silhouette of the samples with respect to their *batch* is
    computed within that label's samples; ``1 - |s|`` per sample (1: batches perfectly
    mixed, 0: batches separated), averaged per label and then over labels. Labels present
    in a single batch (or with one sample per batch) are skipped, as in scIB.

    Parameters
    ----------
    X
        Embedding, samples x dimensions.
    batch
        Batch label per sample.
    labels
        Biological label per sample.
    metric
        Distance metric for :func:`sklearn.metrics.silhouette_samples`.
    return_per_label
        Also return the per-label scores as a :class:`pandas.Series`.

    Returns
    -------
    float (and the per-label Series)
        In ``[0, 1]``; NaN when no label has two or more batches.

    Raises
    ------
    InputError
        Shape mismatch or non-finite values in ``X``.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 200, seed=0)
    >>> bm.pp.qc(adata, min_genes=0, n_top_genes=100)
    >>> import scanpy as sc; sc.pp.pca(adata, n_comps=10)
    >>> score = bm.metrics.silhouette_batch(adata.obsm["X_pca"], adata.obs["batch"], adata.obs["condition"])
    >>> 0.0 <= score <= 1.0
    True
    """
    batch = np.asarray(pd.Series(batch).astype(str))
    labels = np.asarray(pd.Series(labels).astype(str))
    X = _check(X, batch, labels)
    if metric == "euclidean":
        _, series, _, _ = _asw_fast(X, batch, labels)
        score = float(series.mean()) if len(series) else float("nan")
        return (score, series) if return_per_label else score
    per = {}
    for lab in pd.unique(labels):
        m = labels == lab
        nb = np.unique(batch[m]).size
        if nb < 2 or nb >= m.sum():
            continue
        s = silhouette_samples(X[m], batch[m], metric=metric)
        per[lab] = float(np.mean(1.0 - np.abs(s)))
    series = pd.Series(per, name="silhouette_batch", dtype=float)
    score = float(series.mean()) if len(series) else float("nan")
    return (score, series) if return_per_label else score


# ------------------------------------------------------------------ aliases (issue 4 names)
def asw_label(X, labels, *, metric: str = "euclidean") -> float:
    """Alias of :func:`silhouette_label` (scIB's "ASW label", rescaled to ``[0, 1]``)."""
    return silhouette_label(X, labels, metric=metric)


def asw_batch(X, batch, labels, *, metric: str = "euclidean", return_per_label: bool = False):
    """Alias of :func:`silhouette_batch` (scIB's "ASW batch": ``1 - |s|`` per label, then mean)."""
    return silhouette_batch(X, batch, labels, metric=metric, return_per_label=return_per_label)


# ------------------------------------------------------------- one pass over distances
#: entries of one chunk of the distance matrix (64 MiB of float64)
_CHUNK_ENTRIES = 1 << 23


def _distance_pass(
    X: np.ndarray,
    *,
    k: int = 0,
    groups: np.ndarray | None = None,
    n_groups: int = 0,
    n_threads: int | None = None,
):
    """One chunked pass over the Euclidean distance matrix of ``X`` (never held whole).

    Per chunk of rows, the distances come from one BLAS product (``|x|^2 + |y|^2 -
    2 x.y``, float64, the diagonal set to 0); from it the pass takes the ``k`` nearest
    neighbours (``argpartition`` then a sort of the ``k``) and, when ``groups`` is given,
    the sum of each sample's distances to every group (a second product with the group
    indicator matrix). Chunks run in threads (numpy releases the GIL in these calls).

    Returns ``(indices, distances, group_sums)``; unused parts are ``None``.
    """
    from concurrent.futures import ThreadPoolExecutor

    n = X.shape[0]
    sq = np.einsum("ij,ij->i", X, X)
    step = max(1, _CHUNK_ENTRIES // max(n, 1))
    starts = list(range(0, n, step))
    idx = np.empty((n, k), dtype=np.int64) if k else None
    dist = np.empty((n, k)) if k else None
    sums = np.empty((n, n_groups)) if groups is not None else None
    onehot = None
    if groups is not None:
        onehot = np.zeros((n, n_groups))
        onehot[np.arange(n), groups] = 1.0

    def run(i0: int) -> None:
        i1 = min(i0 + step, n)
        D = X[i0:i1] @ X.T
        D *= -2.0
        D += sq[i0:i1, None]
        D += sq[None, :]
        np.maximum(D, 0.0, out=D)
        np.sqrt(D, out=D)
        D[np.arange(i1 - i0), np.arange(i0, i1)] = 0.0
        if sums is not None:
            sums[i0:i1] = D @ onehot
        if k:
            if k < n:
                part = np.argpartition(D, k - 1, axis=1)[:, :k]
            else:
                part = np.broadcast_to(np.arange(n), (i1 - i0, n)).copy()
            dpart = np.take_along_axis(D, part, axis=1)
            # ties broken by index, then the sample itself first
            order = np.lexsort((part, dpart), axis=1)
            idx[i0:i1] = np.take_along_axis(part, order, axis=1)
            dist[i0:i1] = np.take_along_axis(dpart, order, axis=1)

    threads = n_threads or _default_threads()
    if threads == 1 or len(starts) == 1:
        for i0 in starts:
            run(i0)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(run, starts))
    return idx, dist, sums


def _default_threads() -> int:
    import os

    try:
        return max(1, min(len(os.sched_getaffinity(0)), 8))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, min(os.cpu_count() or 1, 8))


def _silhouette_from_sums(
    sums: np.ndarray, counts: np.ndarray, own: np.ndarray, allowed: np.ndarray | None = None
) -> np.ndarray:
    """Silhouette of each sample from its summed distances to each cluster.

    ``sums`` (n x C), ``counts`` (C), ``own`` (n, the sample's cluster), ``allowed`` an
    optional (n x C) mask of the clusters that count as "other" for each sample. As
    :func:`sklearn.metrics.silhouette_samples`: ``a`` is the mean distance to the own
    cluster without the sample itself, ``b`` the smallest mean distance to another
    cluster, ``s = (b - a) / max(a, b)``, 0 for samples alone in their cluster.
    """
    n = sums.shape[0]
    rows = np.arange(n)
    n_own = counts[own]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = sums[rows, own] / (n_own - 1)
        means = sums / counts[None, :]
    means[rows, own] = np.inf
    means[:, counts == 0] = np.inf
    if allowed is not None:
        means[~allowed] = np.inf
    b = means.min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (b - a) / np.maximum(a, b)
    s = np.nan_to_num(s)
    s[n_own <= 1] = 0.0
    return s


def _asw_fast(X: np.ndarray, batch: np.ndarray, labels: np.ndarray, *, k: int = 0):
    """Label ASW, per-label batch ASW and (optionally) the kNN from one distance pass."""
    lab_codes, lab_names = pd.factorize(pd.Series(labels).astype(str), sort=True)
    b_codes, b_names = pd.factorize(pd.Series(batch).astype(str), sort=True)
    L, B = len(lab_names), len(b_names)
    groups = lab_codes * B + b_codes
    idx, dist, sums = _distance_pass(X, k=k, groups=groups, n_groups=L * B)
    counts = np.bincount(groups, minlength=L * B).astype(np.float64)
    # label silhouette: sum the (label, batch) groups over batches
    lab_sums = sums.reshape(-1, L, B).sum(2)
    lab_counts = counts.reshape(L, B).sum(1)
    s_label = _silhouette_from_sums(lab_sums, lab_counts, lab_codes)
    # batch silhouette within each label: only the groups of the sample's own label
    allowed = (np.arange(L * B)[None, :] // B) == lab_codes[:, None]
    s_batch = _silhouette_from_sums(sums, counts, groups, allowed)
    per = {}
    for li, name in enumerate(lab_names):
        m = lab_codes == li
        nb = np.count_nonzero(counts.reshape(L, B)[li])
        if nb < 2 or nb >= m.sum():
            continue
        per[name] = float(np.mean(1.0 - np.abs(s_batch[m])))
    return s_label, pd.Series(per, name="silhouette_batch", dtype=float), idx, dist


# ------------------------------------------------------------------------- neighbours
@dataclass(frozen=True)
class Neighbors:
    """One exact k-nearest-neighbour graph of a representation, shared by every graph metric.

    Attributes
    ----------
    indices, distances
        ``(n, k)`` arrays, each row sorted by distance; column 0 is the sample itself
        (distance 0), as in scanpy and ``scib-metrics``' ``NeighborsResults``.
    n_neighbors
        Neighbours (self included) used for the UMAP-style connectivities (scanpy's
        ``n_neighbors``); the LISI metrics use all ``k`` columns.
    connectivities
        Symmetric sparse UMAP fuzzy-simplicial-set weights from the first ``n_neighbors``
        columns, computed exactly as :func:`scanpy.pp.neighbors` does
        (``umap.umap_.fuzzy_simplicial_set``).
    """

    indices: np.ndarray
    distances: np.ndarray
    n_neighbors: int
    connectivities: sparse.csr_matrix

    @property
    def n_obs(self) -> int:
        return self.indices.shape[0]

    def subset(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``k`` columns (self included) of indices and distances."""
        k = min(k, self.indices.shape[1])
        return self.indices[:, :k], self.distances[:, :k]


def _umap_connectivities(indices: np.ndarray, distances: np.ndarray, n_neighbors: int) -> sparse.csr_matrix:
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Tensorflow.*")
        from umap.umap_ import fuzzy_simplicial_set

    n = indices.shape[0]
    conn, _, _ = fuzzy_simplicial_set(
        sparse.coo_matrix((n, 1)),
        n_neighbors,
        None,
        None,
        knn_indices=indices[:, :n_neighbors],
        knn_dists=distances[:, :n_neighbors].astype(np.float32),
        set_op_mix_ratio=1.0,
        local_connectivity=1.0,
    )
    return sparse.csr_matrix(conn)


def neighbors(X, *, n_neighbors: int = 15, max_neighbors: int = 90, n_jobs: int | None = None) -> Neighbors:
    """Exact Euclidean k-nearest neighbours of every sample (self included) and UMAP connectivities.

    One call per representation; pass the result to :func:`ilisi`, :func:`clisi`,
    :func:`kbet`, :func:`graph_connectivity` and :func:`nmi_ari_leiden`. The search is
    brute force, one chunked pass over the distance matrix in threads (the same
    neighbours as :class:`sklearn.neighbors.NearestNeighbors` with ``algorithm="brute"``).

    Parameters
    ----------
    X
        Representation, samples x dimensions.
    n_neighbors
        Neighbours (self included) of the connectivity graph used for Leiden and graph
        connectivity (scanpy's default 15).
    max_neighbors
        Neighbours (self included) kept for the LISI metrics (scIB uses 90, perplexity 30).
        Both are capped at the number of samples.
    n_jobs
        Threads (default: the available cores, at most 8).

    Returns
    -------
    :class:`Neighbors`
    """
    X = _check(X)
    n = X.shape[0]
    if n < 3:
        raise InputError(f"neighbour graphs need at least 3 samples, got {n}")
    k = int(min(max(max_neighbors, n_neighbors), n))
    idx, dist, _ = _distance_pass(X, k=k, n_threads=n_jobs)
    return _make_neighbors(idx, dist, n_neighbors)


def _make_neighbors(idx: np.ndarray, dist: np.ndarray, n_neighbors: int) -> Neighbors:
    n = idx.shape[0]
    n_neighbors = int(min(n_neighbors, n))
    # put the sample itself first (exact duplicates tie with it at distance 0)
    rows = np.arange(n)
    is_self = idx == rows[:, None]
    has_self = is_self.any(1)
    self_pos = np.argmax(is_self, axis=1)
    swap = has_self & (self_pos > 0)
    if swap.any():
        r, p = rows[swap], self_pos[swap]
        idx[r, p], dist[r, p] = idx[r, 0], dist[r, 0]
        idx[r, 0], dist[r, 0] = r, 0.0
    missing = ~has_self
    if missing.any():  # more exact duplicates than columns: force self into column 0
        idx[missing, 1:], dist[missing, 1:] = idx[missing, :-1], dist[missing, :-1]
        idx[missing, 0], dist[missing, 0] = rows[missing], 0.0
    conn = _umap_connectivities(idx, dist, n_neighbors)
    return Neighbors(indices=idx, distances=dist, n_neighbors=n_neighbors, connectivities=conn)


def _as_neighbors(X_or_knn, n_neighbors: int = 15, max_neighbors: int = 90) -> Neighbors:
    if isinstance(X_or_knn, Neighbors):
        return X_or_knn
    return neighbors(X_or_knn, n_neighbors=n_neighbors, max_neighbors=max_neighbors)


def _codes(values, n: int, what: str) -> tuple[np.ndarray, int]:
    values = pd.Series(np.asarray(values)).astype(str)
    if len(values) != n:
        raise InputError(f"{len(values)} {what} values for {n} samples")
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), len(uniques)


# ------------------------------------------------------------------------------- LISI
def lisi(
    knn: Neighbors, labels, *, perplexity: float | None = None, tol: float = 1e-5, max_iter: int = 50
) -> np.ndarray:
    """Local inverse Simpson's index of every sample (Korsunsky et al. 2019, harmony's LISI).

    For each sample, Gaussian weights ``exp(-beta d)`` over its neighbours (itself
    excluded) are calibrated to the perplexity by bisection on ``beta`` (the entropy
    must match ``log(perplexity)`` within ``tol``, at most ``max_iter`` steps), exactly
    as ``scib_metrics.utils.compute_simpson_index``; the bisection runs on all samples at
    once (vectorised), each sample stopping when it has converged. LISI is ``1 /
    sum_l p_l^2`` with ``p_l`` the weight of label ``l`` among the neighbours: the
    effective number of labels around the sample.

    Parameters
    ----------
    knn
        From :func:`neighbors` (all its columns are used).
    labels
        Label (batch or cell type) per sample.
    perplexity
        Effective neighbourhood size; default ``floor(k / 3)`` with ``k`` the number of
        columns (self included), as in ``scib-metrics``.

    Returns
    -------
    Array of LISI values; NaN where every weight underflowed (identical neighbours at
    large distance), where ``scib-metrics`` returns -1.
    """
    codes, n_labels = _codes(labels, knn.n_obs, "label")
    idx, D = knn.indices, knn.distances
    n, k = idx.shape
    if perplexity is None:
        perplexity = float(np.floor(k / 3))
    mask = idx != np.arange(n)[:, None]
    logU = np.log(perplexity)

    beta = np.ones(n)
    bmin = np.full(n, -np.inf)
    bmax = np.full(n, np.inf)
    H, P = _hbeta_rows(D, mask, beta)
    Hdiff = H - logU
    for _ in range(max_iter):
        active = np.abs(Hdiff) >= tol
        if not active.any():
            break
        up = Hdiff > 0
        new_bmin = np.where(up, beta, bmin)
        new_bmax = np.where(up, bmax, beta)
        new_beta = np.where(
            up,
            np.where(np.isinf(bmax), beta * 2, (beta + bmax) / 2),
            np.where(np.isinf(bmin), beta / 2, (beta + bmin) / 2),
        )
        a = np.flatnonzero(active)
        bmin[a], bmax[a], beta[a] = new_bmin[a], new_bmax[a], new_beta[a]
        Ha, Pa = _hbeta_rows(D[a], mask[a], beta[a])
        H[a], P[a] = Ha, Pa
        Hdiff[a] = Ha - logU
    lab = codes[idx]
    flat = (np.arange(n)[:, None] * n_labels + lab).ravel()
    sums = np.bincount(flat, weights=P.ravel(), minlength=n * n_labels).reshape(n, n_labels)
    simpson = (sums**2).sum(1)
    with np.errstate(divide="ignore"):
        out = np.where(H == 0, np.nan, 1.0 / simpson)
    return out


def _hbeta_rows(D: np.ndarray, mask: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(over="ignore", under="ignore"):
        P = np.exp(-D * beta[:, None]) * mask
    sumP = P.sum(1)
    ok = sumP > 0
    safe = np.where(ok, sumP, 1.0)
    H = np.where(ok, np.log(safe) + beta * (D * P).sum(1) / safe, 0.0)
    return H, P / safe[:, None]


def ilisi(
    X_or_knn, batch, *, perplexity: float | None = None, scale: bool = True, n_neighbors: int = 90
) -> float:
    """Integration LISI (iLISI): median effective number of batches around a sample.

    Scaled as ``scib-metrics`` (``ilisi_knn``): ``(median - 1) / (B - 1)``: 1 = every
    neighbourhood holds all ``B`` batches in equal shares, 0 = one batch per
    neighbourhood. Unequal batch sizes (or batches holding different labels) keep even a
    perfect integration below 1 (0.68 on the default run's batch-free twin). Higher is
    better.

    Parameters
    ----------
    X_or_knn
        A representation (samples x dimensions; neighbours are computed with
        ``max_neighbors=n_neighbors``) or a :class:`Neighbors`.
    batch
        Batch per sample.
    """
    knn = _as_neighbors(X_or_knn, max_neighbors=n_neighbors)
    values = lisi(knn, batch, perplexity=perplexity)
    med = float(np.nanmedian(values))
    if not scale:
        return med
    nb = _codes(batch, knn.n_obs, "batch")[1]
    if nb < 2:
        raise InputError("ilisi needs at least 2 batches")
    return (med - 1.0) / (nb - 1.0)


def clisi(
    X_or_knn, labels, *, perplexity: float | None = None, scale: bool = True, n_neighbors: int = 90
) -> float:
    """Cell-type LISI (cLISI): how pure each neighbourhood is in labels.

    Scaled as ``scib-metrics`` (``clisi_knn``): ``(L - median) / (L - 1)``, 1 = every
    neighbourhood holds one label, 0 = all ``L`` labels mixed. Higher is better.
    """
    knn = _as_neighbors(X_or_knn, max_neighbors=n_neighbors)
    values = lisi(knn, labels, perplexity=perplexity)
    med = float(np.nanmedian(values))
    if not scale:
        return med
    nl = _codes(labels, knn.n_obs, "label")[1]
    if nl < 2:
        raise InputError("clisi needs at least 2 labels")
    return (nl - med) / (nl - 1.0)


# ------------------------------------------------------------------------------- kBET
def _kbet_acceptance(neigh_codes: np.ndarray, codes: np.ndarray, n_b: int, alpha: float) -> float:
    from scipy.stats import chi2

    n, k = neigh_codes.shape
    freq = np.bincount(codes, minlength=n_b) / codes.size
    flat = (np.arange(n)[:, None] * n_b + neigh_codes).ravel()
    observed = np.bincount(flat, minlength=n * n_b).reshape(n, n_b)
    expected = freq * k
    stat = ((observed - expected) ** 2 / expected).sum(1)
    p = chi2.sf(stat, n_b - 1)
    return float((p >= alpha).mean())


def kbet(
    X_or_knn,
    batch,
    labels=None,
    *,
    k: int | None = None,
    alpha: float = 0.05,
    n_neighbors: int = 90,
    return_per_label: bool = False,
):
    """kBET-style acceptance rate (Büttner et al. 2019): are neighbourhoods' batch mixes
    consistent with the global one?

    For every sample, Pearson's chi-squared test compares the batch counts among its
    ``k`` nearest neighbours (itself included) with the counts expected from the batch
    proportions; the score is the fraction of samples whose test is *not* rejected at
    ``alpha`` (1 = well mixed). Without ``labels`` this is exactly
    ``scib_metrics.kbet`` on the same neighbours (the first ``k`` columns of the shared
    graph; default all of them).

    With ``labels`` (the scIB flavour, recommended when the batches hold different
    label proportions): per label, the exact ``k0``-NN graph is recomputed within that
    label's samples (``k0 = min(70, max(10, mean batch size / 4))``, as scIB), the
    expected proportions are the label's own batch proportions, and the acceptance rates
    are averaged over labels (labels with one batch or fewer than 10 samples are
    skipped). ``scib_metrics.kbet_per_label`` instead finds the within-label neighbours
    by diffusion distance on the connectivity graph, so the two differ (typically by a
    few hundredths); ours needs the representation itself (pass an array).

    Returns
    -------
    float in ``[0, 1]`` (and the per-label Series with ``return_per_label``).
    """
    if labels is None:
        knn = _as_neighbors(X_or_knn, max_neighbors=n_neighbors)
        codes, n_b = _codes(batch, knn.n_obs, "batch")
        if n_b < 2:
            raise InputError("kbet needs at least 2 batches")
        idx = knn.indices if k is None else knn.subset(k)[0]
        return _kbet_acceptance(codes[idx], codes, n_b, alpha)
    if isinstance(X_or_knn, Neighbors):
        raise InputError("kbet with labels recomputes neighbours per label: pass the representation")
    from sklearn.neighbors import NearestNeighbors

    X = _check(X_or_knn)
    codes, _ = _codes(batch, X.shape[0], "batch")
    labels = np.asarray(pd.Series(np.asarray(labels)).astype(str))
    if len(labels) != X.shape[0]:
        raise InputError(f"{len(labels)} labels for {X.shape[0]} samples")
    per = {}
    for lab in np.unique(labels):
        m = np.flatnonzero(labels == lab)
        sub = codes[m]
        present, sub = np.unique(sub, return_inverse=True)
        if m.size < 10 or present.size < 2:
            continue
        k0 = k or int(min(70, max(10, np.floor(np.bincount(sub).mean() / 4))))
        k0 = min(k0, m.size)
        idx = NearestNeighbors(n_neighbors=k0, algorithm="brute").fit(X[m]).kneighbors(X[m])[1]
        per[lab] = _kbet_acceptance(sub[idx], sub, present.size, alpha)
    series = pd.Series(per, name="kbet", dtype=float)
    score = float(series.mean()) if len(series) else float("nan")
    return (score, series) if return_per_label else score


# -------------------------------------------------------------------------------- PCR
def pcr_batch(X, batch, *, n_components: int | None = None) -> float:
    """Principal-component regression of batch: the share of variance explained by batch.

    ``sum_j R^2_j var_j / sum_j var_j`` over the principal components ``j`` of ``X``
    (centred; all components unless ``n_components``), where ``R^2_j`` is that of the
    regression of PC ``j`` on the batch indicators (one-way ANOVA: between-batch sum of
    squares over total), as ``scib_metrics.utils.principal_component_regression(...,
    categorical=True)``. 0 = batch explains nothing; **lower is better**. scIB's score
    ``pcr_comparison`` is ``(before - after) / before`` of two such values.
    """
    X = _check(X)
    codes, n_b = _codes(batch, X.shape[0], "batch")
    if n_b < 2:
        raise InputError("pcr_batch needs at least 2 batches")
    Xc = X - X.mean(0)
    # PCA through the (dimensions x dimensions) covariance: fast for tall matrices
    evals, evecs = np.linalg.eigh(Xc.T @ Xc)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.maximum(evals[order], 0.0), evecs[:, order]
    if n_components is not None:
        evals, evecs = evals[:n_components], evecs[:, :n_components]
    Z = Xc @ evecs
    var = evals / max(X.shape[0] - 1, 1)
    counts = np.bincount(codes, minlength=n_b).astype(np.float64)
    sums = np.zeros((n_b, Z.shape[1]))
    np.add.at(sums, codes, Z)
    between = (sums**2 / counts[:, None]).sum(0)
    total = (Z**2).sum(0)
    r2 = np.divide(between, total, out=np.zeros_like(total), where=total > 0)
    return float(np.dot(np.clip(r2, 0, 1), var) / var.sum())


# -------------------------------------------------------------------- graph connectivity
def graph_connectivity(graph, labels, *, connection: str = "strong") -> float:
    """Graph connectivity (scIB): per label, the fraction of its samples in the largest
    connected component of the graph restricted to that label; mean over labels.

    1 = each label forms one connected piece. ``graph`` is a sparse adjacency (e.g.
    :attr:`Neighbors.connectivities`, symmetric like scanpy's, as scIB uses) or a
    :class:`Neighbors` (its connectivities are used). ``scib-metrics`` passes its directed
    kNN distance graph with ``connection="strong"``; on a symmetric graph strong and weak
    components coincide.
    """
    from scipy.sparse.csgraph import connected_components

    G = graph.connectivities if isinstance(graph, Neighbors) else sparse.csr_matrix(graph)
    labels = np.asarray(pd.Series(np.asarray(labels)).astype(str))
    if len(labels) != G.shape[0]:
        raise InputError(f"{len(labels)} labels for a graph of {G.shape[0]} samples")
    res = []
    for lab in np.unique(labels):
        m = np.flatnonzero(labels == lab)
        _, comps = connected_components(G[m][:, m], connection=connection)
        res.append(np.bincount(comps).max() / m.size)
    return float(np.mean(res))


# ------------------------------------------------------------------------ NMI / ARI
def _igraph(G):
    """The graph as :func:`scanpy.tl.leiden` builds it: one undirected edge per stored entry."""
    import igraph as ig

    G = sparse.csr_matrix(G)
    rows, cols = G.nonzero()
    g = ig.Graph(n=G.shape[0], edges=np.column_stack([rows, cols]), directed=False)
    g.es["weight"] = np.asarray(G[rows, cols]).ravel()
    return g


class _IgraphRNG:
    """igraph's random source from a numpy RandomState, as scanpy seeds it."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.RandomState(seed)

    def getrandbits(self, k: int) -> int:
        return self._rng.tomaxint() & ((1 << k) - 1)

    def randint(self, a: int, b: int) -> int:
        return self._rng.randint(a, b + 1)

    def __getattr__(self, attr: str):
        return getattr(self._rng, "normal" if attr == "gauss" else attr)


def leiden_clusters(graph, *, resolution: float = 1.0, seed: int = 0, _g=None) -> np.ndarray:
    """Leiden clusters of a symmetric connectivity graph (modularity with resolution).

    Runs what :func:`scanpy.tl.leiden` runs with ``flavor="igraph"``,
    ``n_iterations=2``, ``directed=False`` and ``random_state=seed``
    (``igraph.Graph.community_leiden`` with the edge weights, igraph's random number
    generator drawn from ``numpy.random.RandomState(seed)``), so the clusters are the same; the
    graph is built once and reused across seeds by :func:`nmi_ari_leiden`.
    """
    import random

    import igraph as ig

    G = graph.connectivities if isinstance(graph, Neighbors) else graph
    g = _g if _g is not None else _igraph(G)
    ig.set_random_number_generator(_IgraphRNG(seed))
    try:
        part = g.community_leiden(
            objective_function="modularity", weights="weight", resolution=resolution, n_iterations=2
        )
    finally:
        ig.set_random_number_generator(random)
    return np.asarray(part.membership).astype(str)


def nmi_ari_leiden(graph, labels, *, resolution: float = 1.0, seeds=(0, 1, 2), return_clusters: bool = False):
    """NMI and ARI between Leiden clusters and labels, each the mean over ``seeds``.

    ``graph`` is an AnnData (its ``obsp["connectivities"]``), a :class:`Neighbors` or a
    sparse adjacency. Leiden runs at the fixed ``resolution`` once per seed
    (decisions.md item 15); the scores are :func:`sklearn.metrics.normalized_mutual_info_score`
    (arithmetic mean normalisation) and :func:`sklearn.metrics.adjusted_rand_score`, as
    ``scib-metrics``. ``scib_metrics.nmi_ari_cluster_labels_leiden`` instead optimises
    the resolution over 0.2, 0.4, ..., 2 and keeps the best NMI, with one seed and
    igraph's own Leiden call: the clustering differs, so the values are not comparable
    to 1e-3 (the scores of a given clustering are identical).

    Returns
    -------
    dict with ``nmi``, ``ari`` (means), ``nmi_sd``, ``ari_sd`` and ``n_clusters`` (mean);
    with ``return_clusters`` also ``clusters``, the list of label arrays per seed.
    """
    from anndata import AnnData
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    if isinstance(graph, AnnData):
        if "connectivities" not in graph.obsp:
            raise InputError("the AnnData has no obsp['connectivities']; run scanpy.pp.neighbors first")
        graph = graph.obsp["connectivities"]
    labels = np.asarray(pd.Series(np.asarray(labels)).astype(str))
    G = graph.connectivities if isinstance(graph, Neighbors) else graph
    g = _igraph(G)
    nmi, ari, ncl, clusters = [], [], [], []
    for s in seeds:
        cl = leiden_clusters(G, resolution=resolution, seed=int(s), _g=g)
        if len(cl) != len(labels):
            raise InputError(f"{len(labels)} labels for a graph of {len(cl)} samples")
        nmi.append(normalized_mutual_info_score(labels, cl, average_method="arithmetic"))
        ari.append(adjusted_rand_score(labels, cl))
        ncl.append(np.unique(cl).size)
        clusters.append(cl)
    out = {
        "nmi": float(np.mean(nmi)),
        "ari": float(np.mean(ari)),
        "nmi_sd": float(np.std(nmi)),
        "ari_sd": float(np.std(ari)),
        "n_clusters": float(np.mean(ncl)),
    }
    if return_clusters:
        out["clusters"] = clusters
    return out


# ------------------------------------------------------------------------- the table
#: metric -> (kind, higher_is_better), in the table's order
METRICS = {
    "asw_batch": ("batch", True),
    "ilisi": ("batch", True),
    "kbet": ("batch", True),
    "pcr_batch": ("batch", False),
    "graph_connectivity": ("batch", True),
    "asw_label": ("bio", True),
    "clisi": ("bio", True),
    "nmi": ("bio", True),
    "ari": ("bio", True),
}


def integration_metrics(
    adata,
    *,
    batch_key: str = "batch",
    label_key: str,
    use_rep: str = "X_pca",
    representation: str | None = None,
    n_neighbors: int = 15,
    lisi_neighbors: int = 90,
    leiden_resolution: float = 1.0,
    leiden_seeds=(0, 1, 2),
    kbet_alpha: float = 0.05,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Every integration metric of one representation, as a tidy table.

    One exact kNN graph (:func:`neighbors`) is computed and shared by iLISI, cLISI,
    graph connectivity and Leiden; the silhouettes, per-label kBET and PCR use the
    representation itself.

    Batch removal (``kind="batch"``): :func:`asw_batch`, :func:`ilisi`, :func:`kbet`
    (per label), :func:`pcr_batch` (the only one where lower is better),
    :func:`graph_connectivity`. Biology conservation (``kind="bio"``): :func:`asw_label`,
    :func:`clisi`, and ``nmi``/``ari`` from :func:`nmi_ari_leiden` (mean of the seeds).

    Parameters
    ----------
    adata
        AnnData holding the representation in ``obsm[use_rep]`` (or ``X`` when
        ``use_rep="X"``), and ``obs[batch_key]``, ``obs[label_key]``.
    representation
        Name written in the ``representation`` column (default ``use_rep``).
    n_neighbors, lisi_neighbors
        See :func:`neighbors`.
    leiden_resolution, leiden_seeds
        See :func:`nmi_ari_leiden`.
    kbet_alpha
        Significance level of kBET's tests.

    Returns
    -------
    DataFrame with columns ``representation``, ``metric``, ``value``, ``kind``
    (``"batch"`` / ``"bio"``), ``higher_is_better``, one row per metric.
    """
    for key in (batch_key, label_key):
        if key not in adata.obs:
            raise InputError(f"obs column {key!r} is absent (have {list(adata.obs.columns)})")
    if use_rep == "X":
        X = adata.X.toarray() if sparse.issparse(adata.X) else adata.X
    elif use_rep in adata.obsm:
        X = adata.obsm[use_rep]
    else:
        raise InputError(f"obsm[{use_rep!r}] is absent (have {list(adata.obsm)})")
    X = _check(X)
    batch = adata.obs[batch_key].astype(str).to_numpy()
    labels = adata.obs[label_key].astype(str).to_numpy()
    if X.shape[0] < 3:
        raise InputError(f"integration metrics need at least 3 samples, got {X.shape[0]}")
    k = int(min(max(lisi_neighbors, n_neighbors), X.shape[0]))
    # one pass over the distances: both silhouettes and the kNN graph
    s_label, per_label, idx, dist = _asw_fast(X, batch, labels, k=k)
    knn = _make_neighbors(idx, dist, n_neighbors)
    clus = nmi_ari_leiden(knn, labels, resolution=leiden_resolution, seeds=leiden_seeds)
    values = {
        "asw_batch": float(per_label.mean()) if len(per_label) else float("nan"),
        "ilisi": ilisi(knn, batch),
        "kbet": kbet(X, batch, labels, alpha=kbet_alpha),
        "pcr_batch": pcr_batch(X, batch),
        "graph_connectivity": graph_connectivity(knn, labels),
        "asw_label": float((s_label.mean() + 1) / 2),
        "clisi": clisi(knn, labels),
        "nmi": clus["nmi"],
        "ari": clus["ari"],
    }
    name = representation or use_rep
    return pd.DataFrame(
        [
            {
                "representation": name,
                "metric": m,
                "value": float(values[m]),
                "kind": kind,
                "higher_is_better": hib,
            }
            for m, (kind, hib) in METRICS.items()
        ]
    )
