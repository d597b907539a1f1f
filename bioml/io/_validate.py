"""Validation of an ingested AnnData: values, names and the batch/covariate columns."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ..errors import ConfigError, DataValueError, InputError, SampleSheetError
from ._readers import _check_choice, _dup_message, _duplicates, _quote_list, _source_label

__all__ = ["validate"]

logger = logging.getLogger("bioml.io")

#: ``data_type="log"`` data whose maximum exceeds this look unlogged (a warning).
LOG_MAX_WARN = 100.0


# --------------------------------------------------------------------------- X values


def _as_csr(x: Any) -> sp.csr_matrix:
    return x if sp.isspmatrix_csr(x) or isinstance(x, sp.csr_array) else sp.csr_matrix(x)


def _scan(x: Any, test: Any) -> tuple[int, tuple[int, int, float] | None]:
    """Count the stored entries of ``x`` where ``test`` holds; give the first (row-major).

    Returns ``(count, (row, col, value))`` or ``(0, None)``. For sparse ``x`` only the
    stored entries are tested (implicit zeros pass every test used here).
    """
    if sp.issparse(x):
        csr = _as_csr(x)
        mask = test(csr.data)
        n = int(np.count_nonzero(mask))
        if not n:
            return 0, None
        k = int(np.argmax(mask))
        row = int(np.searchsorted(csr.indptr, k, side="right") - 1)
        return n, (row, int(csr.indices[k]), float(csr.data[k]))
    arr = np.asarray(x)
    mask = test(arr)
    n = int(np.count_nonzero(mask))
    if not n:
        return 0, None
    row, col = np.unravel_index(int(np.argmax(mask)), arr.shape)
    return n, (int(row), int(col), float(arr[row, col]))


def _where(adata: AnnData, first: tuple[int, int, float]) -> str:
    row, col, value = first
    return f"sample '{adata.obs_names[row]}', gene '{adata.var_names[col]}', value {value:g}"


def _genes_with(x: Any, test: Any) -> np.ndarray:
    """Boolean mask over genes (columns) holding any entry where ``test`` holds."""
    if sp.issparse(x):
        csr = _as_csr(x)
        hit = np.zeros(csr.shape[1], dtype=bool)
        hit[csr.indices[test(csr.data)]] = True
        return hit
    return np.asarray(test(np.asarray(x))).any(axis=0)


def _check_values(
    adata: AnnData, *, data_type: str, nan_policy: str, label: str, record: dict[str, Any]
) -> None:
    x = adata.X
    if x is None:
        raise InputError(f"{label} has no expression matrix (X is None)")
    dtype = x.dtype
    if dtype.kind not in "biuf":
        raise DataValueError(f"X of {label} has dtype {dtype}; expected numbers")

    record["n_dropped_genes"] = 0
    record["dropped_genes"] = []
    record["n_nan_zeroed"] = 0
    if dtype.kind == "f":
        n_inf, first = _scan(x, np.isinf)
        if n_inf:
            raise DataValueError(
                f"{label} holds {n_inf} infinite value{'s' if n_inf > 1 else ''} (first at "
                f"{_where(adata, first)}); infinite values are never accepted: fix the "
                "input (a log of zero?)"
            )
        n_nan, first = _scan(x, np.isnan)
        if n_nan:
            row, col, _ = first
            where = f"sample '{adata.obs_names[row]}', gene '{adata.var_names[col]}'"
            if nan_policy == "error":
                hint = "'drop_genes' or 'zero' (counts only)" if data_type == "counts" \
                    else "'drop_genes'"
                raise DataValueError(
                    f"{label} holds {n_nan} NaN (missing) value{'s' if n_nan > 1 else ''} "
                    f"(first at {where}); set nan_policy to {hint}, or fix the input"
                )
            if nan_policy == "drop_genes":
                bad = _genes_with(x, np.isnan)
                if bad.all():
                    raise DataValueError(
                        f"{label}: every one of its {adata.n_vars} genes holds a NaN value, "
                        "so nan_policy='drop_genes' would leave none"
                    )
                dropped = adata.var_names[bad]
                logger.warning(
                    "%s: dropping %d of %d genes that hold NaN values (%d NaN cells): %s",
                    label, len(dropped), adata.n_vars, n_nan, _quote_list(dropped),
                )
                adata._inplace_subset_var(~bad)
                record["n_dropped_genes"] = len(dropped)
                record["dropped_genes"] = [str(g) for g in dropped]
            else:  # "zero"
                if sp.issparse(x):
                    x.data[np.isnan(x.data)] = 0
                    x.eliminate_zeros()
                else:
                    x[np.isnan(x)] = 0
                logger.warning("%s: replaced %d NaN values by 0", label, n_nan)
                record["n_nan_zeroed"] = n_nan
            x = adata.X

    if data_type == "counts":
        n_neg, first = _scan(x, lambda a: a < 0)
        if n_neg:
            raise DataValueError(
                f"{label} holds {n_neg} negative value{'s' if n_neg > 1 else ''} (first at "
                f"{_where(adata, first)}) but data_type is 'counts'; if the data are "
                "log-transformed or centred, set data_type='log'"
            )
        if dtype.kind == "f":
            n_frac, first = _scan(x, lambda a: a != np.floor(a))
            record["n_non_integer"] = n_frac
            if n_frac:
                logger.warning(
                    "%s: %d values are not integers (first at %s): with data_type='counts' "
                    "they do not look like raw counts (normalised already?)",
                    label, n_frac, _where(adata, first),
                )
    else:
        vmax = float(x.max())  # scipy counts the implicit zeros of sparse X
        record["max_value"] = vmax
        if vmax > LOG_MAX_WARN:
            logger.warning(
                "%s: data_type is 'log' but the largest value is %g (> %g): the data look "
                "unlogged (raw counts or intensities?)",
                label, vmax, LOG_MAX_WARN,
            )


# --------------------------------------------------------------------------- obs columns


def _require_column(
    obs: pd.DataFrame, col: str, role: str, label: str, sheet: str | None
) -> pd.Series:
    if col not in obs.columns:
        available = _quote_list(obs.columns, 30) or "none (attach a sample sheet)"
        origin = f" (sample sheet '{sheet}')" if sheet else ""
        raise SampleSheetError(
            f"{role} column '{col}' is not in the obs of {label}{origin}; available "
            f"columns: {available}"
        )
    return obs[col]


def _check_no_missing(s: pd.Series, col: str, role: str, label: str) -> None:
    na = s.isna().to_numpy()
    if na.any():
        names = s.index[na]
        raise SampleSheetError(
            f"{role} column '{col}' of {label} has missing values for {int(na.sum())} "
            f"sample{'s' if na.sum() > 1 else ''}: {_quote_list(names)}"
        )


def _to_categorical(s: pd.Series) -> pd.Series:
    """Categorical of strings; numeric levels ordered numerically (1, 2, ..., 10)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.cat.remove_unused_categories()
        cats = [str(c) for c in s.cat.categories]
        return pd.Series(
            pd.Categorical(s.astype(str), categories=cats), index=s.index, name=s.name
        )
    if s.dtype.kind in "iuf":
        values = s.to_numpy()
        if s.dtype.kind == "f" and np.all(values == np.round(values)):
            values = values.astype(np.int64)
        levels = np.unique(values)
        strings = np.array([str(v) for v in values.tolist()], dtype=object)
        cats = [str(v) for v in levels.tolist()]
        return pd.Series(pd.Categorical(strings, categories=cats), index=s.index, name=s.name)
    strings = s.astype(str)
    return pd.Series(
        pd.Categorical(strings, categories=sorted(pd.unique(strings))),
        index=s.index,
        name=s.name,
    )


