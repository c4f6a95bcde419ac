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
