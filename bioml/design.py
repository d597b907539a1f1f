"""The one design-matrix builder of bioml.

Every linear model of the package (confounding checks, limma-style removal, ComBat,
per-gene batch tests) gets its design matrix from :func:`build_design`, so that factor
coding, level order, rank checks and the messages about confounding are the same
everywhere.

Columns come in blocks, in this order:

``intercept``
    A column of ones (``intercept=True``).
biological covariates (``covariates``, kept by correction)
    Categorical columns get treatment contrasts (R's ``contr.treatment``: the first
    level is the reference, one column per other level, named ``"cancer[T.Normal]"``);
    numeric columns enter as they are.
batch (``batch_key``, then ``batch_key2``)
    ``batch_coding="sum"``: sum-to-zero contrasts (R's ``contr.sum``, as limma's
    ``removeBatchEffect``): ``k - 1`` columns, column ``j`` is 1 for level ``j``, -1 for
    the last level, 0 otherwise. ``"indicator"``: one 0/1 column per level (as sva's
    ``ComBat``, which drops the intercept). ``"treatment"``: ``k - 1`` columns against
    the first level.
batch covariates (``batch_covariates``)
    Continuous technical terms, as they are (limma's ``covariates=``).

Levels are taken in the order of the pandas categorical (``bioml.io.validate`` makes
batch and categorical covariates categorical; numeric batch labels keep numeric order),
otherwise sorted, as R's ``factor()`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from .errors import ConfoundedDesignError, DesignError

__all__ = ["Design", "build_design", "design_rank", "factor_levels"]

BatchCoding = Literal["sum", "indicator", "treatment"]


def factor_levels(values: pd.Series) -> list:
    """Levels of a factor: categorical order if categorical (unused levels dropped), else sorted.

    Parameters
    ----------
    values
        A factor column (e.g. ``obs["batch"]``).

    Returns
    -------
    list

    Examples
    --------
    >>> import pandas as pd
    >>> from bioml.design import factor_levels
    >>> factor_levels(pd.Series(["b", "a", "b"]))
    ['a', 'b']
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        present = set(values.dropna().unique())
        return [c for c in values.cat.categories if c in present]
    return sorted(values.dropna().unique().tolist())


def _codes(values: pd.Series, levels: list) -> np.ndarray:
    idx = {lv: i for i, lv in enumerate(levels)}
    return values.map(idx).to_numpy(dtype=np.int64)


def _is_categorical(s: pd.Series) -> bool:
    return (
        not pd.api.types.is_numeric_dtype(s)
        or pd.api.types.is_bool_dtype(s)
        or isinstance(s.dtype, pd.CategoricalDtype)
    )


@dataclass
class Design:
    """A design matrix with its column blocks.

    Attributes
    ----------
    matrix
        ``n_samples x n_columns`` float64.
    columns
        Column names.
    blocks
        Term name -> integer column indices (``"intercept"``, each covariate, each batch
        key, each batch covariate).
    bio
        Indices of the columns correction keeps (intercept and covariates).
    batch
        Indices of the columns correction removes (batch factors and batch covariates).
    batch_levels
        Batch key -> its levels, in coding order.
    batch_codes
        Batch key -> integer level code per sample.
    factors
        Every categorical term (covariates and batch keys) -> its levels.
    """

    matrix: np.ndarray
    columns: list[str]
    blocks: dict[str, np.ndarray]
    bio: np.ndarray
    batch: np.ndarray
    batch_levels: dict[str, list] = field(default_factory=dict)
    batch_codes: dict[str, np.ndarray] = field(default_factory=dict)
    factors: dict[str, list] = field(default_factory=dict)
    obs_names: pd.Index = field(default_factory=lambda: pd.Index([]))

    @property
    def n_samples(self) -> int:
        return self.matrix.shape[0]

    @property
    def rank(self) -> int:
        return design_rank(self.matrix)

    def frame(self) -> pd.DataFrame:
        """The matrix as a DataFrame (samples x named columns)."""
        return pd.DataFrame(
            self.matrix, index=self.obs_names if len(self.obs_names) else None, columns=self.columns
        )


def design_rank(X: np.ndarray) -> int:
    """Numerical rank of a design (SVD; tolerance as numpy's ``matrix_rank``).

    Parameters
    ----------
    X
        Design matrix, samples x columns.

    Returns
    -------
    int

    Examples
    --------
    >>> import numpy as np
    >>> from bioml.design import design_rank
    >>> design_rank(np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]]))
    2
    """
    if X.shape[1] == 0:
        return 0
    return int(np.linalg.matrix_rank(X))


