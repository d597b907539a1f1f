"""ComBat: empirical-Bayes removal of batch effects (Johnson, Li and Rabinovic 2007).

A port of ``sva::ComBat`` (sva 3.46) that gives the same numbers (to 1e-6 of the output's
range for the parametric version, 1e-4 for the non-parametric one) and handles on purpose
what makes other ports fail: factor covariates, aliased designs, singleton batches, genes
that are constant within a batch, missing values, sparse input and float32 data.

How it computes, per gene and vectorised over genes (no loop over genes):

1. The design is ``[batch indicators | covariates]`` from :func:`bioml.design.build_design`
   (``intercept=False``, ``batch_coding="indicator"``): categorical covariates get
   treatment contrasts (the first level is the reference), exactly the columns that
   ``model.matrix(~covariate)`` gives once ComBat drops its intercept.
2. Least squares for every gene at once; the grand mean is the batch-size-weighted mean of
   the batch coefficients (or the reference batch's coefficient); the pooled variance is
   the mean squared residual (divided by N, as sva; by the reference batch's size with
   ``ref_batch``).
3. The data are standardised; ``gamma_hat``/``delta_hat`` are each batch's mean and
   variance (``n_b - 1``) of the standardised data; the priors pool them over genes.
4. The parametric solution iterates sva's ``it.sol`` with its convergence rule; the
   non-parametric one is sva's ``int.eprior``, computed blockwise in log space.
5. Output = ``(s - gamma_star) / sqrt(delta_star) * sqrt(var_pooled) + stand_mean``.

Two passes read the data, in blocks of rows by a chunk of genes, split among threads:

- pass 1 accumulates float64 sufficient statistics (sums, sums of squares, cross products
  with numeric covariates) per *cell*: samples that share their batch and categorical
  covariates, whose design rows are equal. The data are shifted by a per-batch, per-gene
  constant first, so sums of squares lose no precision. Everything per gene (regression,
  pooled variance, batch means and variances) follows from these sums.
- pass 2 writes ``X * A_b + offset_cell (+ numeric covariates x coefficients)``, the
  whole correction folded into a per-batch scale and a per-cell offset row.

So a float32 or sparse matrix is never copied whole into float64, a dense float ``X``
can be corrected in place, and the extra memory is a few MiB of blocks.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Literal, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from .._parallel import blas_single_thread as _blas_single_thread
from .._parallel import n_threads as _n_threads
from .._parallel import threaded as _threaded
from ..design import build_design
from ..errors import ConfigError, DataValueError, InputError

__all__ = ["combat", "combat_matrix"]

log = logging.getLogger("bioml.pp")

NanPolicy = Literal["error", "ignore"]

_CONV = 1e-4  # sva's it.sol convergence threshold
_MAX_ITER = 100_000  # sva has no limit; this only guards against an endless loop
_BLOCK_BYTES = 1 << 20  # float64 working block of the data passes (about the L2 cache)
_SPARSE_CHUNK_BYTES = 64 << 20  # dense float64 chunk of a sparse matrix
_NP_BLOCK_BYTES = 2 << 20  # one block of the non-parametric G x G weights
_MAX_CELLS = 64  # most cells (equal batch and categorical covariates) handled as cells
_CONST_RTOL = 1e-10  # candidates for "constant within a batch" (then checked exactly)
_VAR_RTOL = 1e-11  # pooled variance below this (relative) counts as zero


# ----------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------


def combat(
    adata: AnnData,
    *,
    batch_key: str = "batch",
    covariates: Sequence[str] = (),
    parametric: bool = True,
    mean_only: bool = False,
    ref_batch=None,
    layer: str | None = None,
    nan_policy: NanPolicy = "error",
    chunk_size: int | None = None,
    max_dense_bytes: int | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Remove batch effects with ComBat (empirical Bayes), as ``sva::ComBat`` does.

    The corrected matrix is meant for exploration, embeddings, clustering and plots. For
    differential-expression tests, keep batch as a term in the model instead (for example
    ``~ batch + condition``): tests run on ComBat output treat the estimated batch effects
    as known and overstate the evidence.

    Parameters
    ----------
    adata
        Samples (or cells) x genes, on a log scale (e.g. RMA or log-normalised values).
    batch_key
        Column of ``obs`` with the batch of each sample (a categorical; levels are taken in
        categorical order, otherwise sorted, as R's ``factor()``).
    covariates
        Biological columns of ``obs`` whose effects are kept (sva's ``mod``). Categorical
        columns get treatment contrasts (``model.matrix(~cancer)`` minus its intercept),
        numeric columns enter as they are.
    parametric
        ``True``: parametric priors (sva's ``par.prior=TRUE``); ``False``: the
        non-parametric empirical Bayes of sva (slower: its cost grows with the square of
        the number of genes; about 20 s for 22,000 genes on 2 cores).
    mean_only
        Adjust only the batch means, not the variances (sva's ``mean.only``). Forced on,
        as in sva, when a batch has a single sample.
    ref_batch
        A batch level to use as the reference: its data are returned unchanged and the
        other batches are brought to it (sva's ``ref.batch``). Compared with the levels as
        strings, so ``2`` and ``"2"`` both name level ``"2"``.
    layer
        Read the data from ``layers[layer]`` and write the corrected data back there;
        ``None`` reads and writes ``X``.
    nan_policy
        ``"error"``: missing values (NaN) raise :class:`~bioml.errors.DataValueError`.
        ``"ignore"``: they stay NaN in the output and every statistic uses each gene's
        observed values, as sva does with missing values (see Notes).
    chunk_size
        Genes per chunk when reading the data (default: all genes for a dense matrix; for
        a sparse matrix, as many as make a 64 MiB dense float64 chunk).
    max_dense_bytes
        Largest dense output that may be allocated (default: half the available memory).
        The output is dense even for sparse input, since centring destroys sparsity.
    copy
        Return a corrected copy instead of correcting ``adata`` in place.

    Returns
    -------
    The corrected AnnData when ``copy=True``, else ``None``. Writes ``X`` (or
    ``layers[layer]``) as a dense array: float32 stays float32, float64 stays float64,
    sparse input becomes a dense array of its dtype, integers become float64. A dense
    float ``X`` is overwritten in place (no second copy in memory); a view of an
    AnnData first becomes an actual AnnData, as in scanpy, so its parent is not changed.
    Statistics are computed in float64 whatever the input; the final scale-and-shift of
    float32 data is applied in float32 (within a float32 rounding or two of a float64
    computation). Records ``uns["bioml"]["correction"]``:

    ``method``
        ``"combat"``.
    ``params``
        The parameters of the call (``None`` values omitted; lists as arrays of str).
    ``mean_only_used``
        Whether the mean-only version ran (asked for, or forced by a singleton batch).
    ``n_unadjusted_genes``, ``unadjusted_genes``
        How many and which genes were left unadjusted (array of names, possibly empty).
    ``messages``
        What ComBat reported (singleton batch, unadjusted genes, missing values), also
        logged on the ``"bioml.pp"`` logger.

    Raises
    ------
    DesignError
        ``batch_key`` or a covariate is not in ``obs`` or has missing values, a batch has
        a single level, the covariates are collinear (from
        :func:`bioml.design.build_design`).
    ConfoundedDesignError
        Batch is aliased with a covariate (sva stops with "The covariate is confounded
        with batch!"); ``adata`` is left unchanged.
    ConfigError
        ``ref_batch`` is not a batch level (the message lists them) or has a single
        sample; a bad ``nan_policy`` or ``chunk_size``.
    DataValueError
        NaN values with ``nan_policy="error"`` (the message gives their number and the
        first sample and gene holding one), infinite values, non-numeric data, fewer than
        2 genes that can be adjusted.
    InputError
        The dense output would need more than ``max_dense_bytes``, or ``layer`` is
        missing.

    Notes
    -----
    Edge cases, each handled on purpose:

    - **A batch with one sample**: its variance cannot be estimated, so the whole run
      switches to the mean-only version, with sva's message "Note: one batch has only one
      sample, setting mean.only=TRUE".
    - **Genes constant within a batch** (every observed value equal, in a batch of two or
      more samples; e.g. all zeros): sva 3.46 leaves them unadjusted and so does this
      function: their output equals their input, they are listed in
      ``unadjusted_genes`` and the priors are computed without them (as sva, which drops
      them first). Also left unadjusted, where sva would return NaN or stop: genes with
      fewer than two observed values in a batch of two or more samples (or none in a
      singleton batch), genes whose observed values do not support the design, and
      genes with no residual variance.
    - **Missing values** (``nan_policy="ignore"``): as in sva, the regression of each
      gene uses its observed values only, batch means and variances ignore NaN, and
      NaN stay NaN in the output. Also as in sva, when the data hold any NaN the pooled
      variance of every gene is the sample variance of its residuals (denominator
      ``n - 1``) instead of the mean square (denominator ``N``).
    - **Sparse input**: the statistics are computed from dense chunks of ``chunk_size``
      genes, never from a dense copy of the whole matrix; the dense output is allocated
      only after checking it fits in ``max_dense_bytes``.
    - **Non-parametric priors**: sva weights, for each gene, every other gene by the
      likelihood of its data, computed as a raw product that can underflow to 0 for
      every gene (sva then returns NaN for that gene). Here the weights are computed in
      log space, so that case gets the exact weighted mean instead; elsewhere the results
      agree to rounding.

    The passes over the data and the non-parametric weights run on up to 8 threads (the
    cores available to the process); BLAS is held to one thread meanwhile.

    Examples
    --------
    >>> import bioml as bm
    >>> bm.pp.combat(adata, batch_key="batch", covariates=["condition"])  # doctest: +SKIP
    >>> adata.uns["bioml"]["correction"]["mean_only_used"]  # doctest: +SKIP
    False
    """
    if layer is not None and layer not in adata.layers:
        raise InputError(
            f"layer {layer!r} is not in adata.layers (layers: {', '.join(adata.layers.keys()) or 'none'})"
        )
    ad = adata.copy() if copy else adata
    if ad.is_view:  # as scanpy: a view becomes an actual AnnData, so its parent is not written to
        ad._init_as_actual(ad.copy())
    X = ad.layers[layer] if layer is not None else ad.X
    if X is None:
        raise InputError("adata.X is empty: nothing to correct")
    in_place = isinstance(X, np.ndarray) and X.dtype in (np.float32, np.float64) and X.flags.writeable
    corrected, info = combat_matrix(
        X,
        ad.obs,
        batch_key=batch_key,
        covariates=covariates,
        parametric=parametric,
        mean_only=mean_only,
        ref_batch=ref_batch,
        nan_policy=nan_policy,
        chunk_size=chunk_size,
        max_dense_bytes=max_dense_bytes,
        var_names=ad.var_names,
        out=X if in_place else None,
    )
    if not in_place:
        if layer is not None:
            ad.layers[layer] = corrected
        else:
            ad.X = corrected
    names = np.array([str(g) for g in ad.var_names[info["unadjusted"]]], dtype=object)
    params = dict(
        batch_key=batch_key,
        covariates=np.array([str(c) for c in covariates], dtype=object),
        parametric=bool(parametric),
        mean_only=bool(mean_only),
        ref_batch=None if ref_batch is None else str(ref_batch),
        layer=layer,
        nan_policy=nan_policy,
    )
    ad.uns.setdefault("bioml", {})["correction"] = {
        "method": "combat",
        "params": {k: v for k, v in params.items() if v is not None},
        "mean_only_used": bool(info["mean_only_used"]),
        "n_unadjusted_genes": int(len(names)),
        "unadjusted_genes": names,
        "messages": np.array(info["messages"], dtype=object),
    }
    return ad if copy else None


