"""`load_system` reads a box back from its data file and the molecule templates (no packing
again): the result equals the old rebuild (conformer -> parameters -> packing of every cell,
stacked again) field by field, for a species box and for a stack (no LAMMPS needed: a cell's
'nvt.data' here is its own system.data)."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from mdxfer.errors import MdxferError
from mdxfer.md.box import stack
from mdxfer.md.datafile import apply_state, read_state
from mdxfer.md.interaction import (
    build_species_system,
    load_system,
    prepare_species,
    prepare_stack,
    read_json,
)
from mdxfer.md.protocol import Protocol


def rebuilt(workdir, stage=None):
    """The old load_system: rebuild every cell from its SMILES, then read the stage's state."""
    info = read_json(workdir / "species.json")
    protocol = Protocol.from_dict(info["protocol"])
    if info["kind"] == "species":
        system = build_species_system(info["smiles"], protocol)
    else:
        system = stack(
            rebuilt(type(workdir)(info["bottom"]), "nvt"),
            rebuilt(type(workdir)(info["top"]), "nvt"),
            gap=protocol.stack_gap_A,
        )
    return apply_state(system, read_state(workdir / f"{stage or 'system'}.data"))


def assert_same(a, b):
    for f in dataclasses.fields(a):
        if f.name == "meta":  # packing notes (seed, packer): not part of the system
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "molecules":
            assert len(x) == len(y)
            for m, n in zip(x, y):
                for g in dataclasses.fields(m):
                    u, v = getattr(m, g.name), getattr(n, g.name)
                    assert np.array_equal(u, v) if isinstance(u, np.ndarray) else u == v, g.name
        elif isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert (x is None and y is None) or np.array_equal(x, y), f.name
        else:
            assert x == y, f.name


@pytest.mark.parametrize("packing", ["random", "packmol"])
def test_species_and_stack_topology_from_the_data_file(tmp_path, quick, packing):
    prot = dataclasses.replace(quick, packing=packing)
    cand = prepare_species("OCC", prot, tmp_path / "cand")  # ethanol, not canonical
    partner = prepare_species("CC(=C)C=C", prot, tmp_path / "partner", role="partner")
    for d in (cand, partner):
        assert_same(load_system(d), rebuilt(d))
        shutil.copy(d / "system.data", d / "nvt.data")  # stands in for the NVT's end state
        assert_same(load_system(d, "nvt"), rebuilt(d, "nvt"))
    pair = prepare_stack(cand, partner, prot, tmp_path / "pair")
    system = load_system(pair)
    assert_same(system, rebuilt(pair))
    info = read_json(pair / "species.json")
    assert system.n_molecules == info["n_molecules"] and len(system.molecules) == 2


def test_a_data_file_that_does_not_match_is_refused(tmp_path, quick):
    wd = prepare_species("CCO", quick, tmp_path / "box")
    text = (wd / "system.data").read_text().splitlines()
    i = text.index("Atoms  # full") + 2
    parts = text[i].split()
    parts[3] = "0.999000"  # another charge on atom 1
    text[i] = " ".join(parts)
    (wd / "compress.data").write_text("\n".join(text) + "\n")
    with pytest.raises(MdxferError, match="does not hold the molecules"):
        load_system(wd, "compress")
    with pytest.raises(MdxferError, match="has no nvt.data"):
        load_system(wd, "nvt")