def _column(obs: pd.DataFrame, key: str, role: str) -> pd.Series:
    if key not in obs.columns:
        raise DesignError(
            f"{role} column {key!r} is not in obs (columns: {', '.join(map(str, obs.columns))})"
        )
    s = obs[key]
    if s.isna().any():
        bad = obs.index[s.isna().to_numpy()][:5]
        raise DesignError(f"{role} column {key!r} has missing values (samples {', '.join(map(str, bad))})")
    return s


def _factor_block(s: pd.Series, key: str, coding: str) -> tuple[np.ndarray, list[str], list, np.ndarray]:
    levels = factor_levels(s)
    codes = _codes(s, levels)
    k = len(levels)
    onehot = np.zeros((len(s), k))
    onehot[np.arange(len(s)), codes] = 1.0
    if coding == "indicator":
        return onehot, [f"{key}[{lv}]" for lv in levels], levels, codes
    if coding == "treatment":
        return onehot[:, 1:], [f"{key}[T.{lv}]" for lv in levels[1:]], levels, codes
    # sum-to-zero: contr.sum
    block = onehot[:, :-1] - onehot[:, [-1]]
    return block, [f"{key}[S.{lv}]" for lv in levels[:-1]], levels, codes


def build_design(
    obs: pd.DataFrame,
    *,
    batch_key: str | None = "batch",
    batch_key2: str | None = None,
    covariates: Sequence[str] = (),
    batch_covariates: Sequence[str] = (),
    intercept: bool = True,
    batch_coding: BatchCoding = "sum",
    check: bool = True,
) -> Design:
    """Build the design ``[intercept | covariates | batch | batch covariates]``.

    Parameters
    ----------
    obs
        Sample annotations (``adata.obs``).
    batch_key, batch_key2
        Batch factors to remove (``None``: no batch term).
    covariates
        Biological variables to keep: categorical (treatment contrasts) or numeric.
    batch_covariates
        Continuous technical terms to remove (numeric).
    intercept
        Include a column of ones.
    batch_coding
        ``"sum"`` (limma), ``"indicator"`` (ComBat; use with ``intercept=False``) or
        ``"treatment"``.
    check
        Check the design (see Raises).

    Returns
    -------
    A :class:`Design`.

    Raises
    ------
    DesignError
        A column is missing or has missing values, a batch or categorical covariate
        has a single level, a numeric term is constant, or the covariates are
        collinear among themselves.
    ConfoundedDesignError
        The batch terms are aliased with the covariates (the full design has lower rank
        than its columns); the message names the batch and covariate levels involved
        and what can be done.

    Examples
    --------
    >>> import bioml as bm
    >>> from bioml.design import build_design
    >>> adata = bm.sim.simulate_counts(60, 10, seed=0)
    >>> design = build_design(adata.obs, batch_key="batch", covariates=["condition"])
    >>> design.columns
    ['intercept', 'condition[T.cond1]', 'condition[T.cond2]', 'batch[S.batch0]', 'batch[S.batch1]']
    """
    n = len(obs)
    mats: list[np.ndarray] = []
    names: list[str] = []
    blocks: dict[str, np.ndarray] = {}
    factors: dict[str, list] = {}
    batch_levels: dict[str, list] = {}
    batch_codes: dict[str, np.ndarray] = {}

    def add(block_name: str, m: np.ndarray, cols: list[str]) -> None:
        start = sum(x.shape[1] for x in mats)
        mats.append(np.asarray(m, dtype=np.float64).reshape(n, -1))
        names.extend(cols)
        blocks[block_name] = np.arange(start, start + len(cols))

    if intercept:
        add("intercept", np.ones((n, 1)), ["intercept"])
    for key in covariates:
        s = _column(obs, key, "covariate")
        if _is_categorical(s):
            m, cols, levels, _ = _factor_block(s, key, "treatment")
            if check and len(levels) < 2:
                raise DesignError(
                    f"covariate {key!r} has a single level {levels[0]!r}: it cannot be modelled; "
                    "drop it from covariates"
                )
            factors[key] = levels
        else:
            m, cols = s.to_numpy(dtype=np.float64), [key]
            if check and np.ptp(m) == 0:
                raise DesignError(f"covariate {key!r} is constant: drop it from covariates")
        add(key, m, cols)
    bio_cols = np.arange(sum(x.shape[1] for x in mats))
    for key, role in ((batch_key, "batch_key"), (batch_key2, "batch_key2")):
        if key is None:
            continue
        s = _column(obs, key, role)
        m, cols, levels, codes = _factor_block(
            s.astype(str) if not _is_categorical(s) else s, key, batch_coding
        )
        if check and len(levels) < 2:
            raise DesignError(
                f"{role} {key!r} has a single level {levels[0]!r} (all {n} samples): nothing to correct"
            )
        factors[key] = levels
        batch_levels[key] = levels
        batch_codes[key] = codes
        add(key, m, cols)
    for key in batch_covariates:
        s = _column(obs, key, "batch covariate")
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            raise DesignError(f"batch covariate {key!r} must be numeric (a continuous term to remove)")
        m = s.to_numpy(dtype=np.float64)
        if check and np.ptp(m) == 0:
            raise DesignError(f"batch covariate {key!r} is constant: drop it from batch_covariates")
        add(key, m, [key])
    X = np.hstack(mats) if mats else np.zeros((n, 0))
    all_cols = np.arange(X.shape[1])
    design = Design(
        matrix=X,
        columns=names,
        blocks=blocks,
        bio=bio_cols,
        batch=np.setdiff1d(all_cols, bio_cols),
        batch_levels=batch_levels,
        batch_codes=batch_codes,
        factors=factors,
        obs_names=obs.index,
    )
    if check:
        _check_rank(
            design, obs, covariates=list(covariates), batch_keys=[k for k in (batch_key, batch_key2) if k]
        )
    return design


