"""Linear-model batch removal (limma's ``removeBatchEffect``) and per-gene batch tests.

Both fit, for every gene at once, the model built by :func:`bioml.design.build_design`:
one QR factorisation of the design serves all genes (no loop over genes), and the
genes are processed in column chunks so that the float64 working copy stays small.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import linalg, sparse, stats

from .._parallel import blas_single_thread as _blas_single_thread
from .._parallel import n_threads as _n_threads
from .._parallel import threaded as _threaded
from ..design import Design, build_design
from ..errors import DataValueError

__all__ = ["remove_batch_effect", "batch_effect_tests"]

log = logging.getLogger("bioml.pp")

_CHUNK_BYTES = 64 * 2**20  # float64 working set per chunk of genes


def _get_matrix(adata: AnnData, layer: str | None):
    return adata.X if layer is None else adata.layers[layer]


def _row_chunks(n_obs: int, n_vars: int):
    """Slices of samples (rows) whose float64 copy fits in the chunk budget.

    Rows are contiguous in the usual C-ordered (and CSR) matrices, so row blocks are
    read without strided gathers; a gene-wise fit then needs two passes: one to
    accumulate ``Q^T Y`` over row blocks, one to write the residuals.
    """
    step = max(1, min(n_obs, _CHUNK_BYTES // (8 * max(n_vars, 1))))
    for start in range(0, n_obs, step):
        yield slice(start, min(start + step, n_obs))


def _row_pieces(shape: tuple[int, int]) -> list[slice]:
    """Row blocks for the threaded passes: at least two per thread, each within budget."""
    n_obs, n_vars = shape
    budget = max(1, _CHUNK_BYTES // (8 * max(n_vars, 1)))
    step = max(1, min(budget, -(-n_obs // (2 * _n_threads()))))
    return [slice(i, min(i + step, n_obs)) for i in range(0, n_obs, step)]


def _rows_f64(X, sl: slice) -> np.ndarray:
    """A float64 copy of rows ``sl`` (always a copy: callers modify it in place)."""
    block = X[sl]
    if sparse.issparse(block):
        return block.toarray().astype(np.float64, copy=False)
    return np.array(block, dtype=np.float64, copy=True)


def _check_finite(X, what: str) -> None:
    data = X.data if sparse.issparse(X) else X
    bad = ~np.isfinite(data)
    if bad.any():
        raise DataValueError(
            f"{what} holds {int(bad.sum())} NaN or infinite values; a linear model cannot be fitted "
            "(fix the input, or set data.nan_policy at ingest)"
        )


def _projector(design: Design) -> tuple[np.ndarray, np.ndarray]:
    """``(Q, R^-1)`` of the thin QR of the design (full column rank is checked by the builder)."""
    Q, R = np.linalg.qr(design.matrix, mode="reduced")
    return Q, linalg.solve_triangular(R, np.eye(R.shape[0]))


def remove_batch_effect(
    adata: AnnData,
    *,
    batch_key: str | None = "batch",
    batch_key2: str | None = None,
    covariates: Sequence[str] = (),
    batch_covariates: Sequence[str] = (),
    layer: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Remove batch effects with gene-wise linear models, as limma's ``removeBatchEffect``.

    For every gene, expression is regressed on ``[intercept | covariates | batch |
    batch_covariates]`` (batch factors with sum-to-zero contrasts, as limma) and only the
    fitted batch part is subtracted. The biological covariates are estimated jointly, so
    they are kept. With batch alone each gene ends centred on the unweighted mean of its
    batch means (limma's behaviour, not the grand mean).

    The corrected matrix is meant for exploration, embeddings and plots. For
    differential-expression tests keep batch as a term in the model instead of testing
    corrected data (whose residual degrees of freedom are overstated).

    Parameters
    ----------
    adata
        Samples x genes, on a log scale (e.g. the output of :func:`bioml.pp.qc`).
    batch_key, batch_key2
        obs columns of the batch factors to remove.
    covariates
        obs columns of the biology to keep (categorical or numeric).
    batch_covariates
        Numeric obs columns of continuous technical terms to remove.
    layer
        Read from and write to this layer instead of ``X``.
    copy
        Return a corrected copy instead of correcting in place.

    Returns
    -------
    The corrected AnnData when ``copy=True``, else ``None``. Writes ``X`` (or ``layer``),
    same dtype as the input (float32 stays float32; the fit is in float64), and
    ``uns["bioml"]["correction"]`` with ``method="linear"``, the parameters, the design
    columns and ``singleton_batches``.

    Raises
    ------
    ConfoundedDesignError
        Batch is aliased with a covariate (limma would silently leave the batch effect in
        place); nothing is modified.
    DesignError
        Missing or single-level columns, collinear covariates.
    DataValueError
        NaN or infinite values.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 200, seed=0)
    >>> bm.pp.qc(adata, min_genes=10, n_top_genes=100)
    >>> bm.pp.remove_batch_effect(adata, batch_key="batch", covariates=["condition"])
    """
    design = build_design(
        adata.obs,
        batch_key=batch_key,
        batch_key2=batch_key2,
        covariates=covariates,
        batch_covariates=batch_covariates,
        intercept=True,
        batch_coding="sum",
    )
    what = f"{'layer ' + repr(layer) if layer else 'X'}"
    Q, Rinv = _projector(design)
    # coefficient rows of the batch terms: C_b = (R^-1 Q^T)[batch] Y; fitted batch part D_b C_b
    P_b = Rinv[design.batch] @ Q.T
    with _blas_single_thread():
        # computed before anything is modified; raises on NaN/inf
        C_b = _batch_coefficients(_get_matrix(adata, layer), design.matrix, P_b, what)
    ad = adata.copy() if copy else adata
    if ad.is_view:  # as scanpy: a view becomes an actual AnnData; its parent is never written
        ad._init_as_actual(ad.copy())
    X = _get_matrix(ad, layer)
    singletons = _singleton_batches(design)
    for key, levels in singletons.items():
        log.warning(
            "remove_batch_effect: batch %r level(s) %s hold a single sample: as in limma, "
            "their values are replaced by the batch-free fit (their own data are erased)",
            key,
            ", ".join(map(str, levels)),
        )
    D_b = design.matrix[:, design.batch]
    dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float64
    # Write into X itself when it is a dense float array (each row block is read before
    # it is overwritten).
    in_place = isinstance(X, np.ndarray) and X.dtype == dtype and X.flags.writeable
    out = X if in_place else np.empty(X.shape, dtype=dtype)
    with _blas_single_thread():
        # Without continuous batch covariates the batch part has one row per batch level
        # (combination): subtract that row, gathered, instead of a product per sample.
        first, inverse = _row_groups(D_b)
        offsets = (D_b[first] @ C_b).astype(dtype, copy=False) if len(first) * 4 <= X.shape[0] else None
        if offsets is not None and not sparse.issparse(X):

            def subtract(sl: slice) -> None:
                # small sub-blocks keep the gathered offsets in cache
                for start in range(sl.start, sl.stop, 128):
                    sub = slice(start, min(start + 128, sl.stop))
                    np.subtract(X[sub], offsets[inverse[sub]], out=out[sub], dtype=dtype)

            _threaded(subtract, _row_pieces(X.shape))
        else:
            for sl in _row_chunks(*X.shape):
                Y = _rows_f64(X, sl)
                Y -= D_b[sl] @ C_b
                out[sl] = Y
    if not in_place:
        if layer is None:
            ad.X = out
        else:
            ad.layers[layer] = out
    ad.uns.setdefault("bioml", {})["correction"] = {
        "method": "linear",
        "params": _params(batch_key, batch_key2, covariates, batch_covariates, layer),
        "design_columns": np.array(design.columns, dtype=object),
        "singleton_batches": np.array([f"{k}={v}" for k, vs in singletons.items() for v in vs], dtype=object),
    }
    return ad if copy else None


