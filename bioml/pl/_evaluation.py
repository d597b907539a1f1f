"""Figures of the evaluation stage: embeddings before/after, the metric table, the confounding sweep."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import InputError

__all__ = ["embeddings", "integration_metrics", "confounding_sweep"]


def embeddings(
    coords: Mapping[str, np.ndarray],
    obs: pd.DataFrame,
    *,
    color: Sequence[str],
    title: str | None = None,
    point_size: float | None = None,
) -> Figure:
    """A grid of 2-D embeddings: one row per representation, one column per ``obs`` column.

    Parameters
    ----------
    coords
        Row title -> ``(n, >= 2)`` coordinates (e.g. ``{"PCA, uncorrected": ...,
        "PCA, corrected": ..., "UMAP, corrected": ...}``); the first two columns are drawn.
    obs
        One row per sample, in the order of the coordinates; categorical columns get a
        legend, each level the same colour in every panel.
    color
        Columns of ``obs`` (e.g. batch and label).
    """
    color = [c for c in color if c]
    for c in color:
        if c not in obs:
            raise InputError(f"obs column {c!r} is absent")
    names = list(coords)
    nr, nc = len(names), max(1, len(color))
    fig, axes = plt.subplots(nr, nc, figsize=(4.2 * nc, 3.6 * nr), layout="constrained", squeeze=False)
    n = len(obs)
    s = point_size or max(1.5, min(20.0, 2500.0 / max(n, 1)))
    for i, name in enumerate(names):
        xy = np.asarray(coords[name])[:, :2]
        if xy.shape[0] != n:
            raise InputError(f"{name!r} has {xy.shape[0]} rows for {n} samples")
        for j, c in enumerate(color):
            ax = axes[i, j]
            cats = pd.Categorical(obs[c].astype(str))
            cmap = matplotlib.colormaps["tab20" if len(cats.categories) > 10 else "tab10"]
            order = np.random.default_rng(0).permutation(n)  # no level drawn on top of the others
            cols = np.array([cmap(k % cmap.N) for k in range(len(cats.categories))])
            ax.scatter(xy[order, 0], xy[order, 1], s=s, c=cols[cats.codes[order]], linewidths=0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}: {c}", fontsize="medium")
            if i == 0:
                handles = [
                    matplotlib.lines.Line2D([], [], marker="o", ls="", color=cols[k], label=str(lv))
                    for k, lv in enumerate(cats.categories)
                ]
                ax.legend(handles=handles, fontsize="small", frameon=False, loc="best")
    if title:
        fig.suptitle(title)
    return fig


def integration_metrics(table: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Grouped bars of a tidy metric table (:func:`bioml.metrics.integration_metrics`).

    One panel for batch removal and one for biology conservation; one bar per
    representation within each metric. Metrics where lower is better are marked
    "(lower is better)" in their tick label.
    """
    need = {"representation", "metric", "value", "kind", "higher_is_better"}
    if not need <= set(table.columns):
        raise InputError(f"the metric table needs columns {sorted(need)}, got {list(table.columns)}")
    reps = list(dict.fromkeys(table["representation"]))
    kinds = [k for k in ("batch", "bio") if (table["kind"] == k).any()]
    titles = {"batch": "batch removal", "bio": "biology conservation"}
    widths = [table.loc[table["kind"] == k, "metric"].nunique() for k in kinds]
    fig, axes = plt.subplots(
        1,
        len(kinds),
        figsize=(1.1 * sum(widths) + 3, 4.2),
        layout="constrained",
        squeeze=False,
        gridspec_kw={"width_ratios": widths},
    )
    w = 0.8 / max(len(reps), 1)
    for ax, kind in zip(axes[0], kinds):
        sub = table[table["kind"] == kind]
        metrics = list(dict.fromkeys(sub["metric"]))
        for r, rep in enumerate(reps):
            vals = [sub.loc[(sub["metric"] == m) & (sub["representation"] == rep), "value"] for m in metrics]
            vals = [float(v.iloc[0]) if len(v) else np.nan for v in vals]
            x = np.arange(len(metrics)) + (r - (len(reps) - 1) / 2) * w
            ax.bar(x, vals, width=w, label=rep, color=f"C{r}")
        hib = sub.drop_duplicates("metric").set_index("metric")["higher_is_better"]
        labels = [m if bool(hib[m]) else f"{m}\n(lower is better)" for m in metrics]
        ax.set_xticks(np.arange(len(metrics)), labels, rotation=30, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_title(titles[kind])
        ax.grid(axis="y", alpha=0.3)
    axes[0, -1].legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[0, 0].set_ylabel("score")
    if title:
        fig.suptitle(title)
    return fig


def confounding_sweep(table: pd.DataFrame, *, title: str | None = None) -> Figure:
    """The confounding demonstration (:func:`bioml.tl.confounding_sweep`) in two panels.

    Left: the fraction of the true condition effect retained after correction (against
    the batch-free twin) per confounding level, with the covariate in the model and
    naively without it; a refused correction is drawn as a red cross on the axis.
    Right: the fraction of truly differential genes detected, with the twin's as a dashed
    line, and the false-positive fraction (dotted). The check's verdict is written under
    each level.
    """
    t = table.copy()
    levels = sorted(t["level"].unique())
    # evenly spaced positions, one per level (levels such as 0.9 and 1 sit close together)
    t["x"] = t["level"].map({lv: i for i, lv in enumerate(levels)})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
    styles = {
        "with_covariate": ("C0", "o", "ComBat with the covariate"),
        "naive": ("C3", "s", "naive ComBat (no covariate)"),
    }
    for model, (col, marker, label) in styles.items():
        sub = t[t["model"] == model].sort_values("level")
        ok = sub[sub["status"] == "ok"]
        axes[0].plot(ok["x"], ok["effect_retained"], marker=marker, color=col, label=label)
        axes[1].plot(ok["x"], ok["de_detected"], marker=marker, color=col, label=f"{label}: detected")
        axes[1].plot(
            ok["x"],
            ok["de_false_positive"],
            marker=marker,
            color=col,
            ls=":",
            alpha=0.7,
            label=f"{label}: false positives",
        )
        ref = sub[sub["status"] == "refused"]
        for ax in axes:
            ax.scatter(
                ref["x"],
                np.zeros(len(ref)),
                marker="x",
                s=120,
                color="red",
                zorder=5,
                label="refused (aliased design)" if model == "with_covariate" and len(ref) else None,
            )
    twin = t.groupby("x")["twin_de_detected"].max()
    axes[1].plot(twin.index, twin.values, color="grey", ls="--", label="batch-free twin: detected")
    axes[0].axhline(1.0, color="grey", ls="--", lw=1)
    axes[0].set_ylabel("true condition effect retained\n(slope vs batch-free twin)")
    axes[1].set_ylabel("fraction of gene-condition pairs")
    verdict = t.drop_duplicates("level").set_index("level")["check_status"]
    for ax in axes:
        ax.set_xlabel("confounding (simulator knob)")
        ax.set_xticks(range(len(levels)), [f"{lv:g}\ncheck: {verdict[lv]}" for lv in levels])
        ax.set_ylim(
            -0.08,
            max(1.15, float(np.nanmax(t["effect_retained"].to_numpy(float), initial=1)) + 0.1)
            if ax is axes[0]
            else 1.05,
        )
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small", frameon=False)
    axes[1].legend(fontsize="x-small", frameon=False)
    axes[0].set_title("signal surviving correction")
    axes[1].set_title("truly differential genes still detected (FDR 0.05)")
    if title:
        fig.suptitle(title)
    return fig
