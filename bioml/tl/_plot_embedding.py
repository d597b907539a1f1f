"""A scatter of a 2-D embedding coloured by obs columns (for the embed rule's UMAP figure).

Lives here until ``bm.pl`` re-exports it (the lead wires ``bm.pl.embedding``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from ..errors import InputError

__all__ = ["embedding_figure"]


def embedding_figure(adata: AnnData, *, basis: str = "X_umap", color: Sequence[str] = (),
                     title: str | None = None, point_size: float | None = None):
    """One panel per ``color`` column: the 2-D ``obsm[basis]`` coloured by that column.

    Parameters
    ----------
    adata
        With ``obsm[basis]`` (first two columns are plotted).
    basis
        obsm key, e.g. ``"X_umap"``.
    color
        obs columns (categorical: one colour per level with a legend; numeric: a colour bar).
    title
        Figure title.
    point_size
        Marker size (default scales with the number of points).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InputError
        ``obsm[basis]`` or a ``color`` column is absent.

    Examples
    --------
    >>> import scanpy as sc
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(300, 200, seed=0)
    >>> bm.pp.qc(adata, min_genes=0, n_top_genes=100)
    >>> sc.pp.pca(adata, n_comps=10)
    >>> fig = bm.pl.embedding(adata, basis="X_pca", color=["batch", "condition"])
    """
    from matplotlib.figure import Figure

    if basis not in adata.obsm:
        raise InputError(f"obsm[{basis!r}] is absent (have {list(adata.obsm)})")
    xy = np.asarray(adata.obsm[basis])[:, :2]
    color = [c for c in color if c]
    for c in color:
        if c not in adata.obs:
            raise InputError(f"obs column {c!r} is absent")
    n = max(1, len(color))
    fig = Figure(figsize=(5 * n, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n))
    s = point_size or max(2.0, min(30.0, 3000.0 / max(adata.n_obs, 1)))
    if not color:
        axes[0].scatter(xy[:, 0], xy[:, 1], s=s, c="grey", linewidths=0)
    for ax, c in zip(axes, color):
        v = adata.obs[c]
        if pd.api.types.is_numeric_dtype(v) and not isinstance(v.dtype, pd.CategoricalDtype) \
                and v.nunique() > 12:
            sc_ = ax.scatter(xy[:, 0], xy[:, 1], s=s, c=v.to_numpy(), cmap="viridis", linewidths=0)
            fig.colorbar(sc_, ax=ax)
        else:
            cats = pd.Categorical(v.astype(str))
            import matplotlib

            cmap = matplotlib.colormaps["tab20" if len(cats.categories) > 10 else "tab10"]
            for i, cat in enumerate(cats.categories):
                m = cats == cat
                ax.scatter(xy[m, 0], xy[m, 1], s=s, color=cmap(i % cmap.N), label=str(cat), linewidths=0)
            ax.legend(fontsize="small", markerscale=2, frameon=False, loc="best")
        ax.set_title(c)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{basis.removeprefix('X_')}1")
        ax.set_ylabel(f"{basis.removeprefix('X_')}2")
    if title:
        fig.suptitle(title)
    return fig