def _singleton_batches(design: Design) -> dict[str, list]:
    out = {}
    for key, codes in design.batch_codes.items():
        counts = np.bincount(codes, minlength=len(design.batch_levels[key]))
        lone = [design.batch_levels[key][i] for i in np.flatnonzero(counts == 1)]
        if lone:
            out[key] = lone
    return out


def _params(batch_key, batch_key2, covariates, batch_covariates, layer) -> dict:
    p = {
        "batch_key": batch_key,
        "batch_key2": batch_key2,
        "covariates": list(covariates),
        "batch_covariates": list(batch_covariates),
        "layer": layer,
    }
    return {
        k: (np.array(v, dtype=object) if isinstance(v, list) else v) for k, v in p.items() if v is not None
    }


def _row_groups(D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Groups of identical rows of D: (index of each group's first row, group of each row).

    Rows are keyed by a fixed random projection (a 1-D unique is far faster than
    ``np.unique(axis=0)``); the grouping is then verified exactly, and falls back to
    ``np.unique(axis=0)`` in the (measure-zero) event of a key collision.
    """
    w = np.random.default_rng(12345).uniform(1.0, 2.0, D.shape[1])
    _, first, inverse = np.unique(D @ w, return_index=True, return_inverse=True)
    if not np.array_equal(D[first][inverse], D):
        _, first, inverse = np.unique(D, axis=0, return_index=True, return_inverse=True)
    return first, inverse.ravel()


def _batch_coefficients(X, D: np.ndarray, P: np.ndarray, what: str) -> np.ndarray:
    """``P @ X`` in float64, where column ``i`` of ``P`` depends only on design row ``i``.

    With factor-only designs the samples fall into a few groups of identical design rows
    (batch x covariate levels); then ``P @ X = P_groups @ (group sums of X)``, and the
    sums are accumulated in float64 straight from X without a float64 copy of it.
    Otherwise (continuous terms) the product is accumulated over row blocks.
    Raises :class:`DataValueError` when X holds NaN or infinite values (checked on the
    group sums, which are finite exactly when the data are).
    """
    first, inverse = _row_groups(D)
    if sparse.issparse(X) or len(first) > 256 or len(first) * 4 > X.shape[0]:
        _check_finite(X, what)
        return _project(X, P)

    def piece_sums(sl: slice) -> np.ndarray:
        block, inv = X[sl], inverse[sl]
        out = np.zeros((len(first), X.shape[1]))
        for g in np.unique(inv):
            out[g] = block[inv == g].sum(axis=0, dtype=np.float64)
        return out

    sums = sum(_threaded(piece_sums, _row_pieces(X.shape)))
    if not np.isfinite(sums).all():
        _check_finite(X, what)
    return P[:, first] @ sums


def _project(X, P: np.ndarray) -> np.ndarray:
    """``P @ X`` in float64 (``P``: k x samples), accumulated over row blocks of X."""
    out = np.zeros((P.shape[0], X.shape[1]))
    for sl in _row_chunks(*X.shape):
        out += P[:, sl] @ _rows_f64(X, sl)
    return out


def _rss(X, design_matrix: np.ndarray) -> np.ndarray:
    """Residual sum of squares of every gene (column of X) on a design, in float64."""
    Q, _ = np.linalg.qr(design_matrix, mode="reduced")
    rss = np.zeros(X.shape[1])
    with _blas_single_thread():
        coef = _project(X, Q.T)
        for sl in _row_chunks(*X.shape):
            Y = _rows_f64(X, sl)
            Y -= Q[sl] @ coef
            rss += np.einsum("ij,ij->j", Y, Y)
    return rss


def batch_effect_tests(
    adata: AnnData,
    *,
    batch_key: str | None = "batch",
    batch_key2: str | None = None,
    covariates: Sequence[str] = (),
    batch_covariates: Sequence[str] = (),
    layer: str | None = None,
    key_added: str = "batch_test",
    fdr: float = 0.05,
    inplace: bool = True,
) -> pd.DataFrame | None:
    """Per-gene F-test of the batch terms given the covariates, with Benjamini-Hochberg FDR.

    For every gene, the full model ``[intercept | covariates | batch | batch_covariates]``
    is compared with the reduced model ``[intercept | covariates]`` (the same design as
    :func:`remove_batch_effect`): ``F = ((RSS_r - RSS_f) / q) / (RSS_f / (n - p))`` with
    ``q`` batch columns and ``p`` columns in all, the p-value from the F(q, n - p)
    distribution, and the FDR from :func:`statsmodels.stats.multitest.multipletests`
    (``fdr_bh``). Vectorised over genes.

    On data that has already been corrected the same test measures residual batch
    structure; its degrees of freedom ignore that the correction itself was fitted.

    Parameters
    ----------
    adata
        Samples x genes, log scale.
    batch_key, batch_key2, covariates, batch_covariates
        As in :func:`remove_batch_effect`.
    layer
        Test this layer instead of ``X``.
    key_added
        Prefix of the ``var`` columns and the ``uns`` key.
    fdr
        Threshold for the reported fraction of significant genes.
    inplace
        Write into ``adata``; otherwise return the table.

    Returns
    -------
    With ``inplace=False`` a DataFrame indexed by gene with ``F``, ``pvalue``, ``fdr``.
    Otherwise ``None``, writing ``var[f"{key_added}_F"]``, ``var[f"{key_added}_pvalue"]``,
    ``var[f"{key_added}_fdr"]`` and ``uns[key_added]`` (``params``, ``df1``, ``df2``,
    ``fraction_significant`` at ``fdr``).

    Raises
    ------
    DesignError
        Missing obs columns or a rank-deficient design (see :func:`bioml.design.build_design`);
        :class:`~bioml.errors.ConfoundedDesignError` when batch is aliased with a covariate.
    DataValueError
        Non-finite values, or no more samples than design columns.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 200, seed=0)
    >>> bm.pp.qc(adata, min_genes=0, n_top_genes=100)
    >>> table = bm.pp.batch_effect_tests(adata, covariates=["condition"], inplace=False)
    >>> list(table.columns)
    ['F', 'pvalue', 'fdr']
    """
    from statsmodels.stats.multitest import multipletests

    design = build_design(
        adata.obs,
        batch_key=batch_key,
        batch_key2=batch_key2,
        covariates=covariates,
        batch_covariates=batch_covariates,
        intercept=True,
        batch_coding="sum",
    )
    X = _get_matrix(adata, layer)
    _check_finite(X, f"{'layer ' + repr(layer) if layer else 'X'}")
    n, p = design.matrix.shape
    q = len(design.batch)
    df2 = n - p
    if df2 < 1:
        raise DataValueError(f"batch test needs more samples ({n}) than design columns ({p})")
    rss_full = _rss(X, design.matrix)
    rss_red = _rss(X, design.matrix[:, design.bio])
    with np.errstate(divide="ignore", invalid="ignore"):
        F = ((rss_red - rss_full) / q) / (rss_full / df2)
    # genes with no residual variance at all (constant): no evidence either way
    F = np.where(np.isfinite(F), np.maximum(F, 0.0), 0.0)
    pval = stats.f.sf(F, q, df2)
    adj = multipletests(pval, method="fdr_bh")[1]
    table = pd.DataFrame({"F": F, "pvalue": pval, "fdr": adj}, index=adata.var_names)
    if not inplace:
        return table
    for col in table:
        adata.var[f"{key_added}_{col}"] = table[col].to_numpy()
    adata.uns[key_added] = {
        "params": {**_params(batch_key, batch_key2, covariates, batch_covariates, layer), "fdr": fdr},
        "df1": int(q),
        "df2": int(df2),
        "fraction_significant": float((adj < fdr).mean()),
    }
    return None
