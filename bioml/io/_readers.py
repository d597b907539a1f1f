"""Readers: ``.h5ad``, CSV/TSV expression tables, 10x Genomics output, sample sheets.

Every reader returns one :class:`~anndata.AnnData` with samples (or cells) as ``obs``
and genes as ``var``, records where it came from under
``adata.uns["bioml"]["ingest"]["input"]``, and turns every problem with the input into
a :class:`~bioml.errors.InputError` (or one of its subclasses) whose message names the
file and, where it helps, the row, column or key.
"""

from __future__ import annotations

import csv
import gzip
import logging
import os
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ..errors import ConfigError, DataValueError, InputError, SampleSheetError

__all__ = [
    "read",
    "read_table",
    "read_h5ad",
    "read_10x",
    "read_sample_sheet",
    "attach_sample_sheet",
]

logger = logging.getLogger("bioml.io")

PathLike = str | os.PathLike[str]
Orientation = Literal["genes_x_samples", "samples_x_genes"]

_GZIP_MAGIC = b"\x1f\x8b"
_N_SHOWN = 5  # how many offending names a message lists


# --------------------------------------------------------------------------- helpers


def _quote_list(items: Sequence[Any], n: int = _N_SHOWN) -> str:
    """``'a', 'b', 'c'`` (and ``... (12 more)`` past ``n`` items)."""
    items = list(items)
    shown = ", ".join(f"'{x}'" for x in items[:n])
    if len(items) > n:
        shown += f", ... ({len(items) - n} more)"
    return shown


