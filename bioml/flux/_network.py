"""Metabolic networks: loading through cobra, S and bounds, fixed reactions, the null space.

A :class:`FluxNetwork` is the plain-array view of a cobra model that the rest of
:mod:`bioml.flux` works with: the stoichiometric matrix ``S`` (metabolites x reactions,
from :func:`cobra.util.array.create_stoichiometric_matrix`, float64), the flux bounds and
the reaction ids. :class:`FeasibleSpace` adds what the generators need: which reactions
are *fixed* (``lb == ub``, or a zero range in the training samples, e.g. blocked
reactions) and their values, and the affine space ``{v : S v = 0, v_fixed = c}`` written as
``v = v0 + N u`` with ``N`` an orthonormal float64 basis of the null space of ``S``
restricted to the free reactions. Every point of that space satisfies mass balance and
keeps the fixed reactions exactly at their values, whatever ``u`` is.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg

from ..errors import ConfigError, InputError

__all__ = [
    "SHIPPED_MODELS",
    "load_model",
    "FluxNetwork",
    "FeasibleSpace",
    "nullspace_basis",
    "mass_balance_residual",
    "bound_tolerance",
    "within_bounds",
    "project_feasible",
]

log = logging.getLogger("bioml.flux")

#: Models that cobra ships with its package and loads without network access.
SHIPPED_MODELS = ("textbook", "e_coli_core", "iJO1366", "salmonella", "mini")
_MODEL_SUFFIXES = (".xml", ".sbml", ".xml.gz", ".sbml.gz", ".json", ".json.gz", ".yml", ".yaml", ".mat")


def load_model(source: Any = "textbook"):
    """Load a metabolic model with cobra.

    Parameters
    ----------
    source
        A cobra ``Model`` (returned as is); the name of a model that cobra ships and
        loads offline (``"textbook"``, the E. coli core model with 95 reactions;
        ``"iJO1366"``; ``"salmonella"``; ``"mini"``); or the path of an SBML
        (``.xml``/``.sbml``, optionally gzip'd), JSON, YAML or MATLAB file.

    Returns
    -------
    cobra.Model

    Raises
    ------
    InputError
        A missing or unreadable file, or an unknown model name.
    """
    import cobra
    from cobra.io import load_json_model, load_matlab_model, load_yaml_model, read_sbml_model

    if isinstance(source, cobra.Model):
        return source
    name = str(source)
    path = Path(name)
    is_path = path.suffix != "" or os.sep in name
    if not is_path:
        key = "textbook" if name == "e_coli_core" else name
        if key not in SHIPPED_MODELS:
            raise InputError(
                f"unknown model {name!r}: give a model file (SBML .xml, .json, .yml, .mat) or one of "
                f"the models cobra ships ({', '.join(SHIPPED_MODELS)})"
            )
        from importlib.resources import files

        data = files("cobra") / "data"
        for fname, reader in ((f"{key}.xml.gz", read_sbml_model), (f"{key}.xml", read_sbml_model),
                              (f"{key}.json", load_json_model), (f"{key}_cobra.xml", read_sbml_model)):
            f = data / fname
            if f.is_file():
                with _quiet_cobra():
                    return reader(str(f))
        raise InputError(f"model {name!r} is not shipped with this cobra installation ({data})")
    if not path.is_file():
        raise InputError(f"model file '{path}' does not exist")
    low = path.name.lower()
    if not low.endswith(_MODEL_SUFFIXES):
        raise InputError(f"model file '{path}': unknown format (use one of {', '.join(_MODEL_SUFFIXES)})")
    try:
        with _quiet_cobra():
            if low.endswith((".json", ".json.gz")):
                return load_json_model(str(path))
            if low.endswith((".yml", ".yaml")):
                return load_yaml_model(str(path))
            if low.endswith(".mat"):
                return load_matlab_model(str(path))
            return read_sbml_model(str(path))
    except Exception as err:  # noqa: BLE001 - cobra raises many kinds
        raise InputError(f"cannot read model file '{path}': {type(err).__name__}: {err}") from err


class _quiet_cobra:
    """Silence cobra's SBML chatter (warnings about missing annotations) while loading."""

    def __enter__(self):
        self._logger = logging.getLogger("cobra")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)


