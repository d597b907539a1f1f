"""Tools (``bm.tl``): embeddings and annotations written into an AnnData."""

from ._autoencoder import AutoencoderModel, anomaly_threshold, autoencoder
from ._plot_embedding import embedding_figure
from ._sweep import SWEEP_COLUMNS, confounding_sweep

__all__ = ["autoencoder", "AutoencoderModel", "anomaly_threshold", "embedding_figure"]
__all__ += ["confounding_sweep", "SWEEP_COLUMNS"]
