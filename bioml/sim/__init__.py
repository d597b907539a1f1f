"""Seeded simulators whose ground truth is kept in ``adata.uns["sim"]``.

- :func:`simulate_counts`: negative-binomial counts with condition (DE) effects, batch
  effects (log-mean shift, scale of the biological variation, library size), the
  confounding knob of decisions.md item 10, a rare condition, anomalous samples and an
  optional batch-free twin. The default demo data of the pipeline. Its generative model
  is written out in the docstring of :mod:`bioml.sim._counts`.
- :func:`simulate_interface_features`: protein-interface feature vectors (the columns of
  :data:`bioml.interface.FEATURE_NAMES`) from a known hierarchical distribution, the
  default training data of the interface GAN.
- :func:`write_10x`, :func:`write_sample_sheet`, :func:`write_table`: write such data as a
  Cell Ranger v3 folder, a sample sheet and a dense expression table, for the readers'
  tests and the non-``simulate`` data sources.

Examples
--------
>>> import bioml as bm
>>> adata = bm.sim.simulate_counts(600, 1000, n_batches=3, confounding=0.5, seed=0)
>>> bm.sim.write_10x(adata, "data/demo_10x")  # doctest: +SKIP
"""

from __future__ import annotations

from ._counts import simulate_counts
from ._interface import INTERFACE_TRUTH, simulate_interface_features
from ._tenx import write_10x, write_sample_sheet, write_table

__all__ = [
    "simulate_counts",
    "simulate_interface_features",
    "INTERFACE_TRUTH",
    "write_10x",
    "write_sample_sheet",
    "write_table",
]
