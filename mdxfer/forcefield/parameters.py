"""DREIDING parameter lookup and per-molecule topology (bonds, angles, torsions, inversions).

Parameter values come from ``dreiding.toml`` beside this module; the rules that pick them
(bond order, central-atom hybridisation, the torsion cases of the paper's eq 13) live here.
Energies are in kcal/mol, distances in Å, angles in degrees, LAMMPS ``units real``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from rdkit import Chem

from mdxfer.errors import ForceFieldError, MoleculeError
from mdxfer.forcefield.charges import partial_charges
from mdxfer.forcefield.typing import assign_types, base_type, resonance_equivalents, type_labels

_OXYGEN_COLUMN = {"O", "S", "Se", "Te"}
_BOND_ORDER = {
    Chem.BondType.SINGLE: 1.0,
    Chem.BondType.DOUBLE: 2.0,
    Chem.BondType.TRIPLE: 3.0,
    Chem.BondType.AROMATIC: 1.5,
}

BondKey = tuple[str, str, float]
AngleKey = str
DihedralKey = tuple[float, int, int]
ImproperKey = tuple[float, float]


@lru_cache(maxsize=1)
def load_table() -> dict[str, Any]:
    """The parsed ``dreiding.toml`` parameter table."""
    text = resources.files("mdxfer.forcefield").joinpath("dreiding.toml").read_text()
    return tomllib.loads(text)


def supported_types() -> list[str]:
    """DREIDING types mdxfer has complete parameters for."""
    return sorted(load_table()["nonbonded"]["lj"])


def hybridization(dreiding_type: str) -> str:
    """'3', '2', 'R', '1' for X_3/X_2/X_R/X_1 types; '' for monovalent (H_, F_, Cl, Br)."""
    suffix = dreiding_type.split("_")[-1] if "_" in dreiding_type else ""
    return suffix if suffix in {"3", "2", "R", "1"} else ""


def lj_params(t: str) -> tuple[float, float]:
    """(epsilon kcal/mol, sigma Å) of type (or LAMMPS type label) ``t``; sigma = R0 / 2**(1/6)."""
    row = load_table()["nonbonded"]["lj"][base_type(t)]
    return float(row["D0"]), float(row["R0"]) / 2 ** (1 / 6)


def lj_pair(ti: str, tj: str) -> tuple[float, float]:
    """Cross (epsilon, sigma) for a pair of types by the table's mixing rule (geometric)."""
    ei, si = lj_params(ti)
    ej, sj = lj_params(tj)
    rule = load_table()["nonbonded"]["mixing"]
    if rule == "geometric":
        return math.sqrt(ei * ej), math.sqrt(si * sj)
    if rule == "arithmetic":
        return math.sqrt(ei * ej), 0.5 * (si + sj)
    raise ForceFieldError(f"Unknown LJ mixing rule {rule!r} in dreiding.toml.")


def bond_params(ti: str, tj: str, order: float) -> tuple[float, float]:
    """LAMMPS ``bond_style harmonic`` (K kcal/mol/Å², r0 Å) for a bond of the given order."""
    tab = load_table()["bonds"]
    r0 = tab["radius"][ti] + tab["radius"][tj] - tab["delta"]
    return 0.5 * tab["k_per_order"] * order, r0


def angle_params(center: str) -> tuple[float, float]:
    """LAMMPS ``angle_style harmonic`` (K kcal/mol/rad², theta0 degrees) of a central type."""
    tab = load_table()["angles"]
    return 0.5 * tab["K"], float(tab["theta0"][center])


def torsion_rule(
    tj: str,
    tk: str,
    order: float,
    ej: str,
    ek: str,
    j_other_sp2: bool,
    k_other_sp2: bool,
    exocyclic_aromatic: bool,
) -> tuple[str, dict[str, float]] | None:
    """The DREIDING torsion case for a central bond j-k, or None when it has no torsion.

    ``ej``/``ek`` are elements; ``*_other_sp2`` tell whether j/k have another neighbour (not k/j)
    of type X_2 or X_R; ``exocyclic_aromatic`` is a single bond joining two aromatic atoms that
    are not in the same ring.
    """
    hj, hk = hybridization(tj), hybridization(tk)
    tors = load_table()["torsions"]
    if hj in ("", "1") or hk in ("", "1"):
        return None  # (g)
    if hj == "3" and hk == "3":
        if ej in _OXYGEN_COLUMN and ek in _OXYGEN_COLUMN:
            return "ocolumn_sp3_sp3", tors["ocolumn_sp3_sp3"]
        return "sp3_sp3", tors["sp3_sp3"]
    if hj == "3" or hk == "3":
        sp3_el, sp2_el = (ej, ek) if hj == "3" else (ek, ej)
        sp2_other = k_other_sp2 if hj == "3" else j_other_sp2
        if sp3_el in _OXYGEN_COLUMN and sp2_el not in _OXYGEN_COLUMN:
            return "ocolumn_sp3_sp2", tors["ocolumn_sp3_sp2"]
        if not sp2_other:
            return "sp2_sp3_isolated", tors["sp2_sp3_isolated"]
        return "sp2_sp3", tors["sp2_sp3"]
    # both sp2 or resonant
    if order >= 2.0:
        return "sp2_sp2_double", tors["sp2_sp2_double"]
    if order == 1.5:
        return "resonant", tors["resonant"]
    if exocyclic_aromatic:
        return "aromatic_exocyclic", tors["aromatic_exocyclic"]
    return "sp2_sp2_single", tors["sp2_sp2_single"]


