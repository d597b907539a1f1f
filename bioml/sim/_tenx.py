"""Write simulated (or any count) AnnData as the files the readers take in.

- :func:`write_10x`: a Cell Ranger v3 style folder (``matrix.mtx.gz``,
  ``features.tsv.gz``, ``barcodes.tsv.gz``), readable by :func:`scanpy.read_10x_mtx`;
- :func:`write_sample_sheet`: a sample sheet (one row per sample);
- :func:`write_table`: a dense expression table (genes x samples or samples x genes).

Every writer is atomic: it writes to a hidden temporary sibling and renames it at the
end, so a failure leaves neither a partial output nor a damaged old one. The gzip
streams are written with ``mtime=0``, so the same data gives the same bytes.
"""

from __future__ import annotations

import gzip
import os
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
from anndata import AnnData

from ..errors import ConfigError, DataValueError, InputError
from ..io._atomic import atomic_path

__all__ = ["write_10x", "write_sample_sheet", "write_table"]

_ORIENTATIONS = ("genes_x_samples", "samples_x_genes")


def _integer_counts(adata: AnnData, what: str) -> sp.csr_matrix:
    """``adata.X`` as an int64 CSR matrix, after checking that it holds counts."""
    X = adata.X
    if X is None:
        raise InputError(f"{what}: adata.X is empty")
    X = sp.csr_matrix(X) if sp.issparse(X) else sp.csr_matrix(np.asarray(X))
    values = X.data
    if values.dtype.kind not in "biuf":
        raise DataValueError(f"{what}: adata.X is not numeric (dtype {values.dtype})")
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)):
            raise DataValueError(f"{what}: adata.X holds NaN or infinite values")
        if np.any(values != np.round(values)):
            raise DataValueError(
                f"{what}: adata.X holds non-integer values; 10x matrices are counts"
            )
    if values.size and values.min() < 0:
        raise DataValueError(f"{what}: adata.X holds negative values; 10x matrices are counts")
    X = X.astype(np.int64)
    X.eliminate_zeros()
    return X


def _gzip_text(path: Path, text: str) -> None:
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write(text.encode("utf-8"))


def _check_names(names: pd.Index, what: str, kind: str) -> list[str]:
    out = [str(n) for n in names]
    bad = [n for n in out if any(c in n for c in "\t\n\r")]
    if bad:
        raise InputError(f"{what}: {kind} {bad[0]!r} contains a tab or a newline")
    return out


