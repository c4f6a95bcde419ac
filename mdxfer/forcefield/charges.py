"""Partial charges (units of e), each molecule exactly neutral after rounding.

``gasteiger`` (Gasteiger-Marsili, the usual DREIDING companion and the default) or ``mmff94``
(RDKit's MMFF94 charges: larger dipoles, e.g. acetonitrile 4.5 D against Gasteiger's 2.3 D and
3.9 D measured).
"""

from __future__ import annotations

import math

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdPartialCharges

from mdxfer.errors import ForceFieldError

#: Charges are written with this many decimals (e); the rounding residue is put on one atom.
CHARGE_DECIMALS = 6


CHARGE_MODELS = ("gasteiger", "mmff94")


def neutralize(q: np.ndarray, total: int, decimals: int = CHARGE_DECIMALS) -> np.ndarray:
    """Round to ``decimals`` and put the residue on the largest charge so they sum to ``total``."""
    q = np.round(np.asarray(q, dtype=float), decimals)
    residue = round(total - q.sum(), decimals)
    q[int(np.argmax(np.abs(q)))] += residue
    return np.round(q, decimals)


def mmff94_charges(mol: Chem.Mol, decimals: int = CHARGE_DECIMALS) -> np.ndarray:
    """RDKit MMFF94 partial charges (e), neutral after rounding."""
    from rdkit.Chem import AllChem

    props = AllChem.MMFFGetMoleculeProperties(mol)
    if props is None:
        raise ForceFieldError("MMFF94 has no charges for this molecule; use charges = 'gasteiger'.")
    q = [props.GetMMFFPartialCharge(i) for i in range(mol.GetNumAtoms())]
    return neutralize(q, Chem.GetFormalCharge(mol), decimals)


def partial_charges(mol: Chem.Mol, model: str = "gasteiger") -> np.ndarray:
    """Charges of ``mol`` (e) by ``model`` (one of :data:`CHARGE_MODELS`)."""
    if model == "gasteiger":
        return gasteiger_charges(mol)
    if model == "mmff94":
        return mmff94_charges(mol)
    raise ForceFieldError(f"Unknown charge model {model!r}; use one of {', '.join(CHARGE_MODELS)}.")


def gasteiger_charges(mol: Chem.Mol, decimals: int = CHARGE_DECIMALS) -> np.ndarray:
    """Gasteiger charges (units of e) summing exactly to the formal charge after rounding."""
    work = Chem.Mol(mol)
    rdPartialCharges.ComputeGasteigerCharges(work, nIter=12, throwOnParamFailure=False)
    q = np.array([a.GetDoubleProp("_GasteigerCharge") for a in work.GetAtoms()], dtype=float)
    if not np.all(np.isfinite(q)):
        bad = sorted({a.GetSymbol() for a, v in zip(work.GetAtoms(), q) if not math.isfinite(v)})
        raise ForceFieldError(
            f"Gasteiger charges are undefined for element(s) {', '.join(bad)}; "
            "mdxfer cannot assign DREIDING charges to this molecule."
        )
    return neutralize(q, Chem.GetFormalCharge(mol), decimals)
