"""Interface features of protein complexes (``bm.interface.extract_features``).

Definitions follow the field (decisions.md item 21) so that the values compare with
PRODIGY and PISA; :data:`FEATURES` documents every column (name, unit, kind, definition)
and :func:`feature_table` returns it as a DataFrame. Atoms are those kept by
:func:`bioml.interface.read_chains` (model 1, heavy atoms of the 20 standard amino acids,
highest-occupancy altloc, no HETATM/water, insertion codes kept).

SASA
    freesasa's Lee-Richards algorithm with its defaults (probe 1.4 Å, 20 slices per
    atom) and its default classifier (ProtOr radii; its polar/apolar atom classes),
    computed on chain A alone, chain B alone and the pair AB alone (other chains of the
    file are ignored). Buried area ``BSA = SASA(A) + SASA(B) - SASA(AB)``.
Interface residues
    Residues with a heavy atom within ``interface_cutoff`` (5 Å) of a heavy atom of the
    partner chain.
Contacts
    Intermolecular residue pairs with heavy atoms within ``contact_cutoff`` (5.5 Å),
    classed by PRODIGY's residue characters (charged: D E H K R; polar: N Q S T;
    apolar: the others), and heavy-atom pairs within ``atom_contact_cutoff`` (4 Å).
NIS
    PRODIGY's non-interacting-surface percentages: the residues of the complex AB with a
    relative SASA >= 5% (NACCESS's ALA-X-ALA reference areas), classed apolar / charged /
    polar with PRODIGY's NIS characters (there C, H, W, Y count as polar). As in
    PRODIGY's code, every residue above the threshold is counted, interface or not.

Differences from PRODIGY's own numbers: it drops residues with insertion codes (we keep
them) and computes SASA with NACCESS radii (we use freesasa's defaults, ProtOr), so NIS
percentages may differ by a few points on some complexes; contact counts agree when no
insertion codes are present.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, StructureError
from ._structure import STANDARD_RESIDUES, Chain, read_chains

__all__ = [
    "FEATURES",
    "FEATURE_NAMES",
    "Feature",
    "feature_table",
    "extract_features",
    "pair_features",
    "sasa",
    "HYDROPHOBIC",
]

log = logging.getLogger("bioml.interface")

# PRODIGY's residue characters (prodigy_prot.modules.aa_properties)
_IC_CHARACTER = {
    "ALA": "A", "CYS": "A", "GLU": "C", "ASP": "C", "GLY": "A", "PHE": "A", "ILE": "A",
    "HIS": "C", "LYS": "C", "MET": "A", "LEU": "A", "ASN": "P", "GLN": "P", "PRO": "A",
    "SER": "P", "ARG": "C", "THR": "P", "TRP": "A", "VAL": "A", "TYR": "A",
}
_NIS_CHARACTER = {**_IC_CHARACTER, "CYS": "P", "HIS": "P", "TRP": "P", "TYR": "P"}
# NACCESS total areas of ALA-X-ALA (PRODIGY's rel_asa["total"]), Å²
_REL_ASA = {
    "ALA": 107.95, "CYS": 134.28, "ASP": 140.39, "GLU": 172.25, "PHE": 199.48, "GLY": 80.10,
    "HIS": 182.88, "ILE": 175.12, "LYS": 200.81, "LEU": 178.63, "MET": 194.15, "ASN": 143.94,
    "PRO": 136.13, "GLN": 178.50, "ARG": 238.76, "SER": 116.50, "THR": 139.27, "VAL": 151.44,
    "TRP": 249.36, "TYR": 212.76,
}
#: Hydrophobic residues (PRODIGY's "hydrophoBic" class): hydrophobic_fraction counts these.
HYDROPHOBIC = ("ALA", "CYS", "ILE", "LEU", "MET", "PHE", "VAL")
_CONTACT_CLASSES = ("cc", "cp", "ac", "pp", "ap", "aa")


@dataclass(frozen=True)
class Feature:
    """One interface feature.

    ``kind`` says how the GAN keeps it valid by construction: ``"nonneg"`` (softplus),
    ``"count"`` (non-negative, rounded to an integer only at export), ``"composition"``
    (a block of ``group`` summing to ``total`` through a softmax), ``"derived"`` (the sum
    of ``parts``, so it can never disagree with them).
    """

    name: str
    unit: str
    kind: str
    definition: str
    group: str | None = None
    total: float | None = None
    parts: tuple[str, ...] = ()
    integer: bool = False


def _build_features() -> tuple[Feature, ...]:
    f = [
        Feature("bsa_total", "Å²", "derived", "buried surface area SASA(A) + SASA(B) - SASA(AB) "
                "(freesasa Lee-Richards, probe 1.4 Å); = bsa_polar + bsa_apolar",
                parts=("bsa_polar", "bsa_apolar")),
        Feature("bsa_polar", "Å²", "nonneg", "buried area of polar atoms (freesasa classifier: N, O)"),
        Feature("bsa_apolar", "Å²", "nonneg", "buried area of apolar atoms (freesasa classifier: C, S)"),
        Feature("n_interface_residues", "count", "derived",
                "interface residues of both chains; = n_interface_residues_a + n_interface_residues_b",
                parts=("n_interface_residues_a", "n_interface_residues_b"), integer=True),
        Feature("n_interface_residues_a", "count", "count",
                "residues of the first chain with a heavy atom within 5 Å of the second", integer=True),
        Feature("n_interface_residues_b", "count", "count",
                "residues of the second chain with a heavy atom within 5 Å of the first", integer=True),
        Feature("n_residue_contacts", "count", "derived",
                "intermolecular residue pairs with heavy atoms within 5.5 Å (PRODIGY's ICs); "
                "= the sum of the six contact classes",
                parts=tuple(f"contacts_{c}" for c in _CONTACT_CLASSES), integer=True),
    ]
    names = {"c": "charged", "p": "polar", "a": "apolar"}
    for c in _CONTACT_CLASSES:
        f.append(Feature(f"contacts_{c}", "count", "count",
                         f"residue contacts {names[c[0]]}-{names[c[1]]} (PRODIGY's {c.upper()} class; "
                         "charged D E H K R, polar N Q S T, apolar the rest)", integer=True))
    f += [
        Feature("n_atom_contacts", "count", "count",
                "intermolecular heavy-atom pairs within 4 Å", integer=True),
        Feature("hydrophobic_fraction", "fraction", "derived",
                "fraction of interface residues that are hydrophobic (A C I L M F V); "
                "= the sum of their composition fractions",
                parts=tuple(f"comp_{r}" for r in HYDROPHOBIC)),
    ]
    for r in STANDARD_RESIDUES:
        f.append(Feature(f"comp_{r}", "fraction", "composition",
                         f"fraction of interface residues (both chains) that are {r}",
                         group="composition", total=1.0))
    for c, word in (("apolar", "apolar"), ("charged", "charged"), ("polar", "polar (incl. C H W Y)")):
        f.append(Feature(f"nis_{c}", "%", "composition",
                         f"PRODIGY's NIS: % of the complex's surface residues (relative SASA >= 5%) "
                         f"that are {word}", group="nis", total=100.0))
    f += [
        Feature("centroid_distance", "Å", "nonneg",
                "distance between the centroids of the two chains' interface atoms "
                "(heavy atoms within 5 Å of the partner)"),
        Feature("interface_rg", "Å", "nonneg",
                "radius of gyration of the interface atoms of both chains"),
        Feature("interface_planarity", "Å", "nonneg",
                "RMS distance of the interface atoms from their least-squares plane "
                "(PISA/ProtorP-style planarity; 0 = flat)"),
    ]
    return tuple(f)


#: Every interface feature, in column order (see :class:`Feature`).
FEATURES: tuple[Feature, ...] = _build_features()
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


def feature_table() -> pd.DataFrame:
    """:data:`FEATURES` as a DataFrame (index ``name``; ``unit``, ``kind``, ``definition``,
    ``group``, ``total``, ``parts``, ``integer``)."""
    rows = [dict(name=f.name, unit=f.unit, kind=f.kind, definition=f.definition, group=f.group,
                 total=f.total, parts=",".join(f.parts), integer=f.integer) for f in FEATURES]
    return pd.DataFrame(rows).set_index("name")


# -- SASA -------------------------------------------------------------------------------
_ELEMENT_RADIUS = {"C": 1.70, "N": 1.55, "O": 1.52, "S": 1.80, "SE": 1.90}


def _radii_classes(chain: Chain) -> tuple[np.ndarray, np.ndarray]:
    """freesasa default-classifier radii and polar flags of a chain's atoms (cached)."""
    cached = getattr(chain, "_radii_cache", None)
    if cached is not None:
        return cached
    import freesasa

    clf = freesasa.Classifier()
    memo: dict[tuple[str, str], tuple[float, bool]] = {}
    radii = np.empty(chain.n_atoms)
    polar = np.empty(chain.n_atoms, dtype=bool)
    for i, (k, name, el) in enumerate(zip(chain.res_index, chain.atom_names, chain.element)):
        key = (chain.res_names[k], name)
        if key not in memo:
            try:
                r = float(clf.radius(*key))
                cls = clf.classify(*key)
            except Exception:  # noqa: BLE001 - unknown atom: fall back on its element
                r, cls = -1.0, None
            if not r > 0:
                r = _ELEMENT_RADIUS.get(el, 1.80)
            if cls not in ("Polar", "Apolar"):
                cls = "Polar" if el in ("N", "O") else "Apolar"
            memo[key] = (r, cls == "Polar")
        radii[i], polar[i] = memo[key]
    chain._radii_cache = (radii, polar)  # type: ignore[attr-defined]
    return radii, polar


