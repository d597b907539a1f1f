"""Plotting (``bm.pl``): functions that take results and return a matplotlib figure."""

from ._correction import batch_pvalues, confounding_heatmap
from ._qc import qc_metrics

__all__ = ["qc_metrics", "confounding_heatmap", "batch_pvalues"]