def combat_matrix(
    X,
    obs: pd.DataFrame,
    *,
    batch_key: str,
    covariates: Sequence[str] = (),
    parametric: bool = True,
    mean_only: bool = False,
    ref_batch=None,
    nan_policy: NanPolicy = "error",
    chunk_size: int | None = None,
    max_dense_bytes: int | None = None,
    var_names: Sequence[str] | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """ComBat on a samples x genes matrix; the engine of :func:`combat`.

    Parameters
    ----------
    X
        Samples x genes: a dense array or a scipy sparse matrix (any numeric dtype).
    obs
        Sample annotations, one row per row of ``X``, holding ``batch_key`` and
        ``covariates``.
    batch_key, covariates, parametric, mean_only, ref_batch, nan_policy, chunk_size, max_dense_bytes
        As in :func:`combat`.
    var_names
        Gene names, used in messages only (default: gene indices).
    out
        Array to write the result into (shape of ``X``, float32 or float64); may be ``X``
        itself, which corrects it in place. ``None`` allocates a new array after checking
        ``max_dense_bytes``.

    Returns
    -------
    corrected
        Dense samples x genes array (float32 for float32 input, float64 otherwise).
    info
        ``batch_levels`` (list of str), ``ref_batch`` (level or ``None``),
        ``mean_only_used`` (bool), ``unadjusted`` (boolean mask over genes),
        ``gamma_star``, ``delta_star`` (batches x genes; NaN for unadjusted genes),
        ``var_pooled``, ``grand_mean`` (per gene), ``n_iterations`` (per batch, parametric
        only), ``n_nan`` (number of missing values) and ``messages`` (list of str).

    Raises
    ------
    As :func:`combat`.

    Examples
    --------
    >>> import numpy as np
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 200, seed=0)
    >>> X = np.log1p(adata.X)
    >>> corrected, info = bm.pp.combat_matrix(X, adata.obs, batch_key="batch", covariates=["condition"])
    >>> corrected.shape
    (300, 200)
    """
    with _blas_single_thread():
        return _combat(
            X,
            obs,
            batch_key=batch_key,
            covariates=covariates,
            parametric=parametric,
            mean_only=mean_only,
            ref_batch=ref_batch,
            nan_policy=nan_policy,
            chunk_size=chunk_size,
            max_dense_bytes=max_dense_bytes,
            var_names=var_names,
            out=out,
        )


def _combat(
    X,
    obs,
    *,
    batch_key,
    covariates,
    parametric,
    mean_only,
    ref_batch,
    nan_policy,
    chunk_size,
    max_dense_bytes,
    var_names,
    out,
):
    """The body of :func:`combat_matrix` (called with BLAS held to one thread)."""
    if nan_policy not in ("error", "ignore"):
        raise ConfigError(f"nan_policy must be 'error' or 'ignore', got {nan_policy!r}")
    X = _check_matrix(X)
    n, G = X.shape
    if len(obs) != n:
        raise InputError(f"obs has {len(obs)} rows but the matrix has {n} samples (rows)")
    if chunk_size is not None and (int(chunk_size) != chunk_size or chunk_size < 1):
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    names = _Names(var_names, obs.index)

    design = build_design(
        obs,
        batch_key=batch_key,
        covariates=list(covariates),
        intercept=False,
        batch_coding="indicator",
    )
    levels = [str(lv) for lv in design.batch_levels[batch_key]]
    codes = design.batch_codes[batch_key]
    k = len(levels)
    M = np.ascontiguousarray(design.matrix[:, design.bio], dtype=np.float64)  # n x q covariates
    q = M.shape[1]
    n_b = np.bincount(codes, minlength=k).astype(np.float64)

    messages: list[str] = []

    def note(msg: str, level: int = logging.INFO) -> None:
        messages.append(msg)
        log.log(level, "combat: %s", msg)

    ref = None
    if ref_batch is not None:
        matches = [i for i, lv in enumerate(levels) if lv == str(ref_batch)]
        if not matches:
            raise ConfigError(
                f"ref_batch {ref_batch!r} is not a level of {batch_key!r} (levels: {', '.join(levels)})"
            )
        ref = matches[0]
        if n_b[ref] < 2:
            raise ConfigError(
                f"ref_batch {levels[ref]!r} has a single sample: the pooled variance is estimated from "
                "the reference batch alone and needs at least 2 samples; choose a larger reference batch"
            )
        note(f"Using batch {levels[ref]!r} as the reference batch (its data are returned unchanged)")

    mean_only_used = bool(mean_only)
    singletons = [levels[b] for b in range(k) if n_b[b] == 1]
    if singletons:
        mean_only_used = True
        note(
            "Note: one batch has only one sample, setting mean.only=TRUE (batch "
            f"{', '.join(map(repr, singletons))}): only batch means are adjusted",
            logging.WARNING,
        )

    # output dtype and memory check, before any work
    out_dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    if out is not None:
        if (
            not isinstance(out, np.ndarray)
            or out.shape != X.shape
            or out.dtype not in (np.float32, np.float64)
        ):
            raise InputError("out must be a float32 or float64 array with the shape of X")
    else:
        _check_dense_fits(n, G, out_dtype, max_dense_bytes)

    # ---- pass 1: sufficient statistics per batch and gene --------------------------
    cat_cols = [j for t in covariates if t in design.factors for j in design.blocks[t]]
    bio_pos = {c: i for i, c in enumerate(design.bio)}
    layout = _Layout(codes, k, M, [bio_pos[j] for j in cat_cols])
    chunks = _gene_chunks(X, chunk_size)
    st = _accumulate(X, layout, chunks, nan_policy, names)
    cnt, n_nan = st.cnt, st.n_nan
    Msum = np.stack([M[r].sum(axis=0) for r in layout.batch_rows])  # k x q
    MtM_b = np.stack([M[r].T @ M[r] for r in layout.batch_rows])  # k x q x q
    # covariate sums over each gene's observed values (gene-independent without NaN)
    Mt1 = st.Mt1 if n_nan else np.broadcast_to(Msum[:, :, None], (k, q, G))
    MtM = st.MtM if n_nan else MtM_b

    # ---- genes that cannot be adjusted ---------------------------------------------
    few = np.zeros(G, dtype=bool)
    for b in range(k):
        few |= cnt[b] == 0
        if n_b[b] > 1:
            few |= cnt[b] < 2
    constant = _constant_genes(X, layout.batch_rows, st, n_b) & ~few
    unadjusted = few | constant
    if constant.any():
        note(
            f"Found {int(constant.sum())} genes with uniform expression within a single batch; these "
            f"will not be adjusted for batch (left as they are): {names.genes(np.flatnonzero(constant))}",
            logging.WARNING,
        )
    if few.any():
        note(
            f"{int(few.sum())} genes have fewer than 2 observed values in a batch; they will not be "
            f"adjusted for batch: {names.genes(np.flatnonzero(few))}",
            logging.WARNING,
        )
    has_nan = bool((cnt[:, ~unadjusted] < n_b[:, None]).any())
    if n_nan:
        note(f"Found {n_nan} missing values (NaN); statistics use each gene's observed values")

    # ---- regression [batch indicators | covariates] ---------------------------------
    XtY = np.concatenate([st.S1, st.MtY.sum(axis=0)], axis=0)  # p x G (shifted data)
    p = k + q
    if not has_nan:
        XtX = np.zeros((p, p))
        XtX[np.arange(k), np.arange(k)] = n_b
        XtX[:k, k:] = Msum
        XtX[k:, :k] = Msum.T
        XtX[k:, k:] = MtM_b.sum(axis=0)
        Bs = np.linalg.solve(XtX, XtY)
    else:
        XtXg = np.zeros((G, p, p))
        XtXg[:, np.arange(k), np.arange(k)] = cnt.T
        XtXg[:, :k, k:] = np.moveaxis(Mt1, 2, 0)
        XtXg[:, k:, :k] = np.swapaxes(XtXg[:, :k, k:], 1, 2)
        XtXg[:, k:, k:] = np.moveaxis(MtM.sum(axis=0), 2, 0)
        todo = np.flatnonzero(~unadjusted)
        sub = XtXg[todo]
        with np.errstate(invalid="ignore", divide="ignore"):
            dg = np.sqrt(np.diagonal(sub, axis1=1, axis2=2))
            corr = sub / (dg[:, :, None] * dg[:, None, :])  # scale-free: unit diagonal
        finite = np.isfinite(corr).all(axis=(1, 2))
        cond = np.full(len(todo), np.inf)
        if finite.any():
            cond[finite] = np.linalg.cond(corr[finite])
        bad = todo[~(cond < 1e10)]
        if len(bad):
            unadjusted[bad] = True
            note(
                f"{len(bad)} genes have observed values that cannot estimate the design; they will not "
                f"be adjusted for batch: {names.genes(bad)}",
                logging.WARNING,
            )
        XtXg[unadjusted] = np.eye(p)
        Bs = np.linalg.solve(XtXg, XtY.T[:, :, None])[:, :, 0].T
    Bb = Bs[:k] + st.shift  # batch coefficients of the unshifted data (k x G)
    Bm = Bs[k:]  # covariate coefficients (q x G)

    # residual sums of squares (all samples; reference batch)
    rss = st.S2.sum(axis=0) - np.einsum("pg,pg->g", Bs, XtY)
    if ref is None:
        grand = (n_b / n_b.sum()) @ Bb
        var_pooled = rss / (cnt.sum(axis=0) - 1) if has_nan else rss / n_b.sum()
    else:
        grand = Bb[ref].copy()
        r = ref
        bs = Bs[r]
        rss_ref = (
            st.S2[r]
            - 2 * (bs * st.S1[r] + np.einsum("qg,qg->g", Bm, st.MtY[r]))
            + bs * bs * cnt[r]
            + 2 * bs * np.einsum("qg,qg->g", Bm, Mt1[r])
            + _quad(Bm, MtM[r])
        )
        var_pooled = rss_ref / (cnt[r] - 1) if has_nan else rss_ref / n_b[r]
    scale = st.S2.sum(axis=0) / np.maximum(cnt.sum(axis=0), 1) + (st.shift**2).mean(axis=0)
    novar = ~unadjusted & ~(var_pooled > _VAR_RTOL * scale)
    if novar.any():
        unadjusted |= novar
        note(
            f"{int(novar.sum())} genes have no residual variance; they will not be adjusted for batch: "
            f"{names.genes(np.flatnonzero(novar))}",
            logging.WARNING,
        )

    keep = np.flatnonzero(~unadjusted)
    if len(keep) < 2:
        raise DataValueError(
            f"ComBat pools information across genes and needs at least 2 genes that vary within every "
            f"batch; found {len(keep)} of {G}"
        )

    # ---- standardised data: batch means and variances ------------------------------
    sd = np.sqrt(var_pooled[keep])
    Bmk = Bm[:, keep]
    cntk = cnt[:, keep]
    sbar = np.empty((k, len(keep)))
    svar = np.full((k, len(keep)), np.nan)
    for b in range(k):
        sz = st.S1[b, keep] - np.einsum("qg,qg->g", Bmk, Mt1[b][:, keep])
        szz = (
            st.S2[b, keep]
            - 2 * np.einsum("qg,qg->g", Bmk, st.MtY[b][:, keep])
            + _quad(Bmk, MtM[b][..., keep] if n_nan else MtM[b])
        )
        sbar[b] = (sz / cntk[b] + st.shift[b, keep] - grand[keep]) / sd
        with np.errstate(invalid="ignore", divide="ignore"):
            ssz = np.maximum(szz - sz * sz / cntk[b], 0.0)
            svar[b] = np.where(cntk[b] > 1, ssz / (cntk[b] - 1) / var_pooled[keep], np.nan)
    gamma_hat = sbar - sbar[ref] if ref is not None else sbar
    delta_hat = np.ones_like(svar) if mean_only_used else svar

    # ---- empirical Bayes ----------------------------------------------------------
    gamma_star = np.zeros_like(gamma_hat)
    delta_star = np.ones_like(gamma_hat)
    n_iter = [0] * k
    todo_b = [b for b in range(k) if b != ref]
    if parametric:
        for b in todo_b:
            gs_, ds_, it = _parametric(gamma_hat[b], delta_hat[b], sbar[b], svar[b], cntk[b], mean_only_used)
            gamma_star[b], delta_star[b], n_iter[b] = gs_, ds_, it
            if it >= _MAX_ITER:
                note(f"the parametric iteration for batch {levels[b]!r} did not converge", logging.WARNING)
    else:
        for b in todo_b:
            gamma_star[b], delta_star[b] = _nonparametric(
                gamma_hat[b], delta_hat[b], sbar[b], svar[b], cntk[b]
            )

    # ---- pass 2: write the corrected data ------------------------------------------
    A = np.ones((k, G))
    C0 = np.zeros((k, G))
    Bmb = np.zeros((k, q, G))
    a = 1.0 / np.sqrt(delta_star)
    A[:, keep] = a
    C0[:, keep] = grand[keep] * (1.0 - a) - gamma_star * sd * a
    if q:
        Bmb[:, :, keep] = Bmk[None] * (1.0 - a)[:, None, :]
    if out is None:
        out = np.empty((n, G), dtype=out_dtype)
    _write(X, out, layout, chunks, A, C0, Bmb, ref)

    full = lambda v: _scatter(v, keep, G)  # noqa: E731
    info = dict(
        batch_levels=levels,
        ref_batch=levels[ref] if ref is not None else None,
        mean_only_used=mean_only_used,
        unadjusted=unadjusted,
        gamma_star=np.stack([full(v) for v in gamma_star]),
        delta_star=np.stack([full(v) for v in delta_star]),
        var_pooled=full(var_pooled[keep]),
        grand_mean=full(grand[keep]),
        n_iterations=n_iter,
        n_nan=n_nan,
        messages=messages,
    )
    return out, info


# ----------------------------------------------------------------------------------
# empirical Bayes
# ----------------------------------------------------------------------------------


def _parametric(g_hat, d_hat, sbar, svar, n, mean_only):
    """sva's parametric adjustment for one batch, vectorised over genes."""
    g_bar = g_hat.mean()
    t2 = g_hat.var(ddof=1)
    if mean_only:
        # postmean(gamma.hat, gamma.bar, 1, 1, t2): n fixed at 1 and delta.star = 1
        return (t2 * g_hat + g_bar) / (t2 + 1.0), np.ones_like(g_hat), 0
    m = d_hat.mean()
    s2 = d_hat.var(ddof=1)
    a = (2 * s2 + m**2) / s2
    b = (m * s2 + m**3) / s2
    # sum((s - g)^2) over a batch = (n - 1) * var(s) + n * (mean(s) - g)^2
    ss_within = (n - 1) * svar
    g_old, d_old = g_hat, d_hat
    it = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        while True:
            g_new = (t2 * n * g_hat + d_old * g_bar) / (t2 * n + d_old)
            sum2 = ss_within + n * (sbar - g_new) ** 2
            d_new = (0.5 * sum2 + b) / (n / 2.0 + a - 1.0)
            # sva: max(abs(g.new - g.old) / g.old, abs(d.new - d.old) / d.old), the
            # denominators outside abs(): negative old values never delay convergence
            change = max(np.nanmax(np.abs(g_new - g_old) / g_old), np.nanmax(np.abs(d_new - d_old) / d_old))
            g_old, d_old = g_new, d_new
            it += 1
            if not change > _CONV or it >= _MAX_ITER:
                break
    return g_new, d_new, it


def _nonparametric(g_hat, d_hat, sbar, svar, n):
    """sva's ``int.eprior`` for one batch, blockwise over genes and in log space.

    For gene ``i`` the weight of every other gene ``j`` is
    ``(2 pi d_j)^(-n_i/2) exp(-sum_k (x_ik - g_j)^2 / (2 d_j))`` where ``x_i`` are the
    standardised data of gene ``i`` in the batch; ``sum_k (x_ik - g_j)^2 =
    Q_i - 2 P_i g_j + n_i g_j^2`` with ``P_i = sum x``, ``Q_i = sum x^2`` (over observed
    values), so a block of rows of the log-weight matrix is one product of rank 3.
    Weights are exponentiated after subtracting each row's maximum; the diagonal
    (``j == i``) is excluded.
    """
    G = len(g_hat)
    n = np.asarray(n, dtype=np.float64)
    ss = np.where(n > 1, (n - 1) * np.nan_to_num(svar), 0.0)
    d = np.asarray(d_hat, dtype=np.float64)
    beta = -0.5 / d
    # L_ij = -(n_i / 2) log(2 pi d_j) - (Q_i - 2 P_i g_j + n_i g_j^2) / (2 d_j)
    #      = [P_i, Q_i, n_i] . [g_j / d_j, -1 / (2 d_j), -log(2 pi d_j) / 2 - g_j^2 / (2 d_j)]
    left = np.stack([n * sbar, ss + n * sbar * sbar, n], axis=1)  # G x 3: P, Q, n
    right = np.stack([g_hat / d, beta, -0.5 * np.log(2 * np.pi * d) + beta * g_hat * g_hat])  # 3 x G
    rhs = np.stack([g_hat, d, np.ones(G)], axis=1)  # G x 3
    bs = int(max(1, min(G, _NP_BLOCK_BYTES // (8 * G))))
    g_star = np.empty(G)
    d_star = np.empty(G)
    local = threading.local()

    def block(i0: int) -> None:
        i1 = min(G, i0 + bs)
        if not hasattr(local, "buf"):
            local.buf = np.empty((bs, G))
        L = local.buf[: i1 - i0]
        np.matmul(left[i0:i1], right, out=L)
        L[np.arange(i1 - i0), np.arange(i0, i1)] = -np.inf  # other genes only
        L -= L.max(axis=1, keepdims=True)
        np.exp(L, out=L)
        s = L @ rhs
        g_star[i0:i1] = s[:, 0] / s[:, 2]
        d_star[i0:i1] = s[:, 1] / s[:, 2]

    _threaded(block, list(range(0, G, bs)), _n_threads())
    return g_star, d_star


# ----------------------------------------------------------------------------------
# data passes
# ----------------------------------------------------------------------------------


class _Names:
    def __init__(self, var_names, obs_names):
        self.var = None if var_names is None else np.asarray(var_names, dtype=object)
        self.obs = np.asarray(obs_names, dtype=object)

    def gene(self, j: int) -> str:
        return repr(str(self.var[j])) if self.var is not None else f"#{j}"

    def genes(self, idx, limit: int = 10) -> str:
        shown = ", ".join(self.gene(j) for j in idx[:limit])
        return shown + (f", ... ({len(idx)} in all)" if len(idx) > limit else "")


def _check_matrix(X):
    if sparse.issparse(X):
        if X.format not in ("csr", "csc"):
            X = X.tocsr()
    else:
        X = np.asarray(X)
    if X.ndim != 2:
        raise InputError(f"expected a 2-D samples x genes matrix, got shape {X.shape}")
    if X.dtype == bool or not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise DataValueError(f"the expression matrix must be real numbers, got dtype {X.dtype}")
    return X


def _available_memory() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is usually there
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _check_dense_fits(n: int, G: int, dtype, max_dense_bytes) -> None:
    need = n * G * np.dtype(dtype).itemsize
    limit = max_dense_bytes if max_dense_bytes is not None else _available_memory() // 2
    if need > limit:
        raise InputError(
            f"ComBat's output is a dense {n} x {G} {np.dtype(dtype).name} matrix that needs "
            f"{need / 2**20:,.1f} MiB, more than the {limit / 2**20:,.1f} MiB allowed (max_dense_bytes; "
            "default: half the available memory). Centring makes the corrected data dense: subset to "
            "highly variable genes first (bm.pp.highly_variable_genes(adata, subset=True)) or raise "
            "max_dense_bytes."
        )


def _as_rows(idx: np.ndarray):
    """A slice when the rows are contiguous (views instead of copies), else the indices."""
    if len(idx) and idx[-1] - idx[0] == len(idx) - 1:
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def _n_rows(rows) -> int:
    return rows.stop - rows.start if isinstance(rows, slice) else len(rows)


def _row_blocks(rows, size: int):
    if isinstance(rows, slice):
        for r0 in range(rows.start, rows.stop, size):
            yield slice(r0, min(rows.stop, r0 + size))
    else:
        for r0 in range(0, len(rows), size):
            yield rows[r0 : r0 + size]


class _Layout:
    """The samples grouped into cells of equal batch and categorical covariates.

    Within a cell the design row is constant except for numeric covariates, so the
    categorical part of every cross product follows from the cell sums, and the output
    of a cell needs only row-vector broadcasts. With more than ``_MAX_CELLS`` cells the
    categorical columns are treated as numeric ones (cells = batches).
    """

    def __init__(self, codes: np.ndarray, k: int, M: np.ndarray, cat_pos: Sequence[int]):
        self.k = k
        self.batch_rows = [_as_rows(np.flatnonzero(codes == b)) for b in range(k)]
        cat_pos = list(cat_pos)
        for attempt in (cat_pos, []):
            # cells: unique rows of [batch | categorical columns], via one integer key
            key = codes.astype(np.int64)
            for j in attempt:
                _, col = np.unique(M[:, j], return_inverse=True)
                _, key = np.unique(key * (int(col.max()) + 1) + col.ravel(), return_inverse=True)
                if key.max() >= max(_MAX_CELLS, k):
                    break
            _, first, inv = np.unique(key, return_index=True, return_inverse=True)
            if len(first) <= max(_MAX_CELLS, k) or not attempt:
                cat_pos = attempt
                break
        uniq = np.column_stack([codes[first].astype(np.float64), M[np.ix_(first, cat_pos)]])
        inv = np.asarray(inv).ravel()
        self.row_batch = codes.astype(np.intp)
        self.row_cell = inv.astype(np.intp)
        self.cat = np.asarray(cat_pos, dtype=np.intp)
        self.num = np.asarray([j for j in range(M.shape[1]) if j not in cat_pos], dtype=np.intp)
        self.Mn = np.ascontiguousarray(M[:, self.num])
        self.cell_batch = uniq[:, 0].astype(np.intp)  # sorted: cells of a batch are consecutive
        self.cell_cat = uniq[:, 1:]
        self.cell_rows = [_as_rows(np.flatnonzero(inv == c)) for c in range(len(uniq))]
        self.cell_size = np.array([_n_rows(r) for r in self.cell_rows], dtype=np.float64)
        qn = len(self.num)
        self.cell_n1 = np.stack([self.Mn[r].sum(axis=0) for r in self.cell_rows]) if qn else None
        self.cell_nn = np.stack([self.Mn[r].T @ self.Mn[r] for r in self.cell_rows]) if qn else None
        self.gathers = any(not isinstance(r, slice) for r in self.cell_rows)

    @property
    def n_cells(self) -> int:
        return len(self.cell_rows)


def _gene_chunks(X, chunk_size) -> list[slice]:
    """Gene ranges read one at a time (all genes at once for dense input by default)."""
    n, G = X.shape
    if chunk_size is not None:
        c = int(chunk_size)
    elif sparse.issparse(X):
        c = _SPARSE_CHUNK_BYTES // (8 * max(n, 1))
    else:
        c = G
    c = int(max(1, min(G, c)))
    return [slice(g0, min(G, g0 + c)) for g0 in range(0, G, c)]


class _Chunk:
    """The data of one gene range and its blocks of rows, shared by the threads.

    ``by_cell=True`` (pass 1): blocks of rows of one cell (gathered where a cell's rows
    are not contiguous). ``by_cell=False`` (pass 2): contiguous blocks of rows in order.
    """

    def __init__(self, X, gs: slice, layout: _Layout, *, by_cell: bool):
        self.gs = gs
        self.width = gs.stop - gs.start
        self.copied = True  # src is a private copy, not a view of X
        self.gathers = by_cell and layout.gathers
        if sparse.issparse(X):
            self.src = X[:, gs].toarray()
        elif self.width == X.shape[1]:
            self.src, self.copied = X, False
        elif self.gathers:
            self.src = np.ascontiguousarray(X[:, gs])  # gathers need contiguous rows
        else:
            self.src, self.copied = X[:, gs], False
        self.rows_per_block = max(1, _BLOCK_BYTES // (8 * self.width))
        if by_cell:
            self.blocks = [
                (c, rr)
                for c, rows in enumerate(layout.cell_rows)
                for rr in _row_blocks(rows, self.rows_per_block)
            ]
        else:
            self.blocks = [(None, rr) for rr in _row_blocks(slice(0, X.shape[0]), self.rows_per_block)]

    def run(self, make_worker) -> list:
        """Run ``make_worker()(c, rr, block, private)`` over the blocks, split among threads.

        ``block`` is in the input dtype; ``private`` says whether it is a scratch copy the
        worker may overwrite (else it is a view of the input). Each thread gets its own
        worker (buffers, partial sums) and a contiguous run of blocks; returns the workers.
        """
        threads = min(_n_threads(), len(self.blocks))
        parts = np.array_split(np.arange(len(self.blocks)), max(threads, 1))

        def task(idx) -> object:
            worker = make_worker()
            tbuf = np.empty((self.rows_per_block, self.width), self.src.dtype) if self.gathers else None
            for i in idx:
                c, rr = self.blocks[i]
                if isinstance(rr, slice):
                    blk, private = self.src[rr], self.copied
                elif self.src.flags.c_contiguous:
                    blk, private = tbuf[: len(rr)], True
                    np.take(self.src, rr, axis=0, out=blk, mode="clip")
                else:  # np.take would copy a non-contiguous source whole
                    blk, private = self.src[rr], True
                worker(c, rr, blk, private)
            return worker

        return _threaded(task, parts, threads)


class _Sums:
    """Per-cell sums of the data shifted by a per-batch, per-gene constant (observed values only).

    The missing-value tallies are allocated at the first NaN only.
    """

    def __init__(self, layout: _Layout, G: int):
        C, k, qn = layout.n_cells, layout.k, len(layout.num)
        self.shape = (C, qn, G)
        self.shift = np.zeros((k, G))
        self.S1 = np.zeros((C, G))
        self.S2 = np.zeros((C, G))
        self.NY = np.zeros((C, qn, G))
        self.miss = None  # C x G NaN counts
        self.N1m = None  # C x qn x G: numeric covariates summed over NaN entries
        self.NNm = None  # C x qn x qn x G: their cross products over NaN entries

    def track_nan(self) -> None:
        if self.miss is None:
            C, qn, G = self.shape
            self.miss = np.zeros((C, G))
            self.N1m = np.zeros((C, qn, G))
            self.NNm = np.zeros((C, qn, qn, G))

    def add(self, other: "_Sums", gs: slice) -> None:
        if other.miss is not None:
            self.track_nan()
        for name in ("S1", "S2", "NY", "miss", "N1m", "NNm"):
            part = getattr(other, name)
            if part is not None:
                getattr(self, name)[..., gs] += part


class _BatchStats:
    """Per-batch sufficient statistics of the shifted data (observed values only)."""

    shift: np.ndarray  # k x G
    cnt: np.ndarray  # k x G observed values
    S1: np.ndarray  # k x G sum of y
    S2: np.ndarray  # k x G sum of y^2
    MtY: np.ndarray  # k x q x G sum of m * y
    Mt1: np.ndarray  # k x q x G sum of m
    MtM: np.ndarray  # k x q x q x G sum of m m'
    n_nan: int


def _shift(chunk: _Chunk, rows, nan_policy) -> np.ndarray:
    """Mean of the first rows of a batch (observed values): the shift that keeps sums of squares exact."""
    first = next(_row_blocks(rows, min(64, chunk.rows_per_block)))
    blk = np.asarray(chunk.src[first], dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        m = blk.mean(axis=0)
    if not np.isfinite(m).all():
        ok = np.isfinite(blk)
        m = np.where(ok, blk, 0.0).sum(axis=0) / np.maximum(ok.sum(axis=0), 1)
    return m


def _accumulate(X, layout: _Layout, chunks, nan_policy, names) -> _BatchStats:
    """Pass 1: per-cell sums, then reduced to per-batch statistics."""
    G = X.shape[1]
    sums = _Sums(layout, G)
    Mn, qn = layout.Mn, len(layout.num)

    for gs in chunks:
        chunk = _Chunk(X, gs, layout, by_cell=True)
        width = chunk.width
        shifts = np.stack([_shift(chunk, rows, nan_policy) for rows in layout.batch_rows])
        sums.shift[:, gs] = shifts

        def make_worker():
            part = _Sums(layout, width)
            part.shift = shifts
            y_buf = np.empty((chunk.rows_per_block, width))

            def worker(c, rr, blk, private):
                b = layout.cell_batch[c]
                y = y_buf[: blk.shape[0]]
                np.subtract(blk, shifts[b], out=y)
                s1 = y.sum(axis=0)
                if not np.isfinite(s1).all():
                    if np.isinf(blk).any():
                        raise DataValueError(_nonfinite_message(X, names, inf=True))
                    if nan_policy == "error":
                        raise DataValueError(_nonfinite_message(X, names, inf=False))
                    nanmask = np.isnan(blk)
                    y[nanmask] = 0.0
                    s1 = y.sum(axis=0)
                    mf = nanmask.astype(np.float64)
                    part.track_nan()
                    part.miss[c] += mf.sum(axis=0)
                    for j in range(qn):
                        m_j = Mn[rr, j]
                        part.N1m[c, j] += m_j @ mf
                        for j2 in range(qn):
                            part.NNm[c, j, j2] += (m_j * Mn[rr, j2]) @ mf
                part.S1[c] += s1
                part.S2[c] += np.einsum("ij,ij->j", y, y)
                for j in range(qn):
                    part.NY[c, j] += Mn[rr, j] @ y

            worker.part = part
            return worker

        for worker in chunk.run(make_worker):
            sums.add(worker.part, gs)
    return _reduce(sums, layout)


def _reduce(sums: _Sums, layout: _Layout) -> _BatchStats:
    """Per-batch statistics from the cell sums.

    Without missing values the covariate cross products do not depend on the gene:
    ``Mt1`` and ``MtM`` are then ``None`` (the caller uses ``M_b' 1`` and ``M_b' M_b``).
    """
    k, G = sums.shift.shape
    cat, num = layout.cat, layout.num
    q = len(cat) + len(num)
    st = _BatchStats()
    st.shift = sums.shift
    st.S1 = np.zeros((k, G))
    st.S2 = np.zeros((k, G))
    st.cnt = np.zeros((k, G))
    st.MtY = np.zeros((k, q, G))
    st.n_nan = int(sums.miss.sum()) if sums.miss is not None else 0
    nan = st.n_nan > 0
    st.Mt1 = np.zeros((k, q, G)) if nan else None
    st.MtM = np.zeros((k, q, q, G)) if nan else None
    for c in range(layout.n_cells):
        b = layout.cell_batch[c]
        mc = layout.cell_cat[c]
        cnt_c = layout.cell_size[c] - sums.miss[c] if nan else layout.cell_size[c]
        st.S1[b] += sums.S1[c]
        st.S2[b] += sums.S2[c]
        st.cnt[b] += cnt_c
        if len(cat):
            st.MtY[b][cat] += mc[:, None] * sums.S1[c]
        if len(num):
            st.MtY[b][num] += sums.NY[c]
        if not nan:
            continue
        if len(cat):
            st.Mt1[b][cat] += mc[:, None] * cnt_c
            st.MtM[b][np.ix_(cat, cat)] += np.multiply.outer(np.outer(mc, mc), cnt_c)
        if len(num):
            n1 = layout.cell_n1[c][:, None] - sums.N1m[c]  # qn x G, over observed values
            st.Mt1[b][num] += n1
            st.MtM[b][np.ix_(num, num)] += layout.cell_nn[c][:, :, None] - sums.NNm[c]
            if len(cat):
                cross = mc[:, None, None] * n1[None]  # qc x qn x G
                st.MtM[b][np.ix_(cat, num)] += cross
                st.MtM[b][np.ix_(num, cat)] += np.swapaxes(cross, 0, 1)
    return st


def _quad(B: np.ndarray, MtM: np.ndarray) -> np.ndarray:
    """Per gene ``B[:, g]' MtM B[:, g]``, with MtM q x q or q x q x G."""
    if MtM.ndim == 2:
        return np.einsum("qg,qs,sg->g", B, MtM, B)
    return np.einsum("qg,qsg,sg->g", B, MtM, B)


def _nonfinite_message(X, names: _Names, *, inf: bool) -> str:
    """Count the NaN (or infinite) values of X and name the first sample and gene holding one."""
    test = np.isinf if inf else np.isnan
    count = 0
    first = None
    if sparse.issparse(X):
        hit = np.flatnonzero(test(X.data))
        count = len(hit)
        if count:
            major = np.searchsorted(X.indptr, hit, side="right") - 1
            minor = X.indices[hit]
            rows, cols = (major, minor) if X.format == "csr" else (minor, major)
            o = np.lexsort((cols, rows))[0]
            first = (int(rows[o]), int(cols[o]))
    else:
        size = max(1, _BLOCK_BYTES // (8 * max(X.shape[1], 1)))
        for r0 in range(0, X.shape[0], size):
            m = test(X[r0 : r0 + size])
            c = int(m.sum())
            if c and first is None:
                i, j = np.argwhere(m)[0]
                first = (r0 + int(i), int(j))
            count += c
    what = "infinite" if inf else "missing (NaN)"
    where = (
        f"; the first is in sample {str(names.obs[first[0]])!r}, gene {names.gene(first[1])}" if first else ""
    )
    hint = (
        "ComBat needs finite values"
        if inf
        else "remove or impute them, or pass nan_policy='ignore' to keep them as NaN in the output"
    )
    return f"the expression matrix holds {count} {what} values{where}: {hint}"


def _constant_genes(X, batch_rows, st: _BatchStats, n_b) -> np.ndarray:
    """Genes whose observed values are all equal within some batch of 2+ samples.

    Candidates come from the sums (within-batch spread below 1e-10 of the level); each
    candidate is then checked exactly (maximum == minimum), as sva's ``var(x) == 0``.
    """
    G = X.shape[1]
    constant = np.zeros(G, dtype=bool)
    cnt = st.cnt
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.maximum(cnt, 1.0)
        ss = st.S2 - st.S1 * st.S1 / c
        level = st.S2 / c + st.shift**2
        cand = (ss <= _CONST_RTOL * level * c) & (cnt >= 2) & (n_b[:, None] > 1)
    for b in np.flatnonzero(cand.any(axis=1)):
        genes = np.flatnonzero(cand[b] & ~constant)
        rows = batch_rows[b]
        width = max(1, _SPARSE_CHUNK_BYTES // (8 * max(_n_rows(rows), 1)))
        for j0 in range(0, len(genes), width):
            g = genes[j0 : j0 + width]
            if sparse.issparse(X):
                sub = X[:, g][rows].toarray()
            elif isinstance(rows, slice):
                sub = X[rows][:, g]
            else:
                sub = X[np.ix_(rows, g)]
            with np.errstate(invalid="ignore"):
                same = np.fmax.reduce(sub, axis=0) == np.fmin.reduce(sub, axis=0)
            constant[g[same]] = True
    return constant


def _write(X, out, layout: _Layout, chunks, A, C0, Bmb, ref) -> None:
    """Pass 2: out = X * A_b + C0_b + M @ Bm_b, in contiguous blocks of rows.

    The categorical covariates are constant within a cell: their part is folded into one
    offset row per cell; numeric covariates add one product per column. Each block looks
    its rows' scale and offset up in these small tables (the reference batch and the
    unadjusted genes have scale 1 and offset 0, which leaves them exactly as they are).
    float32 data into a float32 output are transformed in float32 (the coefficients come
    from float64 statistics); anything else in float64.
    """
    same = out is X
    cat, num = layout.cat, layout.num
    work = np.float32 if (X.dtype == np.float32 and out.dtype == np.float32) else np.float64
    off = np.empty((layout.n_cells, X.shape[1]))
    for c in range(layout.n_cells):
        b = layout.cell_batch[c]
        off[c] = C0[b] + (layout.cell_cat[c] @ Bmb[b][cat] if len(cat) else 0.0)
    if ref is not None:
        A, off, Bmb = A.copy(), off.copy(), Bmb.copy()
        A[ref] = 1.0
        off[layout.cell_batch == ref] = 0.0
        Bmb[ref] = 0.0
    Mn = layout.Mn.astype(work)
    row_batch, row_cell = layout.row_batch, layout.row_cell

    for gs in chunks:
        chunk = _Chunk(X, gs, layout, by_cell=False)
        A_c = np.ascontiguousarray(A[:, gs], dtype=work)  # k x width
        off_c = np.ascontiguousarray(off[:, gs], dtype=work)  # cells x width
        Bn_c = [np.ascontiguousarray(Bmb[:, j, gs], dtype=work) for j in num]  # k x width each

        def make_worker():
            shape = (chunk.rows_per_block, chunk.width)
            a_buf, o_buf = np.empty(shape, dtype=work), np.empty(shape, dtype=work)
            y_buf = np.empty(shape, dtype=work)

            def worker(_c, rr, blk, private):
                n_r = blk.shape[0]
                a, o = a_buf[:n_r], o_buf[:n_r]
                np.take(A_c, row_batch[rr], axis=0, out=a, mode="clip")
                np.take(off_c, row_cell[rr], axis=0, out=o, mode="clip")
                # in place where the block is a scratch copy or a view of the output
                y = blk if blk.dtype == work and (private or same) else y_buf[:n_r]
                np.multiply(blk, a, out=y)
                y += o
                for j, B_j in enumerate(Bn_c):
                    np.take(B_j, row_batch[rr], axis=0, out=a, mode="clip")
                    a *= Mn[rr, j][:, None]
                    y += a
                if y is not blk or private:  # else y is already the output
                    out[rr, gs] = y

            return worker

        chunk.run(make_worker)


def _scatter(v: np.ndarray, keep: np.ndarray, G: int) -> np.ndarray:
    full = np.full(G, np.nan)
    full[keep] = v
    return full