def sasa(chains: Sequence[Chain]) -> np.ndarray:
    """Per-atom SASA (Å²) of the chains taken together, in their atom order.

    freesasa's Lee-Richards algorithm with its default parameters and default-classifier
    radii.
    """
    import freesasa

    coords = np.concatenate([c.coords for c in chains])
    radii = np.concatenate([_radii_classes(c)[0] for c in chains])
    res = freesasa.calcCoord(coords.ravel().tolist(), radii.tolist(), freesasa.Parameters())
    return np.fromiter((res.atomArea(i) for i in range(coords.shape[0])), dtype=np.float64,
                       count=coords.shape[0])


# -- features of one pair ---------------------------------------------------------------
def _pairs_within(a: np.ndarray, b: np.ndarray, cutoff: float) -> np.ndarray:
    """``k x 2`` index pairs (i in a, j in b) closer than ``cutoff``."""
    from scipy.spatial import cKDTree

    m = cKDTree(a).sparse_distance_matrix(cKDTree(b), cutoff, output_type="ndarray")
    return np.column_stack([m["i"], m["j"]]).astype(np.int64) if m.size else np.zeros((0, 2), np.int64)


def _planarity(x: np.ndarray) -> float:
    c = x - x.mean(axis=0)
    s = np.linalg.svd(c, compute_uv=False)
    return float(s[-1] / np.sqrt(x.shape[0])) if x.shape[0] >= 3 else 0.0


