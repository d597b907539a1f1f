"""Confounding diagnostics: is batch aliased with, or strongly associated to, the biology?

Run before any correction. A fully confounded design (batch aliased with a covariate) is
refused with :class:`~bioml.errors.ConfoundedDesignError`; a partial one is quantified:

- per batch key and categorical covariate: the batch x level contingency table and
  Cramér's V (no continuity correction), 0 = independent, 1 = batch determines level;
- per batch key and continuous covariate: R^2 of covariate ~ batch (one-way ANOVA);
- per biological coefficient: the variance inflation caused by adding the batch terms to
  the model, ``[(X'X)^-1]_jj`` with batch over the same without batch. A factor of 2 means
  the biological effect is estimated with twice the variance (as if from half the samples).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import stats

from ..design import build_design, factor_levels
from ..errors import ConfoundedDesignError

__all__ = ["check_confounding", "confounding_table"]

log = logging.getLogger("bioml.pp")


def _cramers_v(table: pd.DataFrame) -> float:
    t = table.to_numpy(dtype=np.float64)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    k = min(t.shape) - 1
    if k < 1:
        return 0.0
    chi2 = stats.chi2_contingency(t, correction=False)[0]
    return float(np.sqrt(chi2 / (t.sum() * k)))


def _r2_on_factor(y: np.ndarray, codes: np.ndarray) -> float:
    y = y.astype(np.float64)
    total = ((y - y.mean()) ** 2).sum()
    if total == 0:
        return 0.0
    sums = np.bincount(codes, weights=y)
    counts = np.bincount(codes)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    within = ((y - means[codes]) ** 2).sum()
    return float(1.0 - within / total)


def _is_categorical(s: pd.Series) -> bool:
    return (
        not pd.api.types.is_numeric_dtype(s)
        or pd.api.types.is_bool_dtype(s)
        or isinstance(s.dtype, pd.CategoricalDtype)
    )


def check_confounding(
    data: AnnData | pd.DataFrame,
    *,
    batch_key: str = "batch",
    batch_key2: str | None = None,
    covariates: Sequence[str] = (),
    batch_covariates: Sequence[str] = (),
    cramers_v_warn: float = 0.5,
    r2_warn: float = 0.5,
    vif_warn: float = 2.0,
    raise_on_aliased: bool = True,
    key_added: str = "confounding",
) -> dict[str, Any]:
    """Quantify how batch is associated with the biological covariates; refuse aliasing.

    Parameters
    ----------
    data
        An AnnData (its ``obs`` is used) or a sample sheet (DataFrame indexed by sample).
    batch_key, batch_key2
        Batch factors that correction would remove.
    covariates
        Biological variables that correction must keep.
    batch_covariates
        Continuous technical terms that correction would remove (in the design).
    cramers_v_warn, r2_warn, vif_warn
        Warning thresholds: Cramér's V (categorical), R^2 (continuous), variance
        inflation of a biological coefficient.
    raise_on_aliased
        Raise :class:`~bioml.errors.ConfoundedDesignError` for an aliased design (the
        default). ``False`` returns the report with ``status="refused"`` and the message,
        for sweeps that record refusals as data.
    key_added
        With an AnnData, the report is also stored in ``uns[key_added]``.

    Returns
    -------
    The report, a dict with ``status`` (``"ok"``, ``"warn"`` or ``"refused"``),
    ``message`` (the refusal, or ``""``), ``warnings`` (list of str), ``n_samples``,
    ``design_columns``, ``design_rank``, ``batch_sizes`` (per batch key, level -> n),
    ``singleton_batches``, ``associations`` (one dict per batch key and covariate:
    ``batch_key``, ``covariate``, ``kind``, ``statistic`` name, ``value``, ``flagged``,
    and for categorical covariates the contingency ``table`` as nested dicts) and
    ``variance_inflation`` (design column -> factor; ``inf`` when aliased).

    Raises
    ------
    ConfoundedDesignError
        When batch is aliased with the covariates and ``raise_on_aliased`` is true; the
        message names the batch and covariate levels involved and what can be done.
    DesignError
        Missing columns, single-level factors, collinear covariates.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(400, 50, confounding=0.9, seed=0)
    >>> report = bm.pp.check_confounding(adata, batch_key="batch", covariates=["condition"])
    >>> report["status"]
    'warn'
    """
    obs = data.obs if isinstance(data, AnnData) else data
    keys = [k for k in (batch_key, batch_key2) if k]
    report: dict[str, Any] = {
        "status": "ok",
        "message": "",
        "warnings": [],
        "n_samples": int(len(obs)),
        "params": {
            "batch_key": batch_key,
            "batch_key2": batch_key2 or "",
            "covariates": list(covariates),
            "batch_covariates": list(batch_covariates),
            "cramers_v_warn": cramers_v_warn,
            "r2_warn": r2_warn,
            "vif_warn": vif_warn,
        },
    }
    kwargs = dict(
        batch_key=batch_key,
        batch_key2=batch_key2,
        covariates=covariates,
        batch_covariates=batch_covariates,
        intercept=True,
        batch_coding="sum",
    )
    refusal: ConfoundedDesignError | None = None
    try:
        design = build_design(obs, **kwargs)
    except ConfoundedDesignError as err:
        refusal = err
        design = build_design(obs, **kwargs, check=False)
    report["design_columns"] = list(design.columns)
    report["design_rank"] = design.rank

    batch_sizes = {}
    singletons = []
    for key in keys:
        counts = obs[key].value_counts(sort=False)
        levels = factor_levels(obs[key])
        batch_sizes[key] = {str(lv): int(counts[lv]) for lv in levels}
        singletons += [f"{key}={lv}" for lv in levels if counts[lv] == 1]
    report["batch_sizes"] = batch_sizes
    report["singleton_batches"] = singletons
    if singletons:
        report["warnings"].append(
            f"batch level(s) {', '.join(singletons)} hold a single sample: linear removal erases "
            "their data and ComBat falls back to mean-only"
        )

    associations = []
    for key in keys:
        levels = factor_levels(obs[key])
        codes = obs[key].map({lv: i for i, lv in enumerate(levels)}).to_numpy(dtype=np.int64)
        for cov in covariates:
            s = obs[cov]
            if _is_categorical(s):
                table = pd.crosstab(obs[key], s)
                table = table.loc[[lv for lv in levels if lv in table.index]]
                value = _cramers_v(table)
                entry = {
                    "batch_key": key,
                    "covariate": cov,
                    "kind": "categorical",
                    "statistic": "cramers_v",
                    "value": value,
                    "flagged": value >= cramers_v_warn,
                    "table": {
                        str(b): {str(c): int(v) for c, v in row.items()} for b, row in table.iterrows()
                    },
                }
                threshold = cramers_v_warn
            else:
                value = _r2_on_factor(s.to_numpy(), codes)
                entry = {
                    "batch_key": key,
                    "covariate": cov,
                    "kind": "continuous",
                    "statistic": "r2",
                    "value": value,
                    "flagged": value >= r2_warn,
                }
                threshold = r2_warn
            associations.append(entry)
            if entry["flagged"] and refusal is None:
                report["warnings"].append(
                    f"{cov!r} is strongly associated with batch {key!r}: {entry['statistic']} = "
                    f"{value:.2f} >= {threshold}"
                )
    report["associations"] = associations

    X = design.matrix
    Xb = X[:, design.bio]
    bio_names = [design.columns[j] for j in design.bio if design.columns[j] != "intercept"]
    vif: dict[str, float] = {}
    if refusal is None and bio_names:
        full = np.diag(np.linalg.inv(X.T @ X))
        red = np.diag(np.linalg.inv(Xb.T @ Xb))
        for j in design.bio:
            name = design.columns[j]
            if name == "intercept":
                continue
            vif[name] = float(full[j] / red[j])
            if vif[name] >= vif_warn:
                report["warnings"].append(
                    f"including batch inflates the variance of {name} by {vif[name]:.2f}x (>= {vif_warn}): "
                    "the biology is estimated much less precisely"
                )
    elif refusal is not None:
        vif = {name: float("inf") for name in bio_names}
    report["variance_inflation"] = vif

    if refusal is not None:
        report["status"] = "refused"
        report["message"] = str(refusal)
    elif report["warnings"]:
        report["status"] = "warn"
    for w in report["warnings"]:
        log.warning("confounding: %s", w)
    if isinstance(data, AnnData):
        data.uns[key_added] = _for_uns(report)
    if refusal is not None:
        log.error("confounding: %s", refusal)
        if raise_on_aliased:
            raise refusal
    return report


def confounding_table(report: dict[str, Any]) -> pd.DataFrame:
    """The report as a tidy table: one row per association and per variance inflation.

    Columns: ``kind`` (``association`` / ``variance_inflation``), ``batch_key``,
    ``term``, ``statistic``, ``value``, ``flagged``, and the run's ``status``.

    Parameters
    ----------
    report
        The dict returned by :func:`check_confounding` (or read back from
        ``adata.uns["confounding"]`` or the pipeline's ``report.json``).

    Returns
    -------
    pandas.DataFrame
        One row per batch-covariate association and per variance-inflation factor.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(400, 50, confounding=0.9, seed=0)
    >>> report = bm.pp.check_confounding(adata, covariates=["condition"])
    >>> bm.pp.confounding_table(report)[["kind", "term", "statistic"]]  # doctest: +SKIP
    """
    rows = [
        {
            "kind": "association",
            "batch_key": a["batch_key"],
            "term": a["covariate"],
            "statistic": a["statistic"],
            "value": a["value"],
            "flagged": bool(a["flagged"]),
        }
        for a in report["associations"]
    ]
    vif_warn = report["params"]["vif_warn"]
    rows += [
        {
            "kind": "variance_inflation",
            "batch_key": ",".join(report["batch_sizes"]),
            "term": name,
            "statistic": "variance_inflation",
            "value": v,
            "flagged": bool(v >= vif_warn),
        }
        for name, v in report["variance_inflation"].items()
    ]
    table = pd.DataFrame(rows, columns=["kind", "batch_key", "term", "statistic", "value", "flagged"])
    table["status"] = report["status"]
    return table


def _for_uns(obj):
    """A copy that h5ad can store: no None, lists of str as arrays, bools kept."""
    if isinstance(obj, dict):
        return {str(k): _for_uns(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        if all(isinstance(x, dict) for x in obj) and obj:
            return {str(i): _for_uns(x) for i, x in enumerate(obj)}
        return np.array([str(x) for x in obj], dtype=object)
    return obj
