"""Energies between two groups of molecules from an NVT trajectory, by single points: the two
halves of a single-species cell (``E_halves``), and a stack's two slabs (the exact ``E_cross``).

``E_int_unrelaxed`` (:func:`mdxfer.md.interaction.unrelaxed_interaction`) needs what a bulk liquid
gives up across one plane: half the energy between the two halves of its periodic cell (whole
molecules, by centre of mass; the halves meet at two planes per period). It is computed here
after the cell's NVT run, frame by frame from ``traj_nvt.dcd``, by single points in LAMMPS:

    E_between = [E(all) − E(all, every pair between the halves excluded)] + E_long(halves)

The bracket is every short-range term between the halves — LJ, DREIDING hydrogen bonds and the
real-space Coulomb (``neigh_modify exclude group``); the long-range Coulomb between them comes
from ``compute group/group ... pair no kspace yes``. Not ``compute group/group ... pair yes``
alone: LAMMPS evaluates DREIDING's three-body hydrogen bond pairwise through
``pair hbond/dreiding`` ``single(i, j)``, which counts a pair only with its first atom as the
donor, and a half neighbour list gives each pair once — about half of the hydrogen bonds
between the groups were lost (an ethanol cell: −112 against −127 kcal/mol for the same split;
exact without hydrogen bonds). The in-run E_cross of a stack (``compute group/group``) is
exact when no hydrogen bond can join its candidate to its partner (isoprene has no donor or
acceptor); when one can, :func:`cross_energy` computes it here the same way (the candidate slab
is the lower group, the partner slab the upper) and the stack reports that.

With ``splits`` = k the cell is split k ways (planes shifted by Lz/2k) and the mean of the
splits is one frame's value; the frames' mean from the NVT run's detected start is ``ehalves``,
its stderr from their statistical inefficiency (:func:`mdxfer.md.thermo.correlated_stderr`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mdxfer.errors import MdxferError
from mdxfer.md.datafile import read_state
from mdxfer.md.ffinput import has_kspace
from mdxfer.md.lammps import Launcher, render, run_input
from mdxfer.md.thermo import correlated_stderr, half_drift, inefficiency, read_runs

DUMP = "halves.dump"


def molecule_coms_z(
    positions: np.ndarray, box: np.ndarray, molecules: np.ndarray, masses: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(molecule ids, centre-of-mass z of each) from wrapped positions (Å, relative to the box
    origin): each atom is taken at its nearest image to its molecule's first atom, which holds
    for molecules shorter than half the box."""
    ids, first = np.unique(molecules, return_index=True)
    ref = positions[first][np.searchsorted(ids, molecules)]
    d = positions - ref
    d -= box * np.round(d / box)
    whole = ref + d
    w = np.bincount(np.searchsorted(ids, molecules), weights=masses)
    z = np.bincount(np.searchsorted(ids, molecules), weights=masses * whole[:, 2]) / w
    return ids, z


def lower_halves(z: np.ndarray, lz: float, splits: int) -> list[np.ndarray]:
    """Per split k (planes at Lz·k/2splits and half a period above), a mask of the molecules
    (centre of mass z, Å from the box origin) in its lower half."""
    f = z / lz
    return [((f - k / (2 * splits)) % 1.0) < 0.5 for k in range(splits)]


