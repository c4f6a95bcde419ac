"""Packing, data files read back with MDAnalysis, stacking."""

import MDAnalysis as mda
import numpy as np
import pytest

from mdxfer.errors import BoxError
from mdxfer.forcefield import parametrize
from mdxfer.md.box import min_intermolecular_distance, pack, stack, whole_molecules
from mdxfer.md.datafile import apply_state, read_state, write_data
from mdxfer.molecule import embed


@pytest.fixture(scope="module")
def isoprene():
    return parametrize(embed("CC(=C)C=C"), "CC(=C)C=C")


def test_pack_paper_box_counts_read_back_with_mdanalysis(isoprene, tmp_path):
    system = pack(isoprene, 100, box=(30, 30, 200), seed=3)
    path = write_data(system, tmp_path / "system.data")
    u = mda.Universe(str(path), format="DATA", atom_style="id resid type charge x y z")
    assert len(u.atoms) == 1300
    assert len(u.residues) == 100
    assert len(u.bonds) == 100 * 12
    assert len(u.angles) == 100 * 18
    assert len(u.dihedrals) == 100 * len(isoprene.dihedrals)
    assert len(u.impropers) == 100 * 12
    assert np.allclose(u.dimensions[:3], [30, 30, 200])
    assert abs(u.atoms.charges.sum()) < 1e-4
    text = path.read_text()
    assert "Atom Type Labels" in text and " C_2" in text and " H_" in text
    # 100 isoprene (68.12 g/mol) in 180,000 Å³
    assert system.density == pytest.approx(100 * 68.119 / 6.02214076e23 / 180000e-24, rel=1e-3)


def test_no_overlaps_under_minimum_image(isoprene):
    system = pack(isoprene, 100, box=(30, 30, 200), min_distance=2.0, seed=11)
    assert min_intermolecular_distance(system) >= 2.0
    tighter = pack(isoprene, 60, box=(25, 25, 40), min_distance=2.5, seed=2)
    assert min_intermolecular_distance(tighter) >= 2.5


def test_packing_is_seeded(isoprene):
    a = pack(isoprene, 10, seed=5).positions
    b = pack(isoprene, 10, seed=5).positions
    c = pack(isoprene, 10, seed=6).positions
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_molecule_too_big_for_the_box(isoprene):
    long_chain = parametrize(embed("CCCCCCCCCCCCCCCCCCCC"), "C20")
    with pytest.raises(BoxError, match="does not fit"):
        pack(long_chain, 10, box=(12, 12, 200))
    with pytest.raises(BoxError, match="too crowded|need about"):
        pack(isoprene, 100, box=(30, 30, 12))


def test_data_round_trip_and_stack(isoprene, tmp_path):
    ethanol = parametrize(embed("CCO"), "CCO")
    a = pack(ethanol, 20, box=(20, 20, 30), seed=1)
    b = pack(isoprene, 20, box=(20, 20, 40), seed=2)
    state = read_state(write_data(a, tmp_path / "a.data"))
    assert np.allclose(state.positions, a.positions, atol=1e-5)
    a2 = apply_state(a, state)
    s = stack(a2, b, gap=1.0)
    assert s.n_atoms == a.n_atoms + b.n_atoms
    assert s.box[2] == pytest.approx(30 + 40 + 2.0)
    assert s.n_molecules == 40
    # molecules stay whole: every bond shorter than 2 Å without periodic wrapping
    d = np.linalg.norm(s.positions[s.bonds[:, 0]] - s.positions[s.bonds[:, 1]], axis=1)
    assert d.max() < 2.0
    # candidate below, partner above (by centre of mass)
    z = whole_molecules(s)[:, 2]
    assert z[s.atom_mol < 20].mean() < z[s.atom_mol >= 20].mean()
    with pytest.raises(BoxError, match="cross-sections"):
        stack(a, pack(isoprene, 5, box=(25, 25, 40), seed=2))
