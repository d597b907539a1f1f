"""Loss curves of a training history (re-exported as ``bm.pl.training_history``)."""

from __future__ import annotations

import pandas as pd

__all__ = ["plot_history"]

_NOT_LOSSES = {"epoch", "seconds", "data_seconds", "repeat_rate"}


def plot_history(history: pd.DataFrame, *, title: str | None = None, log_y: bool = False):
    """Plot a training history (from :class:`~bioml.train.Trainer`) as loss curves.

    Parameters
    ----------
    history
        One row per epoch with an ``epoch`` column, training losses, ``val_*`` metrics and
        ``lr``/``lr_*`` columns (as :attr:`Trainer.history` or the saved TSV).
    title
        Figure title.
    log_y
        Log scale for the loss axis.

    Returns
    -------
    matplotlib.figure.Figure
        Left: training losses (solid) and validation metrics (dashed) per epoch. Right:
        the learning rate(s) and, if present, the class-balanced repeat rate.

    Examples
    --------
    >>> import bioml as bm
    >>> model = bm.tl.autoencoder(adata, epochs=10)  # doctest: +SKIP
    >>> fig = bm.pl.training_history(model.history, title="autoencoder")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax, ax_lr = fig.subplots(1, 2, width_ratios=[2, 1])
    if history is None or len(history) == 0:
        ax.text(0.5, 0.5, "no epochs recorded", ha="center", va="center", transform=ax.transAxes)
        return fig
    ep = history["epoch"].to_numpy()
    lr_cols = [c for c in history.columns if c == "lr" or c.startswith("lr_")]
    for c in history.columns:
        if c in _NOT_LOSSES or c in lr_cols or not pd.api.types.is_numeric_dtype(history[c]):
            continue
        ax.plot(ep, history[c].to_numpy(), ls="--" if c.startswith("val_") else "-", label=c, marker=".")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss / metric")
    if log_y:
        ax.set_yscale("log")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    for c in lr_cols:
        ax_lr.plot(ep, history[c].to_numpy(), label=c)
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    if "repeat_rate" in history:
        ax2 = ax_lr.twinx()
        ax2.plot(ep, history["repeat_rate"].to_numpy(), color="grey", ls=":", label="repeat_rate")
        ax2.set_ylabel("minority repeat rate")
    if lr_cols:
        ax_lr.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig
