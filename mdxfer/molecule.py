"""SMILES -> RDKit molecule with explicit hydrogens and a seeded 3D conformer.

Coordinates are in Å. The InChIKey (:func:`inchikey`) is the stable name used for files and
database keys; a SMILES string never becomes a path.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem

from mdxfer.errors import MoleculeError
from mdxfer.forcefield.parameters import supported_types
from mdxfer.validate import smiles_consumed_problem, smiles_text_problem

RDLogger.DisableLog("rdApp.*")


def parse_smiles(smiles: str) -> Chem.Mol:
    """Parse and sanitise a SMILES string (no hydrogens added).

    The whole string must be read: RDKit stops at whitespace, control and non-ASCII characters
    and returns what it read so far (``'CCÖ'`` would be ethane), so such strings are refused,
    and the heavy atoms RDKit read are compared with those the string writes
    (:mod:`mdxfer.validate`). Raises :class:`MoleculeError` with the reason.
    """
    if not isinstance(smiles, str) or not smiles.strip():
        raise MoleculeError("Empty SMILES string: give a molecule such as 'CC(=C)C=C'.")
    text = smiles.strip()
    problem = smiles_text_problem(text)
    if problem:
        raise MoleculeError(f"SMILES {text!r} is not one molecule as written: {problem}.")
    mol = Chem.MolFromSmiles(text, sanitize=False)
    if mol is None:
        raise MoleculeError(
            f"Cannot parse SMILES {text!r}: RDKit does not read it as a molecule. "
            "Check brackets, ring-closure digits and element symbols."
        )
    problem = smiles_consumed_problem(text, mol)
    if problem:
        raise MoleculeError(f"Cannot parse SMILES {text!r} completely: {problem}.")
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


@lru_cache(maxsize=1)
def md_elements() -> frozenset[str]:
    """Elements the DREIDING table of mdxfer has parameters for (from ``dreiding.toml``)."""
    return frozenset(t.split("_")[0] for t in supported_types())


def md_support_problem(mol: Chem.Mol) -> str:
    """Why ``mdxfer interaction`` (and a campaign) would refuse ``mol`` before any MD, or ``""``.

    The rule: one fragment, no net charge, no radical, and only elements of the force field
    (:func:`md_elements`: H, C, N, O, F, S, Cl, Br). A molecule that passes can still meet an
    atom type the DREIDING table lacks (e.g. a sulfone S); that is found when it is typed.
    """
    reasons = []
    if len(Chem.GetMolFrags(mol)) > 1:
        reasons.append("several fragments")
    charge = Chem.GetFormalCharge(mol)
    if charge:
        reasons.append(f"net charge {charge:+d}")
    if any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
        reasons.append("radical")
    other = sorted({a.GetSymbol() for a in mol.GetAtoms()} - md_elements())
    if other:
        reasons.append(
            f"unsupported element(s) {', '.join(other)} (the force field covers "
            f"{', '.join(sorted(md_elements()))})"
        )
    return "; ".join(reasons)


def check_md_supported(smiles: str) -> Chem.Mol:
    """:func:`parse_smiles`, then :func:`md_support_problem` as a :class:`MoleculeError`."""
    mol = parse_smiles(smiles)
    problem = md_support_problem(mol)
    if problem:
        raise MoleculeError(f"{smiles.strip()!r} cannot be simulated by mdxfer: {problem}.")
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


def embed_compact(smiles: str, seed: int = 42, n_conformers: int = 12) -> Chem.Mol:
    """Like :func:`embed`, but the most compact of ``n_conformers`` MMFF-relaxed conformers.

    A long chain (a C30 alkane, an antioxidant's C18 tail) embedded stretched out does not fit
    a 30 Å cross-section without touching its own periodic image; in its liquid it is coiled.
    Picks the smallest radius of gyration (Å); deterministic for ``smiles`` and ``seed``.
    """
    mol = embed(smiles, seed=seed)
    if mol.GetNumHeavyAtoms() < 8:
        return mol
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_conformers, params=params))
    if not ids:
        return embed(smiles, seed=seed)
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=2000)
    masses = [a.GetMass() for a in mol.GetAtoms()]

    def rg(cid: int) -> float:
        import numpy as np

        xyz = mol.GetConformer(cid).GetPositions()
        com = np.average(xyz, axis=0, weights=masses)
        return float(np.sqrt(np.average(((xyz - com) ** 2).sum(1), weights=masses)))

    best = min(ids, key=rg)
    out = Chem.Mol(mol, confId=best)
    out.RemoveAllConformers()
    out.AddConformer(Chem.Conformer(mol.GetConformer(best)), assignId=True)
    return out


#: Fraction of a liquid's volume filled by its molecules' van der Waals volume (RDKit grid
#: volume): 0.50-0.60 over isoprene, hexane, benzene, methanol, ethanol, acetonitrile, acetic
#: acid, pyridine, dichloromethane, N-methylacetamide, trifluoroethanol (measured, docs/protocol.md).
PACKING_FRACTION = 0.55


def vdw_volume(mol: Chem.Mol) -> float:
    """van der Waals volume of one molecule (Å³), RDKit grid with 0.2 Å spacing."""
    return float(AllChem.ComputeMolVolume(mol, gridSpacing=0.2))


def liquid_density_estimate(mol: Chem.Mol) -> float:
    """A rough liquid density (g/cm³, ±10 %) from the vdW volume and :data:`PACKING_FRACTION`.

    Used only to size a packed box; the barostat finds the real density.
    """
    from rdkit.Chem import Descriptors

    return float(Descriptors.MolWt(mol) * PACKING_FRACTION / (vdw_volume(mol) * 0.60221408))
