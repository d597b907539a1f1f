"""Preprocessing (``bm.pp``): QC and normalisation, confounding checks, batch correction.

Functions follow scanpy's conventions: ``fn(adata, *, ..., copy=False)`` modifies the
AnnData in place (or returns a processed copy) and records its parameters under
``adata.uns["bioml"]``.
"""

from ._combat import combat, combat_matrix
from ._confounding import check_confounding, confounding_table
from ._correct import correct
from ._linear import batch_effect_tests, remove_batch_effect
from ._qc import filter_samples_genes, highly_variable_genes, normalize, qc, qc_summary

__all__ = [
    "filter_samples_genes",
    "normalize",
    "highly_variable_genes",
    "qc",
    "qc_summary",
    "remove_batch_effect",
    "batch_effect_tests",
    "check_confounding",
    "confounding_table",
    "correct",
    "combat",
    "combat_matrix",
]
