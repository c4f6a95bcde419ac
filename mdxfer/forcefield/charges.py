"""Partial charges: Gasteiger-Marsili (RDKit), each molecule exactly neutral after rounding."""

from __future__ import annotations

import math

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdPartialCharges

from mdxfer.errors import ForceFieldError

#: Charges are written with this many decimals (e); the rounding residue is put on one atom.
CHARGE_DECIMALS = 6


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
    total = Chem.GetFormalCharge(mol)
    q = np.round(q, decimals)
    residue = round(total - q.sum(), decimals)
    q[int(np.argmax(np.abs(q)))] += residue
    return np.round(q, decimals)
