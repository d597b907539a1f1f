"""Figures of the confounding check and the per-gene batch tests."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["confounding_heatmap", "batch_pvalues"]


def confounding_heatmap(report: dict[str, Any]) -> Figure:
    """Batch x level sample counts for each categorical covariate, from :func:`bioml.pp.check_confounding`.

    Each panel is titled with the covariate, Cramér's V and the check's status; cells
    hold sample counts, so a row with one non-zero cell is a batch holding a single level.
    Continuous covariates are listed with their R^2 in a text panel.

    Parameters
    ----------
    report
        The dict returned by :func:`bioml.pp.check_confounding` (also with
        ``raise_on_aliased=False`` for a refused design).

    Returns
    -------
    matplotlib.figure.Figure
        One heatmap panel per categorical covariate, and a text panel for continuous ones.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(400, 50, confounding=0.7, seed=0)
    >>> report = bm.pp.check_confounding(adata, covariates=["condition"])
    >>> fig = bm.pl.confounding_heatmap(report)
    """
    cats = [a for a in report["associations"] if a["kind"] == "categorical"]
    conts = [a for a in report["associations"] if a["kind"] != "categorical"]
    n_panels = max(1, len(cats) + (1 if conts else 0))
    fig, axes = plt.subplots(1, n_panels, figsize=(4.5 * n_panels, 4.0), layout="constrained", squeeze=False)
    axes = axes[0]
    status = report["status"]
    for ax, a in zip(axes, cats):
        table = pd.DataFrame(a["table"]).T.fillna(0)
        im = ax.imshow(table.to_numpy(), cmap="Blues", aspect="auto")
        ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right")
        ax.set_yticks(range(table.shape[0]), table.index)
        ax.set_xlabel(a["covariate"])
        ax.set_ylabel(a["batch_key"])
        vmax = table.to_numpy().max()
        for (i, j), v in np.ndenumerate(table.to_numpy()):
            ax.text(j, i, f"{int(v)}", ha="center", va="center", color="white" if v > vmax / 2 else "black")
        ax.set_title(f"{a['covariate']}: Cramér's V = {a['value']:.2f} ({status})")
        fig.colorbar(im, ax=ax, shrink=0.8, label="samples")
    if conts or not cats:
        ax = axes[-1]
        ax.axis("off")
        lines = [f"{a['covariate']} ~ {a['batch_key']}: R² = {a['value']:.2f}" for a in conts]
        lines += [f"VIF {k}: {v:.2f}" for k, v in report.get("variance_inflation", {}).items()]
        ax.text(0.0, 1.0, "\n".join(lines) or "no covariates", va="top", family="monospace")
        ax.set_title(f"status: {status}")
    return fig


def batch_pvalues(before: pd.DataFrame, after: pd.DataFrame | None = None, *, fdr: float = 0.05) -> Figure:
    """Histograms of the per-gene batch-test p-values before (and after) correction.

    Without batch effects the p-values are uniform; a spike at 0 is batch structure.
    ``before``/``after`` are tables with ``pvalue`` and ``fdr`` columns, as returned by
    :func:`bioml.pp.batch_effect_tests` with ``inplace=False``.

    Parameters
    ----------
    before
        Per-gene test table before correction (``pvalue`` and ``fdr`` columns).
    after
        The same after correction; ``None`` draws one panel.
    fdr
        FDR threshold whose fraction of significant genes is written in each title.

    Returns
    -------
    matplotlib.figure.Figure
        One histogram panel per table.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 200, seed=0)
    >>> bm.pp.qc(adata, min_genes=0, n_top_genes=100)
    >>> before = bm.pp.batch_effect_tests(adata, covariates=["condition"], inplace=False)
    >>> bm.pp.correct(adata, method="combat", covariates=["condition"])
    >>> after = bm.pp.batch_effect_tests(adata, covariates=["condition"], inplace=False)
    >>> fig = bm.pl.batch_pvalues(before, after)
    """
    tables = [("before correction", before)] + ([("after correction", after)] if after is not None else [])
    fig, axes = plt.subplots(
        1, len(tables), figsize=(4.5 * len(tables), 3.6), layout="constrained", squeeze=False
    )
    for ax, (label, t) in zip(axes[0], tables):
        ax.hist(t["pvalue"], bins=np.linspace(0, 1, 41), color="C0")
        frac = float((t["fdr"] < fdr).mean())
        ax.set_title(f"{label}: {frac:.1%} genes FDR < {fdr}")
        ax.set_xlabel("batch F-test p-value")
        ax.set_ylabel("genes")
    return fig
