"""Figures of the flux VAE: residuals, marginals, objective flux, latent space."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from anndata import AnnData
from matplotlib.figure import Figure

__all__ = ["flux_residuals", "flux_marginals", "flux_objective", "flux_latent"]

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def _X(a) -> np.ndarray:
    if isinstance(a, AnnData):
        a = a.X.toarray() if hasattr(a.X, "toarray") else a.X
    return np.asarray(a, dtype=np.float64)


def flux_residuals(residuals: Mapping[str, np.ndarray], *, threshold: float = 1e-6) -> Figure:
    """Histograms of ``log10`` mass-balance residuals (``||S v||_inf / max(1, ||v||_inf)``).

    ``residuals`` maps a label (e.g. ``"VAE (nullspace)"``, ``"cobra held-out"``) to
    per-sample residuals; the dashed line marks ``threshold``. Zeros are drawn at 1e-18.
    """
    fig, ax = plt.subplots(figsize=(6.0, 3.6), layout="constrained")
    logs = {k: np.log10(np.maximum(np.asarray(v, dtype=np.float64), 1e-18)) for k, v in residuals.items()}
    lo = min([v.min() for v in logs.values()] + [np.log10(threshold)]) - 0.5
    hi = max([v.max() for v in logs.values()] + [np.log10(threshold)]) + 0.5
    bins = np.linspace(lo, hi, 60)
    for (k, v), c in zip(logs.items(), _COLORS * 4):
        ax.hist(v, bins=bins, alpha=0.55, color=c, label=f"{k} (max {10 ** v.max():.1e})")
    ax.axvline(np.log10(threshold), color="black", ls="--", lw=1, label=f"target {threshold:g}")
    ax.set_xlabel(r"$\log_{10}\ \|Sv\|_\infty / \max(1, \|v\|_\infty)$")
    ax.set_ylabel("samples")
    ax.set_title("mass-balance residuals")
    ax.legend(fontsize=8)
    return fig


def most_variable(reference, names: Sequence[str], n: int = 12) -> list[str]:
    """The ``n`` reactions with the largest standard deviation in ``reference``."""
    sd = _X(reference).std(axis=0)
    order = np.argsort(-sd, kind="stable")[: int(n)]
    return [names[i] for i in order]


def flux_marginals(generated, heldout, *, reactions: Sequence[str] | None = None, n: int = 12,
                   names: Sequence[str] | None = None, labels: tuple[str, str] = ("generated", "held-out"),
                   ncols: int = 4) -> Figure:
    """Per-reaction flux histograms, generated vs held-out (the ``n`` most variable reactions
    of the held-out set unless ``reactions`` are given)."""
    G, H = _X(generated), _X(heldout)
    if names is None:
        names = (list(heldout.var_names) if isinstance(heldout, AnnData)
                 else [str(i) for i in range(H.shape[1])])
    names = list(names)
    reactions = list(reactions) if reactions is not None else most_variable(H, names, n)
    pos = [names.index(r) for r in reactions]
    nrows = int(np.ceil(len(pos) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.4 * nrows), layout="constrained",
                             squeeze=False)
    for ax, j, r in zip(axes.ravel(), pos, reactions):
        lo = min(G[:, j].min(), H[:, j].min())
        hi = max(G[:, j].max(), H[:, j].max())
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
        ax.hist(H[:, j], bins=bins, density=True, alpha=0.5, color="tab:gray", label=labels[1])
        ax.hist(G[:, j], bins=bins, density=True, histtype="step", lw=1.5, color="tab:blue", label=labels[0])
        ax.set_title(r, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(pos):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle("flux marginals of the most variable reactions")
    return fig


def flux_objective(generated: Mapping[str, np.ndarray] | np.ndarray, heldout: np.ndarray, *,
                   reaction: str = "objective") -> Figure:
    """Distribution of the objective (biomass) flux: held-out vs one or more generators.

    ``generated`` is an array or a mapping label -> array of objective fluxes.
    """
    gens = generated if isinstance(generated, Mapping) else {"generated": generated}
    H = np.asarray(heldout, dtype=np.float64)
    allv = np.concatenate([H] + [np.asarray(v, dtype=np.float64) for v in gens.values()])
    bins = np.linspace(allv.min(), allv.max() if allv.max() > allv.min() else allv.min() + 1, 50)
    fig, ax = plt.subplots(figsize=(6.0, 3.6), layout="constrained")
    ax.hist(H, bins=bins, density=True, alpha=0.5, color="tab:gray", label="held-out (cobra)")
    for (k, v), c in zip(gens.items(), _COLORS * 4):
        ax.hist(np.asarray(v), bins=bins, density=True, histtype="step", lw=1.5, color=c, label=k)
    ax.set_xlabel(f"{reaction} flux")
    ax.set_ylabel("density")
    ax.set_title(f"objective flux ({reaction})")
    ax.legend(fontsize=8)
    return fig


def flux_latent(latent: np.ndarray, color: np.ndarray, *, prior: np.ndarray | None = None,
                color_label: str = "objective flux") -> Figure:
    """The VAE latent space: posterior means of real samples on their first two principal
    axes, coloured by ``color`` (e.g. the objective flux); prior draws in grey behind."""
    Z = np.asarray(latent, dtype=np.float64)
    mu = Z.mean(axis=0)
    _, _, vt = np.linalg.svd(Z - mu, full_matrices=False)
    P = vt[:2].T if vt.shape[0] >= 2 else np.eye(Z.shape[1], 2)
    fig, ax = plt.subplots(figsize=(5.2, 4.4), layout="constrained")
    if prior is not None:
        Q = (np.asarray(prior, dtype=np.float64) - mu) @ P
        ax.scatter(Q[:, 0], Q[:, 1], s=3, c="lightgray", label="prior draws", rasterized=True)
    Y = (Z - mu) @ P
    sc = ax.scatter(Y[:, 0], Y[:, 1], s=5, c=np.asarray(color), cmap="viridis", rasterized=True,
                    label="held-out (posterior means)")
    fig.colorbar(sc, ax=ax, label=color_label)
    ax.set_xlabel("latent PC1")
    ax.set_ylabel("latent PC2")
    ax.set_title("flux VAE latent space")
    ax.legend(fontsize=8, loc="best")
    return fig