def harmonic_dihedral(V: float, n: int, phi0: float, multiplicity: int) -> DihedralKey:
    """LAMMPS ``dihedral_style harmonic`` (K, d, n) for E = V/2 [1 - cos(n(phi - phi0))].

    LAMMPS: E = K [1 + d cos(n phi)], so K = V / (2 * multiplicity) and d = -cos(n phi0)
    (phi0 is 0, 90 or 180 with n making sin(n phi0) vanish).
    """
    d = -round(math.cos(math.radians(n * phi0)))
    if d not in (-1, 1):
        raise ForceFieldError(f"Torsion with n={n}, phi0={phi0} is not expressible as harmonic.")
    return round(V / (2.0 * multiplicity), 6), int(d), int(n)


@dataclass
class MoleculeFF:
    """One molecule with DREIDING types, charges (e), masses (g/mol) and coordinates (Å).

    Topology arrays hold 0-based atom indices; ``*_keys`` hold the parameter key of each term,
    and ``*_params`` map keys to LAMMPS coefficients (see the module docstring for styles).
    """

    smiles: str
    symbols: list[str]
    types: list[str]
    charges: np.ndarray
    masses: np.ndarray
    coords: np.ndarray
    bonds: np.ndarray
    bond_keys: list[BondKey]
    angles: np.ndarray
    angle_keys: list[AngleKey]
    dihedrals: np.ndarray
    dihedral_keys: list[DihedralKey]
    impropers: np.ndarray
    improper_keys: list[ImproperKey]
    torsion_cases: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.labels:
            self.labels = list(self.types)

    @property
    def n_atoms(self) -> int:
        return len(self.types)

    @property
    def mass(self) -> float:
        """Molar mass, g/mol."""
        return float(self.masses.sum())

    @property
    def donor_types(self) -> set[str]:
        """Type labels of heavy atoms that carry an H___A (hydrogen-bond donors)."""
        out = set()
        for i, j in self.bonds:
            for a, b in ((i, j), (j, i)):
                if self.types[a] == "H___A":
                    out.add(self.labels[b])
        return out

    @property
    def acceptor_types(self) -> set[str]:
        """Type labels of the hydrogen-bond acceptors (N, O, F atoms that
        :func:`mdxfer.forcefield.typing.is_hbond_acceptor` accepts)."""
        acc = set(load_table()["hbond"]["acceptor_elements"])
        return {t for s, t in zip(self.symbols, self.labels) if s in acc and base_type(t) == t}


def _check_supported(mol: Chem.Mol, types: list[str], smiles: str) -> None:
    known = set(supported_types())
    bad = [(a.GetIdx(), a.GetSymbol(), t) for a, t in zip(mol.GetAtoms(), types) if t not in known]
    if bad:
        shown = ", ".join(f"atom {i} {s} (type {t})" for i, s, t in bad[:5])
        elements = sorted({s for _, s, _ in bad})
        raise ForceFieldError(
            f"{smiles!r}: DREIDING parameters in mdxfer cover H, C, N, O, F, S, Cl, Br; "
            f"unsupported: {shown}. Remove element(s) {', '.join(elements)} or extend "
            "mdxfer/forcefield/dreiding.toml with their parameters (with a source)."
        )


