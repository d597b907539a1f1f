"""Quality control, normalisation and highly variable genes, built on scanpy.

Two kinds of data pass through here, chosen by ``data_type``:

``"counts"``
    Raw counts (single-cell or bulk RNA-seq). Samples with too few detected genes or
    counts and genes detected in too few samples are removed, the raw counts are kept in
    ``layers["counts"]``, ``X`` is library-size normalised (``target_sum``) and
    ``log1p``-transformed, and highly variable genes are chosen with scanpy's
    :func:`~scanpy.pp.highly_variable_genes` (batch-aware through ``batch_key``).
``"log"``
    Data that is already on a log scale, such as RMA-normalised microarrays. Count
    filters, library-size normalisation and ``log1p`` do not apply and are skipped;
    only genes that are constant across all samples (they carry no information and make
    per-gene models singular) and genes with non-finite values are removed. Highly
    variable genes are ranked by variance of the log values, or, when batch-aware, by
    the pooled within-batch variance (variance left after removing each batch's mean),
    so that genes whose spread is only a batch effect are not preferred.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from scipy import sparse

from ..errors import ConfigError, InputError

__all__ = ["filter_samples_genes", "normalize", "highly_variable_genes", "qc", "qc_summary"]

log = logging.getLogger("bioml.pp")

DataType = Literal["counts", "log"]


def _check_data_type(data_type: str) -> None:
    if data_type not in ("counts", "log"):
        raise ConfigError(f"data_type must be 'counts' or 'log', got {data_type!r}")


def _column_variance(X) -> np.ndarray:
    """Per-gene variance (ddof=1) for dense or sparse X, accumulated in float64."""
    n = X.shape[0]
    if n < 2:
        return np.zeros(X.shape[1])
    if sparse.issparse(X):
        mean = np.asarray(X.mean(axis=0, dtype=np.float64)).ravel()
        sq = np.asarray(X.multiply(X).mean(axis=0, dtype=np.float64)).ravel()
        return np.maximum(sq - mean**2, 0.0) * n / (n - 1)
    return np.var(np.asarray(X, dtype=np.float64), axis=0, ddof=1)


def _ensure_nonempty(adata: AnnData, step: str, hint: str) -> None:
    if adata.n_obs == 0:
        raise ConfigError(f"QC step '{step}' removed every sample; {hint}")
    if adata.n_vars == 0:
        raise ConfigError(f"QC step '{step}' removed every gene; {hint}")


def filter_samples_genes(
    adata: AnnData,
    *,
    data_type: DataType = "counts",
    min_genes: int = 0,
    min_counts: float = 0,
    max_counts: float | None = None,
    min_samples: int = 0,
    max_pct_mt: float | None = None,
    mt_prefix: str = "MT-",
    copy: bool = False,
) -> AnnData | None:
    """Compute per-sample and per-gene QC metrics and filter samples and genes.

    Parameters
    ----------
    adata
        Samples (or cells) x genes.
    data_type
        ``"counts"`` applies the count filters below; ``"log"`` applies none of them and
        only removes genes that are constant across all samples.
    min_genes
        Minimum number of detected genes (count > 0) per sample.
    min_counts, max_counts
        Bounds on the total count per sample (``max_counts=None``: no upper bound).
    min_samples
        Minimum number of samples in which a gene is detected.
    max_pct_mt
        Maximum percentage of counts from mitochondrial genes (names starting with
        ``mt_prefix``, case-insensitive); ``None`` skips this filter.
    copy
        Return a filtered copy instead of filtering in place.

    Returns
    -------
    The filtered AnnData when ``copy=True``, else ``None``. Writes
    ``obs["n_genes_by_counts"]``, ``obs["total_counts"]``, ``var["n_cells_by_counts"]``,
    ``var["mean_counts"]`` (counts; with ``max_pct_mt`` also ``obs["pct_counts_mt"]``),
    or ``obs["mean_expression"]`` and ``var["mean"]``, ``var["variance"]`` (log), and
    ``uns["bioml"]["qc"]["filter"]`` with the parameters and the numbers removed.

    Raises
    ------
    ConfigError
        When the thresholds remove every sample or every gene.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 500, seed=0)
    >>> bm.pp.filter_samples_genes(adata, min_genes=50, min_samples=3)
    >>> adata.obs[["n_genes_by_counts", "total_counts"]].head(2)  # doctest: +SKIP
    """
    _check_data_type(data_type)
    ad = adata.copy() if copy else adata
    n_obs0, n_vars0 = ad.n_obs, ad.n_vars
    if data_type == "counts":
        qc_vars = ()
        if max_pct_mt is not None:
            ad.var["mt"] = ad.var_names.str.upper().str.startswith(mt_prefix.upper())
            qc_vars = ("mt",)
        sc.pp.calculate_qc_metrics(ad, qc_vars=qc_vars, percent_top=None, log1p=False, inplace=True)
        keep = (ad.obs["n_genes_by_counts"].to_numpy() >= min_genes) & (
            ad.obs["total_counts"].to_numpy() >= min_counts
        )
        if max_counts is not None:
            keep &= ad.obs["total_counts"].to_numpy() <= max_counts
        if max_pct_mt is not None:
            keep &= ad.obs["pct_counts_mt"].to_numpy() <= max_pct_mt
        if not keep.all():
            ad._inplace_subset_obs(keep)
        _ensure_nonempty(
            ad, "sample filter", f"lower qc.min_genes ({min_genes}) / qc.min_counts ({min_counts})"
        )
        detected = np.asarray((ad.X > 0).sum(axis=0)).ravel()
        gene_keep = detected >= max(min_samples, 1)
        ad.var["n_cells_by_counts"] = detected
        if not gene_keep.all():
            ad._inplace_subset_var(gene_keep)
        _ensure_nonempty(ad, "gene filter", f"lower qc.min_samples ({min_samples})")
    else:
        var = _column_variance(ad.X)
        ad.var["mean"] = np.asarray(ad.X.mean(axis=0, dtype=np.float64)).ravel()
        ad.var["variance"] = var
        ad.obs["mean_expression"] = np.asarray(ad.X.mean(axis=1, dtype=np.float64)).ravel()
        gene_keep = var > 0
        if not gene_keep.all():
            ad._inplace_subset_var(gene_keep)
        _ensure_nonempty(ad, "constant-gene filter", "every gene is constant across samples")
    removed = {
        "samples_removed": int(n_obs0 - ad.n_obs),
        "genes_removed": int(n_vars0 - ad.n_vars),
    }
    log.info(
        "filter (%s): kept %d/%d samples and %d/%d genes",
        data_type, ad.n_obs, n_obs0, ad.n_vars, n_vars0,
    )
    params = dict(
        data_type=data_type, min_genes=min_genes, min_counts=min_counts,
        max_counts=max_counts, min_samples=min_samples, max_pct_mt=max_pct_mt,
        mt_prefix=mt_prefix,
    )
    _record(ad, "filter", params, removed)
    return ad if copy else None


def normalize(
    adata: AnnData,
    *,
    data_type: DataType = "counts",
    target_sum: float | None = 1e4,
    log1p: bool = True,
    copy: bool = False,
) -> AnnData | None:
    """Library-size normalisation and ``log1p`` for counts; a recorded no-op for log data.

    For ``data_type="counts"`` the raw counts are kept in ``layers["counts"]`` (if not
    already there), each sample is scaled to ``target_sum`` total counts (``None``: the
    median library size, as scanpy does) and ``log1p`` is applied when asked.
    For ``data_type="log"`` the values are left as they are.

    Parameters
    ----------
    adata
        Samples x genes, after :func:`filter_samples_genes`.
    data_type
        ``"counts"`` (normalise and log) or ``"log"`` (left as it is).
    target_sum
        Total count of every sample after scaling; ``None`` uses the median library size.
    log1p
        Apply ``log(1 + x)`` after scaling (counts only).
    copy
        Return a processed copy instead of modifying ``adata``.

    Returns
    -------
    The AnnData when ``copy=True``, else ``None``. Writes ``layers["counts"]`` (counts),
    ``X`` and ``uns["bioml"]["qc"]["normalize"]``.

    Raises
    ------
    ConfigError
        ``data_type`` is neither ``"counts"`` nor ``"log"``.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 500, seed=0)
    >>> bm.pp.normalize(adata, target_sum=1e4)
    >>> "counts" in adata.layers
    True
    """
    _check_data_type(data_type)
    ad = adata.copy() if copy else adata
    if data_type == "counts":
        if "counts" not in ad.layers:
            ad.layers["counts"] = ad.X.copy()
        sc.pp.normalize_total(ad, target_sum=target_sum)
        if log1p:
            sc.pp.log1p(ad)
        steps = ["normalize_total"] + (["log1p"] if log1p else [])
    else:
        steps = []
        log.info("normalize: data_type='log', values kept as they are")
    _record(ad, "normalize", dict(data_type=data_type, target_sum=target_sum, log1p=log1p), {"steps": steps})
    return ad if copy else None


def _pooled_within_batch_variance(X, batches: pd.Series) -> np.ndarray:
    """Variance of X (samples x genes) left after removing each batch's mean (float64)."""
    codes = pd.Categorical(batches).codes
    n_levels = codes.max() + 1
    onehot = sparse.csr_matrix(
        (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_levels, len(codes))
    )
    Xd = X.toarray() if sparse.issparse(X) else np.asarray(X)
    Xd = Xd.astype(np.float64, copy=False)
    sizes = np.asarray(onehot.sum(axis=1)).ravel()
    sums = onehot @ Xd
    sq = onehot @ (Xd * Xd)
    within = sq.sum(axis=0) - ((sums**2) / sizes[:, None]).sum(axis=0)
    dof = len(codes) - n_levels
    if dof <= 0:
        raise ConfigError("batch-aware ranking needs more samples than batches")
    return np.maximum(within, 0.0) / dof


