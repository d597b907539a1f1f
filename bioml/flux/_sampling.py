"""Training data for the flux VAE: cobra's OptGP sampler and user flux tables.

Both return an AnnData with ``obs`` = samples and ``var`` = reactions (in the model's
order), ``X`` float64, ``var`` columns ``lower_bound`` / ``upper_bound`` and the feasibility
of each sample in ``obs`` (``mass_balance``: relative residual; ``within_bounds``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..errors import ConfigError, InputError
from ._network import FluxNetwork, load_model, mass_balance_residual, within_bounds

__all__ = ["sample", "validate_flux_table", "flux_anndata", "fixed_reactions"]

log = logging.getLogger("bioml.flux")


def flux_anndata(X: np.ndarray, network: FluxNetwork, *, obs_names=None, rtol: float = 1e-6,
                 uns: dict[str, Any] | None = None) -> AnnData:
    """Wrap flux rows (samples x all reactions) as an AnnData with feasibility columns."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    obs = pd.DataFrame(index=pd.Index(
        [f"s{i}" for i in range(X.shape[0])] if obs_names is None else [str(o) for o in obs_names]))
    obs["mass_balance"] = mass_balance_residual(X, network.S)
    obs["within_bounds"] = within_bounds(X, network.lb, network.ub, rtol=rtol)
    var = pd.DataFrame({"lower_bound": network.lb, "upper_bound": network.ub},
                       index=pd.Index(network.reactions))
    ad = AnnData(X=X, obs=obs, var=var)
    ad.uns["flux"] = {"model_id": network.model_id, "objective": dict(network.objective),
                      **(uns or {})}
    return ad


def sample(
    model: Any = "textbook",
    n: int = 1000,
    *,
    thinning: int = 100,
    seed: int = 0,
    method: str = "optgp",
    processes: int = 1,
) -> AnnData:
    """Draw feasible flux states with cobra's sampler (:func:`cobra.sampling.sample`).

    Parameters
    ----------
    model
        A cobra model, a shipped model name or a model file (:func:`load_model`).
    n
        Number of samples.
    thinning
        Keep every ``thinning``-th point of the chain (cobra's default is 100).
    seed
        Seed of the sampler (warm-up and chain); the same seed gives the same samples.
    method
        ``"optgp"`` (default) or ``"achr"``.
    processes
        OptGP worker processes (1: deterministic and light).

    Returns
    -------
    AnnData
        Samples x reactions, float64, with ``obs["mass_balance"]``,
        ``obs["within_bounds"]`` and ``uns["flux"]`` (``model_id``, ``objective``,
        ``params``, ``seconds``: sampling wall time).
    """
    from cobra.sampling import ACHRSampler, OptGPSampler

    if int(n) < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    if int(thinning) < 1:
        raise ConfigError(f"thinning must be >= 1, got {thinning}")
    method = str(method).lower()
    if method not in ("optgp", "achr"):
        raise ConfigError(f"method must be 'optgp' or 'achr', got {method!r}")
    cmodel = load_model(model)
    net = FluxNetwork.from_model(cmodel)
    t0 = time.perf_counter()
    if method == "optgp":
        sampler = OptGPSampler(cmodel, thinning=int(thinning), processes=int(processes), seed=int(seed))
    else:
        sampler = ACHRSampler(cmodel, thinning=int(thinning), seed=int(seed))
    df = sampler.sample(int(n))
    seconds = time.perf_counter() - t0
    df = df[net.reactions]
    log.info("cobra %s: %d samples of %s in %.1f s (%.0f samples/s)", method, n, net.model_id, seconds,
             n / seconds)
    return flux_anndata(df.to_numpy(dtype=np.float64), net,
                        uns={"params": dict(n=int(n), thinning=int(thinning), seed=int(seed), method=method,
                                            processes=int(processes)),
                             "seconds": float(seconds)})