def parametrize(mol: Chem.Mol, smiles: str | None = None, charges: str = "gasteiger") -> MoleculeFF:
    """Assign DREIDING types, partial charges (``charges`` model) and all bonded terms to ``mol``.

    ``mol`` must carry explicit hydrogens and a 3D conformer (see :func:`mdxfer.molecule.embed`).
    """
    smiles = smiles or Chem.MolToSmiles(Chem.RemoveHs(mol))
    if mol.GetNumConformers() == 0:
        raise MoleculeError(f"{smiles!r} has no 3D conformer; embed it first.")
    if Chem.GetFormalCharge(mol) != 0:
        raise ForceFieldError(
            f"{smiles!r} carries a net charge of {Chem.GetFormalCharge(mol):+d} e; mdxfer "
            "simulates neutral molecules only (a charged box needs counter-ions)."
        )
    if any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
        raise ForceFieldError(f"{smiles!r} is a radical; DREIDING typing needs closed shells.")
    types = assign_types(mol)
    equivalents = resonance_equivalents(mol)
    types = _symmetric_types(mol, types, equivalents)
    _check_supported(mol, types, smiles)
    atom_charges = partial_charges(mol, charges)
    for members in equivalents:  # resonance-equivalent atoms carry equal charges
        atom_charges[members] = atom_charges[members].mean()
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    masses = np.array([a.GetMass() for a in mol.GetAtoms()])
    coords = np.array(mol.GetConformer().GetPositions(), dtype=float)
    ring_info = mol.GetRingInfo()

    bond_orders = _symmetric_bond_orders(mol, equivalents)
    bonds, bond_keys = [], []
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        order = _BOND_ORDER.get(b.GetBondType())
        if order is None:
            raise ForceFieldError(f"{smiles!r}: unsupported bond type {b.GetBondType()}.")
        order = bond_orders.get(b.GetIdx(), order)
        ti, tj = sorted((types[i], types[j]))
        bonds.append((i, j))
        bond_keys.append((ti, tj, order))

    nbrs = [[n.GetIdx() for n in a.GetNeighbors()] for a in mol.GetAtoms()]
    angles, angle_keys = [], []
    for j, ns in enumerate(nbrs):
        for a in range(len(ns)):
            for c in range(a + 1, len(ns)):
                angles.append((ns[a], j, ns[c]))
                angle_keys.append(types[j])

    def other_sp2(x: int, exclude: int) -> bool:
        return any(hybridization(types[n]) in ("2", "R") for n in nbrs[x] if n != exclude)

    dihedrals, dihedral_keys, cases = [], [], []
    for b in mol.GetBonds():
        j, k = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        order = _BOND_ORDER[b.GetBondType()]
        exo = (
            b.GetBondType() == Chem.BondType.SINGLE
            and mol.GetAtomWithIdx(j).GetIsAromatic()
            and mol.GetAtomWithIdx(k).GetIsAromatic()
            and not ring_info.NumBondRings(b.GetIdx())
        )
        rule = torsion_rule(
            types[j],
            types[k],
            order,
            symbols[j],
            symbols[k],
            other_sp2(j, k),
            other_sp2(k, j),
            exo,
        )
        if rule is None:
            continue
        quads = [(i, j, k, m) for i in nbrs[j] if i != k for m in nbrs[k] if m != j and m != i]
        if not quads:
            continue
        name, p = rule
        key = harmonic_dihedral(p["V"], int(p["n"]), p["phi0"], len(quads))
        for q in quads:
            dihedrals.append(q)
            dihedral_keys.append(key)
            cases.append(name)

    inv = load_table()["inversions"]
    impropers, improper_keys = [], []
    for i, ns in enumerate(nbrs):
        if len(ns) == 3 and hybridization(types[i]) in ("2", "R"):
            a, b, c = ns
            for axis in ((a, b, c), (b, c, a), (c, a, b)):
                # LAMMPS umbrella: central atom I first; omega between I-L and the I-J-K plane.
                impropers.append((i, axis[0], axis[1], axis[2]))
                improper_keys.append((round(inv["K"] / inv["split"], 6), 0.0))

    def arr(rows: list, width: int) -> np.ndarray:
        return np.array(rows, dtype=int).reshape(-1, width)

    return MoleculeFF(
        smiles=smiles,
        symbols=symbols,
        types=types,
        charges=atom_charges,
        masses=masses,
        coords=coords,
        bonds=arr(bonds, 2),
        bond_keys=bond_keys,
        angles=arr(angles, 3),
        angle_keys=angle_keys,
        dihedrals=arr(dihedrals, 4),
        dihedral_keys=dihedral_keys,
        impropers=arr(impropers, 4),
        improper_keys=improper_keys,
        torsion_cases=cases,
        labels=type_labels(mol, types),
    )


def _symmetric_types(mol: Chem.Mol, types: list[str], equivalents: list[list[int]]) -> list[str]:
    """Give resonance-equivalent atoms one type (the highest-order member's: nitro O → O_2 for
    both) and make an sp2 centre bonded to them resonant (nitro N_2 → N_R)."""
    types = list(types)
    for members in equivalents:
        best = min((types[i] for i in members), key=lambda t: (hybridization(t) != "2", t))
        for i in members:
            types[i] = best
            for n in mol.GetAtomWithIdx(i).GetNeighbors():
                j = n.GetIdx()
                if hybridization(types[j]) == "2" and j not in members:
                    types[j] = f"{types[j].split('_')[0]}_R"
    return types


def _symmetric_bond_orders(mol: Chem.Mol, equivalents: list[list[int]]) -> dict[int, float]:
    """Bond index → order: bonds from one centre to resonance-equivalent atoms get their mean
    order (nitro N–O: 1 and 2 → 1.5 for both)."""
    out: dict[int, float] = {}
    for members in equivalents:
        by_centre: dict[int, list] = {}
        for i in members:
            for b in mol.GetAtomWithIdx(i).GetBonds():
                by_centre.setdefault(b.GetOtherAtomIdx(i), []).append(b)
        for bonds in by_centre.values():
            if len(bonds) > 1:
                mean = sum(_BOND_ORDER[b.GetBondType()] for b in bonds) / len(bonds)
                for b in bonds:
                    out[b.GetIdx()] = mean
    return out