def write_10x(adata: AnnData, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``adata.X`` as a Cell Ranger v3 style matrix folder.

    The folder holds ``matrix.mtx.gz`` (genes x cells, MatrixMarket coordinate format,
    integer field), ``features.tsv.gz`` (no header; columns gene id, gene name and
    ``"Gene Expression"``) and ``barcodes.tsv.gz`` (one ``obs_name`` per line).
    :func:`scanpy.read_10x_mtx` reads it back with the same counts, ``var_names`` and
    ``obs_names``. The gene id is ``var["gene_ids"]`` when present, else the var name;
    the gene name is the var name. Only ``X`` is written (no obs/var annotation: use
    :func:`write_sample_sheet` for the obs).

    The files go into a hidden temporary sibling folder that is renamed onto ``path``
    at the end; a failure removes it and leaves ``path`` as it was.

    Parameters
    ----------
    adata
        Samples x genes; ``X`` (dense or sparse) must hold non-negative integer values.
    path
        The folder to create. Missing parents are created. An existing empty folder is
        replaced.
    overwrite
        Replace an existing non-empty folder (the old one is removed only after the new
        one is in place).

    Returns
    -------
    Path
        The folder written.

    Raises
    ------
    InputError
        If ``path`` exists and is a file, or a non-empty folder and ``overwrite`` is
        ``False``.
    DataValueError
        If ``X`` holds negative, non-integer or non-finite values.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(60, 100, seed=0)
    >>> bm.sim.write_10x(adata, "data/demo_10x")  # doctest: +SKIP
    >>> bm.io.read_10x("data/demo_10x").shape  # doctest: +SKIP
    (60, 100)
    """
    final = Path(path)
    what = f"write_10x('{final}')"

    def check_target() -> bool:
        """Whether ``final`` exists (as an empty folder, or any folder with overwrite)."""
        if not final.exists() and not final.is_symlink():
            return False
        if not final.is_dir() or final.is_symlink():
            raise InputError(f"{what}: '{final}' exists and is not a folder")
        if any(final.iterdir()) and not overwrite:
            raise InputError(
                f"{what}: the folder '{final}' exists and is not empty; "
                "pass overwrite=True to replace it"
            )
        return True

    check_target()
    counts = _integer_counts(adata, what)
    barcodes = _check_names(adata.obs_names, what, "obs name")
    names = _check_names(adata.var_names, what, "var name")
    if "gene_ids" in adata.var.columns:
        ids = _check_names(pd.Index(adata.var["gene_ids"].astype(str)), what, "gene id")
    else:
        ids = names

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    trash: Path | None = None
    try:
        with gzip.GzipFile(tmp / "matrix.mtx.gz", "wb", mtime=0) as fh:
            scipy.io.mmwrite(fh, counts.T.tocoo(), field="integer")
        _gzip_text(
            tmp / "features.tsv.gz",
            "".join(f"{i}\t{n}\tGene Expression\n" for i, n in zip(ids, names)),
        )
        _gzip_text(tmp / "barcodes.tsv.gz", "".join(f"{b}\n" for b in barcodes))
        os.chmod(tmp, 0o777 & ~_umask())
        if check_target():
            if any(final.iterdir()):  # overwrite: move the old folder aside first
                trash = final.parent / f".{final.name}.old-{secrets.token_hex(4)}"
                os.replace(final, trash)
            else:
                final.rmdir()
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if trash is not None and not final.exists():
            os.replace(trash, final)
            trash = None
        raise
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    return final


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sep_and_compression(path: Path) -> tuple[str, dict[str, object] | None]:
    name = path.name.lower()
    compression = None
    if name.endswith(".gz"):
        name = name[:-3]
        compression = {"method": "gzip", "mtime": 0}
    return ("," if name.endswith(".csv") else "\t"), compression


def write_sample_sheet(
    adata: AnnData,
    path: str | os.PathLike[str],
    *,
    columns: Sequence[str] = ("batch", "condition"),
    id_column: str = "sample_id",
) -> Path:
    """Write the sample sheet of ``adata``: one row per sample, ``obs_names`` first.

    Parameters
    ----------
    adata
        Its ``obs`` must hold every column of ``columns``.
    path
        Destination; comma-separated for ``.csv`` (or ``.csv.gz``), tab-separated
        otherwise; gzip-compressed when it ends in ``.gz``. Written atomically (temporary
        file and :func:`os.replace`).
    columns
        The obs columns to write, in this order.
    id_column
        Header of the first column, which holds ``adata.obs_names``.

    Returns
    -------
    Path
        The file written. Its header is ``id_column`` followed by ``columns``.

    Raises
    ------
    InputError
        If a column is missing from ``adata.obs``.
    ConfigError
        If ``id_column`` is also one of ``columns`` or a column is named twice.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(60, 100, seed=0)
    >>> bm.sim.write_sample_sheet(adata, "data/sheet.tsv")  # doctest: +SKIP
    """
    final = Path(path)
    columns = [columns] if isinstance(columns, str) else list(columns)
    if len(set(columns)) != len(columns):
        raise ConfigError(f"write_sample_sheet: a column is named twice in {columns}")
    if id_column in columns:
        raise ConfigError(f"write_sample_sheet: id_column {id_column!r} is also one of columns")
    missing = [c for c in columns if c not in adata.obs.columns]
    if missing:
        raise InputError(
            f"write_sample_sheet('{final}'): adata.obs has no column {missing[0]!r} "
            f"(it has {list(adata.obs.columns)})"
        )
    sheet = pd.DataFrame({id_column: adata.obs_names.astype(str)})
    for c in columns:
        col = adata.obs[c]
        categorical = isinstance(col.dtype, pd.CategoricalDtype)
        sheet[c] = col.astype(str).to_numpy() if categorical else col.to_numpy()
    sep, compression = _sep_and_compression(final)
    with atomic_path(final) as tmp:
        sheet.to_csv(tmp, sep=sep, index=False, compression=compression)
    return final


def write_table(
    adata: AnnData,
    path: str | os.PathLike[str],
    *,
    orientation: str = "genes_x_samples",
) -> Path:
    """Write ``adata.X`` as a dense CSV/TSV expression table.

    Parameters
    ----------
    adata
        Samples x genes.
    path
        Destination; comma-separated for ``.csv`` (or ``.csv.gz``), tab-separated
        otherwise; gzip-compressed when it ends in ``.gz``. Written atomically.
    orientation
        ``"genes_x_samples"``: one row per gene, first column ``gene_id`` (the var
        names), then one column per sample (the obs names). ``"samples_x_genes"``: one
        row per sample, first column ``sample_id``, then one column per gene.

    Returns
    -------
    Path
        The file written. Integer-valued data are written as integers; other values
        with full (round-trip) precision.

    Raises
    ------
    ConfigError
        If ``orientation`` is not one of the two above.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(60, 100, seed=0)
    >>> bm.sim.write_table(adata, "data/expr.tsv.gz")  # doctest: +SKIP
    """
    if orientation not in _ORIENTATIONS:
        raise ConfigError(
            f"write_table: orientation must be one of {_ORIENTATIONS}, got {orientation!r}"
        )
    final = Path(path)
    X = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    if X.dtype.kind == "f" and np.all(np.isfinite(X)) and np.all(X == np.round(X)):
        X = X.astype(np.int64)
    elif X.dtype.kind == "f":
        X = X.astype(np.float64)  # full repr of the stored values, not float32's str
    obs = adata.obs_names.astype(str)
    var = adata.var_names.astype(str)
    if orientation == "genes_x_samples":
        df = pd.DataFrame(X.T, index=pd.Index(var, name="gene_id"), columns=obs)
    else:
        df = pd.DataFrame(X, index=pd.Index(obs, name="sample_id"), columns=var)
    sep, compression = _sep_and_compression(final)
    with atomic_path(final) as tmp:
        df.to_csv(tmp, sep=sep, compression=compression)
    return final