def _check_choice(value: Any, allowed: Sequence[str], name: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {_quote_list(allowed, 10)}")


def _check_file(path: PathLike, what: str) -> Path:
    """Check that ``path`` is a readable, non-empty file (gzip if it ends in .gz)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} '{p}' does not exist")
    if p.is_dir():
        raise InputError(f"{what} '{p}' is a directory, expected a file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(2)
    except OSError as e:
        raise InputError(f"cannot read {what} '{p}': {e.strerror or e}") from e
    if not head:
        raise InputError(f"{what} '{p}' is empty (0 bytes)")
    if p.suffix.lower() == ".gz" and head != _GZIP_MAGIC:
        raise InputError(
            f"{what} '{p}' ends in .gz but is not gzip-compressed (it starts with "
            f"{head!r}); rename it without '.gz' or compress it with gzip"
        )
    return p


def _infer_sep(path: Path, what: str) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith((".tsv", ".txt", ".tab")):
        return "\t"
    if name.endswith(".csv"):
        return ","
    raise InputError(
        f"cannot tell the field separator of {what} '{path}' from its name: expected "
        "a .csv, .tsv, .txt or .tab file (optionally .gz), or pass sep="
    )


def _read_csv(path: Path, what: str, *, sep: str, **kwargs: Any) -> pd.DataFrame:
    """:func:`pandas.read_csv` with its failures turned into :class:`InputError`."""
    try:
        return pd.read_csv(path, sep=sep, **kwargs)
    except pd.errors.EmptyDataError as e:
        raise InputError(f"{what} '{path}' is empty (no header line)") from e
    except pd.errors.ParserError as e:
        raise InputError(
            f"cannot parse {what} '{path}' (sep={sep!r}): {str(e).strip().rstrip('.')}; "
            "every row must have as "
            "many fields as the header line"
        ) from e
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise InputError(f"{what} '{path}' is a corrupt or truncated gzip file: {e}") from e
    except UnicodeDecodeError as e:
        raise InputError(
            f"{what} '{path}' is not UTF-8 text ({e.reason}); is it a binary file, or text "
            "in another encoding (save it as UTF-8)?"
        ) from e
    except OSError as e:
        raise InputError(f"cannot read {what} '{path}': {e}") from e


def _read_header(path: Path, sep: str) -> list[str]:
    """The first non-blank line of a delimited file, split as pandas splits it."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
        for row in csv.reader(fh, delimiter=sep):
            if row:
                return row
    return []


def _duplicates(index: pd.Index) -> list[str]:
    """Descriptions like ``'g1' (2x)`` of the duplicated labels, in order of appearance."""
    counts = index.value_counts(sort=False)
    dup = counts[counts > 1]
    order = pd.unique(index[index.duplicated()])
    return [f"'{x}' ({dup[x]}x)" for x in order]


def _dup_message(dups: list[str], n: int = _N_SHOWN) -> str:
    shown = ", ".join(dups[:n])
    if len(dups) > n:
        shown += f", ... ({len(dups) - n} more)"
    return shown


def _input_record(adata: AnnData) -> dict[str, Any]:
    """``adata.uns["bioml"]["ingest"]["input"]``, created if missing."""
    bioml = adata.uns.setdefault("bioml", {})
    ingest = bioml.setdefault("ingest", {})
    return ingest.setdefault("input", {})


def _source_label(adata: AnnData) -> str:
    """How messages name the data: its file path if a reader recorded one."""
    try:
        path = adata.uns["bioml"]["ingest"]["input"]["path"]
    except (KeyError, TypeError):
        return "the data"
    return f"'{path}'"


# --------------------------------------------------------------------------- tables


def _numeric_values(df: pd.DataFrame, path: Path, what: str) -> np.ndarray:
    """The values of ``df`` as float64, or a DataValueError naming the first bad cell.

    Empty cells and the usual NA spellings (``NA``, ``NaN``, ``""``) become NaN; what is
    done with them is :func:`bioml.io.validate`'s ``nan_policy``.
    """
    n_rows, n_cols = df.shape
    if n_cols == 0:
        return np.empty((n_rows, 0))
    # Numeric columns convert in one block; only text (object) or bool columns, usually
    # none, are coerced one by one to find what did not parse.
    text_cols = df.columns.get_indexer(df.select_dtypes(exclude="number").columns)
    values = df.to_numpy(dtype=np.float64, na_value=np.nan) if text_cols.size == 0 else None
    if values is not None:
        return values
    values = np.empty((n_rows, n_cols), dtype=np.float64)
    numeric_cols = np.setdiff1d(np.arange(n_cols), text_cols)
    if numeric_cols.size:
        values[:, numeric_cols] = df.iloc[:, numeric_cols].to_numpy(dtype=np.float64, na_value=np.nan)
    n_bad = 0
    first: tuple[int, int, Any] | None = None  # (row, col, value)
    n_text_columns = 0
    for j in text_cols:
        col = df.iloc[:, j]
        if col.dtype.kind == "b":  # True/False are not expression values
            coerced = pd.Series(np.nan, index=col.index)
        else:
            coerced = pd.to_numeric(col, errors="coerce")
        bad = col.notna().to_numpy() & coerced.isna().to_numpy()
        k = int(bad.sum())
        if k:
            n_bad += k
            i = int(np.argmax(bad))
            if first is None or i < first[0]:
                first = (i, int(j), col.iloc[i])
            if k == int(col.notna().sum()):
                n_text_columns += 1
        values[:, j] = coerced.to_numpy(dtype=np.float64)
    if n_bad:
        assert first is not None
        i, j, value = first
        if n_text_columns == n_cols:
            raise InputError(
                f"{what} '{path}' has no numeric columns: every value column holds text "
                f"(e.g. row '{df.index[i]}', column '{df.columns[j]}': {value!r}); is "
                "this a sample sheet, or is the separator wrong?"
            )
        raise DataValueError(
            f"{what} '{path}' holds {n_bad} non-numeric cell{'s' if n_bad > 1 else ''}; "
            f"the first is at row '{df.index[i]}', column '{df.columns[j]}': {value!r}. "
            "Missing values may be left empty or written NA; move annotation (text) "
            "columns to a sample sheet or remove them"
        )
    return values


def read_table(
    path: PathLike,
    *,
    sample_sheet: PathLike | pd.DataFrame | None = None,
    orientation: Orientation = "genes_x_samples",
    sep: str | None = None,
    sample_id_column: str = "sample_id",
    allow_extra_sheet_rows: bool = False,
    dtype: Literal["float32", "float64"] = "float32",
) -> AnnData:
    """Read a CSV/TSV expression table (optionally gzip'd) into an AnnData.

    The first column holds the row labels, the header line the column labels. Empty
    cells and ``NA``/``NaN`` become NaN (see :func:`bioml.io.validate`'s
    ``nan_policy``); ``inf``/``Inf`` parse as infinity (which validation rejects). A
    header with one field fewer than the data rows (R's ``write.table`` default) is
    accepted.

    Parameters
    ----------
    path
        The table: ``.csv``, ``.tsv``, ``.txt`` or ``.tab``, optionally ``.gz``.
    sample_sheet
        Optional sample sheet (path or data frame) attached to ``obs`` with
        :func:`attach_sample_sheet`.
    orientation
        ``"genes_x_samples"`` (rows are genes, columns samples; the usual layout of
        microarray and bulk RNA-seq tables) or ``"samples_x_genes"``.
    sep
        Field separator; by default inferred from the suffix (``.csv`` comma,
        ``.tsv``/``.txt``/``.tab`` tab).
    sample_id_column
        Column of the sample sheet holding the sample names.
    allow_extra_sheet_rows
        See :func:`attach_sample_sheet`.
    dtype
        dtype of ``X``. ``"float32"`` (default) halves the memory and is what the
        rest of bioml works in (statistics accumulate in float64); ``"float64"``
        keeps every digit of the file.

    Returns
    -------
    AnnData
        Dense ``X`` (samples x genes) of ``dtype``; ``obs`` holds the sample sheet's
        columns if one was given; ``uns["bioml"]["ingest"]["input"]`` records
        ``source="table"``, ``path``, ``orientation`` (and ``sample_sheet``).

    Raises
    ------
    InputError
        The file is missing, unreadable, empty, header-only, not gzip despite its
        ``.gz`` suffix, has a single column or no numeric columns, or has duplicated
        gene or sample names.
    DataValueError
        A cell is not a number (the message names the first one and the count), or a
        value does not fit in float32.
    SampleSheetError
        The sample sheet does not fit the data (see :func:`attach_sample_sheet`).
    ConfigError
        ``orientation`` or ``dtype`` is not one of the allowed values.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(60, 100, seed=0)
    >>> bm.sim.write_table(adata, "expr.tsv.gz")  # doctest: +SKIP
    >>> bm.sim.write_sample_sheet(adata, "sheet.tsv")  # doctest: +SKIP
    >>> back = bm.io.read_table("expr.tsv.gz", sample_sheet="sheet.tsv")  # doctest: +SKIP
    >>> back.shape  # doctest: +SKIP
    (60, 100)
    """
    _check_choice(orientation, ("genes_x_samples", "samples_x_genes"), "orientation")
    _check_choice(dtype, ("float32", "float64"), "dtype")
    what = "expression table"
    p = _check_file(path, what)
    if sep is None:
        sep = _infer_sep(p, what)
    df = _read_csv(p, what, sep=sep, index_col=0)

    # pandas renames duplicated header fields ('s1' -> 's1.1'): take the header as written
    header = _read_header(p, sep)
    n_cols = df.shape[1]
    if len(header) == n_cols + 1:
        df.columns = pd.Index([str(c) for c in header[1:]])
    elif len(header) == n_cols:  # R-style header without a field for the row names
        df.columns = pd.Index([str(c) for c in header])
    else:
        df.columns = df.columns.astype(str)

    genes_rows = orientation == "genes_x_samples"
    row_kind, col_kind = ("gene", "sample") if genes_rows else ("sample", "gene")
    if n_cols == 0:
        first = header[0] if header else ""
        raise InputError(
            f"{what} '{p}' has a single column ('{first}'): expected the {row_kind} names "
            f"in the first column and one numeric column per {col_kind}; is the "
            f"separator right (sep={sep!r})?"
        )
    if df.shape[0] == 0:
        raise InputError(f"{what} '{p}' has a header but no data rows")

    missing_label = df.index.isna()
    if missing_label.any():
        i = int(np.argmax(missing_label))
        raise InputError(
            f"{what} '{p}': data row {i + 1} (line {i + 2}) has no {row_kind} name in "
            "its first column"
        )
    df.index = df.index.astype(str)
    for labels, kind, where in ((df.index, row_kind, "rows"), (df.columns, col_kind, "columns")):
        dups = _duplicates(labels)
        if dups:
            raise InputError(
                f"{what} '{p}' has duplicated {kind} names ({where}): {_dup_message(dups)}; "
                f"{kind} names must be unique"
                + (" (aggregate or rename the duplicated rows)" if kind == "gene" else "")
            )

    values = _numeric_values(df, p, what)
    if dtype == "float32":
        finite64 = np.isfinite(values)
        x = values.astype(np.float32)
        overflow = finite64 & ~np.isfinite(x)
        if overflow.any():
            i, j = np.argwhere(overflow)[0]
            raise DataValueError(
                f"{what} '{p}': value {values[i, j]!r} at row '{df.index[i]}', column "
                f"'{df.columns[j]}' does not fit in float32; read with dtype='float64'"
            )
        values = x

    if genes_rows:
        x = np.ascontiguousarray(values.T)
        obs_names, var_names = df.columns, df.index
    else:
        x = values
        obs_names, var_names = df.index, df.columns
    adata = AnnData(
        X=x,
        obs=pd.DataFrame(index=pd.Index(obs_names).rename(None)),
        var=pd.DataFrame(index=pd.Index(var_names).rename(None)),
    )
    record = _input_record(adata)
    record.update(source="table", path=str(p), orientation=orientation)
    logger.info(
        "read %s '%s': %d samples x %d genes (%s)", what, p, adata.n_obs, adata.n_vars,
        orientation,
    )
    if sample_sheet is not None:
        attach_sample_sheet(
            adata,
            sample_sheet,
            sample_id_column=sample_id_column,
            allow_extra_sheet_rows=allow_extra_sheet_rows,
        )
    return adata


# --------------------------------------------------------------------------- sample sheets


def read_sample_sheet(
    path: PathLike,
    *,
    sample_id_column: str = "sample_id",
    sep: str | None = None,
) -> pd.DataFrame:
    """Read a sample sheet (CSV or TSV, optionally gzip'd) indexed by sample id.

    Columns keep the types pandas infers (so a ``batch`` column of 1..5 is integer
    here; :func:`bioml.io.validate` makes batch columns categorical). The sample ids
    are read as text.

    Parameters
    ----------
    path
        The sheet: ``.csv``, ``.tsv``, ``.txt`` or ``.tab``, optionally ``.gz``.
    sample_id_column
        The column holding the sample names; it becomes the index.
    sep
        Field separator; by default inferred from the suffix.

    Returns
    -------
    pandas.DataFrame
        One row per sample, indexed by sample id (index name ``sample_id_column``), with
        every other column as read.

    Raises
    ------
    InputError
        The file is missing, unreadable, empty or not gzip despite ``.gz``.
    SampleSheetError
        The sheet has no rows, lacks ``sample_id_column``, or has missing or duplicated
        sample ids.

    Examples
    --------
    >>> import bioml as bm
    >>> sheet = bm.io.read_sample_sheet("sheet.tsv", sample_id_column="sample_id")  # doctest: +SKIP
    >>> sheet.columns.tolist()  # doctest: +SKIP
    ['batch', 'condition']
    """
    what = "sample sheet"
    p = _check_file(path, what)
    if sep is None:
        sep = _infer_sep(p, what)
    df = _read_csv(p, what, sep=sep, dtype={sample_id_column: str})
    if sample_id_column not in df.columns:
        hint = (
            f"; is the separator right (sep={sep!r})?"
            if df.shape[1] == 1
            else "; set sample_id_column to the column holding the sample names"
        )
        raise SampleSheetError(
            f"{what} '{p}' has no column '{sample_id_column}' (columns: "
            f"{_quote_list(df.columns, 20)}){hint}"
        )
    if df.shape[0] == 0:
        raise SampleSheetError(f"{what} '{p}' has a header but no rows")
    ids = df[sample_id_column]
    if ids.isna().any():
        lines = [int(i) + 2 for i in np.flatnonzero(ids.isna().to_numpy())]
        raise SampleSheetError(
            f"{what} '{p}': column '{sample_id_column}' is empty on line(s) "
            f"{', '.join(map(str, lines[:_N_SHOWN]))}"
            + (f", ... ({len(lines) - _N_SHOWN} more)" if len(lines) > _N_SHOWN else "")
        )
    dups = _duplicates(pd.Index(ids))
    if dups:
        raise SampleSheetError(
            f"{what} '{p}' has duplicated sample ids in column '{sample_id_column}': "
            f"{_dup_message(dups)}"
        )
    return df.set_index(sample_id_column)


def attach_sample_sheet(
    adata: AnnData,
    sample_sheet: PathLike | pd.DataFrame,
    *,
    sample_id_column: str = "sample_id",
    allow_extra_sheet_rows: bool = False,
    copy: bool = False,
) -> AnnData | None:
    """Add a sample sheet's columns to ``adata.obs``, matched on sample names.

    Every sample (``obs_name``) must have a row in the sheet. Rows of the sheet without
    a sample in the data are an error by default, since they usually mean a wrong sheet
    or a lost sample; with ``allow_extra_sheet_rows=True`` they are dropped and logged as
    a warning. A sheet column that already exists in ``obs`` replaces it (logged as a
    warning).

    Parameters
    ----------
    adata
        The data; ``obs_names`` are the sample names.
    sample_sheet
        Path of a sheet (read with :func:`read_sample_sheet`) or a data frame, either
        indexed by sample id or holding ``sample_id_column``.
    sample_id_column
        Column of the sheet holding the sample names.
    allow_extra_sheet_rows
        Drop sheet rows that have no sample in the data instead of raising.
    copy
        Return a modified copy instead of modifying ``adata``.

    Returns
    -------
    AnnData or None
        The modified copy if ``copy=True``, else ``None``. ``obs`` gains the sheet's
        columns (in the data's sample order); ``uns["bioml"]["ingest"]["input"]``
        records ``sample_sheet`` and ``dropped_sheet_rows``.

    Raises
    ------
    InputError
        The sheet file is missing, unreadable or empty.
    SampleSheetError
        The sheet lacks ``sample_id_column`` or has duplicated ids, samples of the data
        are missing from it, or (unless allowed) it has rows without data.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.io.read_h5ad("data.h5ad")  # doctest: +SKIP
    >>> adata = bm.io.attach_sample_sheet(adata, "sheet.tsv")  # doctest: +SKIP
    """
    if copy:
        adata = adata.copy()
    if isinstance(sample_sheet, pd.DataFrame):
        sheet = sample_sheet.copy()
        sheet_label = "the sample sheet (data frame)"
        sheet_path = None
        if sample_id_column in sheet.columns:
            sheet = sheet.set_index(sample_id_column)
        sheet.index = sheet.index.astype(str)
        dups = _duplicates(sheet.index)
        if dups:
            raise SampleSheetError(
                f"{sheet_label} has duplicated sample ids: {_dup_message(dups)}"
            )
    else:
        sheet = read_sample_sheet(sample_sheet, sample_id_column=sample_id_column)
        sheet_path = str(Path(sample_sheet))
        sheet_label = f"sample sheet '{sheet_path}'"

    data_label = _source_label(adata)
    data_ids = adata.obs_names
    missing = data_ids[~data_ids.isin(sheet.index)]
    if len(missing):
        hint = "; add rows for them to the sheet"
        if len(missing) == len(data_ids):
            hint = (
                f"; no sample name matches (data: {_quote_list(data_ids, 3)}; sheet: "
                f"{_quote_list(sheet.index, 3)}): is sample_id_column right?"
            )
        raise SampleSheetError(
            f"{len(missing)} of {len(data_ids)} samples in {data_label} are missing from "
            f"{sheet_label} (column '{sample_id_column}'): {_quote_list(missing)}{hint}"
        )
    extra = sheet.index[~sheet.index.isin(data_ids)]
    if len(extra):
        if not allow_extra_sheet_rows:
            raise SampleSheetError(
                f"{len(extra)} row{'s' if len(extra) > 1 else ''} of {sheet_label} "
                f"{'have' if len(extra) > 1 else 'has'} no sample in {data_label}: "
                f"{_quote_list(extra)}; remove {'them' if len(extra) > 1 else 'it'} from "
                "the sheet or set allow_extra_sheet_rows=True to drop "
                f"{'them' if len(extra) > 1 else 'it'}"
            )
        logger.warning(
            "dropping %d row(s) of %s without a sample in %s: %s",
            len(extra), sheet_label, data_label, _quote_list(extra),
        )
    sheet = sheet.reindex(data_ids)
    clash = [c for c in sheet.columns if c in adata.obs.columns]
    if clash:
        logger.warning(
            "%s replaces existing obs column(s) %s", sheet_label, _quote_list(clash, 20)
        )
    for c in sheet.columns:
        adata.obs[str(c)] = sheet[c].values  # keeps categorical / extension dtypes
    record = _input_record(adata)
    if sheet_path is not None:
        record["sample_sheet"] = sheet_path
    record["sample_id_column"] = sample_id_column
    record["dropped_sheet_rows"] = [str(x) for x in extra]
    return adata if copy else None


# --------------------------------------------------------------------------- h5ad / 10x


def read_h5ad(
    path: PathLike,
    *,
    sample_sheet: PathLike | pd.DataFrame | None = None,
    sample_id_column: str = "sample_id",
    allow_extra_sheet_rows: bool = False,
) -> AnnData:
    """Read an ``.h5ad`` file (fully into memory).

    Parameters
    ----------
    path
        The ``.h5ad`` file.
    sample_sheet, sample_id_column, allow_extra_sheet_rows
        Optional sample sheet, see :func:`attach_sample_sheet`.

    Returns
    -------
    AnnData
        As stored (``X`` keeps its dtype and sparsity), plus the sheet's columns in
        ``obs``; ``uns["bioml"]["ingest"]["input"]`` records ``source="h5ad"`` and
        ``path``.

    Raises
    ------
    InputError
        The file is missing, empty, or not a readable AnnData file.
    SampleSheetError
        The sample sheet does not fit the data.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.io.read_h5ad("data.h5ad", sample_sheet="sheet.tsv")  # doctest: +SKIP
    """
    import anndata

    what = "h5ad file"
    p = _check_file(path, what)
    try:
        adata = anndata.read_h5ad(p)
    except Exception as e:  # h5py/anndata raise many types for a bad file
        raise InputError(
            f"cannot read {what} '{p}' as AnnData: {type(e).__name__}: {e}"
        ) from e
    record = _input_record(adata)
    record.clear()
    record.update(source="h5ad", path=str(p))
    logger.info("read %s '%s': %d obs x %d vars", what, p, adata.n_obs, adata.n_vars)
    if sample_sheet is not None:
        attach_sample_sheet(
            adata,
            sample_sheet,
            sample_id_column=sample_id_column,
            allow_extra_sheet_rows=allow_extra_sheet_rows,
        )
    return adata


_10X_LAYOUTS = {
    "Cell Ranger 3+": ("matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv.gz"),
    "Cell Ranger 2": ("matrix.mtx", "genes.tsv", "barcodes.tsv"),
}


def read_10x(
    path: PathLike,
    *,
    sample_sheet: PathLike | pd.DataFrame | None = None,
    sample_id_column: str = "sample_id",
    allow_extra_sheet_rows: bool = False,
    var_names: Literal["gene_symbols", "gene_ids"] = "gene_symbols",
) -> AnnData:
    """Read 10x Genomics output: an ``.mtx`` folder or a ``.h5`` file.

    A folder must hold ``matrix.mtx.gz``, ``features.tsv.gz`` and ``barcodes.tsv.gz``
    (Cell Ranger 3+, only "Gene Expression" features are kept) or ``matrix.mtx``,
    ``genes.tsv`` and ``barcodes.tsv`` (Cell Ranger 2); it is read with
    :func:`scanpy.read_10x_mtx`. A ``.h5`` file is read with :func:`scanpy.read_10x_h5`.
    Duplicated gene symbols are made unique (``-1``, ``-2`` ...), as scanpy does.

    Parameters
    ----------
    path
        The folder or ``.h5`` file.
    sample_sheet, sample_id_column, allow_extra_sheet_rows
        Optional per-cell sheet keyed by barcode, see :func:`attach_sample_sheet`.
    var_names
        Use gene symbols (default) or gene ids as ``var_names`` (``.mtx`` folders).

    Returns
    -------
    AnnData
        Cells x genes, ``X`` a float32 CSR matrix; ``var["gene_ids"]`` (or
        ``var["gene_symbols"]``); ``uns["bioml"]["ingest"]["input"]`` records
        ``source="10x"`` and ``path``.

    Raises
    ------
    InputError
        The path is missing, a folder lacks one of the expected files, a file is empty
        or not gzip despite ``.gz``, or scanpy cannot read it.
    SampleSheetError
        The sample sheet does not fit the data.
    ConfigError
        ``var_names`` is not one of the allowed values.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(60, 100, seed=0)
    >>> bm.sim.write_10x(adata, "demo_10x")  # doctest: +SKIP
    >>> back = bm.io.read_10x("demo_10x")  # doctest: +SKIP
    """
    import scanpy as sc

    _check_choice(var_names, ("gene_symbols", "gene_ids"), "var_names")
    what = "10x input"
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} '{p}' does not exist")
    try:
        if p.is_dir():
            layout = next(
                (name for name, files in _10X_LAYOUTS.items()
                 if all((p / f).is_file() for f in files)),
                None,
            )
            if layout is None:
                present = sorted(x.name for x in p.iterdir())
                raise InputError(
                    f"10x folder '{p}' lacks the expected files: "
                    + " or ".join(
                        f"{' + '.join(files)} ({name})" for name, files in _10X_LAYOUTS.items()
                    )
                    + f"; it holds: {_quote_list(present, 10) or 'nothing'}"
                )
            for f in _10X_LAYOUTS[layout]:
                _check_file(p / f, "10x file")
            adata = sc.read_10x_mtx(p, var_names=var_names, make_unique=True)
        elif p.suffix.lower() == ".h5":
            _check_file(p, "10x .h5 file")
            with warnings.catch_warnings():  # made unique just below
                warnings.filterwarnings("ignore", message="Variable names are not unique")
                adata = sc.read_10x_h5(p)
            if not adata.var_names.is_unique:
                logger.info("%s '%s': making duplicated gene names unique", what, p)
                adata.var_names_make_unique()
        else:
            raise InputError(
                f"{what} '{p}' is neither a folder nor a .h5 file; expected a Cell Ranger "
                "'filtered_feature_bc_matrix' folder or '.h5' file"
            )
    except InputError:
        raise
    except Exception as e:  # scanpy/pandas/scipy/h5py raise many types for bad input
        raise InputError(f"cannot read {what} '{p}': {type(e).__name__}: {e}") from e

    if sp.issparse(adata.X):
        x = adata.X if sp.isspmatrix_csr(adata.X) else sp.csr_matrix(adata.X)
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        adata.X = x
    record = _input_record(adata)
    record.clear()
    record.update(source="10x", path=str(p))
    logger.info("read %s '%s': %d cells x %d genes", what, p, adata.n_obs, adata.n_vars)
    if sample_sheet is not None:
        attach_sample_sheet(
            adata,
            sample_sheet,
            sample_id_column=sample_id_column,
            allow_extra_sheet_rows=allow_extra_sheet_rows,
        )
    return adata


