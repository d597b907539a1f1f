"""Figures of the interface GAN: training curves, marginals, a 2-D projection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["gan_training", "feature_marginals", "feature_projection"]


def gan_training(history: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Critic and generator losses (left) and the Wasserstein estimate (right) per epoch.

    Parameters
    ----------
    history
        :attr:`bioml.interface.InterfaceGAN.history` (or its TSV): ``epoch``,
        ``critic_loss``, ``generator_loss``, ``wasserstein`` and optionally
        ``val_wasserstein`` and ``gradient_penalty``.
    title
        Figure title.
    """
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax, axw = fig.subplots(1, 2)
    if history is None or len(history) == 0:
        ax.text(0.5, 0.5, "no epochs recorded", ha="center", va="center", transform=ax.transAxes)
        return fig
    ep = history["epoch"].to_numpy()
    for c, lab in (("critic_loss", "critic loss"), ("generator_loss", "generator loss"),
                   ("gradient_penalty", "gradient penalty")):
        if c in history:
            ax.plot(ep, history[c].to_numpy(), marker=".", label=lab)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mean over the epoch)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    axw.plot(ep, history["wasserstein"].to_numpy(), marker=".", label="training minibatches")
    if "val_wasserstein" in history:
        axw.plot(ep, history["val_wasserstein"].to_numpy(), ls="--", marker=".", label="held-out real rows")
    axw.set_xlabel("epoch")
    axw.set_ylabel("E[C(real)] - E[C(fake)]  (standardised units)")
    axw.set_title("Wasserstein estimate", fontsize="medium")
    axw.legend(fontsize="small")
    axw.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def feature_marginals(
    real: pd.DataFrame,
    generated: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    points: pd.DataFrame | None = None,
    labels: tuple[str, str, str] = ("simulated (held out)", "generated", "real complexes"),
    ncols: int = 6,
    bins: int = 30,
    title: str | None = None,
) -> Figure:
    """Histograms of each feature: real against generated, optional extra points as ticks.

    Parameters
    ----------
    real, generated
        Feature tables (same columns).
    features
        Columns to show (default: every column of ``real``).
    points
        A few more vectors (e.g. the real complexes' features) drawn as vertical lines.
    labels
        Legend labels of ``real``, ``generated`` and ``points``.
    ncols, bins
        Grid width and histogram bins.
    title
        Figure title.
    """
    feats = list(features) if features is not None else list(real.columns)
    nrows = int(np.ceil(len(feats) / ncols))
    fig = Figure(figsize=(2.4 * ncols, 1.9 * nrows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax, f in zip(axes, feats):
        r = real[f].to_numpy(np.float64)
        g = generated[f].to_numpy(np.float64)
        lo, hi = np.nanmin(np.r_[r, g]), np.nanmax(np.r_[r, g])
        if points is not None:
            lo, hi = min(lo, points[f].min()), max(hi, points[f].max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        ax.hist(r, bins=edges, density=True, alpha=0.5, label=labels[0], color="C0")
        ax.hist(g, bins=edges, density=True, histtype="step", lw=1.4, label=labels[1], color="C3")
        if points is not None:
            for v in points[f].to_numpy(np.float64):
                ax.axvline(v, color="k", lw=0.8, ls=":")
        ax.set_title(f, fontsize="small")
        ax.tick_params(labelsize="x-small")
        ax.set_yticks([])
    for ax in axes[len(feats):]:
        ax.set_axis_off()
    handles, labs = axes[0].get_legend_handles_labels()
    if points is not None:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="k", lw=0.8, ls=":"))
        labs.append(labels[2])
    fig.legend(handles, labs, loc="outside upper center", ncols=3, fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def feature_projection(
    sets: Mapping[str, np.ndarray],
    *,
    fit_on: str | None = None,
    title: str | None = None,
    max_points: int = 2000,
    seed: int = 0,
) -> Figure:
    """A 2-D PCA projection of several sets of (standardised) feature vectors.

    Parameters
    ----------
    sets
        ``{label: n_i x F array}``, already standardised alike (e.g. with the GAN's
        training mean and scale). Small sets (fewer than 20 rows) are drawn as large
        labelled markers.
    fit_on
        The label whose rows define the principal axes (default: the first set).
    title
        Figure title.
    max_points
        Rows drawn per set at most (a seeded subsample).
    seed
        Seed of the subsample.
    """
    from sklearn.decomposition import PCA

    names = list(sets)
    base = np.asarray(sets[fit_on or names[0]], dtype=np.float64)
    pca = PCA(n_components=2, random_state=seed).fit(base)
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(6.5, 5.5), layout="constrained")
    ax = fig.subplots()
    markers = ["o", "o", "o", "o"]
    for k, name in enumerate(names):
        x = np.asarray(sets[name], dtype=np.float64)
        if x.shape[0] > max_points:
            x = x[np.sort(rng.choice(x.shape[0], max_points, replace=False))]
        y = pca.transform(x)
        if x.shape[0] < 20:
            ax.scatter(y[:, 0], y[:, 1], s=90, marker="*", color="k", edgecolor="w", zorder=5,
                       label=f"{name} (n={x.shape[0]})")
        else:
            ax.scatter(y[:, 0], y[:, 1], s=6, alpha=0.4, marker=markers[k % 4], color=f"C{k}",
                       label=f"{name} (n={x.shape[0]})")
    ev = pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 ({100 * ev[0]:.0f}% of {fit_on or names[0]})")
    ax.set_ylabel(f"PC2 ({100 * ev[1]:.0f}%)")
    ax.legend(fontsize="small", markerscale=2)
    ax.grid(alpha=0.3)
    ax.set_title(title or "PCA of standardised interface features")
    return fig
