"""Metrics against a simulation's ground truth: are the true condition effects still there?

The simulator (:func:`bioml.sim.simulate_counts`) keeps the truth in ``uns["sim"]``:
``true_condition_lfc`` (conditions x genes, natural-log fold changes against condition 0)
and ``de_genes`` (the same shape, boolean). After correction the user analyses the data
without batch in the model, so the effects are estimated on the corrected values with the
model ``y ~ condition`` (treatment coding, condition 0 the reference), per gene and
vectorised over genes:

- the estimated effect of condition ``k`` on gene ``g`` is the difference of the group
  means, ``mean_k - mean_0`` (on the data's scale, log1p-normalised values in the
  pipeline, which compresses the true natural-log fold changes for weakly expressed
  genes: compare with the batch-free twin rather than expect equality);
- its t statistic uses the pooled residual variance ``RSS / (n - K)``:
  ``t = effect / sqrt(s^2 (1/n_k + 1/n_0))`` with ``n - K`` degrees of freedom,
  two-sided p-values;
- a true DE pair ``(k, g)`` is **detected** when its Benjamini-Hochberg adjusted p-value
  (:func:`statsmodels.stats.multitest.multipletests`, ``fdr_bh``, over all non-reference
  conditions and genes together) is below ``fdr`` (0.05).

On batch-corrected data these tests treat the removed batch effects as known, which
overstates the evidence (see :func:`bioml.pp.combat`); they measure what survives
correction, not a recommended DE analysis.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse, stats

from ..errors import InputError

__all__ = ["estimate_condition_effects", "condition_effect_recovery", "process_like"]


def _matrix(adata: AnnData, layer: str | None) -> np.ndarray:
    X = adata.layers[layer] if layer else adata.X
    X = X.toarray() if sparse.issparse(X) else np.asarray(X)
    return X.astype(np.float64, copy=False)


def estimate_condition_effects(
    adata: AnnData, *, condition_key: str = "condition", layer: str | None = None
) -> dict[str, Any]:
    """Per-gene effects of each condition against the first level (``y ~ condition``).

    Returns
    -------
    dict with ``levels`` (the condition levels, the reference first), ``effect``,
    ``t`` and ``pvalue`` (each ``(K - 1) x genes``), ``df`` (residual degrees of freedom).

    Raises
    ------
    InputError
        The column is missing, has fewer than two levels, or too few samples.
    """
    if condition_key not in adata.obs:
        raise InputError(f"obs column {condition_key!r} is absent (have {list(adata.obs.columns)})")
    cond = adata.obs[condition_key]
    levels = (
        list(cond.cat.categories) if isinstance(cond.dtype, pd.CategoricalDtype) else sorted(cond.unique())
    )
    codes = pd.Categorical(cond, categories=levels).codes.astype(np.int64)
    if (codes < 0).any():
        raise InputError(f"obs column {condition_key!r} has missing values")
    K = len(levels)
    counts = np.bincount(codes, minlength=K).astype(np.float64)
    if K < 2 or (counts == 0).any():
        raise InputError(f"{condition_key!r} needs at least two levels, each with samples; counts {counts}")
    n = codes.size
    if n - K < 1:
        raise InputError(f"{n} samples are too few for {K} condition levels")
    X = _matrix(adata, layer)
    onehot = np.zeros((n, K))
    onehot[np.arange(n), codes] = 1.0
    means = (onehot.T @ X) / counts[:, None]
    rss = ((X - means[codes]) ** 2).sum(0)
    df = n - K
    s2 = rss / df
    effect = means[1:] - means[0]
    se = np.sqrt(s2[None, :] * (1.0 / counts[1:, None] + 1.0 / counts[0]))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, effect / se, 0.0)
    p = 2.0 * stats.t.sf(np.abs(t), df)
    return {"levels": [str(x) for x in levels], "effect": effect, "t": t, "pvalue": p, "df": int(df)}


def _truth_columns(adata: AnnData, truth: Mapping[str, Any], truth_var_names) -> np.ndarray:
    lfc = np.asarray(truth["true_condition_lfc"])
    if truth_var_names is None:
        if lfc.shape[1] != adata.n_vars:
            raise InputError(
                f"the truth covers {lfc.shape[1]} genes and the data {adata.n_vars}: pass "
                "truth_var_names (the simulated data's var_names before any gene filter)"
            )
        return np.arange(adata.n_vars)
    names = pd.Index(np.asarray(truth_var_names).astype(str))
    if len(names) != lfc.shape[1]:
        raise InputError(f"truth_var_names has {len(names)} names for {lfc.shape[1]} truth columns")
    pos = names.get_indexer(adata.var_names.astype(str))
    if (pos < 0).any():
        missing = list(adata.var_names[pos < 0][:5])
        raise InputError(f"genes {missing} of the data are not in truth_var_names")
    return pos


def condition_effect_recovery(
    adata: AnnData,
    *,
    truth: Mapping[str, Any] | None = None,
    condition_key: str = "condition",
    truth_var_names: Sequence[str] | None = None,
    reference: AnnData | None = None,
    layer: str | None = None,
    fdr: float = 0.05,
) -> dict[str, float]:
    """How much of the true condition effect the (corrected) data still carries.

    Parameters
    ----------
    adata
        Corrected (or any) data, samples x genes, with ``obs[condition_key]`` whose
        levels, in their categorical order, are the rows of the truth (condition 0 first).
    truth
        The simulator's truth (default ``adata.uns["sim"]``): ``true_condition_lfc`` and
        ``de_genes``.
    truth_var_names
        Names of the truth's gene columns (the simulated data's ``var_names``), needed
        when genes were filtered; by default the data's genes must be all of them, in
        order.
    reference
        The batch-free twin, processed identically (same samples and genes): the
        retained fraction of the effect is measured against the effects estimated on it.
    layer
        Use this layer instead of ``X``.
    fdr
        Detection threshold (BH-adjusted p-value).

    Returns
    -------
    dict with

    ``effect_correlation``
        Pearson correlation of the estimated and true effects over all non-reference
        conditions and genes (true 0 for genes that are not DE).
    ``de_detected``
        Fraction of the true DE pairs (condition, gene) detected at ``fdr``.
    ``de_false_positive``
        Fraction of the non-DE pairs called significant.
    ``effect_retained`` (only with ``reference``)
        Least-squares slope through the origin of the estimated effects on those of
        the batch-free twin, over the true DE pairs: 1 = the whole effect survives,
        0 = correction removed it, > 1 = inflated.
    ``reference_effect_correlation``, ``reference_de_detected`` (only with ``reference``)
        The same scores on the twin, the ceiling the data can reach.
    ``n_de``
        Number of true DE pairs among the data's genes.
    """
    from statsmodels.stats.multitest import multipletests

    truth = truth if truth is not None else adata.uns.get("sim")
    if truth is None or "true_condition_lfc" not in truth or "de_genes" not in truth:
        raise InputError("no ground truth: pass truth= (the simulator's uns['sim'])")
    cols = _truth_columns(adata, truth, truth_var_names)
    lfc = np.asarray(truth["true_condition_lfc"], dtype=np.float64)[:, cols]
    de = np.asarray(truth["de_genes"], dtype=bool)[:, cols]
    est = estimate_condition_effects(adata, condition_key=condition_key, layer=layer)
    if len(est["levels"]) != lfc.shape[0]:
        raise InputError(
            f"obs[{condition_key!r}] has {len(est['levels'])} levels, the truth {lfc.shape[0]} conditions"
        )
    true_eff, true_de = lfc[1:], de[1:]
    adj = multipletests(est["pvalue"].ravel(), method="fdr_bh")[1].reshape(est["pvalue"].shape)
    called = adj < fdr
    out = {
        "effect_correlation": float(np.corrcoef(est["effect"].ravel(), true_eff.ravel())[0, 1]),
        "de_detected": float(called[true_de].mean()) if true_de.any() else float("nan"),
        "de_false_positive": float(called[~true_de].mean()) if (~true_de).any() else float("nan"),
        "n_de": int(true_de.sum()),
    }
    if reference is not None:
        if not (reference.obs_names.equals(adata.obs_names) and reference.var_names.equals(adata.var_names)):
            raise InputError(
                "the reference (batch-free twin) must hold the same samples and genes as the data"
            )
        ref = condition_effect_recovery(
            reference,
            truth=truth,
            condition_key=condition_key,
            truth_var_names=truth_var_names,
            layer=layer,
            fdr=fdr,
        )
        r = estimate_condition_effects(reference, condition_key=condition_key, layer=layer)["effect"]
        e, rr = est["effect"][true_de], r[true_de]
        out["effect_retained"] = float(np.dot(e, rr) / np.dot(rr, rr)) if rr.size else float("nan")
        out["reference_effect_correlation"] = ref["effect_correlation"]
        out["reference_de_detected"] = ref["de_detected"]
    return out


def process_like(adata: AnnData, reference: AnnData) -> AnnData:
    """The batch-free twin processed as the pipeline processed the data: same samples and genes,
    the same normalisation.

    Takes ``reference``'s samples and genes (as QC left them), applies
    :func:`bioml.pp.normalize` with the parameters recorded in
    ``reference.uns["bioml"]["qc"]["normalize"]["params"]`` (``data_type``,
    ``target_sum``, ``log1p``), and copies ``var["highly_variable"]`` so that PCA uses the
    same genes.

    Raises
    ------
    InputError
        The reference lacks the QC record, or holds samples or genes the twin does not.
    """
    from ..pp import normalize

    try:
        params = dict(reference.uns["bioml"]["qc"]["normalize"]["params"])
    except KeyError as err:
        raise InputError(
            "the reference has no uns['bioml']['qc']['normalize'] record (run bm.pp.qc)"
        ) from err
    for what, ours, theirs in (
        ("samples", adata.obs_names, reference.obs_names),
        ("genes", adata.var_names, reference.var_names),
    ):
        missing = theirs.difference(ours)
        if len(missing):
            raise InputError(
                f"the twin lacks {len(missing)} {what} of the reference, e.g. {list(missing[:3])}"
            )
    out = adata[reference.obs_names, reference.var_names].copy()
    normalize(
        out,
        data_type=params.get("data_type", "counts"),
        target_sum=params.get("target_sum"),
        log1p=bool(params.get("log1p", True)),
    )
    if "highly_variable" in reference.var:
        out.var["highly_variable"] = reference.var["highly_variable"].to_numpy()
    return out
