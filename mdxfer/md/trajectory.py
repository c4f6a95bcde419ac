"""MDAnalysis Universes of mdxfer run folders, with names, elements, species and time right.

A cell folder (``OUT/candidate``, ``OUT/partner``, ``OUT/stack``, a campaign task's folder)
holds ``system.data`` (topology: bonds, charges, masses, molecule ids, and LAMMPS' "Atom Type
Labels"), ``species.json`` (what the cell holds) and one DCD per stage and extension:
``traj_compress.dcd``, ``traj_compress_more1.dcd`` ..., ``traj_nvt.dcd``. Loaded naively,
MDAnalysis reads the type labels as ``'1'``, ``'2'`` ..., knows no elements, names or species,
and takes the DCD's time step in AKMA units (9.78 ps instead of 0.2 ps).

:func:`universe` returns the Universe as it should be:

- ``types``: the DREIDING type names of the data file's labels (``C_3``, ``C_R``, ``H_``,
  ``H___A``, ``O_3``; an acceptor-less N/O/F ends in ``.x``, e.g. ``O_3.x``), so
  ``u.select_atoms("type C_R")`` works;
- ``elements``: from the type name (``C_R`` -> ``C``, ``Cl`` -> ``Cl``); ``names``: element +
  number within its molecule (``C1``, ``C2``, ``O1``, ``H1`` ...);
- one residue per molecule (``resid`` = LAMMPS molecule id), named ``CAND`` (candidate) or
  ``PART`` (partner), and one segment per species: ``segid candidate`` / ``segid partner`` (a
  stack holds both: the candidate's molecules first, the partner's on top);
- the trajectory of ``stage`` (``compress``, ``nvt``), its extensions concatenated in order,
  read as a LAMMPS DCD in fs so that ``u.trajectory.dt`` is the protocol's dump interval (ps).

With ``stage=None`` the Universe holds the single frame of ``system.data``; a stage without a
trajectory (the stack's relaxation) gives the frame of its ``<stage>.data``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from mdxfer.errors import MdxferError

#: residue names and segment ids per species role
RESNAMES = {"candidate": "CAND", "partner": "PART"}
TRAJ = "traj_{stage}.dcd"


def type_labels(data_file: str | Path) -> dict[int, str]:
    """LAMMPS atom type number -> type label, from a data file's "Atom Type Labels" section."""
    labels: dict[int, str] = {}
    inside = False
    for raw in Path(data_file).read_text().splitlines():
        line = raw.split("#")[0].strip()
        if not line:
            continue
        if line == "Atom Type Labels":
            inside = True
            continue
        if inside:
            parts = line.split()
            if len(parts) != 2 or not parts[0].isdigit():
                break
            labels[int(parts[0])] = parts[1]
    return labels


def element_of(type_name: str) -> str:
    """The element of a DREIDING type name: ``C_R`` -> ``C``, ``H___A`` -> ``H``, ``Cl`` -> ``Cl``."""
    return type_name.split("_")[0].split(".")[0]


def trajectory_files(directory: str | Path, stage: str) -> list[Path]:
    """``traj_<stage>.dcd`` then ``traj_<stage>_more1.dcd``, ``_more2`` ... (in numeric order)."""
    directory = Path(directory)
    first = directory / TRAJ.format(stage=stage)
    more = re.compile(rf"traj_{re.escape(stage)}_more(\d+)\.dcd$")
    ext = sorted(
        (int(m.group(1)), p)
        for p in directory.glob(f"traj_{stage}_more*.dcd")
        if (m := more.match(p.name))
    )
    return ([first] if first.exists() else []) + [p for _, p in ext]


def _species(directory: Path) -> dict[str, Any]:
    path = directory / "species.json"
    if not path.exists():
        cells = [
            c
            for c in ("candidate", "partner", "stack")
            if (directory / c / "species.json").exists()
        ]
        hint = (
            f"; it holds the cells {', '.join(cells)}: give {directory / cells[-1]}, for example"
            if cells
            else "; give a cell folder (OUT/candidate, OUT/partner or OUT/stack)"
        )
        raise MdxferError(f"{directory} is not an mdxfer cell folder (no species.json){hint}.")
    return json.loads(path.read_text())


def _roles(info: dict[str, Any], resids: Any) -> list[str]:
    """The species role of each residue (LAMMPS molecule id)."""
    if info.get("kind") == "stack":
        n_bottom = int(info["bottom_molecules"])
        return ["candidate" if r <= n_bottom else "partner" for r in resids]
    role = info.get("role", "candidate")
    return [role] * len(resids)


