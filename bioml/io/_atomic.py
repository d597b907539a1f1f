"""Atomic writes: write to a hidden temporary file beside the target, then rename.

A reader (or a Snakemake rule that checks its outputs) therefore sees either the old
file or the complete new one, never a half-written file; a failing writer leaves no
output behind and does not clobber an existing file.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["atomic_path", "write_h5ad", "write_table", "write_json", "write_figure"]

logger = logging.getLogger("bioml.io")

_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zst", ".zip"}


def _temp_suffix(path: Path) -> str:
    """The suffix the temporary file keeps, so suffix-sniffing writers behave the same.

    ``x.tsv.gz`` keeps ``.tsv.gz`` (pandas infers gzip from it), ``x.h5ad`` keeps
    ``.h5ad``.
    """
    suffixes = path.suffixes
    if len(suffixes) >= 2 and suffixes[-1].lower() in _COMPRESSION_SUFFIXES:
        return "".join(suffixes[-2:])
    return path.suffix


def _fsync_path(path: Path) -> None:
    """Flush a file or directory to disk where the platform allows (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` on success.

    The temporary file lives in the same directory (so the final :func:`os.replace` is
    an atomic rename on the same file system) under a hidden name such as
    ``.result.h5ad.tmp-1a2b3c4d.h5ad``: it keeps the suffix of ``path`` so writers that
    infer the format or the compression from the suffix behave the same. The file is
    not created beforehand; the writer creates it with the usual permissions.

    Parameters
    ----------
    path
        The final destination. Missing parent directories are created.

    Yields
    ------
    Path
        The temporary path to write to.

    Raises
    ------
    Exception
        Whatever the body of the ``with`` block raises is re-raised after the temporary
        file has been deleted; an existing file at ``path`` is then left untouched.
    FileNotFoundError
        If the body finished without creating the temporary file.

    Examples
    --------
    >>> with atomic_path("results/table.tsv") as tmp:  # doctest: +SKIP
    ...     df.to_csv(tmp, sep="\\t")
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = _temp_suffix(final)
    while True:
        tmp = final.parent / f".{final.name}.tmp-{secrets.token_hex(4)}{suffix}"
        if not tmp.exists():
            break
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(
                f"atomic write to '{final}': the writer did not create the temporary "
                f"file '{tmp}'"
            )
        _fsync_path(tmp)
        os.replace(tmp, final)
        _fsync_path(final.parent)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # pragma: no cover - e.g. the writer left a directory
            logger.warning("could not remove the temporary file '%s'", tmp)
        raise


def write_h5ad(
    adata: AnnData,
    path: str | os.PathLike[str],
    *,
    compression: str | None = "gzip",
) -> Path:
    """Write ``adata`` to an ``.h5ad`` file atomically.

    Parameters
    ----------
    adata
        The object to write.
    path
        Destination; parent directories are created.
    compression
        HDF5 compression of the arrays (``"gzip"``, ``"lzf"`` or ``None``).

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    Exception
        Whatever :meth:`anndata.AnnData.write_h5ad` raises; no file is left behind and an
        existing file at ``path`` is untouched.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(60, 100, seed=0)
    >>> bm.io.write_h5ad(adata, "results/demo/data.h5ad")  # doctest: +SKIP
    """
    final = Path(path)
    with atomic_path(final) as tmp:
        adata.write_h5ad(tmp, compression=compression)
    logger.debug("wrote %d x %d AnnData to '%s'", adata.n_obs, adata.n_vars, final)
    return final


def _sep_for_writing(path: Path) -> str:
    name = path.name.lower()
    for ext in _COMPRESSION_SUFFIXES:
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return "," if name.endswith(".csv") else "\t"


def write_table(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    sep: str | None = None,
    index: bool = True,
    float_format: str | None = None,
) -> Path:
    """Write a data frame as CSV/TSV atomically.

    Parameters
    ----------
    df
        The table.
    path
        Destination. A ``.gz``/``.bz2``/``.xz``/``.zst`` ending compresses the file.
    sep
        Field separator; by default ``","`` for ``.csv`` (optionally compressed) and a
        tab for anything else.
    index
        Whether to write the row index as the first column.
    float_format
        Passed to :meth:`pandas.DataFrame.to_csv` (e.g. ``"%.17g"`` for exact floats).

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    Exception
        Whatever :meth:`pandas.DataFrame.to_csv` raises; nothing is left behind.

    Examples
    --------
    >>> import pandas as pd
    >>> import bioml as bm
    >>> table = pd.DataFrame({"a": [1, 2]})
    >>> bm.io.write_table(table, "results/demo/table.tsv", index=False)  # doctest: +SKIP
    """
    final = Path(path)
    if sep is None:
        sep = _sep_for_writing(final)
    with atomic_path(final) as tmp:
        df.to_csv(tmp, sep=sep, index=index, float_format=float_format)
    return final


def _to_builtin(obj: Any) -> Any:
    """``json.dump`` hook: numpy/pandas/pathlib values to plain Python."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (pd.Series, pd.Index)):
        return obj.tolist()
    if isinstance(obj, pd.DataFrame):
        return obj.to_dict(orient="list")
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def write_json(obj: Any, path: str | os.PathLike[str], *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically.

    numpy scalars and arrays, pandas Series/Index/DataFrame, paths and sets are
    converted to plain Python. Non-finite floats are written as ``NaN``/``Infinity``
    (Python's :mod:`json` default, which :func:`json.load` reads back).

    Parameters
    ----------
    obj
        A JSON-serialisable object (after the conversions above).
    path
        Destination; parent directories are created.
    indent
        Indentation of the output.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    TypeError
        If ``obj`` holds a value that cannot be converted; no file is left behind.

    Examples
    --------
    >>> import bioml as bm
    >>> bm.io.write_json({"status": "ok", "n": 3}, "results/demo/report.json")  # doctest: +SKIP
    """
    final = Path(path)
    text = json.dumps(obj, indent=indent, default=_to_builtin)
    with atomic_path(final) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return final



def write_figure(fig, path: str | os.PathLike[str], *, dpi: int = 120, close: bool = True) -> Path:
    """Save a matplotlib figure atomically (format from the suffix, e.g. ``.png``).

    Parameters
    ----------
    fig
        A :class:`matplotlib.figure.Figure`.
    path
        Destination; missing parent directories are created.
    dpi
        Resolution of raster formats.
    close
        Close the figure afterwards (frees its memory in long pipelines).

    Returns
    -------
    The destination path.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import bioml as bm
    >>> fig, ax = plt.subplots()
    >>> bm.io.write_figure(fig, "results/demo/figure.png")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or None)
    finally:
        if close:
            import matplotlib.pyplot as plt

            plt.close(fig)
    return path