def _null_space(X: np.ndarray) -> np.ndarray:
    """Columns spanning the null space of X (scaled so each column of X has unit norm)."""
    norms = np.linalg.norm(X, axis=0)
    norms[norms == 0] = 1.0
    Xs = X / norms
    _, s, vt = np.linalg.svd(Xs, full_matrices=True)
    tol = s.max(initial=0.0) * max(X.shape) * np.finfo(float).eps
    rank = int((s > tol).sum())
    return vt[rank:].T


def _level_summary(obs: pd.DataFrame, batch_key: str, cov: str) -> list[str]:
    """Batch levels whose samples all share one level of a categorical covariate."""
    tab = pd.crosstab(obs[batch_key], obs[cov])
    out = []
    for b, row in tab.iterrows():
        nz = row[row > 0]
        if len(nz) == 1:
            out.append(f"{batch_key}={b!s} only has {cov}={nz.index[0]!s} ({int(nz.iloc[0])} samples)")
    return out


def _check_rank(design: Design, obs: pd.DataFrame, *, covariates: list[str], batch_keys: list[str]) -> None:
    X = design.matrix
    p = X.shape[1]
    bio = X[:, design.bio]
    if design_rank(bio) < bio.shape[1]:
        null = _null_space(bio)
        involved = sorted(
            {design.columns[design.bio[j]] for j in np.flatnonzero((np.abs(null) > 1e-8).any(axis=1))}
        )
        raise DesignError(
            "the covariates are collinear among themselves (design columns "
            f"{', '.join(involved)} are linearly dependent): drop or merge one of them"
        )
    if p > design.n_samples:
        raise DesignError(f"the design has {p} columns but only {design.n_samples} samples: too many terms")
    rank = design_rank(X)
    if rank == p:
        return
    null = _null_space(X)
    involved_cols = np.flatnonzero((np.abs(null) > 1e-8).any(axis=1))
    involved = [design.columns[j] for j in involved_cols]
    bio_terms = sorted(
        {t for t, idx in design.blocks.items() if t in covariates and np.isin(idx, involved_cols).any()}
    )
    batch_terms = sorted(
        {
            t
            for t, idx in design.blocks.items()
            if t not in covariates and t != "intercept" and np.isin(idx, involved_cols).any()
        }
    )
    details = []
    for bk in batch_keys:
        for cov in bio_terms:
            if cov in design.factors and bk in obs:
                details.extend(_level_summary(obs, bk, cov))
    detail = ("; ".join(details) + ". ") if details else ""
    what = ", ".join(f"'{t}'" for t in bio_terms) or "the intercept"
    raise ConfoundedDesignError(
        f"batch is confounded with {what}: the design [intercept | covariates | batch] has rank "
        f"{rank} < {p} columns, so the batch terms ({', '.join(f'{t!r}' for t in batch_terms)}) cannot be "
        f"separated from the biology. {detail}Involved design columns: {', '.join(involved)}. "
        "Correcting would remove the biological signal with the batch. What you can do: "
        "drop the confounded covariate from `covariates` (its effect will then be removed "
        "with batch), merge or exclude the batches that hold a single covariate level, or do "
        "not correct and keep batch as a term in downstream models instead."
    )
