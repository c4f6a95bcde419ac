"""MDAnalysis Universes of real run folders (quick protocol, real LAMMPS): type names, elements,
species segments, the DCD time step, compression extensions, and the recipe in docs/results.md."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

mda = pytest.importorskip("MDAnalysis")

from mdxfer.errors import MdxferError  # noqa: E402
from mdxfer.md import universe  # noqa: E402
from mdxfer.md.trajectory import element_of, trajectory_files, type_labels  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "results.md"


def test_stack_segments_types_names_and_time_step(quick_ethanol_run, quick):
    out, _ = quick_ethanol_run
    u = universe(out / "stack", "nvt")
    assert u.atoms.n_atoms == 20 * 9 + 20 * 13
    cand, partner = u.select_atoms("segid candidate"), u.select_atoms("segid partner")
    assert cand.n_atoms == 180 and cand.n_residues == 20 and set(cand.residues.resnames) == {"CAND"}
    assert (
        partner.n_atoms == 260
        and partner.n_residues == 20
        and set(partner.residues.resnames) == {"PART"}
    )
    assert len(u.segments) == 2
    # ethanol: C2 O H6 per molecule; isoprene: C5 H8; the candidate lies below the partner at the start
    assert sorted(cand.residues[0].atoms.elements) == ["C", "C", "H", "H", "H", "H", "H", "H", "O"]
    assert list(cand.residues[0].atoms.names[:3]) == ["C1", "C2", "O1"]
    assert sorted(set(partner.elements)) == ["C", "H"]
    # DREIDING type names: the hydroxyl H is the donor type, the ether-like O is O_3
    assert u.select_atoms("type H___A").n_atoms == 20 and u.select_atoms("type O_3").n_atoms == 20
    assert u.select_atoms("type C_2").n_atoms == 20 * 4  # isoprene's sp2 carbons
    assert set(u.select_atoms("type C_2").segids) == {"partner"}
    assert u.select_atoms("type 1").n_atoms == 0  # numbers are gone
    # time: frames every dump_every_fs, read in fs (a bare DCD read says 9.78 ps per 200 fs)
    dt = quick.dump_every_fs / 1000.0
    assert u.trajectory.dt == pytest.approx(dt)
    steps = quick.steps(quick.stack_nvt_ps)
    assert u.trajectory.n_frames == steps // quick.every(quick.dump_every_fs) + 1
    assert np.allclose(np.diff([ts.time for ts in u.trajectory]), dt)
    bare = mda.Universe(
        str(out / "stack" / "system.data"),
        str(out / "stack" / "traj_nvt.dcd"),
        topology_format="DATA",
    )
    assert bare.trajectory.dt == pytest.approx(
        dt * 48.88821, rel=1e-3
    )  # the AKMA trap the helper avoids
    assert np.allclose(bare.trajectory[3].positions, u.trajectory[3].positions)


def test_single_cells_and_stage_choice(quick_ethanol_run):
    out, _ = quick_ethanol_run
    p = universe(out / "partner", None)  # system.data alone: one frame
    assert p.trajectory.n_frames == 1 and list(p.segments.segids) == ["partner"]
    assert set(p.residues.resnames) == {"PART"}
    c = universe(out / "candidate", "compress")
    assert list(c.segments.segids) == ["candidate"] and c.trajectory.n_frames > 1
    labels = type_labels(out / "candidate" / "system.data")
    assert sorted(labels.values()) == sorted(set(c.atoms.types)) == ["C_3", "H_", "H___A", "O_3"]
    assert [element_of(t) for t in ("C_R", "H___A", "Cl", "O_3.x", "Br")] == [
        "C",
        "H",
        "Cl",
        "O",
        "Br",
    ]
    with pytest.raises(MdxferError, match="no species.json.*candidate, partner, stack"):
        universe(out, "nvt")
    with pytest.raises(
        MdxferError, match="no trajectory or data file of stage 'anneal'.*compress, nvt"
    ):
        universe(out / "candidate", "anneal")


def test_compression_extensions_are_one_trajectory(tmp_path, quick, launcher):
    """A barostat stage extended twice: traj_compress.dcd + _more1 + _more2, read in order."""
    from mdxfer.md.interaction import prepare_species, run_compress

    prot = dataclasses.replace(
        quick,
        n_molecules=8,
        compress_ps=1.0,
        compress_extend_ps=1.0,
        compress_extra_max_ps=2.0,
        plateau_drift=1e-12,
    )
    cell = prepare_species("CCO", prot, tmp_path / "cell")
    summary = run_compress(cell, prot, launcher)
    assert summary["extensions"] == 2
    files = trajectory_files(cell, "compress")
    assert [f.name for f in files] == [
        "traj_compress.dcd",
        "traj_compress_more1.dcd",
        "traj_compress_more2.dcd",
    ]
    u = universe(cell, "compress")
    parts = [
        mda.Universe(
            str(cell / "system.data"),
            str(f),
            topology_format="DATA",
            format="LAMMPS",
            timeunit="fs",
        )
        for f in files
    ]
    assert u.trajectory.n_frames == sum(p.trajectory.n_frames for p in parts)
    chained = np.array([ts.dimensions[2] for ts in u.trajectory])
    separate = np.concatenate([[ts.dimensions[2] for ts in p.trajectory] for p in parts])
    assert np.allclose(chained, separate)  # same frames, in file order
    assert u.trajectory.dt == pytest.approx(prot.dump_every_fs / 1000.0)


def test_docs_recipe_runs(quick_ethanol_run, capsys):
    out, _ = quick_ethanol_run
    text = DOCS.read_text()
    block = re.search(
        r"<!-- recipe: tested by tests/md/test_universe.py[^\n]*\n```python\n(.*?)```", text, re.S
    )
    assert block, "the MDAnalysis recipe is missing from docs/results.md"
    code = block.group(1).replace('Path("runs/ethanol")', f"Path({str(out)!r})")
    assert f"Path({str(out)!r})" in code
    exec(compile(code, str(DOCS), "exec"), {})
    printed = capsys.readouterr().out
    assert "11 frames every 0.2 ps; 20 candidate and 20 partner molecules" in printed
    assert printed.count(" ps  slab centres z = ") == 3


def test_energy_plot_marks_what_was_averaged(quick_ethanol_run, tmp_path):
    """energy.png / density.png: the averaged NVT window is shaded and its mean ± stderr drawn,
    from the stage summary (start-up discard included), with units on the axes."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mdxfer.md.plots import _mark_average, leg_series, plot_legs

    out, _ = quick_ethanol_run
    cell = out / "stack"
    summary = json.loads((cell / "nvt.json").read_text())
    df = leg_series(cell)
    fig, ax = plt.subplots()
    _mark_average(ax, df, summary, "etotal", "kcal/mol")
    nvt_t = df[df.stage == "nvt"].time_ps
    (span,) = ax.patches
    x = [span.get_x(), span.get_x() + span.get_width()]
    assert min(x) == pytest.approx(nvt_t.iloc[0] + summary["start_ps"]) and max(x) == pytest.approx(
        nvt_t.iloc[-1]
    )
    assert summary["start_ps"] > 0  # the start-up samples are left out
    labels = [h.get_label() for h in ax.collections]
    assert f"mean {summary['etotal']:.4g} ± {summary['etotal_stderr']:.2g} kcal/mol" in labels
    plt.close(fig)
    paths = plot_legs(
        {"candidate": out / "candidate", "partner": out / "partner", "stack": cell}, tmp_path
    )
    assert [p.name for p in paths] == ["density.png", "energy.png"] and all(
        p.stat().st_size > 5000 for p in paths
    )