def pair_features(
    a: Chain,
    b: Chain,
    *,
    sasa_a: np.ndarray | None = None,
    sasa_b: np.ndarray | None = None,
    interface_cutoff: float = 5.0,
    contact_cutoff: float = 5.5,
    atom_contact_cutoff: float = 4.0,
    nis_threshold: float = 0.05,
    source: str = "",
) -> dict[str, float]:
    """The :data:`FEATURES` of the interface between chains ``a`` and ``b``.

    Raises
    ------
    StructureError
        The chains are not in contact (no heavy-atom pair within ``interface_cutoff``).
    """
    where = f"'{source}'" if source else "the structure"
    iface = _pairs_within(a.coords, b.coords, interface_cutoff)
    if iface.shape[0] == 0:
        raise StructureError(
            f"chains {a.chain_id!r} and {b.chain_id!r} of {where} are not in contact "
            f"(no heavy atoms within {interface_cutoff} Å)")
    sa = sasa([a]) if sasa_a is None else sasa_a
    sb = sasa([b]) if sasa_b is None else sasa_b
    sab = sasa([a, b])
    _, pol_a = _radii_classes(a)
    _, pol_b = _radii_classes(b)
    pol = np.concatenate([pol_a, pol_b])
    buried = np.concatenate([sa, sb]) - sab
    out: dict[str, float] = {}
    out["bsa_polar"] = float(buried[pol].sum())
    out["bsa_apolar"] = float(buried[~pol].sum())
    out["bsa_total"] = out["bsa_polar"] + out["bsa_apolar"]

    atoms_a = np.unique(iface[:, 0])
    atoms_b = np.unique(iface[:, 1])
    res_a = np.unique(a.res_index[atoms_a])
    res_b = np.unique(b.res_index[atoms_b])
    out["n_interface_residues_a"] = float(res_a.size)
    out["n_interface_residues_b"] = float(res_b.size)
    out["n_interface_residues"] = float(res_a.size + res_b.size)

    cpairs = _pairs_within(a.coords, b.coords, contact_cutoff)
    rpairs = np.unique(np.column_stack([a.res_index[cpairs[:, 0]], b.res_index[cpairs[:, 1]]]), axis=0)
    counts = dict.fromkeys(_CONTACT_CLASSES, 0)
    for i, j in rpairs:
        key = "".join(sorted((_IC_CHARACTER[a.res_names[i]], _IC_CHARACTER[b.res_names[j]]))).lower()
        counts[key] += 1
    for c in _CONTACT_CLASSES:
        out[f"contacts_{c}"] = float(counts[c])
    out["n_residue_contacts"] = float(sum(counts.values()))
    out["n_atom_contacts"] = float(_pairs_within(a.coords, b.coords, atom_contact_cutoff).shape[0])

    names = [a.res_names[i] for i in res_a] + [b.res_names[j] for j in res_b]
    total = len(names)
    for r in STANDARD_RESIDUES:
        out[f"comp_{r}"] = names.count(r) / total
    out["hydrophobic_fraction"] = float(sum(out[f"comp_{r}"] for r in HYDROPHOBIC))

    # NIS on the complex AB: per-residue SASA -> relative SASA
    n_ra, n_rb = a.n_residues, b.n_residues
    res_area = np.zeros(n_ra + n_rb)
    np.add.at(res_area, np.concatenate([a.res_index, b.res_index + n_ra]), sab)
    rnames = a.res_names + b.res_names
    ref = np.array([_REL_ASA[r] for r in rnames])
    surface = res_area / ref >= nis_threshold
    chars = np.array([_NIS_CHARACTER[r] for r in rnames])[surface]
    n_surf = max(int(surface.sum()), 1)
    out["nis_apolar"] = 100.0 * float((chars == "A").sum()) / n_surf
    out["nis_charged"] = 100.0 * float((chars == "C").sum()) / n_surf
    out["nis_polar"] = 100.0 * float((chars == "P").sum()) / n_surf

    xa, xb = a.coords[atoms_a], b.coords[atoms_b]
    xab = np.concatenate([xa, xb])
    out["centroid_distance"] = float(np.linalg.norm(xa.mean(0) - xb.mean(0)))
    out["interface_rg"] = float(np.sqrt(((xab - xab.mean(0)) ** 2).sum(1).mean()))
    out["interface_planarity"] = _planarity(xab)
    return {k: out[k] for k in FEATURE_NAMES}


