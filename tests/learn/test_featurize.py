"""DGL-LifeSci-identical featurisation, PyG graphs and packed batches, on real QM9 rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem, RDLogger

from mdxfer.learn import featurize as F
from mdxfer.learn.data import qm9


def nz(row: np.ndarray) -> list[int]:
    return [int(i) for i in np.nonzero(row)[0]]


# --------------------------------------------------------------------------------------------
# a line-by-line port of dgllife/utils/featurizers.py (CanonicalAtom/BondFeaturizer), the
# reference the vectorised code must equal bit for bit. It calls GetImplicitValence() exactly
# as DGL-LifeSci does (deprecated in RDKit >= 2024.09, hence the silenced log).
# --------------------------------------------------------------------------------------------


def _one_hot_encoding(x, allowable_set, encode_unknown=False):
    if encode_unknown and (allowable_set[-1] is not None):
        allowable_set.append(None)
    if encode_unknown and (x not in allowable_set):
        x = None
    return list(map(lambda s: x == s, allowable_set))


def _dgl_atom(atom) -> list:
    types = [
        "C",
        "N",
        "O",
        "S",
        "F",
        "Si",
        "P",
        "Cl",
        "Br",
        "Mg",
        "Na",
        "Ca",
        "Fe",
        "As",
        "Al",
        "I",
        "B",
        "V",
        "K",
        "Tl",
        "Yb",
        "Sb",
        "Sn",
        "Ag",
        "Pd",
        "Co",
        "Se",
        "Ti",
        "Zn",
        "H",
        "Li",
        "Ge",
        "Cu",
        "Au",
        "Ni",
        "Cd",
        "In",
        "Mn",
        "Zr",
        "Cr",
        "Pt",
        "Hg",
        "Pb",
    ]
    hyb = [
        Chem.rdchem.HybridizationType.SP,
        Chem.rdchem.HybridizationType.SP2,
        Chem.rdchem.HybridizationType.SP3,
        Chem.rdchem.HybridizationType.SP3D,
        Chem.rdchem.HybridizationType.SP3D2,
    ]
    return (
        _one_hot_encoding(atom.GetSymbol(), types)
        + _one_hot_encoding(atom.GetDegree(), list(range(11)))
        + _one_hot_encoding(atom.GetImplicitValence(), list(range(7)))
        + [atom.GetFormalCharge()]
        + [atom.GetNumRadicalElectrons()]
        + _one_hot_encoding(atom.GetHybridization(), hyb)
        + [atom.GetIsAromatic()]
        + _one_hot_encoding(atom.GetTotalNumHs(), list(range(5)))
    )


def _dgl_bond(bond) -> list:
    bt = [
        Chem.rdchem.BondType.SINGLE,
        Chem.rdchem.BondType.DOUBLE,
        Chem.rdchem.BondType.TRIPLE,
        Chem.rdchem.BondType.AROMATIC,
    ]
    st = [
        Chem.rdchem.BondStereo.STEREONONE,
        Chem.rdchem.BondStereo.STEREOANY,
        Chem.rdchem.BondStereo.STEREOZ,
        Chem.rdchem.BondStereo.STEREOE,
        Chem.rdchem.BondStereo.STEREOCIS,
        Chem.rdchem.BondStereo.STEREOTRANS,
    ]
    return (
        _one_hot_encoding(bond.GetBondType(), bt)
        + [bond.GetIsConjugated()]
        + [bond.IsInRing()]
        + _one_hot_encoding(bond.GetStereo(), st)
    )


def dgl_reference(mol) -> tuple[np.ndarray, np.ndarray]:
    RDLogger.DisableLog("rdApp.*")
    try:
        a = np.array([_dgl_atom(x) for x in mol.GetAtoms()], dtype=np.float32).reshape(-1, 74)
        b = np.array([_dgl_bond(x) for x in mol.GetBonds()], dtype=np.float32).reshape(-1, 12)
    finally:
        RDLogger.EnableLog("rdApp.*")
    return a, b


TRICKY = [
    "[NH3+]CC([O-])=O",
    "[CH2]",
    "C[N+](C)(C)C",
    "[2H]OC",
    "c1ccncc1",
    "[nH]1cccc1",
    "CCl",
    "F[P-](F)(F)(F)(F)F",
    "O=S(=O)(O)O",
    "[Na+].[Cl-]",
    "C/C=C/C",
    r"C/C=C\C",
    "[Ga]C",
    "[Se]",
    "[Xe]",
    "C[Si](C)(C)C",
    "Brc1ccc(I)cc1",
    "CC(=O)[O-].[K+]",
    "[Fe+2]",
    "*C",
    "[H][H]",
]


@pytest.fixture(scope="module")
def qm9_smiles() -> list[str]:
    return list(qm9.subset(300, seed=7)["SMILES"])


# --------------------------------------------------------------------------------------------
# pinned vectors
# --------------------------------------------------------------------------------------------


def test_feature_sizes_and_symbol_list():
    assert F.ATOM_FEATURE_SIZE == 74 and F.BOND_FEATURE_SIZE == 12
    assert len(F.ATOM_TYPES) == 43
    assert F.ATOM_TYPES[:5] == ("C", "N", "O", "S", "F") and F.ATOM_TYPES[29] == "H"
    assert F.ATOM_TYPES[-1] == "Pb"


def test_ethanol_atoms_equal_dgllife_docstring():
    # CanonicalAtomFeaturizer's docstring example (dgllife/utils/featurizers.py) for 'CCO':
    # the non-zero positions of its three printed 74-vectors.
    x = F.canonical_atom_features(Chem.MolFromSmiles("CCO"))
    assert x.shape == (3, 74) and x.dtype == np.float32
    assert nz(x[0]) == [0, 44, 57, 65, 72]  # C, degree 1, impl. valence 3, SP3, 3 H
    assert nz(x[1]) == [0, 45, 56, 65, 71]  # C, degree 2, impl. valence 2, SP3, 2 H
    assert nz(x[2]) == [2, 44, 55, 65, 70]  # O, degree 1, impl. valence 1, SP3, 1 H
    assert set(np.unique(x)) == {0.0, 1.0}


def test_ethanol_bonds_equal_dgllife_docstring():
    e = F.canonical_bond_features(Chem.MolFromSmiles("CCO"))
    assert e.shape == (2, 12)  # one row per RDKit bond (DGL prints 4 rows: both directions)
    expected = np.array([1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0], dtype=np.float32)
    assert np.array_equal(e[0], expected) and np.array_equal(e[1], expected)


def test_hand_checked_atoms():
    # pyridine N: N(1), degree 2 (43+2), implicit valence 0 (54), SP2 (63+1), aromatic (68), 0 H (69)
    x = F.canonical_atom_features(Chem.MolFromSmiles("c1ccncc1"))
    assert nz(x[3]) == [1, 45, 54, 64, 68, 69]
    # pyridine C-H: C, degree 2, implicit valence 1 (55), SP2, aromatic, 1 H (70)
    assert nz(x[0]) == [0, 45, 55, 64, 68, 70]
    # glycine zwitterion: [NH3+] has charge +1 in column 61, bracket Hs are not implicit (54),
    # 3 H in total (72); [O-] has -1 in column 61 and is SP2 (64)
    x = F.canonical_atom_features(Chem.MolFromSmiles("[NH3+]CC([O-])=O"))
    assert nz(x[0]) == [1, 44, 54, 61, 65, 72] and x[0, 61] == 1.0
    assert nz(x[3]) == [2, 44, 54, 61, 64, 69] and x[3, 61] == -1.0
    # methylene biradical: 2 radical electrons in column 62 (a raw count, not one-hot)
    x = F.canonical_atom_features(Chem.MolFromSmiles("[CH2]"))
    assert x[0, 62] == 2.0 and nz(x[0]) == [0, 43, 54, 62, 65, 71]
    # chlorine is symbol 7 of DGL's list
    assert F.canonical_atom_features(Chem.MolFromSmiles("CCl"))[1, 7] == 1.0


def test_unknown_element_gets_no_type_bit():
    # CanonicalAtomFeaturizer calls atom_type_one_hot with encode_unknown=False: Ga is not in
    # the 43 symbols, so its type block is all zero (no 44th "unknown" bit exists).
    x = F.canonical_atom_features(Chem.MolFromSmiles("[Ga]C"))
    assert x[0, :43].sum() == 0 and x[1, 0] == 1.0


def test_hand_checked_bonds():
    e = F.canonical_bond_features(Chem.MolFromSmiles("c1ccccc1"))
    assert all(nz(r) == [3, 4, 5, 6] for r in e)  # aromatic, conjugated, in ring, STEREONONE
    e = F.canonical_bond_features(Chem.MolFromSmiles("C/C=C/C"))
    assert nz(e[1]) == [1, 9]  # double, STEREOE
    e = F.canonical_bond_features(Chem.MolFromSmiles(r"C/C=C\C"))
    assert nz(e[1]) == [1, 8]  # double, STEREOZ
    e = F.canonical_bond_features(Chem.MolFromSmiles("C#N"))
    assert nz(e[0]) == [2, 6]  # triple, not conjugated
    e = F.canonical_bond_features(Chem.MolFromSmiles("C=CC=C"))
    assert nz(e[0]) == [1, 4, 6] and nz(e[1]) == [0, 4, 6]  # conjugated double and single


# --------------------------------------------------------------------------------------------
# bit-for-bit equality with the DGL-LifeSci port
# --------------------------------------------------------------------------------------------


def test_equal_to_dgllife_port_on_qm9(qm9_smiles):
    n_atoms = 0
    for s in qm9_smiles:
        mol = Chem.MolFromSmiles(s)
        ref_a, ref_b = dgl_reference(mol)
        a, b = F.canonical_atom_features(mol), F.canonical_bond_features(mol)
        assert a.dtype == ref_a.dtype and np.array_equal(a, ref_a), s
        assert np.array_equal(b, ref_b), s
        n_atoms += len(a)
    assert n_atoms > 1500


@pytest.mark.parametrize("smiles", TRICKY)
def test_equal_to_dgllife_port_on_tricky_molecules(smiles):
    mol = F.parse_smiles_or_none(smiles)
    assert mol is not None
    ref_a, ref_b = dgl_reference(mol)
    assert np.array_equal(F.canonical_atom_features(mol), ref_a)
    assert np.array_equal(F.canonical_bond_features(mol), ref_b)


# --------------------------------------------------------------------------------------------
# graphs and batches
# --------------------------------------------------------------------------------------------


def test_pyg_graph_uses_both_directions_in_dgl_order():
    mol = Chem.MolFromSmiles("CC=O")
    g = F.to_pyg(mol, y=1.5)
    assert g.x.shape == (3, 74) and g.edge_attr.shape == (4, 12)
    assert g.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]  # bond i -> edges 2i, 2i+1
    bf = F.canonical_bond_features(mol)
    assert torch.equal(g.edge_attr, torch.from_numpy(np.repeat(bf, 2, axis=0)))
    assert float(g.y) == 1.5


def test_packed_batch_equals_pyg_batch(qm9_smiles):
    from torch_geometric.data import Batch

    feats = F.featurize_smiles(qm9_smiles)
    idx = np.random.default_rng(0).choice(len(qm9_smiles), 40, replace=False)
    mine = feats.graphs.to_batch(idx)
    ref = Batch.from_data_list([F.to_pyg(Chem.MolFromSmiles(qm9_smiles[i])) for i in idx])
    for key in ("x", "edge_index", "edge_attr", "batch", "ptr"):
        assert torch.equal(getattr(mine, key), getattr(ref, key)), key
    assert mine.num_graphs == 40


def test_failures_reported_and_order_kept():
    smiles = ["CCO", "not a smiles", "c1ccccc1", "C1CC", "O"]
    f = F.featurize_smiles(smiles)
    assert f.failed == [1, 3]
    assert f.index.tolist() == [0, 2, 4]
    assert f.graphs.n_atoms.tolist() == [3, 6, 1]


def test_processes_and_chunks_give_identical_graphs(qm9_smiles):
    one = F.featurize_smiles(qm9_smiles).graphs
    many = F.featurize_smiles(qm9_smiles, n_jobs=2, chunk_size=70).graphs
    for key in ("x", "edge_index", "edge_attr", "node_ptr", "edge_ptr", "z"):
        assert np.array_equal(getattr(one, key), getattr(many, key)), key


def test_cache_round_trip(qm9_smiles, tmp_path, monkeypatch):
    monkeypatch.setenv("MDXFER_CACHE_DIR", str(tmp_path))
    first = F.cached_featurize(qm9_smiles[:50])
    files = list((tmp_path / "graphs").glob("*.npz"))
    assert len(files) == 1
    second = F.cached_featurize(qm9_smiles[:50])
    assert np.array_equal(first.graphs.x, second.graphs.x)
    assert np.array_equal(first.graphs.edge_index, second.graphs.edge_index)
    assert np.array_equal(first.graphs.edge_attr, second.graphs.edge_attr)
    # a different list is a different cache entry
    F.cached_featurize(qm9_smiles[:51])
    assert len(list((tmp_path / "graphs").glob("*.npz"))) == 2


def test_applicability_flags():
    f = F.featurize_smiles(["CCO", "CCCl", "CCCCCCCCCC", "c1ccsc1", "OC(F)(F)F"])
    notes = F.applicability(f.graphs)
    assert notes[0] == "" and notes[4] == ""
    assert notes[1] == "elements Cl"
    assert notes[2] == "10 heavy atoms > 9"
    assert notes[3] == "elements S"
