"""DREIDING atom types (element + hybridisation: 3 = sp3, 2 = sp2, R = resonant, 1 = sp).

Open Babel's internal types are translated to DREIDING names with ``OBTypeTable`` (INT -> DRE);
then mdxfer applies the DREIDING rules Open Babel misses:

* every hydrogen bonded to N, O or F is the hydrogen-bond donor type ``H___A`` (Open Babel marks
  only O-H hydrogens, as ``H_HB``);
* atoms RDKit perceives as aromatic are resonant (``C_R``, ``N_R``, ``O_R``), e.g. furan's O;
* an amide nitrogen (N bonded to a C that carries a C=O) is resonant ``N_R``.
"""

from __future__ import annotations

from functools import lru_cache

from rdkit import Chem

from mdxfer.errors import ForceFieldError

_HBOND_DONOR_ELEMENTS = {"N", "O", "F"}
_OB_ALIASES = {"H_HB": "H___A", "H___A": "H___A", "H_": "H_", "F": "F_", "Cl": "Cl", "Br": "Br"}


@lru_cache(maxsize=1)
def _ob():
    from openbabel import openbabel as ob

    ob.obErrorLog.SetOutputLevel(0)
    table = ob.OBTypeTable()
    table.SetFromType("INT")
    table.SetToType("DRE")
    return ob, table


def openbabel_types(mol: Chem.Mol) -> list[str]:
    """Open Babel's DREIDING names for the atoms of ``mol`` (RDKit atom order).

    ``mol`` must have explicit hydrogens and a conformer.
    """
    ob, table = _ob()
    conv = ob.OBConversion()
    conv.SetInFormat("mol")
    obmol = ob.OBMol()
    if not conv.ReadString(obmol, Chem.MolToMolBlock(mol)):
        raise ForceFieldError("Open Babel could not read the molecule for DREIDING typing.")
    if obmol.NumAtoms() != mol.GetNumAtoms():
        raise ForceFieldError(
            "Open Babel changed the number of atoms while typing "
            f"({obmol.NumAtoms()} vs {mol.GetNumAtoms()}); cannot map DREIDING types."
        )
    return [table.Translate(a.GetType()) for a in ob.OBMolAtomIter(obmol)]


def _is_amide_nitrogen(atom: Chem.Atom) -> bool:
    if atom.GetSymbol() != "N" or atom.GetIsAromatic():
        return False
    for nbr in atom.GetNeighbors():
        if nbr.GetSymbol() != "C":
            continue
        for bond in nbr.GetBonds():
            other = bond.GetOtherAtom(nbr)
            if other.GetSymbol() in ("O", "S") and bond.GetBondType() == Chem.BondType.DOUBLE:
                return True
    return False


def assign_types(mol: Chem.Mol) -> list[str]:
    """DREIDING type name of every atom of ``mol`` (explicit H, one conformer), RDKit order."""
    raw = openbabel_types(mol)
    types: list[str] = []
    for atom, ob_type in zip(mol.GetAtoms(), raw):
        symbol = atom.GetSymbol()
        t = _OB_ALIASES.get(ob_type, ob_type)
        if symbol == "H":
            heavy = [n.GetSymbol() for n in atom.GetNeighbors()]
            t = "H___A" if heavy and heavy[0] in _HBOND_DONOR_ELEMENTS else "H_"
        elif atom.GetIsAromatic() and symbol in ("C", "N", "O"):
            t = f"{symbol}_R"
        elif _is_amide_nitrogen(atom):
            t = "N_R"
        types.append(t)
    return types


#: Suffix of the LAMMPS type label of an N, O or F atom that is *not* a hydrogen-bond acceptor
#: (same DREIDING parameters as its type; a separate LAMMPS type so that ``hbond/dreiding/lj``
#: pair coefficients can leave it out).
NOT_ACCEPTOR = ".x"


