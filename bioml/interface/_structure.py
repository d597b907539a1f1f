"""Reading protein structures for interface analysis (decisions.md item 21).

What is kept, so that the features compare with PRODIGY and PISA:

- the **first model** (model 1 of an NMR ensemble);
- **heavy atoms** (hydrogen and deuterium dropped) of the **20 standard amino acids**
  (``ATOM`` records; ``HETATM`` records such as ligands, ions, modified residues and
  water are dropped);
- for an atom with alternate locations, the location of **highest occupancy** (the first
  one listed on a tie), which is the one Biopython selects;
- residues with **insertion codes are kept** (PRODIGY drops them, so its counts differ
  on such complexes).

PDB and mmCIF files are read with Biopython (``PDBParser``/``MMCIFParser``, author chain
ids), gzip'd or not, told apart by the file name (``.pdb``, ``.ent``, ``.cif``,
``.mmcif``, optionally ``.gz``) or, failing that, by the content.
"""

from __future__ import annotations

import gzip
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import StructureError

__all__ = ["STANDARD_RESIDUES", "Chain", "read_structure", "read_chains", "example_structures"]

STANDARD_RESIDUES = (
    "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE",
    "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL",
)
_STANDARD = frozenset(STANDARD_RESIDUES)
_DATA = Path(__file__).resolve().parent / "data"


def example_structures() -> list[Path]:
    """The complexes bundled with bioml (public-domain wwPDB entries, gzip'd).

    ``1hvr`` (HIV-1 protease dimer, PDB format), ``4e43`` (HIV-1 protease dimer with a
    peptide in the active site: three chains) and ``4zhl`` (urokinase with a peptide,
    mmCIF).
    """
    return sorted(_DATA.glob("*.gz"))


@dataclass
class Chain:
    """The kept heavy atoms of one chain (see the module docstring).

    Attributes
    ----------
    chain_id
        Author chain id.
    coords
        ``n_atoms x 3`` float64 coordinates (Å).
    atom_names, element
        Per atom.
    res_index
        Per atom: index into ``res_names``/``res_ids`` (residues in file order).
    res_names
        Residue names (three letters), one per residue.
    res_ids
        Residue ids as strings: number plus insertion code (``"52"``, ``"52A"``).
    """

    chain_id: str
    coords: np.ndarray
    atom_names: list[str]
    element: list[str]
    res_index: np.ndarray
    res_names: list[str]
    res_ids: list[str]

    @property
    def n_atoms(self) -> int:
        return int(self.coords.shape[0])

    @property
    def n_residues(self) -> int:
        return len(self.res_names)


def _open_text(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _is_mmcif(path: Path, text: str) -> bool:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith((".cif", ".mmcif")):
        return True
    if name.endswith((".pdb", ".ent")):
        return False
    head = text.lstrip()[:200]
    return head.startswith("data_") or "_atom_site." in text[:100000]


def read_structure(path: str | os.PathLike[str]):
    """Parse a PDB or mmCIF file (optionally gzip'd) into a Biopython structure.

    Raises
    ------
    StructureError
        The file is missing, unreadable, or holds no atoms; the message names the file.
    """
    from Bio.PDB import MMCIFParser, PDBParser
    from Bio.PDB.PDBExceptions import PDBConstructionWarning

    path = Path(path)
    if not path.is_file():
        raise StructureError(f"structure file '{path}' does not exist")
    try:
        with _open_text(path) as fh:
            text = fh.read()
    except (OSError, EOFError, UnicodeError) as err:
        raise StructureError(f"cannot read structure file '{path}': {err}") from err
    mmcif = _is_mmcif(path, text)
    parser = MMCIFParser(QUIET=True) if mmcif else PDBParser(QUIET=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PDBConstructionWarning)
            structure = parser.get_structure(path.name.split(".")[0], io.StringIO(text))
    except Exception as err:  # noqa: BLE001 - Biopython raises many kinds
        kind = "mmCIF" if mmcif else "PDB"
        raise StructureError(f"cannot parse '{path}' as a {kind} file: {type(err).__name__}: {err}") from err
    models = list(structure)
    if not models or not any(True for _ in models[0].get_atoms()):
        raise StructureError(f"'{path}' holds no atoms (not a PDB/mmCIF structure file?)")
    return structure


def read_chains(path: str | os.PathLike[str]) -> dict[str, Chain]:
    """The kept heavy atoms of every chain of model 1 (see the module docstring).

    Chains without any standard amino acid (e.g. only water or ligands) are left out.

    Returns
    -------
    dict
        ``{chain_id: Chain}`` in file order.

    Raises
    ------
    StructureError
        Unreadable file, or no chain with a standard amino acid.
    """
    structure = read_structure(path)
    model = next(iter(structure))
    chains: dict[str, Chain] = {}
    for chain in model:
        coords, names, elems, rindex, rnames, rids = [], [], [], [], [], []
        for res in chain:
            het, num, icode = res.id
            if het.strip() or res.get_resname() not in _STANDARD:
                continue
            atoms = []
            for atom in res:  # a DisorderedAtom iterates as its selected (highest-occupancy) child
                el = (atom.element or "").strip().upper()
                name = atom.get_name().strip()
                if el in ("H", "D") or (not el and name[:1] in ("H", "D")):
                    continue
                atoms.append(atom)
            if not atoms:
                continue
            k = len(rnames)
            rnames.append(res.get_resname())
            rids.append(f"{num}{icode.strip()}")
            for atom in atoms:
                coords.append(atom.get_coord())
                names.append(atom.get_name().strip())
                elems.append((atom.element or "").strip().upper())
                rindex.append(k)
        if rnames:
            chains[str(chain.id)] = Chain(
                chain_id=str(chain.id), coords=np.asarray(coords, dtype=np.float64),
                atom_names=names, element=elems, res_index=np.asarray(rindex, dtype=np.int64),
                res_names=rnames, res_ids=rids,
            )
    if not chains:
        raise StructureError(f"'{path}' holds no chain with a standard amino acid")
    return chains