def test_ase_export_keeps_frames_cell_charges_and_slabs(quick_ethanol_run, tmp_path):
    """`mdxfer export` / export_ase: every frame of the stack in extxyz, read back by ASE with
    the same positions, cell, charges, molecules and slab labels as the Universe."""
    from ase.io import read
    from typer.testing import CliRunner

    from mdxfer.cli.main import app
    from mdxfer.md.trajectory import ase_frames, export_ase

    out, _ = quick_ethanol_run
    u = universe(out / "stack", "nvt")
    frames = ase_frames(out / "stack", "nvt")
    assert len(frames) == len(u.trajectory)
    u.trajectory[-1]
    last = frames[-1]
    assert np.allclose(last.positions, u.atoms.positions, atol=1e-4)
    assert np.allclose(last.cell.lengths(), u.dimensions[:3], atol=1e-4)
    assert np.allclose(last.get_initial_charges(), u.atoms.charges)
    assert list(last.get_chemical_symbols()) == list(u.atoms.elements)
    assert last.info["time_ps"] == pytest.approx(u.trajectory.time)
    path = tmp_path / "stack.extxyz"
    assert export_ase(out / "stack", path, "nvt", every=2) == len(u.trajectory[::2])
    back = read(path, index=":")
    assert len(back) == len(u.trajectory[::2])
    assert set(back[0].arrays["slab"]) == {"candidate", "partner"}
    assert (back[0].arrays["slab"] == "candidate").sum() == 180
    assert np.array_equal(back[0].arrays["mol-id"], u.atoms.resids)
    # the CLI writes the same file; a format ASE cannot write is a clear error
    cli = tmp_path / "cli.xyz"
    r = CliRunner().invoke(
        app, ["export", str(out / "candidate"), "--stage", "nvt", "--out", str(cli)]
    )
    assert r.exit_code == 0, r.output
    assert len(read(cli, index=":")) == len(universe(out / "candidate", "nvt").trajectory)
    for bad in ("x.vasp", "x.unknownformat"):
        with pytest.raises(MdxferError, match="ASE cannot write"):
            export_ase(out / "stack", tmp_path / bad, "nvt")
        assert not (tmp_path / bad).exists()
    assert export_ase(out / "stack", tmp_path / "POSCAR.vasp", None) == 1  # the built box
