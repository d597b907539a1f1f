"""Simulated protein-interface feature vectors with a known distribution.

The generative model (all parameters are returned in ``uns["sim"]["truth"]``), per
interface ``i``:

1. buried area ``T ~ LogNormal(log bsa_median, bsa_log_sd)`` (Å²); polar share
   ``p ~ Beta(polar_a, polar_b)``; ``bsa_polar = p T``, ``bsa_apolar = (1 - p) T``,
   ``bsa_total = T``.
2. interface residues per side ``1 + Poisson(max(T / area_per_residue - 1, 0.1))``.
3. residue composition ``~ Dirichlet(composition_concentration * composition_mean)``
   (20 fractions summing to 1); ``hydrophobic_fraction`` is the sum over A C I L M F V.
4. residue contacts ``1 + Poisson(T / area_per_contact)``, split over PRODIGY's six
   classes by a multinomial whose probabilities come from the composition (charged /
   polar / apolar shares ``q``: ``cc = q_C^2``, ``cp = 2 q_C q_P``, ... as for random
   pairing); atom contacts ``Poisson(atoms_per_contact * contacts)``.
5. NIS percentages ``100 * Dirichlet(nis_concentration * nis_mean)``.
6. geometry: ``centroid_distance ~ LogNormal(log centroid_median, 0.3)``,
   ``interface_rg = rg_per_sqrt_area * sqrt(T) * LogNormal(0, 0.1)``,
   ``interface_planarity = planarity_per_sqrt_area * sqrt(T) * LogNormal(0, 0.25)``.

The defaults are set to the range of the complexes bundled with bioml (BSA 800-3700 Å²,
20-85 interface residues). Every output satisfies the constraints of
:data:`bioml.interface.FEATURES`: compositions sum to 1 (and 100), counts are integers,
everything is non-negative, and derived columns equal the sums of their parts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError

__all__ = ["simulate_interface_features", "INTERFACE_TRUTH"]

# approximate interface propensity-weighted composition (A R N D C Q E G H I L K M F P S T W Y V)
_COMP_MEAN = np.array([0.060, 0.060, 0.045, 0.045, 0.015, 0.040, 0.050, 0.065, 0.030, 0.060,
                       0.090, 0.050, 0.030, 0.050, 0.045, 0.055, 0.055, 0.025, 0.050, 0.075])

#: Default parameters of the generative model (see the module docstring).
INTERFACE_TRUTH: dict[str, Any] = {
    "bsa_median": 1600.0,
    "bsa_log_sd": 0.4,
    "polar_a": 8.0,
    "polar_b": 12.0,
    "area_per_residue": 80.0,
    "area_per_contact": 22.0,
    "atoms_per_contact": 2.0,
    "composition_mean": (_COMP_MEAN / _COMP_MEAN.sum()).tolist(),
    "composition_concentration": 60.0,
    "nis_mean": [0.40, 0.25, 0.35],
    "nis_concentration": 50.0,
    "centroid_median": 4.0,
    "rg_per_sqrt_area": 0.22,
    "planarity_per_sqrt_area": 0.08,
}


def simulate_interface_features(n: int = 1000, *, seed: int = 0, **truth: Any):
    """Draw ``n`` interface feature vectors from a known distribution.

    Parameters
    ----------
    n
        Number of interfaces (rows).
    seed
        Seed of the draw (``numpy.random.default_rng``).
    **truth
        Overrides of :data:`INTERFACE_TRUTH` (e.g. ``bsa_median=1200.0``).

    Returns
    -------
    anndata.AnnData
        ``n x len(FEATURE_NAMES)`` float64 ``X`` with the columns of
        :data:`bioml.interface.FEATURE_NAMES`; ``var`` holds ``unit`` and ``kind``;
        ``uns["sim"]`` holds ``truth`` (every parameter), ``seed`` and ``model``.
        :func:`bioml.interface.validate_feature_table` accepts it.
    """
    import anndata as ad

    from ..interface._features import FEATURE_NAMES, HYDROPHOBIC, feature_table
    from ..interface._structure import STANDARD_RESIDUES

    unknown = sorted(set(truth) - set(INTERFACE_TRUTH))
    if unknown:
        raise ConfigError(f"unknown simulation parameter(s) {unknown}; known: {sorted(INTERFACE_TRUTH)}")
    if int(n) < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    p = {**INTERFACE_TRUTH, **truth}
    n = int(n)
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    T = np.exp(rng.normal(np.log(p["bsa_median"]), p["bsa_log_sd"], n))
    share = rng.beta(p["polar_a"], p["polar_b"], n)
    out["bsa_polar"] = share * T
    out["bsa_apolar"] = T - out["bsa_polar"]
    out["bsa_total"] = out["bsa_polar"] + out["bsa_apolar"]
    lam = np.maximum(T / p["area_per_residue"] - 1.0, 0.1)
    out["n_interface_residues_a"] = 1.0 + rng.poisson(lam)
    out["n_interface_residues_b"] = 1.0 + rng.poisson(lam)
    out["n_interface_residues"] = out["n_interface_residues_a"] + out["n_interface_residues_b"]
    comp = rng.dirichlet(p["composition_concentration"] * np.asarray(p["composition_mean"]), n)
    comp /= comp.sum(axis=1, keepdims=True)
    for k, r in enumerate(STANDARD_RESIDUES):
        out[f"comp_{r}"] = comp[:, k]
    out["hydrophobic_fraction"] = sum(out[f"comp_{r}"] for r in HYDROPHOBIC)
    charged = [STANDARD_RESIDUES.index(r) for r in ("ASP", "GLU", "HIS", "LYS", "ARG")]
    polar = [STANDARD_RESIDUES.index(r) for r in ("ASN", "GLN", "SER", "THR")]
    qc = comp[:, charged].sum(1)
    qp = comp[:, polar].sum(1)
    qa = np.clip(1.0 - qc - qp, 0.0, 1.0)
    probs = np.column_stack([qc**2, 2 * qc * qp, 2 * qa * qc, qp**2, 2 * qa * qp, qa**2])
    probs /= probs.sum(1, keepdims=True)
    total = 1 + rng.poisson(T / p["area_per_contact"])
    classes = rng.multinomial(total, probs)
    for k, c in enumerate(("cc", "cp", "ac", "pp", "ap", "aa")):
        out[f"contacts_{c}"] = classes[:, k].astype(np.float64)
    out["n_residue_contacts"] = classes.sum(1).astype(np.float64)
    out["n_atom_contacts"] = rng.poisson(p["atoms_per_contact"] * total).astype(np.float64)
    nis = 100.0 * rng.dirichlet(p["nis_concentration"] * np.asarray(p["nis_mean"]), n)
    nis *= 100.0 / nis.sum(1, keepdims=True)
    out["nis_apolar"], out["nis_charged"], out["nis_polar"] = nis.T
    out["centroid_distance"] = np.exp(rng.normal(np.log(p["centroid_median"]), 0.3, n))
    out["interface_rg"] = p["rg_per_sqrt_area"] * np.sqrt(T) * np.exp(rng.normal(0.0, 0.1, n))
    out["interface_planarity"] = p["planarity_per_sqrt_area"] * np.sqrt(T) * np.exp(rng.normal(0.0, 0.25, n))
    X = np.column_stack([np.asarray(out[c], dtype=np.float64) for c in FEATURE_NAMES])
    var = feature_table().loc[list(FEATURE_NAMES), ["unit", "kind"]].copy()
    obs = pd.DataFrame(index=pd.Index([f"sim_{i}" for i in range(n)], name="interface"))
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.uns["sim"] = {
        "truth": {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in p.items()},
        "seed": int(seed),
        "model": "bioml.sim.simulate_interface_features (see its module docstring)",
    }
    return adata
