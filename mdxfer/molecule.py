"""SMILES -> RDKit molecule with explicit hydrogens and a seeded 3D conformer.

Coordinates are in Å. The InChIKey (:func:`inchikey`) is the stable name used for files and
database keys; a SMILES string never becomes a path.
"""

from __future__ import annotations

import re

from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem

from mdxfer.errors import MoleculeError

RDLogger.DisableLog("rdApp.*")


def parse_smiles(smiles: str) -> Chem.Mol:
    """Parse and sanitise a SMILES string (no hydrogens added).

    Raises :class:`MoleculeError` with RDKit's reason when the string is not valid SMILES.
    """
    if not isinstance(smiles, str) or not smiles.strip():
        raise MoleculeError("Empty SMILES string: give a molecule such as 'CC(=C)C=C'.")
    text = smiles.strip()
    if any(c.isspace() for c in text):
        raise MoleculeError(f"SMILES {text!r} contains whitespace: give one molecule per string.")
    mol = Chem.MolFromSmiles(text, sanitize=False)
    if mol is None:
        raise MoleculeError(
            f"Cannot parse SMILES {text!r}: RDKit does not read it as a molecule. "
            "Check brackets, ring-closure digits and element symbols."
        )
    try:
        Chem.SanitizeMol(mol)
    except Exception as exc:  # RDKit raises several exception classes here
        reason = re.sub(r"\s+", " ", str(exc)).strip()
        raise MoleculeError(f"SMILES {text!r} is not a valid molecule: {reason}.") from exc
    if len(Chem.GetMolFrags(mol)) > 1:
        raise MoleculeError(
            f"SMILES {text!r} has several disconnected fragments ('.'): give one molecule; "
            "salts and mixtures are not supported."
        )
    return mol


def canonical_smiles(smiles: str) -> str:
    """RDKit canonical SMILES (isomeric) of ``smiles``."""
    return Chem.MolToSmiles(parse_smiles(smiles))


def inchikey(mol_or_smiles: Chem.Mol | str) -> str:
    """Standard InChIKey, e.g. ``RRHGJUQNOFWUDK-UHFFFAOYSA-N`` for isoprene."""
    mol = parse_smiles(mol_or_smiles) if isinstance(mol_or_smiles, str) else mol_or_smiles
    key = Chem.MolToInchiKey(mol)
    if not key:
        raise MoleculeError("RDKit could not compute an InChIKey for this molecule.")
    return key


def embed(smiles: str, seed: int = 42, max_attempts: int = 5) -> Chem.Mol:
    """Molecule with explicit H and one 3D conformer (ETKDGv3, then MMFF94 or UFF clean-up).

    The same ``smiles`` and ``seed`` give the same coordinates (Å).
    """
    mol = Chem.AddHs(parse_smiles(smiles))
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    status = -1
    for attempt in range(max_attempts):
        params.randomSeed = int(seed) + attempt
        status = AllChem.EmbedMolecule(mol, params)
        if status == 0:
            break
    if status != 0:
        params.useRandomCoords = True
        params.randomSeed = int(seed)
        status = AllChem.EmbedMolecule(mol, params)
    if status != 0:
        raise MoleculeError(
            f"RDKit could not generate 3D coordinates for {smiles!r} (ETKDG failed "
            f"{max_attempts + 1} times). Strained or exotic structures are not supported."
        )
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    elif AllChem.UFFHasAllMoleculeParams(mol):
        AllChem.UFFOptimizeMolecule(mol, maxIters=2000)
    return mol