def highly_variable_genes(
    adata: AnnData,
    *,
    data_type: DataType = "counts",
    n_top_genes: int = 2000,
    flavor: Literal["seurat", "cell_ranger", "seurat_v3", "variance"] = "seurat",
    batch_key: str | None = None,
    subset: bool = False,
) -> None:
    """Flag the ``n_top_genes`` most variable genes in ``var["highly_variable"]``.

    Parameters
    ----------
    data_type
        ``"counts"``: scanpy's :func:`~scanpy.pp.highly_variable_genes` with ``flavor``
        on log-normalised ``X`` (``seurat_v3`` reads ``layers["counts"]``).
        ``"log"``: ``flavor`` is ignored and genes are ranked by variance of the log
        values (flavor ``"variance"``).
    n_top_genes
        Number of genes to flag; capped at the number of genes.
    batch_key
        Batch-aware selection. For counts, scanpy selects per batch and ranks by the
        number of batches that chose a gene; a batch with fewer than 2 samples cannot be
        ranked on its own, so the selection falls back to all samples, with a warning.
        For log data, genes are ranked by pooled within-batch variance.
    subset
        Keep only the flagged genes.

    Returns
    -------
    ``None``. Writes ``var["highly_variable"]``, ``var["highly_variable_rank"]``
    (0 = most variable) and ``uns["bioml"]["qc"]["hvg"]``; scanpy's flavours also write
    their own ``var`` columns (``means``, ``dispersions``, ...).

    Raises
    ------
    ConfigError
        ``n_top_genes < 1``, an unknown ``flavor`` or ``data_type``, or a batch-aware
        ranking with no more samples than batches.
    InputError
        ``flavor="seurat_v3"`` without raw counts in ``layers["counts"]``.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 500, seed=0)
    >>> bm.pp.normalize(adata)
    >>> bm.pp.highly_variable_genes(adata, n_top_genes=100, batch_key="batch")
    >>> int(adata.var["highly_variable"].sum())
    100
    """
    _check_data_type(data_type)
    if n_top_genes < 1:
        raise ConfigError(f"qc.hvg.n_top_genes must be >= 1, got {n_top_genes}")
    n_top = min(int(n_top_genes), adata.n_vars)
    used_batch_key = batch_key
    if batch_key is not None:
        if batch_key not in adata.obs:
            raise ConfigError(
                f"batch_key {batch_key!r} is not a column of obs "
                f"(columns: {', '.join(map(str, adata.obs.columns))})"
            )
        sizes = adata.obs[batch_key].value_counts()
        if data_type == "counts" and (sizes < 2).any():
            log.warning(
                "hvg: batch(es) %s hold fewer than 2 samples; selecting on all samples "
                "instead of per batch",
                ", ".join(map(str, sizes.index[sizes < 2])),
            )
            used_batch_key = None
    if data_type == "log" or flavor == "variance":
        if used_batch_key is not None:
            score = _pooled_within_batch_variance(adata.X, adata.obs[used_batch_key])
        else:
            score = _column_variance(adata.X)
        order = np.argsort(-score, kind="stable")
        rank = np.empty(adata.n_vars, dtype=np.int64)
        rank[order] = np.arange(adata.n_vars)
        adata.var["hvg_score"] = score
        used_flavor = "variance"
    else:
        kwargs = dict(n_top_genes=n_top, flavor=flavor, batch_key=used_batch_key)
        if flavor == "seurat_v3":
            if "counts" not in adata.layers:
                raise InputError("flavor 'seurat_v3' needs raw counts in layers['counts']")
            kwargs["layer"] = "counts"
        sc.pp.highly_variable_genes(adata, **kwargs)
        hv = adata.var["highly_variable"].to_numpy()
        # A complete ranking: scanpy's flagged genes first, then by normalised dispersion.
        disp_col = next(
            (c for c in ("dispersions_norm", "variances_norm") if c in adata.var), None
        )
        disp = (
            np.nan_to_num(adata.var[disp_col].to_numpy(dtype=np.float64), nan=-np.inf)
            if disp_col
            else np.zeros(adata.n_vars)
        )
        order = np.lexsort((-disp, ~hv))
        rank = np.empty(adata.n_vars, dtype=np.int64)
        rank[order] = np.arange(adata.n_vars)
        used_flavor = flavor
    adata.var["highly_variable_rank"] = rank
    adata.var["highly_variable"] = rank < n_top
    _record(
        adata,
        "hvg",
        dict(n_top_genes=n_top, flavor=used_flavor, batch_key=used_batch_key, subset=subset),
        {"n_highly_variable": int(adata.var["highly_variable"].sum())},
    )
    if subset:
        adata._inplace_subset_var(adata.var["highly_variable"].to_numpy())