def _write_dump(path: Path, frames: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """A LAMMPS text dump (``id x y z``) of (step, origin, box, positions) frames."""
    with open(path, "w") as out:
        for step, origin, box, x in frames:
            hi = origin + box
            out.write(f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n{len(x)}\n")
            out.write("ITEM: BOX BOUNDS pp pp pp\n")
            for d in range(3):
                out.write(f"{origin[d]:.8f} {hi[d]:.8f}\n")
            out.write("ITEM: ATOMS id x y z\n")
            xyz = x + origin
            out.write(
                "".join(f"{i + 1} {a:.6f} {b:.6f} {c:.6f}\n" for i, (a, b, c) in enumerate(xyz))
            )


def _ranges(ids: np.ndarray) -> str:
    """Molecule ids as LAMMPS ``A:B`` ranges (short input lines)."""
    ids = np.sort(ids.astype(int))
    out, start = [], ids[0]
    for a, b in zip(ids[:-1], ids[1:], strict=True):
        if b != a + 1:
            out.append(f"{start}:{a}" if a > start else f"{start}")
            start = b
    out.append(f"{start}:{ids[-1]}" if ids[-1] > start else f"{start}")
    return " ".join(out)


def read_frames(
    data: Path, traj: Path, dump_every_fs: float, groups: str, start_ps: float, max_frames: int
) -> tuple[list, list, list]:
    """(frames for :func:`_write_dump`, per frame (molecule ids, lower-group masks), times in
    ps) of ``traj`` from ``start_ps`` on, at most ``max_frames`` evenly strided. ``groups``:
    ``"splits:K"`` (K masks: the lower half of each split, :func:`lower_halves`) or
    ``"bottom:N"`` (one mask: molecules 1..N, a stack's candidate slab)."""
    import MDAnalysis as mda

    kind, _, arg = groups.partition(":")
    if kind not in ("splits", "bottom") or not arg.isdigit() or int(arg) < 1:
        raise MdxferError(f"groups {groups!r}: 'splits:K' or 'bottom:N' expected")
    origin = read_state(data).origin
    frames, masks, times = [], [], []
    with warnings.catch_warnings():  # MDAnalysis's notice about its DCD reader's copies
        warnings.simplefilter("ignore", DeprecationWarning)
        u = mda.Universe(str(data), str(traj), topology_format="DATA", format="LAMMPS")
        masses = u.atoms.masses.astype(float)
        molecules = u.atoms.resids.astype(int)
        eligible = [
            k for k in range(len(u.trajectory)) if k * dump_every_fs / 1000.0 >= start_ps - 1e-9
        ]
        stride = max(1, -(-len(eligible) // max_frames))
        for ts in u.trajectory[eligible[::stride]]:
            box = np.asarray(ts.dimensions[:3], dtype=float)
            x = (ts.positions.astype(float) - origin) % box  # relative to the box origin
            ids, z = molecule_coms_z(x, box, molecules, masses)
            lower = lower_halves(z, box[2], int(arg)) if kind == "splits" else [ids <= int(arg)]
            frames.append((ts.frame, origin, box, x))
            masks.append((ids, lower))
            times.append(ts.frame * dump_every_fs / 1000.0)
    return frames, masks, times


def between_groups(
    workdir: str | Path,
    dump_every_fs: float,
    groups: str,
    start_ps: float = 0.0,
    launcher: Launcher | None = None,
    stage: str = "nvt",
    max_frames: int = 200,
    name: str = "halves",
) -> tuple[np.ndarray, float]:
    """(energy between the lower and the upper group, kcal/mol, per frame × group split;
    LAMMPS's wall seconds) of the box in ``workdir`` over its ``traj_<stage>.dcd`` (frame k at
    k·``dump_every_fs``) from ``start_ps``, at most ``max_frames`` frames evenly strided;
    ``groups`` as :func:`read_frames` takes it. Writes ``in.<name>.lmp`` and ``<name>.log``."""
    workdir = Path(workdir)
    data, traj = workdir / f"{stage}.data", workdir / f"traj_{stage}.dcd"
    if not data.exists() or not traj.exists():
        raise MdxferError(f"{workdir}: no {data.name} and {traj.name} to take frames from")
    # MDAnalysis reads the frames in a child process: in a campaign's process (Parsl threads;
    # typer's CliRunner in the tests) reading them in-process left the CLI's captured stdout
    # closed now and then. The likely cause, found later: pymbar was imported under a
    # sys.stdout redirection in each thread (mdxfer.md.thermo, fixed); the child stays, as it
    # also keeps MDAnalysis's warning filters out of the threads. It writes the dump and
    # returns the groups as JSON
    argv = [sys.executable, "-m", "mdxfer.md.halves", str(data), str(traj), str(workdir / DUMP)]
    argv += [f"{dump_every_fs!r}", groups, f"{start_ps!r}", str(max_frames)]
    child = subprocess.run(argv, capture_output=True, text=True, check=False)
    if child.returncode != 0:
        raise MdxferError(f"{traj}: reading the frames failed: {child.stderr.strip()[-500:]}")
    frames = json.loads(child.stdout)
    if not frames:
        raise MdxferError(f"{traj}: no frame from {start_ps} ps on")
    charged = has_kspace((workdir / "forcefield.lmp").read_text())
    blocks = []
    for step, t, lowers in frames:
        splits_text = "\n".join(render("halves_split.lmp", lower=low) for low in lowers)
        blocks.append(
            render(
                "halves_frame.lmp",
                frame=step,
                time_ps=f"{t:g}",
                dump=DUMP,
                step=step,
                splits=splits_text,
            )
        )
    text = render(
        "in.halves.lmp",
        stage=name,
        data_in=data.name,
        kspace_compute=(
            "compute         hlong hlower group/group hupper pair no kspace yes"
            if charged
            else "# no charges: no long-range Coulomb between the groups"
        ),
        kspace_thermo="c_hlong" if charged else "",
        frames="\n".join(blocks),
    )
    (workdir / f"in.{name}.lmp").write_text(text)
    run = run_input(workdir, f"in.{name}.lmp", name, launcher)
    rows = pd.concat(read_runs(run["log"]), ignore_index=True)  # every single point, in order
    per_frame, n = len(frames[0][2]) + 1, len(frames)
    if len(rows) != per_frame * n:
        raise MdxferError(
            f"{workdir / (name + '.log')}: {len(rows)} single points, {per_frame * n} expected"
        )
    pe = rows["PotEng"].to_numpy(dtype=float).reshape(n, per_frame)
    between = pe[:, :1] - pe[:, 1:]
    if charged:
        between += rows["c_hlong"].to_numpy(dtype=float).reshape(n, per_frame)[:, 1:]
    (workdir / DUMP).unlink()
    return between, run["wall_s"]


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    """(mean, stderr from the statistical inefficiency; NaN for one value) of per-frame values."""
    se = correlated_stderr(values) if len(values) > 1 else float("nan")
    return float(values.mean()), se


def halves_energy(
    workdir: str | Path,
    dump_every_fs: float,
    splits: int = 4,
    start_ps: float = 0.0,
    launcher: Launcher | None = None,
    stage: str = "nvt",
    max_frames: int = 200,
) -> dict[str, float]:
    """``ehalves`` (kcal/mol: the mean over frames from ``start_ps`` of the energy between the
    halves, averaged over ``splits``), ``ehalves_stderr`` and ``ehalves_frames`` of the cell in
    ``workdir`` from its ``traj_<stage>.dcd`` (frame k at k·``dump_every_fs``) and
    ``<stage>.data`` (topology, masses, box origin); at most ``max_frames`` frames, evenly
    strided (a 1 ns partner run has 500)."""
    between, wall = between_groups(
        workdir, dump_every_fs, f"splits:{splits}", start_ps, launcher, stage, max_frames
    )
    mean, se = _mean_se(between.mean(axis=1))
    return {
        "ehalves": mean,
        "ehalves_stderr": se,
        "ehalves_frames": len(between),
        "ehalves_splits": splits,
        "ehalves_wall_s": wall,
    }


def cross_energy(
    workdir: str | Path,
    dump_every_fs: float,
    bottom_molecules: int,
    start_ps: float = 0.0,
    launcher: Launcher | None = None,
    stage: str = "nvt",
    max_frames: int = 200,
) -> dict[str, Any]:
    """E_cross of a stack from its trajectory by single points, hydrogen bonds included:
    ``ecross`` (kcal/mol, the mean over frames from ``start_ps`` of the energy between the
    candidate slab, molecules 1..``bottom_molecules``, and the partner slab), ``ecross_stderr``,
    ``ecross_frames``, ``ecross_method`` = ``"single points"``, ``ecross_wall_s``. The in-run
    ``compute group/group`` misses about half of the hydrogen bonds between the slabs (module
    docstring); this is what a stack whose candidate and partner can hydrogen-bond reports."""
    between, wall = between_groups(
        workdir,
        dump_every_fs,
        f"bottom:{int(bottom_molecules)}",
        start_ps,
        launcher,
        stage,
        max_frames,
        name="cross",
    )
    values = between[:, 0]
    mean, se = _mean_se(values)
    return {
        "ecross": mean,
        "ecross_stderr": se,
        "ecross_drift_z": half_drift(values) if len(values) > 3 else None,
        "ecross_g": inefficiency(values) if len(values) > 1 else None,
        "ecross_frames": len(values),
        "ecross_method": "single points",
        "ecross_wall_s": wall,
    }


def _frames_json(argv: list[str]) -> None:
    """``python -m mdxfer.md.halves DATA TRAJ DUMP DUMP_EVERY_FS GROUPS START_PS MAX_FRAMES``:
    write the frames' dump and print, per frame, [step, time (ps), [lower group's molecule ids
    as LAMMPS ranges, per split]] as JSON (``GROUPS`` as :func:`read_frames` takes it)."""
    data, traj, dump = Path(argv[0]), Path(argv[1]), Path(argv[2])
    every, groups, start, most = float(argv[3]), argv[4], float(argv[5]), int(argv[6])
    frames, masks, times = read_frames(data, traj, every, groups, start, most)
    if frames:
        _write_dump(dump, frames)
    out = [
        [int(f[0]), t, [_ranges(ids[low]) for low in lows]]
        for f, (ids, lows), t in zip(frames, masks, times, strict=True)
    ]
    print(json.dumps(out))


if __name__ == "__main__":
    _frames_json(sys.argv[1:])
