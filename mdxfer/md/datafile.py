"""LAMMPS data files (``atom_style full``) with type-label sections: writer and reader.

The writer is hand-written because no maintained library writes ``atom_style full`` with all
four bonded sections *and* LAMMPS' "Atom Type Labels" (ASE writes neither dihedrals nor labels;
MDAnalysis' writer drops labels). The reader reads back what LAMMPS' ``write_data`` produces:
box, positions (Å), image flags and velocities (Å/fs), ordered by atom id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdxfer.md.box import System


def bond_label(key: tuple) -> str:
    """Readable LAMMPS type label of a bond key, e.g. ``C_2-C_2-o1`` (order 1)."""
    ti, tj, order = key
    return f"{ti}-{tj}-o{order:g}".replace(".", "p")


def angle_label(key: str) -> str:
    """Readable LAMMPS type label of an angle key (its central atom type), e.g. ``X-C_3-X``."""
    return f"X-{key}-X"


def write_data(system: System, path: str | Path, title: str = "mdxfer system") -> Path:
    """Write ``system`` as a LAMMPS data file; returns the path. Coordinates in Å."""
    path = Path(path)
    tables = system.type_tables()
    index = {kind: {key: i + 1 for i, key in enumerate(keys)} for kind, keys in tables.items()}
    lines = [f"# {title} (written by mdxfer)", ""]
    lines += [
        f"{system.n_atoms} atoms",
        f"{len(system.bonds)} bonds",
        f"{len(system.angles)} angles",
        f"{len(system.dihedrals)} dihedrals",
        f"{len(system.impropers)} impropers",
        "",
        f"{len(tables['atom'])} atom types",
        f"{len(tables['bond'])} bond types",
        f"{len(tables['angle'])} angle types",
        f"{len(tables['dihedral'])} dihedral types",
        f"{len(tables['improper'])} improper types",
        "",
        f"0.0 {system.box[0]:.6f} xlo xhi",
        f"0.0 {system.box[1]:.6f} ylo yhi",
        f"0.0 {system.box[2]:.6f} zlo zhi",
        "",
        "Atom Type Labels",
        "",
    ]
    lines += [f"{i + 1} {t}" for i, t in enumerate(tables["atom"])]
    if tables["bond"]:
        lines += ["", "Bond Type Labels", ""]
        lines += [f"{i + 1} {bond_label(k)}" for i, k in enumerate(tables["bond"])]
    if tables["angle"]:
        lines += ["", "Angle Type Labels", ""]
        lines += [f"{i + 1} {angle_label(k)}" for i, k in enumerate(tables["angle"])]
    mass_of = {}
    for t, m in zip(system.types, system.masses):
        mass_of.setdefault(t, m)
    lines += ["", "Masses", ""]
    lines += [f"{i + 1} {mass_of[t]:.4f}  # {t}" for i, t in enumerate(tables["atom"])]
    lines += ["", "Atoms  # full", ""]
    atype = index["atom"]
    images = system.images if system.images is not None else np.zeros((system.n_atoms, 3), int)
    for i in range(system.n_atoms):
        x, y, z = system.positions[i]
        ix, iy, iz = images[i]
        lines.append(
            f"{i + 1} {system.atom_mol[i] + 1} {atype[system.types[i]]} "
            f"{system.charges[i]:.6f} {x:.6f} {y:.6f} {z:.6f} {ix} {iy} {iz}"
        )
    if system.velocities is not None:
        lines += ["", "Velocities", ""]
        lines += [
            f"{i + 1} {v[0]:.8g} {v[1]:.8g} {v[2]:.8g}" for i, v in enumerate(system.velocities)
        ]
    for title_, arr, keys, kind in (
        ("Bonds", system.bonds, system.bond_keys, "bond"),
        ("Angles", system.angles, system.angle_keys, "angle"),
        ("Dihedrals", system.dihedrals, system.dihedral_keys, "dihedral"),
        ("Impropers", system.impropers, system.improper_keys, "improper"),
    ):
        if len(arr) == 0:
            continue
        lines += ["", title_, ""]
        lookup = index[kind]
        for n, (row, key) in enumerate(zip(arr, keys)):
            atoms = " ".join(str(a + 1) for a in row)
            lines.append(f"{n + 1} {lookup[key]} {atoms}")
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class DataState:
    """What a LAMMPS-written data file says about the atoms, ordered by atom id."""

    box: np.ndarray  # (3,) lengths, Å
    origin: np.ndarray  # (3,) lower corner, Å
    positions: np.ndarray  # (N, 3), Å, relative to ``origin``
    images: np.ndarray  # (N, 3) int
    velocities: np.ndarray | None  # (N, 3), Å/fs
    molecule_ids: np.ndarray | None = None  # (N,) int, 1-based as in the file
    types: list[str] | None = None  # (N,) type labels (numbers where no label is given)
    charges: np.ndarray | None = None  # (N,), e


_SECTION_NAMES = {
    "Atoms",
    "Velocities",
    "Masses",
    "Bonds",
    "Angles",
    "Dihedrals",
    "Impropers",
    "Pair Coeffs",
    "PairIJ Coeffs",
    "Bond Coeffs",
    "Angle Coeffs",
    "Dihedral Coeffs",
    "Improper Coeffs",
    "BondBond Coeffs",
    "BondAngle Coeffs",
    "MiddleBondTorsion Coeffs",
    "EndBondTorsion Coeffs",
    "AngleTorsion Coeffs",
    "AngleAngleTorsion Coeffs",
    "BondBond13 Coeffs",
    "AngleAngle Coeffs",
    "Atom Type Labels",
    "Bond Type Labels",
    "Angle Type Labels",
    "Dihedral Type Labels",
    "Improper Type Labels",
}


def read_state(path: str | Path) -> DataState:
    """Read box, positions, image flags and velocities — and each atom's molecule id, type
    label and charge — from a LAMMPS data file (``atom_style full``)."""
    text = Path(path).read_text().splitlines()
    lo = np.zeros(3)
    hi = np.zeros(3)
    sections: dict[str, list[str]] = {}
    current = None
    for raw in text[1:]:
        line = raw.split("#")[0].strip()
        if not line:
            continue
        if line in _SECTION_NAMES:
            current = line
            sections[current] = []
            continue
        if current is None:
            parts = line.split()
            for axis, tag in enumerate(("xlo", "ylo", "zlo")):
                if len(parts) >= 4 and parts[2] == tag:
                    lo[axis], hi[axis] = float(parts[0]), float(parts[1])
        else:
            sections[current].append(line)
    atoms = np.array([r.split() for r in sections["Atoms"]], dtype=object)
    ids = atoms[:, 0].astype(int)
    order = np.argsort(ids)
    xyz = atoms[order, 4:7].astype(float) - lo
    if atoms.shape[1] >= 10:
        img = atoms[order, 7:10].astype(int)
    else:
        img = np.zeros((len(ids), 3), dtype=int)
    vel = None
    if "Velocities" in sections:
        v = np.array([r.split() for r in sections["Velocities"]], dtype=float)
        vel = v[np.argsort(v[:, 0].astype(int)), 1:4]
    labels = dict(r.split()[:2] for r in sections.get("Atom Type Labels", []))
    types = [labels.get(t, t) for t in atoms[order, 2]]
    return DataState(
        box=hi - lo,
        origin=lo,
        positions=xyz,
        images=img,
        velocities=vel,
        molecule_ids=atoms[order, 1].astype(int),
        types=types,
        charges=atoms[order, 3].astype(float),
    )


def apply_state(system: System, state: DataState) -> System:
    """A copy of ``system`` with box, positions, images and velocities from ``state``."""
    if len(state.positions) != system.n_atoms:
        raise ValueError(
            f"Data file has {len(state.positions)} atoms, the system {system.n_atoms}."
        )
    from dataclasses import replace

    return replace(
        system,
        box=state.box.copy(),
        positions=state.positions.copy(),
        images=state.images.copy(),
        velocities=state.velocities,
        meta=dict(system.meta),
    )
