"""DREIDING typing tables and parameter lookups against the paper's rules (dreiding.md)."""

import math

import numpy as np
import pytest

from mdxfer.errors import ForceFieldError
from mdxfer.forcefield import parametrize
from mdxfer.forcefield.parameters import (
    angle_params,
    bond_params,
    harmonic_dihedral,
    lj_pair,
    lj_params,
)
from mdxfer.molecule import embed


def ff(smiles):
    return parametrize(embed(smiles), smiles)


def heavy_and_h(m):
    heavy = [t for s, t in zip(m.symbols, m.types) if s != "H"]
    hyd = sorted(t for s, t in zip(m.symbols, m.types) if s == "H")
    return heavy, hyd


@pytest.mark.parametrize(
    "smiles, heavy, hydrogens",
    [
        ("CC(=C)C=C", ["C_3", "C_2", "C_2", "C_2", "C_2"], ["H_"] * 8),  # isoprene
        ("CCO", ["C_3", "C_3", "O_3"], ["H_"] * 5 + ["H___A"]),  # ethanol
        ("c1ccccc1", ["C_R"] * 6, ["H_"] * 6),  # benzene
        ("CC#N", ["C_3", "C_1", "N_1"], ["H_"] * 3),  # acetonitrile
        ("CC(=O)O", ["C_3", "C_2", "O_2", "O_3"], ["H_"] * 3 + ["H___A"]),  # acetic acid
        ("c1ccncc1", ["C_R", "C_R", "C_R", "N_R", "C_R", "C_R"], ["H_"] * 5),  # pyridine
        ("CN", ["C_3", "N_3"], ["H_"] * 3 + ["H___A"] * 2),  # methylamine
        ("OCC(F)(F)F", ["O_3", "C_3", "C_3", "F_", "F_", "F_"], ["H_"] * 2 + ["H___A"]),  # TFE
        ("c1ccoc1", ["C_R", "C_R", "C_R", "O_R", "C_R"], ["H_"] * 4),  # furan
        ("CC(N)=O", ["C_3", "C_2", "N_R", "O_2"], ["H_"] * 3 + ["H___A"] * 2),  # acetamide
    ],
)
def test_typing_tables(smiles, heavy, hydrogens):
    m = ff(smiles)
    got_heavy, got_h = heavy_and_h(m)
    assert got_heavy == heavy
    assert got_h == sorted(hydrogens)


def test_charges_are_neutral_and_polar():
    m = ff("CCO")
    assert abs(m.charges.sum()) < 1e-9
    o = m.symbols.index("O")
    assert m.charges[o] < -0.3
    assert m.charges[m.types.index("H___A")] > 0.15


def test_lj_values_and_mixing():
    eps, sig = lj_params("C_3")
    assert eps == pytest.approx(0.0951)
    assert sig == pytest.approx(3.8983 / 2 ** (1 / 6))
    eps_n, _ = lj_params("N_1")
    assert eps_n == pytest.approx(0.0774)  # not the 0.0744 transcription error
    e, s = lj_pair("C_3", "H_")
    assert e == pytest.approx(math.sqrt(0.0951 * 0.0152))
    assert s == pytest.approx(math.sqrt(3.8983 * 3.195) / 2 ** (1 / 6))


def test_bond_parameters_keyed_by_order():
    # isoprene's central C_2-C_2 bond is a single bond: K = 350, r0 = 0.67 + 0.67 - 0.01
    k1, r1 = bond_params("C_2", "C_2", 1.0)
    k2, r2 = bond_params("C_2", "C_2", 2.0)
    assert (k1, r1) == (pytest.approx(350.0), pytest.approx(1.33))
    assert k2 == pytest.approx(700.0) and r2 == pytest.approx(1.33)
    assert bond_params("C_R", "C_R", 1.5)[0] == pytest.approx(525.0)
    assert bond_params("C_3", "H_", 1.0)[1] == pytest.approx(1.09)