@dataclass
class FluxNetwork:
    """Plain arrays of a metabolic model.

    Attributes
    ----------
    reactions
        Reaction ids, in cobra's order (the columns of ``S``).
    metabolites
        Metabolite ids (the rows of ``S``).
    S
        Stoichiometric matrix, metabolites x reactions, float64 (dense).
    lb, ub
        Flux bounds (float64).
    objective
        ``{reaction id: coefficient}`` of the model's objective (e.g. the biomass reaction).
    model_id
        The model's id.
    """

    reactions: list[str]
    metabolites: list[str]
    S: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    objective: dict[str, float] = field(default_factory=dict)
    model_id: str = ""

    @classmethod
    def from_model(cls, model: Any = "textbook") -> FluxNetwork:
        """Build from a cobra model (or anything :func:`load_model` accepts).

        ``S`` comes from :func:`cobra.util.array.create_stoichiometric_matrix`.
        """
        from cobra.util.array import create_stoichiometric_matrix

        model = load_model(model)
        S = np.asarray(create_stoichiometric_matrix(model, array_type="dense", dtype=np.float64))
        lb = np.array([r.lower_bound for r in model.reactions], dtype=np.float64)
        ub = np.array([r.upper_bound for r in model.reactions], dtype=np.float64)
        objective = {r.id: float(r.objective_coefficient) for r in model.reactions
                     if r.objective_coefficient != 0}
        return cls(reactions=[r.id for r in model.reactions], metabolites=[m.id for m in model.metabolites],
                   S=S, lb=lb, ub=ub, objective=objective, model_id=str(model.id))

    @property
    def n_reactions(self) -> int:
        return len(self.reactions)

    @property
    def objective_reaction(self) -> str | None:
        """The reaction with the largest objective coefficient (the biomass reaction)."""
        if not self.objective:
            return None
        return max(self.objective, key=lambda k: abs(self.objective[k]))

    def index(self, reactions) -> np.ndarray:
        """Column positions of reaction ids; an unknown id is an :class:`InputError`."""
        pos = {r: i for i, r in enumerate(self.reactions)}
        names = [str(r) for r in reactions]
        unknown = [r for r in names if r not in pos]
        if unknown:
            raise InputError(
                f"{len(unknown)} reaction id(s) are not in model {self.model_id!r}: {unknown[:10]}"
            )
        return np.fromiter((pos[r] for r in names), dtype=np.int64, count=len(names))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for saving inside a model file)."""
        return dict(reactions=list(self.reactions), metabolites=list(self.metabolites),
                    S=self.S.tolist(), lb=self.lb.tolist(), ub=self.ub.tolist(),
                    objective=dict(self.objective), model_id=self.model_id)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FluxNetwork:
        return cls(reactions=list(d["reactions"]), metabolites=list(d["metabolites"]),
                   S=np.asarray(d["S"], dtype=np.float64).reshape(len(d["metabolites"]), len(d["reactions"])),
                   lb=np.asarray(d["lb"], dtype=np.float64), ub=np.asarray(d["ub"], dtype=np.float64),
                   objective={str(k): float(v) for k, v in d["objective"].items()},
                   model_id=str(d["model_id"]))


def nullspace_basis(S: np.ndarray, *, rcond: float | None = None) -> np.ndarray:
    """Orthonormal basis (float64 columns) of the null space of ``S``.

    Computed with :func:`scipy.linalg.null_space` (SVD) in float64 on the matrix with its
    all-zero rows dropped. Returns an ``n_columns x d`` array ``N`` with ``S N ~ 0`` and
    ``N^T N = I``.
    """
    S = np.asarray(S, dtype=np.float64)
    S = S[np.any(S != 0, axis=1)]
    if S.shape[0] == 0:
        return np.eye(S.shape[1])
    return scipy.linalg.null_space(S, rcond=rcond)


def mass_balance_residual(X: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Per-sample relative mass-balance residual ``||S v||_inf / max(1, ||v||_inf)`` (float64).

    ``X`` is samples x reactions (the columns of ``S``).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != S.shape[1]:
        raise InputError(f"flux matrix has shape {X.shape}, expected (n, {S.shape[1]})")
    r = np.abs(X @ np.asarray(S, dtype=np.float64).T).max(axis=1) if S.shape[0] else np.zeros(X.shape[0])
    return r / np.maximum(1.0, np.abs(X).max(axis=1))


def bound_tolerance(lb: np.ndarray, ub: np.ndarray, rtol: float = 1e-6) -> np.ndarray:
    """Per-reaction tolerance ``rtol * (ub - lb)`` (``rtol`` for a zero or infinite range)."""
    rng = np.asarray(ub, dtype=np.float64) - np.asarray(lb, dtype=np.float64)
    rng = np.where(np.isfinite(rng) & (rng > 0), rng, 1.0)
    return rtol * rng


def within_bounds(X: np.ndarray, lb: np.ndarray, ub: np.ndarray, *, rtol: float = 1e-6) -> np.ndarray:
    """Per-sample flag: every flux within its bounds up to ``rtol`` times the bound range."""
    X = np.asarray(X, dtype=np.float64)
    tol = bound_tolerance(lb, ub, rtol)
    return np.all((X >= lb - tol) & (X <= ub + tol), axis=1)


class FeasibleSpace:
    """The affine space ``{v : S v = 0, v[fixed] = values}`` as ``v = v0 + N u`` (float64).

    Parameters
    ----------
    network
        The :class:`FluxNetwork`.
    fixed
        Boolean mask over reactions of the fixed reactions.
    values
        Their values (length ``n_reactions``; entries of free reactions are ignored).

    Attributes
    ----------
    free
        Boolean mask of the free reactions.
    v0
        A particular solution (all reactions, float64): ``S v0 = 0`` (least squares, checked)
        with the fixed reactions exactly at their values.
    N
        ``n_free x d`` orthonormal float64 basis of the null space of ``S[:, free]``; the
        fixed coordinates of every ``v0 + N u`` are exactly ``values``.
    """

    def __init__(self, network: FluxNetwork, fixed: np.ndarray, values: np.ndarray):
        self.network = network
        fixed = np.asarray(fixed, dtype=bool)
        if fixed.shape != (network.n_reactions,):
            raise ConfigError(f"fixed mask has shape {fixed.shape}, expected ({network.n_reactions},)")
        self.fixed = fixed
        self.free = ~fixed
        self.values = np.where(fixed, np.asarray(values, dtype=np.float64), 0.0)
        S = network.S
        Sf = S[:, self.free]
        rhs = -S[:, fixed] @ self.values[fixed]
        v0 = self.values.copy()
        if Sf.shape[1]:
            sol = scipy.linalg.lstsq(Sf, rhs, lapack_driver="gelsd")[0]
            v0[self.free] = sol
        resid = mass_balance_residual(v0[None, :], S)[0]
        if resid > 1e-8:
            raise InputError(
                f"the fixed reactions' values admit no mass-balanced flux (relative residual {resid:.3g}); "
                "check the fixed values or the bounds"
            )
        self.N = nullspace_basis(Sf) if Sf.shape[1] else np.zeros((0, 0))
        # remove the null-space component of v0 so that u = N^T (v - v0) is unique
        if self.N.size:
            v0[self.free] -= self.N @ (self.N.T @ v0[self.free])
        self.v0 = v0
        self.center: np.ndarray | None = None

    def set_center(self, X: np.ndarray, *, rtol: float = 1e-6) -> np.ndarray | None:
        """Set :attr:`center` to a point of the space within the bounds; returns it.

        First choice: the projection of the mean of the feasible rows of ``X`` (inside the
        bounds when those rows vary). If rounding puts it outside, the feasible row nearest
        to the mean (projected onto the space when that keeps it within bounds) is used;
        ``None`` when no row of ``X`` is within bounds.
        """
        net = self.network
        X = np.asarray(X, dtype=np.float64)
        ok = within_bounds(X, net.lb, net.ub, rtol=rtol) & (mass_balance_residual(X, net.S) <= 1e-6)
        if not ok.any():
            self.center = None
            return None
        F = X[ok]
        mean = F.mean(axis=0, keepdims=True)
        tol = bound_tolerance(net.lb, net.ub, rtol)
        for cand in (self.project(mean),):
            if np.all((cand >= net.lb + 0.5 * tol) & (cand <= net.ub - 0.5 * tol) | self.fixed):
                self.center = cand[0]
                return self.center
        row = F[np.argmin(((F - mean) ** 2).sum(axis=1))][None, :]
        proj = self.project(row)
        self.center = (proj if within_bounds(proj, net.lb, net.ub, rtol=rtol)[0] else row)[0]
        return self.center

    @classmethod
    def from_arrays(cls, network: FluxNetwork, fixed: np.ndarray, values: np.ndarray, v0: np.ndarray,
                    N: np.ndarray, center: np.ndarray | None = None) -> FeasibleSpace:
        """Rebuild a saved space without recomputing the null space."""
        self = cls.__new__(cls)
        self.network = network
        self.fixed = np.asarray(fixed, dtype=bool)
        self.free = ~self.fixed
        self.values = np.asarray(values, dtype=np.float64)
        self.v0 = np.asarray(v0, dtype=np.float64)
        self.N = np.asarray(N, dtype=np.float64)
        self.center = None if center is None else np.asarray(center, dtype=np.float64)
        return self

    @property
    def dim(self) -> int:
        """Dimension ``d`` of the null space (of the free reactions)."""
        return int(self.N.shape[1])

    def coordinates(self, X: np.ndarray) -> np.ndarray:
        """Null-space coordinates ``u = N^T (v_free - v0_free)`` of flux rows (float64)."""
        X = np.asarray(X, dtype=np.float64)
        return (X[:, self.free] - self.v0[self.free]) @ self.N

    def fluxes(self, U: np.ndarray) -> np.ndarray:
        """Full flux rows ``v0 + N u`` (float64; the product in float64)."""
        U = np.asarray(U, dtype=np.float64)
        out = np.empty((U.shape[0], self.network.n_reactions), dtype=np.float64)
        out[:] = self.v0
        out[:, self.free] += U @ self.N.T
        return out

    def project(self, X: np.ndarray) -> np.ndarray:
        """Orthogonal projection of flux rows onto the space (float64)."""
        return self.fluxes(self.coordinates(X))


def project_feasible(
    X: np.ndarray,
    space: FeasibleSpace,
    *,
    rtol: float = 1e-6,
    max_iter: int = 200,
    center: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Project flux rows onto ``{S v = 0, v_fixed = c} ∩ [lb, ub]`` by Dykstra's algorithm.

    Alternates the exact projection onto the affine space (``v0 + N N^T (v - v0)``) with
    the clip onto the bounds, keeping Dykstra's correction for the box, vectorised over
    samples in float64. The box is shrunk by half the tolerance ``rtol * (ub - lb)`` so
    that the iterates reach the tolerance in finitely many steps; rows are dropped from the
    iteration once they are within bounds. Every returned row is in the affine space
    (the last step is always the affine projection), so mass balance holds to float64
    precision; rows that were already feasible are returned unchanged.

    Dykstra converges slowly for some rows. With ``center`` (a point strictly inside the
    bounds and on the affine space, e.g. :attr:`FeasibleSpace.center`, the projected mean
    of the training samples), rows still outside after ``max_iter`` iterations are pulled
    along the segment towards ``center`` to the first point within the (shrunk) bounds:
    that segment lies in the affine space and, by convexity, ends inside, so every row
    is then within bounds.

    Returns
    -------
    (projected rows, info)
        ``info`` holds ``iterations``, ``within_before``, ``within_after`` (fractions),
        ``n_changed`` and ``n_retracted`` (rows finished by the pull towards ``center``).
    """
    from threadpoolctl import threadpool_limits

    # small matrices: one BLAS thread is fastest, and avoids oversubscribing busy machines
    with threadpool_limits(1, user_api="blas"):
        return _project_feasible(X, space, rtol=rtol, max_iter=max_iter, center=center)


