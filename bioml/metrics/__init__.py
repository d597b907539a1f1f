"""Metrics (``bm.metrics``): integration (batch mixing, label conservation) and, later,
two-sample metrics. One file per family; every public name is listed in ``__all__``."""

from ._integration import silhouette_batch, silhouette_label

__all__ = ["silhouette_batch", "silhouette_label"]
