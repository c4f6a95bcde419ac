"""LAMMPS command fragments of mdxfer.md.ffinput that depend on the system: k-space or not."""

from __future__ import annotations

import dataclasses

from mdxfer.md.ffinput import cross_commands, has_kspace


def test_group_energies_ask_for_kspace_only_where_there_is_one():
    assert has_kspace("pair_style lj/cut 10\nkspace_style pppm 0.0001\n")
    assert not has_kspace("pair_style lj/cut 10\n# no kspace_style: no charges\n")
    assert "kspace yes" in cross_commands(5)[0]
    assert "kspace no" in cross_commands(5, kspace=False)[0]


def test_an_uncharged_cell_logs_its_halves_without_kspace(tmp_path, quick, launcher):
    """Hexane with MMFF94 charges carries none: no PPPM, and the energy between its halves is
    still taken (without the long-range Coulomb compute, which needs a k-space style)."""
    from mdxfer.md.interaction import prepare_species, run_compress, run_nvt

    p = dataclasses.replace(quick, n_molecules=8, nvt_ps=0.5, compress_ps=0.5, charges="mmff94")
    wd = prepare_species("CCCCCC", p, tmp_path / "hexane")
    assert not has_kspace((wd / "forcefield.lmp").read_text())
    run_compress(wd, p, launcher)
    nvt = run_nvt(wd, p, launcher)
    assert nvt["ehalves"] < 0
