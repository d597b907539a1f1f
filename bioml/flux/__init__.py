"""Metabolic fluxes (``bm.flux``): cobra models, feasible flux sampling, the flux VAE.

Networks
    :func:`load_model` (a cobra model from a file or a model cobra ships: ``textbook``,
    ``iJO1366``, ``salmonella``), :class:`FluxNetwork` (``S`` from
    :func:`cobra.util.array.create_stoichiometric_matrix`, bounds, reaction ids),
    :class:`FeasibleSpace` (fixed/blocked reactions kept at their values, the affine space
    ``v0 + N u`` with ``N`` an orthonormal float64 null-space basis), :func:`nullspace_basis`.
Data
    :func:`sample` (cobra's OptGP sampler, seeded, one process), :func:`validate_flux_table`
    (a user's flux table checked against the model), :func:`fixed_reactions`.
Model
    :class:`FluxVAE` (``fit``, ``sample``, ``encode``, ``save``/``load``): a VAE whose
    decoder outputs null-space coordinates, so ``S v = 0`` holds by construction;
    :func:`project_feasible` (Dykstra's projection onto the bounds).
Evaluation
    :func:`mass_balance_residual`, :func:`within_bounds`, :func:`feasibility`,
    :func:`distribution_metrics`, :func:`evaluate` (tidy table against a noise floor),
    the trivial baselines :func:`convex_mixtures` and :func:`nullspace_gaussian`.

Examples
--------
>>> import bioml as bm  # doctest: +SKIP
>>> train = bm.flux.sample("textbook", 2000, seed=1)
>>> vae = bm.flux.FluxVAE("textbook").fit(train, epochs=100)
>>> gen = vae.sample(1000, seed=0)
>>> gen.obs["mass_balance"].max() < 1e-6
True
"""

from __future__ import annotations

from ._evaluate import convex_mixtures, distribution_metrics, evaluate, feasibility, nullspace_gaussian
from ._network import (
    SHIPPED_MODELS,
    FeasibleSpace,
    FluxNetwork,
    bound_tolerance,
    load_model,
    mass_balance_residual,
    nullspace_basis,
    project_feasible,
    within_bounds,
)
from ._sampling import fixed_reactions, flux_anndata, sample, validate_flux_table
from ._vae import FluxVAE

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
    "sample",
    "validate_flux_table",
    "fixed_reactions",
    "flux_anndata",
    "FluxVAE",
    "feasibility",
    "distribution_metrics",
    "evaluate",
    "convex_mixtures",
    "nullspace_gaussian",
]
