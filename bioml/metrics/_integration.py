"""Integration metrics on an embedding: batch mixing and label conservation (scIB style).

Conventions follow scIB (Luecken et al. 2022, ``scib.metrics``) so that values compare:
higher is better for every score, all in ``[0, 1]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import silhouette_samples

from ..errors import InputError

__all__ = ["silhouette_batch", "silhouette_label"]


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
