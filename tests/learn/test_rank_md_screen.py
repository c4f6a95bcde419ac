"""``rank``'s vectorised screen of what the MD side refuses gives md_support_problem's answers."""

from __future__ import annotations

from mdxfer.learn.data import qm9
from mdxfer.learn.featurize import featurize_mols, parse_smiles_or_none
from mdxfer.learn.rank import md_problems
from mdxfer.molecule import md_support_problem

AWKWARD = [
    "CCO.O",
    "CC(=O)[O-]",
    "[CH3]",
    "C[NH3+]",
    "[NH3+]CC(=O)[O-]",
    "ClCCBr",
    "CS(=O)C",
    "C[Si](C)(C)C",
    "[Na+].[Cl-]",
    "c1ccccc1I",
    "[H][H]",
    "O",
    "[O-][N+](=O)C",
    "C.C",
    "P(C)(C)C",
    "[Cu]",
    "[2H]C([2H])O",
    "C[C@H](N)C(=O)O",
    "c1ccncc1.c1ccccc1",
]


def test_screen_matches_md_support_problem_molecule_by_molecule():
    smiles = list(qm9.subset(3000, seed=12).SMILES) + AWKWARD
    mols = [parse_smiles_or_none(s) for s in smiles]
    assert all(m is not None for m in mols)
    got = md_problems(mols, featurize_mols(mols))
    assert got == [md_support_problem(m) for m in mols]
    flagged = dict(zip(AWKWARD, got[-len(AWKWARD) :]))
    assert flagged["CCO.O"] == "several fragments" and flagged["[NH3+]CC(=O)[O-]"] == ""
    assert flagged["[CH3]"] == "radical" and "Si" in flagged["C[Si](C)(C)C"]


def test_screen_of_nothing_is_empty():
    assert md_problems([], featurize_mols([])) == []