def _project_feasible(X, space, *, rtol, max_iter, center):
    net = space.network
    X = np.array(X, dtype=np.float64, copy=True)
    free = space.free
    lb, ub = net.lb[free], net.ub[free]
    tol = bound_tolerance(net.lb, net.ub, rtol)[free]
    lo = np.minimum(lb + 0.5 * tol, ub)
    hi = np.maximum(ub - 0.5 * tol, lb)
    ok0 = within_bounds(X, net.lb, net.ub, rtol=rtol)
    mb = mass_balance_residual(X, net.S) <= 1e-9
    active = np.flatnonzero(~(ok0 & mb))
    N, c = space.N, space.v0[free]
    x = X[active][:, free]
    if active.size:
        x = c + ((x - c) @ N) @ N.T  # start on the affine space
    # Working arrays hold only the rows still outside the bounds (compacted as rows finish),
    # so each iteration streams contiguous memory instead of gathering and scattering rows.
    lo_t, hi_t = lb - tol, ub + tol
    rows = np.arange(active.size)
    xw, pw = x, np.zeros_like(x)
    it = 0
    while rows.size and it < max_iter:
        bad = np.any((xw < lo_t) | (xw > hi_t), axis=1)
        if not bad.all():
            done = ~bad
            x[rows[done]] = xw[done]
            rows, xw, pw = rows[bad], xw[bad], pw[bad]
            if not rows.size:
                break
        s = xw + pw
        y = np.minimum(np.maximum(s, lo), hi)
        np.subtract(s, y, out=s)
        pw = s
        y -= c
        xw = (y @ N) @ N.T
        xw += c
        it += 1
    if rows.size:
        x[rows] = xw
    n_retracted = 0
    if center is not None and rows.size:
        cen = np.asarray(center, dtype=np.float64)[free]
        xr = x[rows]
        d = xr - cen
        with np.errstate(divide="ignore", invalid="ignore"):
            t_hi = np.where(xr > hi, (hi - cen) / d, np.inf)
            t_lo = np.where(xr < lo, (lo - cen) / d, np.inf)
        t = np.clip(np.minimum(t_hi, t_lo).min(axis=1), 0.0, 1.0)
        x[rows] = cen + t[:, None] * d
        n_retracted = int(rows.size)
    if active.size:
        X[np.ix_(active, np.flatnonzero(free))] = x
        X[np.ix_(active, np.flatnonzero(space.fixed))] = space.values[space.fixed]
    ok1 = within_bounds(X, net.lb, net.ub, rtol=rtol)
    info = dict(iterations=it, within_before=float(ok0.mean()) if ok0.size else 1.0,
                within_after=float(ok1.mean()) if ok1.size else 1.0, n_changed=int(active.size),
                n_retracted=n_retracted)
    return X, info