def _single_level(s: pd.Series) -> str | None:
    levels = s.cat.categories
    return str(levels[0]) if len(levels) < 2 else None


def _is_categorical_like(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.CategoricalDtype) or s.dtype.kind not in "iuf"


def _validate_obs(
    adata: AnnData,
    *,
    batch_key: str | None,
    batch_key2: str | None,
    covariates: tuple[str, ...],
    batch_covariates: tuple[str, ...],
    label: str,
    record: dict[str, Any],
) -> None:
    obs = adata.obs
    n = adata.n_obs
    try:
        sheet = adata.uns["bioml"]["ingest"]["input"].get("sample_sheet")
    except (KeyError, TypeError, AttributeError):
        sheet = None
    kinds: dict[str, str] = {}
    for key, role in ((batch_key, "batch_key"), (batch_key2, "batch_key2")):
        if key is None:
            continue
        s = _require_column(obs, key, "batch", label, sheet)
        _check_no_missing(s, key, "batch", label)
        cat = _to_categorical(s)
        lvl = _single_level(cat)
        if lvl is not None:
            raise SampleSheetError(
                f"batch column '{key}' ({role}) of {label} has a single level '{lvl}' "
                f"(all {n} samples): nothing to correct"
            )
        obs[key] = cat
        kinds[key] = "categorical"
    for key in covariates:
        s = _require_column(obs, key, "covariate", label, sheet)
        _check_no_missing(s, key, "covariate", label)
        if _is_categorical_like(s):
            cat = _to_categorical(s)
            lvl = _single_level(cat)
            if lvl is not None:
                raise SampleSheetError(
                    f"covariate '{key}' of {label} has a single level '{lvl}' (all {n} "
                    "samples): it cannot be modelled; drop it from covariates"
                )
            obs[key] = cat
            kinds[key] = "categorical"
        else:
            obs[key] = _continuous(s, key, "covariate", label)
            kinds[key] = "continuous"
    for key in batch_covariates:
        s = _require_column(obs, key, "batch covariate", label, sheet)
        _check_no_missing(s, key, "batch covariate", label)
        if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype.kind not in "biuf":
            example = s.iloc[0]
            raise SampleSheetError(
                f"batch covariate '{key}' of {label} must be numeric (a continuous term to "
                f"remove) but holds {s.dtype} values such as '{example}'; give "
                "categorical batch variables as batch_key/batch_key2"
            )
        obs[key] = _continuous(s, key, "batch covariate", label)
        kinds[key] = "continuous"
    record["column_kinds"] = kinds


