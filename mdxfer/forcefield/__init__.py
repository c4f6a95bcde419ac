"""DREIDING force field: atom typing, parameters and charges for one molecule.

The main entry point is :func:`parametrize`, which turns an RDKit molecule with explicit
hydrogens and a conformer into a :class:`MoleculeFF` (types, charges, topology, parameters).
"""

from mdxfer.forcefield.parameters import MoleculeFF, load_table, parametrize
from mdxfer.forcefield.typing import assign_types

__all__ = ["MoleculeFF", "assign_types", "load_table", "parametrize"]
