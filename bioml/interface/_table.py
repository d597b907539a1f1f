"""Validation of a user-provided interface feature table (TSV/CSV or ``.h5ad``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataValueError, InputError
from ._features import FEATURE_NAMES, FEATURES

__all__ = ["validate_feature_table", "read_feature_table"]

_COMP_TOL = 1e-3  # relative tolerance on a composition block's sum and on derived columns


def read_feature_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a feature table: ``.h5ad`` (obs x features; ``obs`` columns are kept), or a
    TSV/CSV (optionally gzip'd) with one row per interface and the features as columns.

    Raises
    ------
    InputError
        Missing or unreadable file (named in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"feature table '{path}' does not exist")
    name = path.name.lower()
    try:
        if name.endswith(".h5ad"):
            import anndata as ad

            a = ad.read_h5ad(path)
            X = a.X.toarray() if hasattr(a.X, "toarray") else np.asarray(a.X)
            df = pd.DataFrame(X, index=a.obs_names, columns=a.var_names.astype(str))
            return pd.concat([a.obs.reset_index(drop=True).set_index(df.index), df], axis=1)
        sep = "," if name.removesuffix(".gz").endswith(".csv") else "\t"
        return pd.read_csv(path, sep=sep)
    except Exception as err:  # noqa: BLE001
        raise InputError(f"cannot read feature table '{path}': {type(err).__name__}: {err}") from err


def validate_feature_table(data, *, label_key: str | None = None, source: str | None = None,
                           min_rows: int = 1) -> pd.DataFrame:
    """Check an interface feature table and return its feature columns (float64).

    Parameters
    ----------
    data
        A path (TSV/CSV/h5ad, see :func:`read_feature_table`), a DataFrame, or an AnnData
        (e.g. from :func:`bioml.sim.simulate_interface_features`).
    label_key
        A label column to keep (e.g. complex class), returned as the last column.
    source
        Name used in messages (default: the path, or "the feature table").
    min_rows
        Fewest rows accepted.

    Checks: every column of :data:`~bioml.interface.FEATURE_NAMES` present and numeric,
    no NaN/inf, non-negative values, counts integer-valued, each composition block
    (``comp_*`` summing to 1, ``nis_*`` summing to 100) and each derived column (e.g.
    ``bsa_total = bsa_polar + bsa_apolar``) consistent to a relative 1e-3, at least ``min_rows`` rows.
    Extra columns (``structure``, ``chain_a``, ...) are ignored.

    Returns
    -------
    pandas.DataFrame
        The :data:`FEATURE_NAMES` columns in order (plus ``label_key``), index as given.

    Raises
    ------
    InputError / DataValueError
        Naming the table, the column and (where it helps) the first bad row.
    """
    if isinstance(data, (str, os.PathLike)):
        source = source or f"'{data}'"
        df = read_feature_table(data)
    elif isinstance(data, pd.DataFrame):
        df = data
    elif hasattr(data, "obs") and hasattr(data, "var_names"):
        X = data.X.toarray() if hasattr(data.X, "toarray") else np.asarray(data.X)
        df = pd.DataFrame(X, index=data.obs_names, columns=data.var_names.astype(str))
        if label_key is not None and label_key in data.obs:
            df[label_key] = data.obs[label_key].to_numpy()
    else:
        raise InputError(f"feature table must be a path, DataFrame or AnnData, got {type(data).__name__}")
    where = source or "the feature table"
    missing = [c for c in FEATURE_NAMES if c not in df.columns]
    if missing:
        raise InputError(f"{where} lacks feature column(s) {missing[:8]}"
                         f"{' ...' if len(missing) > 8 else ''} (see bm.interface.feature_table())")
    if len(df) < max(int(min_rows), 1):
        raise InputError(f"{where} has {len(df)} row(s); at least {max(int(min_rows), 1)} are needed")
    out = pd.DataFrame(index=df.index)
    for c in FEATURE_NAMES:
        col = pd.to_numeric(df[c], errors="coerce")
        bad = col.isna() & df[c].notna()
        if bad.any():
            raise DataValueError(f"{where}: column {c!r} is not numeric (row {df.index[bad][0]}: "
                                 f"{df[c][bad].iloc[0]!r})")
        out[c] = col.astype(np.float64)
    X = out.to_numpy()
    nonfinite = ~np.isfinite(X)
    if nonfinite.any():
        i, j = np.argwhere(nonfinite)[0]
        raise DataValueError(f"{where}: column {FEATURE_NAMES[j]!r} holds NaN/inf (row {out.index[i]})")
    neg = X < 0
    if neg.any():
        i, j = np.argwhere(neg)[0]
        raise DataValueError(f"{where}: column {FEATURE_NAMES[j]!r} is negative ({X[i, j]}, row "
                             f"{out.index[i]}); every interface feature is >= 0")
    for f in FEATURES:
        col = out[f.name].to_numpy()
        if f.integer:
            frac = np.abs(col - np.round(col)) > 1e-6
            if frac.any():
                raise DataValueError(f"{where}: count column {f.name!r} is not integer-valued "
                                     f"({col[frac][0]}, row {out.index[frac][0]})")
        if f.kind == "derived":
            s = out[list(f.parts)].sum(axis=1).to_numpy()
            off = np.abs(col - s) > _COMP_TOL * np.maximum(1.0, np.abs(s))
            if off.any():
                raise DataValueError(
                    f"{where}: {f.name!r} must equal the sum of {list(f.parts)} (row {out.index[off][0]}: "
                    f"{col[off][0]} vs {s[off][0]})")
    groups: dict[str, tuple[list[str], float]] = {}
    for f in FEATURES:
        if f.kind == "composition":
            groups.setdefault(f.group, ([], f.total))[0].append(f.name)
    for g, (cols, total) in groups.items():
        s = out[cols].sum(axis=1).to_numpy()
        off = np.abs(s - total) > _COMP_TOL * total
        if off.any():
            raise DataValueError(f"{where}: the {g!r} block ({cols[0]} ... {cols[-1]}) must sum to {total:g} "
                                 f"(row {out.index[off][0]} sums to {s[off][0]:.6g})")
    if label_key is not None:
        if label_key not in df.columns:
            raise InputError(f"{where}: label column {label_key!r} not found")
        out[label_key] = df[label_key].to_numpy()
    return out