def extract_features(
    path: str | os.PathLike[str],
    chains: Sequence[str] | None = None,
    *,
    interface_cutoff: float = 5.0,
    contact_cutoff: float = 5.5,
    atom_contact_cutoff: float = 4.0,
    nis_threshold: float = 0.05,
) -> pd.DataFrame:
    """Interface features of a complex: one row per chain pair.

    Parameters
    ----------
    path
        PDB or mmCIF file, optionally gzip'd (see :func:`bioml.interface.read_chains` for
        which atoms are kept).
    chains
        ``("A", "B")``: that pair only (an error if they are not in contact); ``None``:
        every pair of chains in contact, in file order.
    interface_cutoff
        Heavy-atom distance (Å) defining interface residues and the interface atoms of
        the geometric measures (5 Å).
    contact_cutoff
        Heavy-atom distance (Å) of a residue-residue contact (PRODIGY: 5.5 Å).
    atom_contact_cutoff
        Heavy-atom distance (Å) of an atom-atom contact (4 Å).
    nis_threshold
        Relative SASA above which a residue counts as surface in the NIS percentages
        (PRODIGY: 0.05).

    Returns
    -------
    pandas.DataFrame
        Columns ``structure`` (file name stem), ``chain_a``, ``chain_b`` and then
        :data:`FEATURE_NAMES` (float64; see :func:`feature_table` for units).

    Raises
    ------
    StructureError
        Unreadable file, fewer than two chains, a chain id not in the file, the chosen
        chains not in contact, or (``chains=None``) no pair in contact. The message names
        the file and chains.
    ConfigError
        ``chains`` is not a pair of distinct ids, or a cutoff is not positive.
    """
    for nm, v in (("interface_cutoff", interface_cutoff), ("contact_cutoff", contact_cutoff),
                  ("atom_contact_cutoff", atom_contact_cutoff)):
        if not v > 0:
            raise ConfigError(f"{nm} must be > 0, got {v!r}")
    if not 0 <= nis_threshold < 1:
        raise ConfigError(f"nis_threshold must be in [0, 1), got {nis_threshold!r}")
    path = Path(path)
    if chains is not None:
        chains = [str(c) for c in chains]
        if len(chains) != 2 or chains[0] == chains[1]:
            raise ConfigError(f"chains must be two distinct chain ids, got {chains!r}")
    parsed = read_chains(path)
    if len(parsed) < 2:
        raise StructureError(
            f"'{path}' has only one protein chain ({', '.join(parsed)}); an interface needs two")
    if chains is not None:
        missing = [c for c in chains if c not in parsed]
        if missing:
            raise StructureError(
                f"chain(s) {missing} not found in '{path}' (protein chains there: {list(parsed)})")
        pairs = [tuple(chains)]
    else:
        pairs = list(itertools.combinations(parsed, 2))
    kw = dict(interface_cutoff=interface_cutoff, contact_cutoff=contact_cutoff,
              atom_contact_cutoff=atom_contact_cutoff, nis_threshold=nis_threshold, source=str(path))
    single = {}
    rows = []
    stem = path.name.split(".")[0]
    for ca, cb in pairs:
        a, b = parsed[ca], parsed[cb]
        if chains is None and _pairs_within(a.coords, b.coords, interface_cutoff).shape[0] == 0:
            continue
        for c in (ca, cb):
            if c not in single:
                single[c] = sasa([parsed[c]])
        feats = pair_features(a, b, sasa_a=single[ca], sasa_b=single[cb], **kw)
        rows.append({"structure": stem, "chain_a": ca, "chain_b": cb, **feats})
    if not rows:
        raise StructureError(
            f"no two chains of '{path}' are in contact (chains {list(parsed)}; "
            f"no heavy atoms within {interface_cutoff} Å)")
    log.info("%s: %d interface(s)", path.name, len(rows))
    return pd.DataFrame(rows)