def test_isoprene_topology_and_central_bond():
    m = ff("CC(=C)C=C")
    assert len(m.bonds) == 12 and len(m.angles) == 18
    # the C2-C3 single bond between two C_2 atoms is keyed as order 1 (not double)
    assert ("C_2", "C_2", 1.0) in m.bond_keys
    assert m.bond_keys.count(("C_2", "C_2", 2.0)) == 2
    cases = set(m.torsion_cases)
    assert {"sp2_sp2_single", "sp2_sp2_double", "sp2_sp3"} <= cases
    # the single bond: V = 5 split over its (3-1)*(3-1) = 4 torsions -> K = 5/2/4
    single = [k for k, c in zip(m.dihedral_keys, m.torsion_cases) if c == "sp2_sp2_single"]
    assert set(single) == {(0.625, -1, 2)}
    # four planar sp2 centres, three umbrella terms each, K = 40/3
    assert len(m.impropers) == 12
    assert all(k == pytest.approx(40 / 3, abs=1e-5) and w == 0.0 for k, w in m.improper_keys)


def test_angle_and_torsion_rules():
    assert angle_params("C_3") == (50.0, pytest.approx(109.471))
    assert angle_params("O_3")[1] == pytest.approx(104.51)
    assert angle_params("C_1")[1] == pytest.approx(180.0)
    # sp3-sp3: V=2, n=3, phi0=180 -> minimum at staggered (d = +1)
    assert harmonic_dihedral(2.0, 3, 180.0, 9) == (pytest.approx(2 / 18, abs=1e-6), 1, 3)
    # sp2-sp3: V=1, n=6, phi0=0 -> d = -1
    assert harmonic_dihedral(1.0, 6, 0.0, 6)[1:] == (-1, 6)
    # O column sp3-sp3: phi0 = 90, n = 2 -> d = +1
    assert harmonic_dihedral(2.0, 2, 90.0, 1)[1:] == (1, 2)
    acid = ff("CC(=O)O")
    assert "ocolumn_sp3_sp2" in acid.torsion_cases
    assert ff("CC#N").dihedrals.shape == (0, 4)  # sp centres carry no torsion
    biphenyl = ff("c1ccc(cc1)-c1ccccc1")
    assert "aromatic_exocyclic" in biphenyl.torsion_cases


def test_torsion_energy_minimum_is_staggered_for_ethane():
    ((k, d, n),) = set(ff("CC").dihedral_keys)
    energy = lambda phi: k * (1 + d * math.cos(n * math.radians(phi)))
    assert energy(180) == pytest.approx(0.0, abs=1e-12)
    assert energy(60) == pytest.approx(0.0, abs=1e-12)
    assert energy(0) == pytest.approx(2 * k)


@pytest.mark.parametrize(
    "smiles, fragment",
    [
        ("C[SiH3]", "Si"),
        ("CI", "I"),
        ("CP(C)C", "P"),
        ("C[O-]", "net charge"),
        ("[CH3]", "radical"),
    ],
)
def test_unsupported_chemistry_is_refused(smiles, fragment):
    with pytest.raises(ForceFieldError, match=fragment):
        ff(smiles)


def test_every_molecule_in_the_table_is_complete():
    for smiles in ("ClCCBr", "CSC", "O=C=O"):
        m = ff(smiles)
        assert np.isfinite(m.charges).all()
        for key in set(m.bond_keys):
            assert bond_params(*key)[0] > 0


def test_mmff94_charges_option_gives_larger_dipoles():
    from mdxfer.errors import ForceFieldError
    from mdxfer.forcefield.charges import partial_charges

    mol = embed("CC#N")
    x = mol.GetConformer().GetPositions()
    dip = lambda q: np.linalg.norm((q[:, None] * x).sum(0)) * 4.803  # Debye
    g, m = partial_charges(mol, "gasteiger"), partial_charges(mol, "mmff94")
    assert abs(m.sum()) < 1e-9 and abs(g.sum()) < 1e-9
    assert dip(m) > 1.5 * dip(g)  # 4.5 D vs 2.3 D (3.9 D measured)
    assert parametrize(mol, "CC#N", charges="mmff94").charges == pytest.approx(m)
    with pytest.raises(ForceFieldError, match="Unknown charge model"):
        partial_charges(mol, "qeq")
