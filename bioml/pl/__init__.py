"""Plotting (``bm.pl``): functions that take results and return a matplotlib figure."""

from ._qc import qc_metrics

__all__ = ["qc_metrics"]
