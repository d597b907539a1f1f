"""Preprocessing: quality control, normalisation, highly variable genes (``bm.pp``).

Functions follow scanpy's conventions: ``fn(adata, *, ..., copy=False)`` modifies the
AnnData in place (or returns a processed copy) and records its parameters under
``adata.uns["bioml"]``.
"""

from ._qc import filter_samples_genes, highly_variable_genes, normalize, qc, qc_summary

__all__ = ["filter_samples_genes", "normalize", "highly_variable_genes", "qc", "qc_summary"]