def qc(
    adata: AnnData,
    *,
    data_type: DataType = "counts",
    batch_key: str | None = None,
    min_genes: int = 200,
    min_counts: float = 0,
    max_counts: float | None = None,
    min_samples: int = 3,
    max_pct_mt: float | None = None,
    mt_prefix: str = "MT-",
    target_sum: float | None = 1e4,
    log1p: bool = True,
    n_top_genes: int = 2000,
    hvg_flavor: Literal["seurat", "cell_ranger", "seurat_v3", "variance"] = "seurat",
    hvg_batch_aware: bool = True,
    hvg_subset: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Run the QC stage: :func:`filter_samples_genes`, :func:`normalize`, :func:`highly_variable_genes`.

    The parameters are those of the three steps (``min_samples`` is the per-gene
    detection threshold; ``hvg_*`` are ``flavor``, batch awareness through
    ``batch_key``, and ``subset`` of :func:`highly_variable_genes`). See the module
    docstring for what each ``data_type`` does.

    Parameters
    ----------
    adata
        Samples x genes (raw counts, or log-scale values with ``data_type="log"``).
    data_type
        ``"counts"`` or ``"log"``.
    batch_key
        obs column with the batch, for batch-aware HVG selection (``hvg_batch_aware``).
    min_genes, min_counts, max_counts, min_samples, max_pct_mt, mt_prefix
        Filters of :func:`filter_samples_genes` (``min_samples``: per-gene detection).
    target_sum, log1p
        Of :func:`normalize`.
    n_top_genes, hvg_flavor, hvg_batch_aware, hvg_subset
        ``n_top_genes``, ``flavor``, batch awareness and ``subset`` of
        :func:`highly_variable_genes`.
    copy
        Return a processed copy instead of modifying ``adata``.

    Returns
    -------
    The processed AnnData when ``copy=True``, else ``None``. Writes the keys listed by
    the three steps; ``uns["bioml"]["qc"]`` holds each step's parameters and results.

    Raises
    ------
    ConfigError
        A filter removes every sample or every gene (the message names the step and the
        threshold to relax), or an option is out of range.
    InputError
        ``hvg_flavor="seurat_v3"`` without raw counts.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 500, seed=0)
    >>> bm.pp.qc(adata, batch_key="batch", n_top_genes=200)
    >>> int(adata.var["highly_variable"].sum())
    200
    """
    ad = adata.copy() if copy else adata
    filter_samples_genes(
        ad, data_type=data_type, min_genes=min_genes, min_counts=min_counts,
        max_counts=max_counts, min_samples=min_samples, max_pct_mt=max_pct_mt,
        mt_prefix=mt_prefix,
    )
    normalize(ad, data_type=data_type, target_sum=target_sum, log1p=log1p)
    highly_variable_genes(
        ad, data_type=data_type, n_top_genes=n_top_genes, flavor=hvg_flavor,
        batch_key=batch_key if hvg_batch_aware else None, subset=hvg_subset,
    )
    return ad if copy else None


def _record(adata: AnnData, step: str, params: dict, result: dict) -> None:
    store = adata.uns.setdefault("bioml", {}).setdefault("qc", {})
    store[step] = {"params": {k: v for k, v in params.items() if v is not None}, **result}


def qc_summary(adata: AnnData, *, n_obs_before: int, n_vars_before: int) -> pd.DataFrame:
    """A tidy two-column table (``metric``, ``value``) of what :func:`qc` did.

    Parameters
    ----------
    adata
        The AnnData after :func:`qc`.
    n_obs_before, n_vars_before
        Shape before QC.

    Returns
    -------
    pandas.DataFrame
        Rows ``samples_before``, ``samples_after``, ``genes_before``, ``genes_after``,
        ``highly_variable_genes``, ``data_type`` and the steps' settings.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 500, seed=0)
    >>> shape = adata.shape
    >>> bm.pp.qc(adata, n_top_genes=100)
    >>> table = bm.pp.qc_summary(adata, n_obs_before=shape[0], n_vars_before=shape[1])
    >>> list(table.columns)
    ['metric', 'value']
    """
    info = adata.uns.get("bioml", {}).get("qc", {})
    rows = [
        ("samples_before", n_obs_before),
        ("samples_after", adata.n_obs),
        ("genes_before", n_vars_before),
        ("genes_after", adata.n_vars),
        ("highly_variable_genes", int(adata.var.get("highly_variable", pd.Series(dtype=bool)).sum())),
        ("data_type", info.get("filter", {}).get("params", {}).get("data_type", "")),
        ("normalisation_steps", ",".join(info.get("normalize", {}).get("steps", [])) or "none"),
        ("hvg_flavor", info.get("hvg", {}).get("params", {}).get("flavor", "")),
    ]
    if "total_counts" in adata.obs:
        rows.append(("median_total_counts", float(np.median(adata.obs["total_counts"]))))
        rows.append(("median_genes_detected", float(np.median(adata.obs["n_genes_by_counts"]))))
    return pd.DataFrame(rows, columns=["metric", "value"])
