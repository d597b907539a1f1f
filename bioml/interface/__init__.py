"""Protein-protein interfaces (``bm.interface``): structure reading, SASA through freesasa,
interface features, feature-table validation and the :class:`InterfaceGAN`.

- :func:`read_chains` / :func:`read_structure`: PDB/mmCIF (gzip'd too), model 1, heavy
  atoms of standard residues, highest-occupancy altloc, no HETATM/water.
- :func:`extract_features`: one row of :data:`FEATURE_NAMES` per chain pair;
  :func:`feature_table` documents each feature's unit, kind and definition.
- :func:`validate_feature_table`: check a user table (TSV/CSV/h5ad, DataFrame, AnnData).
- :class:`InterfaceGAN`: a Wasserstein GAN (spectral-norm critic, or WGAN-GP) that
  learns the distribution of feature vectors and samples valid new ones.
- :func:`evaluate`: two-sample metrics of generated vs held-out vectors, beside real ones.
- :func:`example_structures`: the complexes bundled with bioml.

Examples
--------
>>> import bioml as bm
>>> df = bm.interface.extract_features(bm.interface.example_structures()[0])  # doctest: +SKIP
>>> sim = bm.sim.simulate_interface_features(2000, seed=0)  # doctest: +SKIP
>>> gan = bm.interface.InterfaceGAN().fit(sim, epochs=50)  # doctest: +SKIP
>>> new = gan.sample(500)  # doctest: +SKIP
"""

from __future__ import annotations

from ._features import (
    FEATURE_NAMES,
    FEATURES,
    HYDROPHOBIC,
    Feature,
    extract_features,
    feature_table,
    pair_features,
    sasa,
)
from ._structure import STANDARD_RESIDUES, Chain, example_structures, read_chains, read_structure
from ._table import read_feature_table, validate_feature_table


def __getattr__(name):
    # the GAN imports torch: loaded on first use so that feature extraction does not
    if name in ("InterfaceGAN", "evaluate", "evaluate_generated", "critic_spectral_norms", "output_spec"):
        from . import _gan

        return getattr(_gan, name)
    raise AttributeError(name)


__all__ = [
    "FEATURES",
    "FEATURE_NAMES",
    "Feature",
    "HYDROPHOBIC",
    "STANDARD_RESIDUES",
    "Chain",
    "extract_features",
    "pair_features",
    "feature_table",
    "sasa",
    "read_structure",
    "read_chains",
    "example_structures",
    "read_feature_table",
    "validate_feature_table",
    "InterfaceGAN",
    "evaluate",
    "output_spec",
    "evaluate_generated",
    "critic_spectral_norms",
]