def _label(u: Any, info: dict[str, Any], labels: dict[int, str]) -> None:
    """Set types, elements, names, residue names and segments on ``u`` in place."""
    import numpy as np

    if labels:
        u.atoms.types = np.array([labels.get(int(t), t) for t in u.atoms.types], dtype=object)
    elements = [element_of(t) for t in u.atoms.types]
    u.add_TopologyAttr("elements", elements)
    names, count = [], {}
    for resid, el in zip(u.atoms.resids, elements):
        key = (int(resid), el)
        count[key] = count.get(key, 0) + 1
        names.append(f"{el}{count[key]}")
    u.add_TopologyAttr("names", names)
    roles = _roles(info, u.residues.resids)
    u.add_TopologyAttr("resnames", [RESNAMES.get(r, r[:4].upper()) for r in roles])
    order = list(dict.fromkeys(roles))
    u.add_TopologyAttr("segids", [order[0]])  # the parser's one segment: the first species
    segments = {order[0]: u.segments[0]}
    for role in order[1:]:
        segments[role] = u.add_Segment(segid=role)
    u.residues.segments = [segments[r] for r in roles]


def universe(directory: str | Path, stage: str | None = "nvt") -> Any:
    """The ``MDAnalysis.Universe`` of a cell folder at ``stage`` (see the module docstring).

    ``stage``: ``"nvt"`` (default), ``"compress"`` or ``None`` (``system.data`` alone). Frames
    are in Å, times in ps; ``u.trajectory.dt`` equals the protocol's ``dump_every_fs`` / 1000.
    """
    import MDAnalysis as mda

    directory = Path(directory)
    info = _species(directory)
    data = directory / "system.data"
    if not data.exists():
        raise MdxferError(
            f"{directory} has no system.data; build the cell first (mdxfer build or interaction)."
        )
    labels = type_labels(data)
    if stage is None:
        u = mda.Universe(str(data), format="DATA", topology_format="DATA")
    else:
        trajs = trajectory_files(directory, stage)
        if trajs:
            u = mda.Universe(
                str(data),
                [str(p) for p in trajs],
                topology_format="DATA",
                format="LAMMPS",
                timeunit="fs",
            )
        elif (directory / f"{stage}.data").exists():
            u = mda.Universe(
                str(data), str(directory / f"{stage}.data"), topology_format="DATA", format="DATA"
            )
        else:
            have = sorted(
                {
                    re.sub(r"_more\d+$", "", p.stem[len("traj_") :])
                    for p in directory.glob("traj_*.dcd")
                }
            )
            raise MdxferError(
                f"{directory} has no trajectory or data file of stage {stage!r}; stages with a "
                f"trajectory here: {', '.join(have) or 'none (run the stages first)'}."
            )
    _label(u, info, labels)
    return u


def ase_frames(directory: str | Path, stage: str | None = "nvt", every: int = 1) -> list[Any]:
    """The frames of :func:`universe` as ``ase.Atoms`` (Å, periodic cell), every ``every``-th.

    Each frame carries what ASE's writers can keep: chemical symbols, positions, the cell,
    ``pbc``; per atom the arrays ``mol-id`` (LAMMPS molecule), ``dreiding_type``, ``slab``
    (``candidate``/``partner``; extxyz reserves ``species`` for the symbols) and the charges as
    ``initial_charges`` (e); ``info["time_ps"]``.
    Written with ``ase.io.write`` they become any format ASE knows (extxyz keeps all of it).
    """
    from ase import Atoms
    from ase.geometry import cellpar_to_cell

    if every < 1:
        raise MdxferError(f"every must be at least 1, got {every}.")
    u = universe(directory, stage)
    atoms = u.atoms
    symbols = list(atoms.elements)
    frames = []
    for ts in u.trajectory[::every]:
        a = Atoms(
            symbols=symbols,
            positions=atoms.positions.copy(),
            cell=cellpar_to_cell(ts.dimensions),
            pbc=True,
            charges=atoms.charges.astype(float),
        )
        a.set_array("mol-id", atoms.resids.astype(int))
        a.set_array("dreiding_type", np.array([str(t) for t in atoms.types]))
        a.set_array("slab", np.array([str(t) for t in atoms.segids]))
        a.info["time_ps"] = float(ts.time)
        frames.append(a)
    return frames


def export_ase(
    directory: str | Path, out: str | Path, stage: str | None = "nvt", every: int = 1
) -> int:
    """Write the frames of :func:`ase_frames` to ``out`` with ``ase.io.write`` (the format from
    the file name: ``.extxyz``, ``.xyz``, ``.cif``, ``.pdb``, ``.traj``, ...). Returns the count."""
    from ase.io import write
    from ase.io.formats import UnknownFileTypeError

    frames = ase_frames(directory, stage, every)
    try:
        write(str(out), frames if len(frames) > 1 else frames[0])
    except (ValueError, UnknownFileTypeError) as exc:  # an unknown format, or a one-frame one
        Path(out).unlink(missing_ok=True)
        raise MdxferError(
            f"ASE cannot write {out}: {exc} (try .extxyz or .traj; a one-frame "
            "format such as .vasp needs --stage system or a single frame)."
        ) from None
    return len(frames)