def validate_flux_table(
    table: Any,
    model: Any,
    *,
    rtol: float = 1e-6,
    mass_balance_tol: float = 1e-6,
    reject: bool = False,
) -> AnnData:
    """Check a user's flux table against a model.

    Parameters
    ----------
    table
        A CSV/TSV path (rows = samples, first column = sample names, columns = reaction
        ids), a :class:`pandas.DataFrame` of the same shape, or an AnnData (var = reactions).
    model
        A cobra model, a model name or file, or a :class:`FluxNetwork`.
    rtol
        Bound tolerance relative to each reaction's bound range.
    mass_balance_tol
        Largest allowed ``||S v||_inf / max(1, ||v||_inf)``.
    reject
        Drop the violating rows (else keep them, flagged).

    Returns
    -------
    AnnData
        Rows x reactions in the model's order, float64, with ``obs["mass_balance"]``,
        ``obs["within_bounds"]`` and ``obs["valid"]``; ``uns["flux"]["validation"]``
        counts the violations (and the rejected rows).

    Raises
    ------
    InputError
        Reaction ids that the model does not have (named in the message), reactions of
        the model missing from the table, non-numeric or non-finite values.
    """
    net = model if isinstance(model, FluxNetwork) else FluxNetwork.from_model(model)
    where = "flux table"
    if isinstance(table, AnnData):
        df = pd.DataFrame(np.asarray(table.X.toarray() if hasattr(table.X, "toarray") else table.X),
                          index=table.obs_names, columns=table.var_names)
    elif isinstance(table, pd.DataFrame):
        df = table
    else:
        path = Path(table)
        where = f"flux table '{path}'"
        if not path.is_file():
            raise InputError(f"{where} does not exist")
        sep = "," if path.name.lower().endswith((".csv", ".csv.gz")) else "\t"
        try:
            df = pd.read_csv(path, sep=sep, index_col=0)
        except Exception as err:  # noqa: BLE001
            raise InputError(f"cannot read {where}: {err}") from err
    cols = [str(c) for c in df.columns]
    known = set(net.reactions)
    unknown = [c for c in cols if c not in known]
    if unknown:
        raise InputError(
            f"{where}: {len(unknown)} column(s) are not reactions of model {net.model_id!r}: {unknown[:10]}"
        )
    if len(set(cols)) != len(cols):
        dup = sorted({c for c in cols if cols.count(c) > 1})
        raise InputError(f"{where}: duplicated reaction columns {dup[:10]}")
    missing = [r for r in net.reactions if r not in set(cols)]
    if missing:
        raise InputError(
            f"{where}: {len(missing)} reaction(s) of model {net.model_id!r} are missing, e.g. {missing[:10]}"
        )
    df = df[net.reactions]
    try:
        X = df.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as err:
        bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
        raise InputError(f"{where}: non-numeric values in column(s) {bad[:10]}") from err
    if not np.isfinite(X).all():
        rows, _ = np.nonzero(~np.isfinite(X))
        raise InputError(f"{where}: NaN or inf values in row(s) {list(df.index[np.unique(rows)][:10])}")
    ad = flux_anndata(X, net, obs_names=df.index.astype(str), rtol=rtol)
    mb_ok = ad.obs["mass_balance"].to_numpy() <= mass_balance_tol
    ad.obs["valid"] = ad.obs["within_bounds"].to_numpy() & mb_ok
    n_mb = int((ad.obs["mass_balance"] > mass_balance_tol).sum())
    n_b = int((~ad.obs["within_bounds"]).sum())
    n_bad = int((~ad.obs["valid"]).sum())
    if n_bad:
        worst = ad.obs["mass_balance"].idxmax()
        log.warning(
            "%s: %d of %d rows violate the model (%d mass balance > %g, worst %s = %.3g; %d outside the "
            "bounds)%s", where, n_bad, ad.n_obs, n_mb, mass_balance_tol, worst,
            ad.obs["mass_balance"].max(), n_b, "; rejected" if reject else "")
    info = dict(n_rows=int(ad.n_obs), n_mass_balance_violations=n_mb, n_bound_violations=n_b,
                n_invalid=n_bad, rejected=bool(reject), rtol=rtol, mass_balance_tol=mass_balance_tol)
    if reject:
        ad = ad[ad.obs["valid"].to_numpy()].copy()
        if ad.n_obs == 0:
            raise InputError(f"{where}: every row violates mass balance or the bounds; nothing is left")
    ad.uns["flux"]["validation"] = info
    return ad


def fixed_reactions(X: np.ndarray, network: FluxNetwork, *, atol: float = 1e-9
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Reactions to keep fixed, and their values.

    Fixed are reactions with ``lb == ub`` (value ``lb``) and reactions whose range over
    the samples ``X`` is at most ``atol * max(1, max |v|)`` (value: the median, snapped
    to 0 when it is within that tolerance), which includes blocked reactions (zero flux
    in every sample).

    Returns
    -------
    (mask, values)
    """
    X = np.asarray(X, dtype=np.float64)
    scale = max(1.0, float(np.abs(X).max())) if X.size else 1.0
    tol = atol * scale
    rng = X.max(axis=0) - X.min(axis=0) if X.shape[0] else np.zeros(network.n_reactions)
    by_bounds = network.lb == network.ub
    by_data = rng <= tol
    values = np.median(X, axis=0) if X.shape[0] else np.zeros(network.n_reactions)
    values = np.where(np.abs(values) <= tol, 0.0, values)
    values = np.where(by_bounds, network.lb, values)
    return by_bounds | by_data, values
