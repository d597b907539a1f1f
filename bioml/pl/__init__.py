"""Plotting (``bm.pl``): functions that take results and return a matplotlib figure."""

from ._correction import batch_pvalues, confounding_heatmap
from ._evaluation import confounding_sweep, embeddings, integration_metrics
from ._flux import flux_latent, flux_marginals, flux_objective, flux_residuals
from ._interface import feature_marginals, feature_projection, gan_training
from ._qc import qc_metrics


def __getattr__(name):
    # training and embedding figures live beside their modules; imported lazily so that
    # ``bm.pl`` does not import torch
    if name == "training_history":
        from ..train import plot_history

        return plot_history
    if name == "embedding":
        from ..tl import embedding_figure

        return embedding_figure
    raise AttributeError(name)


__all__ = [
    "qc_metrics",
    "confounding_heatmap",
    "batch_pvalues",
    "training_history",
    "embedding",
    "embeddings",
    "integration_metrics",
    "confounding_sweep",
    "flux_residuals",
    "flux_marginals",
    "flux_objective",
    "flux_latent",
    "gan_training",
    "feature_marginals",
    "feature_projection",
]