def _continuous(s: pd.Series, key: str, role: str, label: str) -> pd.Series:
    values = s.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        bad = s.index[~np.isfinite(values)]
        raise SampleSheetError(
            f"{role} '{key}' of {label} has infinite values for samples {_quote_list(bad)}"
        )
    if np.all(values == values[0]):
        raise SampleSheetError(
            f"{role} '{key}' of {label} is constant ({values[0]:g} for all {len(values)} "
            f"samples): it cannot be modelled; drop it from "
            f"{'covariates' if role == 'covariate' else 'batch_covariates'}"
        )
    return pd.Series(values, index=s.index, name=s.name)


# --------------------------------------------------------------------------- validate


def _as_names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def validate(
    adata: AnnData,
    *,
    data_type: Literal["counts", "log"] = "counts",
    batch_key: str | None = "batch",
    batch_key2: str | None = None,
    covariates: str | Sequence[str] = (),
    batch_covariates: str | Sequence[str] = (),
    nan_policy: Literal["error", "drop_genes", "zero"] = "error",
    source: str | None = None,
    copy: bool = False,
) -> AnnData:
    """Check an ingested AnnData and bring its ``obs`` columns to the types bioml uses.

    Checks, in order (the first failure raises):

    1. Not empty (at least one sample and one gene); unique ``obs_names`` and
       ``var_names``; no column named twice across ``batch_key``, ``batch_key2``,
       ``covariates`` and ``batch_covariates``.
    2. The ``obs`` columns. Batch columns (``batch_key``, ``batch_key2``) must exist,
       have no missing value and at least two levels; they become categoricals of
       strings (integer batches 1..5 become the categories ``"1"``..``"5"``, ordered
       numerically). ``covariates`` (biological variables to keep): text, boolean and
       categorical columns become categoricals of strings and need two levels; numeric
       columns become continuous float64 and must not be constant. ``batch_covariates``
       (continuous terms to remove) must be numeric and not constant.
    3. The values of ``X``. Infinite values are always an error. NaN follows
       ``nan_policy``. With ``data_type="counts"`` negative values are an error and
       non-integer values are logged as a warning (normalised data are legitimate
       input); with ``data_type="log"`` a maximum above 100 is logged as a warning
       (the data look unlogged). For sparse ``X`` only stored entries are checked.

    Parameters
    ----------
    adata
        Samples/cells as ``obs``, genes as ``var``.
    data_type
        ``"counts"`` (non-negative counts, raw or normalised) or ``"log"``
        (log-scale values such as log2 RMA, which may be negative).
    batch_key
        ``obs`` column holding the batch; ``None`` for data without batches (the
        batch checks are skipped).
    batch_key2
        Optional second batch column.
    covariates
        ``obs`` columns of biological variables that correction must keep.
    batch_covariates
        ``obs`` columns of continuous nuisance variables that correction removes.
    nan_policy
        ``"error"`` raises on any NaN; ``"drop_genes"`` drops every gene holding a NaN
        (logged); ``"zero"`` replaces NaN by 0, allowed for ``data_type="counts"`` only
        (for log data 0 is a real value, not "absent").
    source
        How messages name the data; by default the path a reader recorded, else
        ``"the data"``.
    copy
        Validate a copy and leave ``adata`` untouched. Otherwise ``adata`` is modified
        in place (its ``obs`` columns converted, genes dropped) and returned.

    Returns
    -------
    AnnData
        The validated object (``adata`` itself unless ``copy=True``):
        ``obs[batch_key]`` etc. converted as above, genes dropped under
        ``nan_policy="drop_genes"``, and ``uns["bioml"]["ingest"]`` holding
        ``params`` (the arguments), ``n_obs``, ``n_vars`` (after dropping),
        ``n_dropped_genes``, ``dropped_genes``, ``n_nan_zeroed``, ``column_kinds``
        (``"categorical"`` or ``"continuous"`` per column) and ``n_non_integer``
        (counts) or ``max_value`` (log), beside the reader's ``input`` record.

    Raises
    ------
    InputError
        No samples or no genes, ``X`` missing, or duplicated sample or gene names.
    DataValueError
        ``X`` is not numeric, holds infinite values, NaN under ``nan_policy="error"``
        (or in every gene under ``"drop_genes"``), or negative values with
        ``data_type="counts"``.
    SampleSheetError
        A batch/covariate column is missing from ``obs``, has missing values, a single
        level, is constant, or (``batch_covariates``) is not numeric.
    ConfigError
        An option is not one of its allowed values, ``nan_policy="zero"`` with
        ``data_type="log"``, or a column is given in two roles.

    Examples
    --------
    >>> import bioml as bm
    >>> adata = bm.sim.simulate_counts(60, 100, seed=0)
    >>> adata = bm.io.validate(adata, data_type="counts", batch_key="batch", covariates=["condition"])
    >>> str(adata.obs["batch"].dtype)
    'category'
    """
    _check_choice(data_type, ("counts", "log"), "data_type")
    _check_choice(nan_policy, ("error", "drop_genes", "zero"), "nan_policy")
    if nan_policy == "zero" and data_type != "counts":
        raise ConfigError(
            "nan_policy='zero' is allowed for data_type='counts' only: in log data 0 is "
            "a real value; use 'drop_genes' or fix the input"
        )
    covariates_t = _as_names(covariates)
    batch_covariates_t = _as_names(batch_covariates)
    roles: dict[str, str] = {}
    for role, names in (
        ("batch_key", _as_names(batch_key)),
        ("batch_key2", _as_names(batch_key2)),
        ("covariates", covariates_t),
        ("batch_covariates", batch_covariates_t),
    ):
        for name in names:
            if name in roles:
                raise ConfigError(
                    f"column '{name}' is given as both {roles[name]} and {role}"
                    if roles[name] != role
                    else f"column '{name}' is given twice in {role}"
                )
            roles[name] = role

    if copy:
        adata = adata.copy()
    elif adata.is_view:
        adata._init_as_actual(adata.copy())
    label = f"'{source}'" if source is not None else _source_label(adata)

    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(
            f"{label} is empty: {adata.n_obs} samples x {adata.n_vars} genes"
        )
    for names, what in ((adata.obs_names, "sample names (obs_names)"),
                        (adata.var_names, "gene names (var_names)")):
        dups = _duplicates(pd.Index(names))
        if dups:
            raise InputError(
                f"{label} has duplicated {what}: {_dup_message(dups)}; names must be unique"
            )

    record: dict[str, Any] = {}
    _validate_obs(
        adata,
        batch_key=batch_key,
        batch_key2=batch_key2,
        covariates=covariates_t,
        batch_covariates=batch_covariates_t,
        label=label,
        record=record,
    )
    _check_values(adata, data_type=data_type, nan_policy=nan_policy, label=label,
                  record=record)

    params: dict[str, Any] = {
        "data_type": data_type,
        "covariates": list(covariates_t),
        "batch_covariates": list(batch_covariates_t),
        "nan_policy": nan_policy,
    }
    # None cannot be stored in .h5ad: leave unset keys out
    if batch_key is not None:
        params["batch_key"] = batch_key
    if batch_key2 is not None:
        params["batch_key2"] = batch_key2
    ingest = adata.uns.setdefault("bioml", {}).setdefault("ingest", {})
    ingest["params"] = params
    ingest.update(record)
    ingest["n_obs"] = int(adata.n_obs)
    ingest["n_vars"] = int(adata.n_vars)
    logger.info(
        "validated %s: %d samples x %d genes, data_type=%s%s",
        label, adata.n_obs, adata.n_vars, data_type,
        f", batch '{batch_key}' with {adata.obs[batch_key].cat.categories.size} levels"
        if batch_key is not None else "",
    )
    return adata