# --------------------------------------------------------------------------- dispatcher


def read(
    source: Literal["table", "h5ad", "10x"],
    *,
    path: PathLike,
    sample_sheet: PathLike | pd.DataFrame | None = None,
    orientation: Orientation = "genes_x_samples",
    sep: str | None = None,
    sample_id_column: str = "sample_id",
    allow_extra_sheet_rows: bool = False,
    dtype: Literal["float32", "float64"] = "float32",
) -> AnnData:
    """Read expression data of the kind ``source`` names (the config's ``data.source``).

    Parameters
    ----------
    source
        ``"table"`` (:func:`read_table`), ``"h5ad"`` (:func:`read_h5ad`) or ``"10x"``
        (:func:`read_10x`).
    path
        The file or folder to read.
    sample_sheet
        Optional sample sheet, see :func:`attach_sample_sheet`.
    orientation, sep, dtype
        For tables only (ignored otherwise), see :func:`read_table`.
    sample_id_column, allow_extra_sheet_rows
        See :func:`attach_sample_sheet`.

    Returns
    -------
    AnnData
        Samples/cells as ``obs``, genes as ``var``; see the readers.

    Raises
    ------
    ConfigError
        ``source`` is not one of the kinds above.
    InputError
        See the readers (including :class:`~bioml.errors.DataValueError` and
        :class:`~bioml.errors.SampleSheetError`).

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.io.read("table", path="expr.tsv.gz", sample_sheet="pheno.tsv")  # doctest: +SKIP
    >>> adata = bm.io.read("10x", path="data/demo_10x", sample_sheet="sheet.tsv")  # doctest: +SKIP
    """
    _check_choice(source, ("table", "h5ad", "10x"), "source")
    sheet_kw: dict[str, Any] = dict(
        sample_sheet=sample_sheet,
        sample_id_column=sample_id_column,
        allow_extra_sheet_rows=allow_extra_sheet_rows,
    )
    if source == "table":
        return read_table(path, orientation=orientation, sep=sep, dtype=dtype, **sheet_kw)
    if source == "h5ad":
        return read_h5ad(path, **sheet_kw)
    return read_10x(path, **sheet_kw)
