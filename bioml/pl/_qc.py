"""QC figures."""

from __future__ import annotations

import sys

import matplotlib

if "ipykernel" not in sys.modules:
    # figures are files in scripts and rules; in a notebook keep the kernel's (inline) backend
    matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from anndata import AnnData
from matplotlib.figure import Figure

__all__ = ["qc_metrics"]


def _by_group(ax, values: np.ndarray, groups, levels, title: str, log_scale: bool = False) -> None:
    data = [values[np.asarray(groups) == lv] for lv in levels]
    ax.boxplot(data, showfliers=False)
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is repeatable
    for i, d in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(d)), d, s=4, alpha=0.5, color="k")
    ax.set_xticks(range(1, len(levels) + 1), [str(lv) for lv in levels], rotation=45, ha="right")
    ax.set_title(title)
    if log_scale:
        ax.set_yscale("log")


def qc_metrics(adata: AnnData, *, batch_key: str | None = None) -> Figure:
    """Per-sample QC metrics by batch and the mean-variance relation with HVGs marked.

    Parameters
    ----------
    adata
        Output of :func:`bioml.pp.qc` (reads ``obs["total_counts"]`` and
        ``obs["n_genes_by_counts"]`` for counts, ``obs["mean_expression"]`` for log
        data, and ``var["highly_variable"]``).
    batch_key
        obs column to group samples by; ``None`` puts all samples in one group.

    Returns
    -------
    A matplotlib figure with two or three panels.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 500, seed=0)
    >>> bm.pp.qc(adata, batch_key="batch", n_top_genes=100)
    >>> fig = bm.pl.qc_metrics(adata, batch_key="batch")
    """
    if batch_key is not None:
        col = adata.obs[batch_key]
        groups = col.astype(str).to_numpy()
        levels = [str(c) for c in (col.cat.categories if hasattr(col, "cat") else sorted(set(groups)))]
        levels = [lv for lv in levels if lv in set(groups)]
    else:
        groups, levels = np.array(["all"] * adata.n_obs), ["all"]
    counts = "total_counts" in adata.obs
    n_panels = 3 if counts else 2
    fig, axes = plt.subplots(1, n_panels, figsize=(4.2 * n_panels, 3.8), layout="constrained")
    if counts:
        _by_group(
            axes[0], adata.obs["total_counts"].to_numpy(), groups, levels, "total counts per sample", True
        )
        _by_group(
            axes[1], adata.obs["n_genes_by_counts"].to_numpy(), groups, levels, "genes detected per sample"
        )
    else:
        _by_group(
            axes[0], adata.obs["mean_expression"].to_numpy(), groups, levels, "mean expression per sample"
        )
    X = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    mean = X.mean(axis=0, dtype=np.float64)
    var = X.var(axis=0, dtype=np.float64)
    ax = axes[-1]
    hv = (
        adata.var["highly_variable"].to_numpy()
        if "highly_variable" in adata.var
        else np.zeros(adata.n_vars, dtype=bool)
    )
    ax.scatter(mean[~hv], var[~hv], s=3, alpha=0.4, color="0.6", label="other")
    ax.scatter(mean[hv], var[hv], s=3, alpha=0.6, color="C3", label=f"highly variable ({hv.sum()})")
    ax.set_xlabel("mean (normalised, log)")
    ax.set_ylabel("variance")
    ax.set_title("mean-variance, HVGs marked")
    ax.legend(loc="upper left", fontsize=8, markerscale=3)
    return fig
