"""One entry point for the pipeline's correction step: ``none``, ``linear`` or ``combat``."""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from anndata import AnnData

from ..design import build_design
from ..errors import ConfigError

__all__ = ["correct"]


def correct(
    adata: AnnData,
    *,
    method: Literal["none", "linear", "combat"] = "combat",
    batch_key: str = "batch",
    batch_key2: str | None = None,
    covariates: Sequence[str] = (),
    batch_covariates: Sequence[str] = (),
    parametric: bool = True,
    mean_only: bool = False,
    ref_batch: str | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Correct batch effects with the chosen method, refusing confounded designs.

    ``"linear"`` is :func:`bioml.pp.remove_batch_effect` (limma's model: any number of
    batch factors and continuous batch covariates); ``"combat"`` is
    :func:`bioml.pp.combat` (sva's ComBat: one batch factor; ``parametric``,
    ``mean_only`` and ``ref_batch`` apply to it only); ``"none"`` leaves the data as they
    are but still checks the design, so that a confounded design fails the same way.

    Parameters
    ----------
    adata
        Samples x genes on a log scale (e.g. after :func:`qc`).
    method
        ``"linear"``, ``"combat"`` or ``"none"``.
    batch_key, batch_key2
        obs columns of the batch factors to remove (``batch_key2``: linear only).
    covariates
        Biological obs columns whose effects are kept.
    batch_covariates
        Continuous technical obs columns to remove (linear only).
    parametric, mean_only, ref_batch
        ComBat options (see :func:`combat`).
    copy
        Return a corrected copy instead of modifying ``adata``.

    Returns
    -------
    The corrected AnnData when ``copy=True``, else ``None``; ``uns["bioml"]["correction"]``
    records the method and its parameters.

    Raises
    ------
    ConfoundedDesignError
        Batch is aliased with a covariate; nothing is modified.
    ConfigError
        An option that the method does not support (e.g. ``batch_key2`` with ComBat).

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 200, confounding=0.5, seed=0)
    >>> bm.pp.qc(adata, min_genes=0, n_top_genes=100)
    >>> bm.pp.correct(adata, method="combat", batch_key="batch", covariates=["condition"])
    >>> adata.uns["bioml"]["correction"]["method"]
    'combat'
    """
    if method not in ("none", "linear", "combat"):
        raise ConfigError(f"correction method must be 'none', 'linear' or 'combat', got {method!r}")
    ad = adata.copy() if copy else adata
    if method == "linear":
        from ._linear import remove_batch_effect

        remove_batch_effect(
            ad,
            batch_key=batch_key,
            batch_key2=batch_key2,
            covariates=covariates,
            batch_covariates=batch_covariates,
        )
    elif method == "combat":
        if batch_key2 or batch_covariates:
            raise ConfigError(
                "ComBat removes one batch factor: batch_key2 and batch_covariates need "
                "correction.method 'linear'"
            )
        from ._combat import combat

        combat(
            ad,
            batch_key=batch_key,
            covariates=covariates,
            parametric=parametric,
            mean_only=mean_only,
            ref_batch=ref_batch,
        )
    else:
        design = build_design(
            ad.obs,
            batch_key=batch_key,
            batch_key2=batch_key2,
            covariates=covariates,
            batch_covariates=batch_covariates,
        )
        ad.uns.setdefault("bioml", {})["correction"] = {
            "method": "none",
            "design_columns": np.array(design.columns, dtype=object),
        }
    return ad if copy else None
