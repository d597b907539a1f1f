"""Evaluation of generated fluxes: feasibility, distribution match, trivial baselines.

Distribution metrics compare generated fluxes with held-out cobra samples on the
*variable* reactions (non-zero training spread), standardised with the training set's
mean and standard deviation, through :mod:`bioml.metrics` (KS per reaction, MMD with a
permutation p-value). :func:`evaluate` reports each metric beside the same metric
between two independent cobra sample sets (the noise floor).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..errors import InputError
from ..metrics import ks_per_feature, mmd
from ._network import FeasibleSpace, FluxNetwork, mass_balance_residual, within_bounds

__all__ = ["feasibility", "distribution_metrics", "evaluate", "convex_mixtures", "nullspace_gaussian"]


def _X(a) -> np.ndarray:
    if isinstance(a, AnnData):
        a = a.X.toarray() if hasattr(a.X, "toarray") else a.X
    return np.asarray(a, dtype=np.float64)


def feasibility(fluxes, network: FluxNetwork, *, rtol: float = 1e-6, mass_balance_tol: float = 1e-6
                ) -> dict[str, float]:
    """Feasibility of flux rows (AnnData or samples x reactions array, the model's order).

    Returns
    -------
    dict
        ``mass_balance_max`` (max over samples of ``||S v||_inf / max(1, ||v||_inf)``),
        ``mass_balance_fraction`` (fraction of samples at or below ``mass_balance_tol``)
        and ``fraction_within_bounds`` (tolerance ``rtol`` times each bound range).
    """
    X = _X(fluxes)
    if X.shape[0] == 0:
        raise InputError("no flux rows to evaluate")
    r = mass_balance_residual(X, network.S)
    ok = within_bounds(X, network.lb, network.ub, rtol=rtol)
    return {"mass_balance_max": float(r.max()),
            "mass_balance_fraction": float((r <= mass_balance_tol).mean()),
            "fraction_within_bounds": float(ok.mean())}


def _corr(X: np.ndarray) -> np.ndarray:
    Xc = X - X.mean(axis=0)
    sd = np.sqrt((Xc * Xc).sum(axis=0))
    sd = np.where(sd > 0, sd, 1.0)
    Xc = Xc / sd
    return Xc.T @ Xc


def distribution_metrics(generated, reference, *, train=None, names=None, seed: int = 0,
                         n_permutations: int = 200, max_n: int = 2000) -> dict[str, Any]:
    """Distribution match of ``generated`` against ``reference`` (held-out) fluxes.

    Parameters
    ----------
    generated, reference
        AnnData or samples x reactions arrays (same columns).
    train
        The training fluxes: their mean and standard deviation standardise every reaction,
        and reactions with zero training spread are left out. Default: ``reference``.
    names
        Reaction names (for the worst-KS reaction).
    seed, n_permutations, max_n
        Of :func:`bioml.metrics.mmd`.

    Returns
    -------
    dict
        ``ks_median``, ``ks_max``, ``ks_worst`` (reaction), ``mean_error_median`` /
        ``mean_error_max`` (``|mean_gen - mean_ref|`` in training standard deviations),
        ``sd_rel_error_median`` / ``sd_rel_error_max`` (``|sd_gen - sd_ref| / sd_ref``),
        ``corr_of_corr`` (Pearson correlation of the upper triangles of the two
        reaction-reaction correlation matrices), ``mmd2``, ``mmd_pvalue``, ``n_reactions``;
        with ``train``, also ``nn_train_ratio``: the median distance from a generated row
        to its nearest training row over the same median for the reference rows (about 1
        for a generator that makes new samples; near 0 for one that replays its training
        data, which the other statistics alone would reward).
    """
    G, R = _X(generated), _X(reference)
    T = R if train is None else _X(train)
    if not (G.shape[1] == R.shape[1] == T.shape[1]):
        raise InputError(f"column counts differ: generated {G.shape[1]}, reference {R.shape[1]}, "
                         f"train {T.shape[1]}")
    if names is None and isinstance(reference, AnnData):
        names = list(reference.var_names)
    names = list(range(G.shape[1])) if names is None else list(names)
    mu, sd = T.mean(axis=0), T.std(axis=0)
    keep = sd > 1e-9 * max(1.0, float(np.abs(T).max()))
    if not keep.any():
        raise InputError("no reaction varies in the training fluxes")
    Gs, Rs = (G[:, keep] - mu[keep]) / sd[keep], (R[:, keep] - mu[keep]) / sd[keep]
    kept = [n for n, k in zip(names, keep) if k]
    ks = ks_per_feature(Gs, Rs, names=kept)
    mean_err = np.abs(Gs.mean(axis=0) - Rs.mean(axis=0))
    sd_r = Rs.std(axis=0)
    sd_err = np.abs(Gs.std(axis=0) - sd_r) / np.where(sd_r > 0, sd_r, 1.0)
    iu = np.triu_indices(Gs.shape[1], k=1)
    cg, cr = _corr(Gs)[iu], _corr(Rs)[iu]
    usable = iu[0].size > 1 and cg.std() > 0 and cr.std() > 0
    coc = float(np.corrcoef(cg, cr)[0, 1]) if usable else float("nan")
    m = mmd(Gs, Rs, n_permutations=n_permutations, seed=seed, max_n=max_n)
    worst = int(np.argmax(ks["ks"].to_numpy()))
    extra = {}
    if train is not None:
        Ts = (T[:, keep] - mu[keep]) / sd[keep]
        extra["nn_train_ratio"] = _nn_train_ratio(Gs, Rs, Ts, max_n=max_n, seed=seed)
    return {
        "ks_median": float(ks["ks"].median()), "ks_max": float(ks["ks"].max()),
        "ks_worst": str(ks["feature"].iloc[worst]),
        "mean_error_median": float(np.median(mean_err)), "mean_error_max": float(mean_err.max()),
        "sd_rel_error_median": float(np.median(sd_err)), "sd_rel_error_max": float(sd_err.max()),
        "corr_of_corr": coc, "mmd2": float(m["mmd2"]), "mmd_pvalue": float(m["pvalue"]),
        "n_reactions": int(keep.sum()), **extra,
    }


def _nn_train_ratio(G: np.ndarray, R: np.ndarray, T: np.ndarray, *, max_n: int, seed: int) -> float:
    """Median nearest-training-row distance of ``G`` over that of ``R`` (standardised rows;
    each set subsampled to ``max_n`` rows)."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    sub = lambda A: A[rng.choice(A.shape[0], max_n, replace=False)] if A.shape[0] > max_n else A  # noqa: E731
    nn = NearestNeighbors(n_neighbors=1).fit(T)
    dg = float(np.median(nn.kneighbors(sub(G))[0]))
    dr = float(np.median(nn.kneighbors(sub(R))[0]))
    return dg / dr if dr > 0 else float("nan")


def evaluate(generated, heldout, noise, network: FluxNetwork, *, train=None, rtol: float = 1e-6,
             seed: int = 0, n_permutations: int = 200, max_n: int = 2000) -> pd.DataFrame:
    """Tidy table ``(metric, value, noise_floor)``: generated vs held-out beside a second
    independent cobra sample set (``noise``) vs the same held-out set.

    Feasibility rows (``mass_balance_max``, ``mass_balance_fraction``,
    ``fraction_within_bounds``) hold the generated set's value and the noise set's.
    """
    names = list(network.reactions)
    fg, fn = feasibility(generated, network, rtol=rtol), feasibility(noise, network, rtol=rtol)
    kw = dict(train=train, names=names, seed=seed, n_permutations=n_permutations, max_n=max_n)
    dg = distribution_metrics(generated, heldout, **kw)
    dn = distribution_metrics(noise, heldout, **kw)
    rows = [(k, fg[k], fn[k]) for k in fg]
    rows += [(k, dg[k], dn[k]) for k in dg if k not in ("ks_worst", "n_reactions")]
    rows.append(("n_reactions_compared", dg["n_reactions"], dn["n_reactions"]))
    return pd.DataFrame(rows, columns=["metric", "value", "noise_floor"])


def convex_mixtures(train, n: int, *, seed: int = 0) -> np.ndarray:
    """Trivial baseline: random convex mixtures ``a v_i + (1 - a) v_j`` of two training rows.

    Feasible by convexity (mass balance and bounds), float64.
    """
    T = _X(train)
    rng = np.random.default_rng(seed)
    i, j = rng.integers(T.shape[0], size=(2, int(n)))
    a = rng.random(int(n))[:, None]
    return a * T[i] + (1.0 - a) * T[j]


def nullspace_gaussian(train, space: FeasibleSpace, n: int, *, seed: int = 0) -> np.ndarray:
    """Trivial baseline: a Gaussian fitted to the training rows' null-space coordinates,
    mapped back through ``v0 + N u`` (mass-balanced; bounds not enforced)."""
    U = space.coordinates(_X(train))
    rng = np.random.default_rng(seed)
    mean = U.mean(axis=0)
    cov = np.atleast_2d(np.cov(U, rowvar=False))
    return space.fluxes(rng.multivariate_normal(mean, cov, size=int(n), method="eigh"))