def is_hbond_acceptor(atom: Chem.Atom) -> bool:
    """Whether ``atom`` is a DREIDING hydrogen-bond acceptor.

    DREIDING's hydrogen bond joins a donor hydrogen (``H___A``) to an electronegative acceptor
    with a lone pair available (Mayo, Olafson & Goddard 1990, section II.F). mdxfer's rules:

    * O with formal charge ≤ 0: acceptor (hydroxyl, ether, carbonyl, nitro and N-oxide O).
    * N with formal charge 0 and a lone pair not taken by resonance: amines (sp3, not bonded to
      a carbonyl/thiocarbonyl carbon), imines, nitriles and pyridine-type ring N (aromatic, two
      neighbours, no H). Not: amide N, pyrrole-type N (aromatic with H or three neighbours),
      N⁺ (nitro, ammonium, N-oxide).
    * F: only in H–F. Organic C–F is left out: covalent fluorine "hardly ever accepts hydrogen
      bonds" (Dunitz & Taylor, Chem. Eur. J. 3, 89 (1997)); a 9.5 kcal/mol DREIDING well on it
      would be unphysical.
    """
    symbol = atom.GetSymbol()
    charge = atom.GetFormalCharge()
    if symbol == "O":
        return charge <= 0
    if symbol == "F":
        return all(n.GetSymbol() == "H" for n in atom.GetNeighbors())
    if symbol != "N" or charge != 0:
        return False
    if atom.GetIsAromatic():
        return atom.GetDegree() == 2 and atom.GetTotalNumHs() == 0
    if _is_amide_nitrogen(atom):
        return False
    return True


def type_labels(mol: Chem.Mol, types: list[str]) -> list[str]:
    """LAMMPS type label of every atom: its DREIDING type, plus :data:`NOT_ACCEPTOR` for N, O
    and F atoms that :func:`is_hbond_acceptor` rejects."""
    out = []
    for atom, t in zip(mol.GetAtoms(), types):
        if atom.GetSymbol() in ("N", "O", "F") and not is_hbond_acceptor(atom):
            t = t + NOT_ACCEPTOR
        out.append(t)
    return out


def base_type(label: str) -> str:
    """The DREIDING type of a LAMMPS type label (drops :data:`NOT_ACCEPTOR`)."""
    return label[: -len(NOT_ACCEPTOR)] if label.endswith(NOT_ACCEPTOR) else label


def resonance_equivalents(mol: Chem.Mol) -> list[list[int]]:
    """Sets of atoms that a charge-separated resonance makes equivalent (e.g. nitro's two O).

    Atoms are equivalent when they are symmetric in the molecular graph with formal charges and
    bond orders ignored inside a conjugated group that carries formal charges (nitro, N-oxides
    of nitrones, azides ...). Neutral resonance (benzene, carboxylic acids) is left alone: there
    DREIDING's resonant types already apply.
    """
    if not any(a.GetFormalCharge() for a in mol.GetAtoms()):
        return []
    plain = Chem.RWMol(mol)
    for a in plain.GetAtoms():
        a.SetFormalCharge(0)
        a.SetNoImplicit(True)
    charged = {a.GetIdx() for a in mol.GetAtoms() if a.GetFormalCharge()}
    for b in plain.GetBonds():
        if b.GetBeginAtomIdx() in charged or b.GetEndAtomIdx() in charged:
            b.SetBondType(Chem.BondType.SINGLE)
            b.SetIsAromatic(False)
    ranks = list(Chem.CanonicalRankAtoms(plain, breakTies=False, includeChirality=False))
    groups: dict[int, list[int]] = {}
    for a in mol.GetAtoms():
        if a.GetIdx() in charged or any(n.GetIdx() in charged for n in a.GetNeighbors()):
            if a.GetSymbol() != "H":
                groups.setdefault(ranks[a.GetIdx()], []).append(a.GetIdx())
    out = []
    for members in groups.values():
        if len(members) < 2:
            continue
        # equivalent only if they differ in charge or bond order (a real resonance pair)
        if len({mol.GetAtomWithIdx(i).GetFormalCharge() for i in members}) > 1:
            out.append(sorted(members))
    return out
