"""Ingest and validation: one validated AnnData (samples/cells as ``obs``, genes as ``var``).

Readers
    :func:`read` (dispatch on the config's ``data.source``), :func:`read_table`
    (CSV/TSV, optionally gzip'd, either orientation), :func:`read_h5ad`,
    :func:`read_10x` (Cell Ranger folder or ``.h5``), :func:`read_sample_sheet` and
    :func:`attach_sample_sheet`.
Validation
    :func:`validate`: values (NaN/inf, negative counts), names, and the batch and
    covariate columns of ``obs`` (made categorical or continuous).
Atomic writes
    :func:`atomic_path`, :func:`write_h5ad`, :func:`write_table`, :func:`write_json`,
    :func:`write_figure`:
    a temporary file beside the target, renamed onto it on success, removed on failure.

Every problem with the input raises a :class:`~bioml.errors.InputError` (or its
subclasses :class:`~bioml.errors.DataValueError` and
:class:`~bioml.errors.SampleSheetError`) whose message names the file and the row,
column or key; inconsistent options raise :class:`~bioml.errors.ConfigError`. Messages
and warnings go to the ``"bioml.io"`` logger.

Examples
--------
>>> import bioml as bm  # doctest: +SKIP
>>> adata = bm.io.read("table", path="expr.tsv.gz", sample_sheet="pheno.tsv")
>>> adata = bm.io.validate(adata, data_type="log", batch_key="batch", covariates=["cancer"])
>>> bm.io.write_h5ad(adata, "results/demo/ingest.h5ad")
"""

from __future__ import annotations

from ._atomic import atomic_path, write_figure, write_h5ad, write_json, write_table
from ._readers import (
    attach_sample_sheet,
    read,
    read_10x,
    read_h5ad,
    read_sample_sheet,
    read_table,
)
from ._validate import validate

__all__ = [
    "read",
    "read_table",
    "read_h5ad",
    "read_10x",
    "read_sample_sheet",
    "attach_sample_sheet",
    "validate",
    "atomic_path",
    "write_h5ad",
    "write_table",
    "write_json",
    "write_figure",
]
