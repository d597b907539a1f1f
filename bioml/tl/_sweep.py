"""The confounding demonstration: what correction does to the biology as batch and condition align.

For each level of the simulator's ``confounding`` knob (decisions.md item 10) the same
genes, effects and conditions are simulated (only the batch assignment moves), with their
batch-free twin; the data are filtered and normalised as the pipeline does; the
confounding check runs; and the data are corrected twice, **with** the condition as a
covariate (what the pipeline does) and **naively** without it. What survives is scored
against the ground truth with :func:`bioml.metrics.condition_effect_recovery`.

An aliased design (``confounding = 1`` with as many batches as conditions) makes the check
and the correction with the covariate refuse (:class:`~bioml.errors.ConfoundedDesignError`);
the sweep records that as data (``status = "refused"`` and the message, decisions.md item
11) and goes on. The naive correction never refuses (its model has no covariate to alias),
which is exactly the danger: its row shows how much of the effect it would erase.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import ConfoundedDesignError

__all__ = ["confounding_sweep", "SWEEP_COLUMNS"]

log = logging.getLogger("bioml.tl")

#: the columns of :func:`confounding_sweep`'s table, in order
SWEEP_COLUMNS = [
    "level",
    "model",
    "check_status",
    "cramers_v",
    "max_variance_inflation",
    "status",
    "message",
    "effect_retained",
    "effect_correlation",
    "de_detected",
    "de_false_positive",
    "twin_effect_correlation",
    "twin_de_detected",
    "n_de",
    "n_obs",
    "n_vars",
    "method",
]

_MODELS = (("with_covariate", True), ("naive", False))


def _one_level(
    level: float,
    *,
    n_obs: int,
    n_vars: int,
    method: str,
    seed: int,
    min_samples: int,
    fdr: float,
    sim_kwargs: Mapping[str, Any],
) -> list[dict[str, Any]]:
    from ..metrics import condition_effect_recovery
    from ..pp import check_confounding, correct, normalize
    from ..sim import simulate_counts

    adata, twin = simulate_counts(
        n_obs, n_vars, confounding=float(level), return_batch_free=True, seed=seed, **dict(sim_kwargs)
    )
    truth_names = adata.var_names.copy()
    keep = np.asarray((adata.X > 0).sum(0) >= min_samples).ravel()
    adata, twin = adata[:, keep].copy(), twin[:, keep].copy()
    normalize(adata)
    normalize(twin)
    report = check_confounding(adata, batch_key="batch", covariates=["condition"], raise_on_aliased=False)
    cv = [a["value"] for a in report["associations"]]
    vif = list(report["variance_inflation"].values())
    base = {
        "level": float(level),
        "check_status": report["status"],
        "cramers_v": float(max(cv)) if cv else float("nan"),
        "max_variance_inflation": float(max(vif)) if vif else float("nan"),
        "n_obs": int(adata.n_obs),
        "n_vars": int(adata.n_vars),
        "method": method,
    }
    rows = []
    for model, with_cov in _MODELS:
        row = {**base, "model": model, "status": "ok", "message": ""}
        try:
            corrected = correct(
                adata,
                method=method,
                batch_key="batch",
                covariates=["condition"] if with_cov else [],
                copy=True,
            )
        except ConfoundedDesignError as err:
            log.info("sweep level %s, %s: refused: %s", level, model, err)
            row.update(status="refused", message=str(err))
            rows.append(row)
            continue
        rec = condition_effect_recovery(
            corrected, truth=adata.uns["sim"], truth_var_names=truth_names, reference=twin, fdr=fdr
        )
        row.update(
            effect_retained=rec["effect_retained"],
            effect_correlation=rec["effect_correlation"],
            de_detected=rec["de_detected"],
            de_false_positive=rec["de_false_positive"],
            twin_effect_correlation=rec["reference_effect_correlation"],
            twin_de_detected=rec["reference_de_detected"],
            n_de=rec["n_de"],
        )
        rows.append(row)
    return rows


def confounding_sweep(
    levels: float | Iterable[float] = (0.0, 0.5, 0.9, 1.0),
    *,
    n_obs: int = 600,
    n_vars: int = 500,
    method: str = "combat",
    seed: int = 0,
    min_samples: int = 3,
    fdr: float = 0.05,
    sim_kwargs: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Simulate, check, correct with and without the covariate, and score, per confounding level.

    Parameters
    ----------
    levels
        Values of the simulator's ``confounding`` knob (one number or several).
    n_obs, n_vars
        Size of each simulated data set (3 batches and 3 conditions unless
        ``sim_kwargs`` says otherwise).
    method
        Correction method of :func:`bioml.pp.correct` (``"combat"`` or ``"linear"``).
    seed
        Simulator seed, the same at every level (only the batch assignment changes).
    min_samples
        Genes detected in fewer samples are dropped before normalisation
        (``target_sum=1e4``, ``log1p``, as the pipeline's defaults).
    fdr
        Detection threshold of the per-gene tests.
    sim_kwargs
        Further arguments of :func:`bioml.sim.simulate_counts`.

    Returns
    -------
    A DataFrame with :data:`SWEEP_COLUMNS`, two rows per level (``model``
    ``"with_covariate"`` and ``"naive"``): ``check_status`` (``ok`` / ``warn`` /
    ``refused``, from :func:`bioml.pp.check_confounding`), its Cramér's V and largest
    variance inflation; ``status`` (``ok`` or ``refused``) and ``message`` of the
    correction; the scores of :func:`bioml.metrics.condition_effect_recovery`
    (``effect_retained`` against the batch-free twin, NaN when refused) and the twin's
    own ``twin_effect_correlation`` and ``twin_de_detected``.

    Examples
    --------
    >>> import bioml as bm
    >>> table = bm.tl.confounding_sweep([0.9, 1.0], n_obs=300, n_vars=200)
    >>> table.set_index(["level", "model"])["status"].to_dict()[(1.0, "with_covariate")]
    'refused'
    """
    if np.ndim(levels) == 0:
        levels = [float(levels)]
    rows = []
    for level in levels:
        rows += _one_level(
            float(level),
            n_obs=n_obs,
            n_vars=n_vars,
            method=method,
            seed=seed,
            min_samples=min_samples,
            fdr=fdr,
            sim_kwargs=sim_kwargs or {},
        )
    return pd.DataFrame(rows).reindex(columns=SWEEP_COLUMNS)
