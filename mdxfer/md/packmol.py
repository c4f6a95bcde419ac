"""Packing near liquid density with Packmol (the ``packmol`` wheel), periodic in x, y and z.

The published procedure (the ``paper`` preset) places molecules at random in a gas column and compresses it; the gas
collapses into clumps whose voids close only slowly under a z-only barostat. The production
preset instead packs the molecules at a fraction of their liquid density with Packmol's
periodic packing (``pbc``), so that the barostat only has to take up a few percent.

Packmol runs in a private temporary directory, on files with fixed names; only numbers and
element symbols reach its input.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from mdxfer.errors import BoxError
from mdxfer.forcefield.parameters import MoleculeFF
from mdxfer.md.box import (
    AVOGADRO,
    System,
    assemble,
    min_intermolecular_distance,
    molecule_extent,
)
from mdxfer.md.lammps import STOP


def packmol_executable() -> str:
    """Path of the ``packmol`` program: beside this Python (the wheel), else on PATH."""
    local = Path(sys.executable).with_name("packmol")
    if local.exists():
        return str(local)
    found = shutil.which("packmol")
    if not found:
        raise BoxError(
            "The packmol program was not found: install the 'packmol' wheel "
            "(pip install packmol) in mdxfer's environment."
        )
    return found


def molecules_for_slab(
    vdw_volume_A3: float,
    area_A2: float,
    min_slab_A: float,
    at_least: int,
    packing_fraction: float = 0.55,
) -> int:
    """Molecules needed so that a liquid slab on ``area_A2`` is ≥ ``min_slab_A`` thick (Å)."""
    if min_slab_A <= 0:
        return at_least
    need = math.ceil(min_slab_A * area_A2 * packing_fraction / vdw_volume_A3)
    return max(at_least, need)


def packing_density(liquid_g_cm3: float, fraction: float, extent_A: float) -> float:
    """Density (g/cm³) to pack at: ``fraction`` of the liquid's for molecules up to 10 Å long,
    less for longer ones (× 10 Å / extent, at least 0.35 of the liquid's): Packmol places rigid
    conformers, and long ones at liquid-like density take it many minutes or fail."""
    scale = min(1.0, 10.0 / extent_A) if extent_A > 0 else 1.0
    return liquid_g_cm3 * max(0.35, fraction * scale)


def _write_xyz(path: Path, symbols: list[str], xyz: np.ndarray) -> None:
    lines = [str(len(symbols)), "mdxfer molecule"]
    lines += [f"{s} {x:.6f} {y:.6f} {z:.6f}" for s, (x, y, z) in zip(symbols, xyz)]
    path.write_text("\n".join(lines) + "\n")


def _read_xyz(path: Path, n_atoms: int) -> np.ndarray:
    rows = path.read_text().splitlines()[2 : 2 + n_atoms]
    if len(rows) != n_atoms:
        raise BoxError(f"Packmol wrote {len(rows)} atoms, {n_atoms} expected.")
    return np.array([[float(v) for v in r.split()[1:4]] for r in rows])


def pack_packmol(
    molecule: MoleculeFF,
    count: int,
    lx: float,
    ly: float,
    density_g_cm3: float,
    seed: int = 0,
    tolerance: float = 2.0,
    tries: int = 4,
    accept_fraction: float = 0.8,
) -> System:
    """``count`` copies of ``molecule`` in a periodic ``lx × ly × Lz`` cell (Å) at
    ``density_g_cm3``, no two atoms of different molecules closer than ``tolerance`` (Å).

    Each Packmol attempt is limited (``nloop``). When it stops short of the tolerance, its best
    configuration is taken if no two atoms of different molecules in it are closer than
    ``accept_fraction × tolerance`` (Å): the compress stage starts with an energy minimisation,
    which resolves such contacts (squalane, 100 copies at 0.40 g/cm³: Packmol's best after 60
    loops has its closest contact at 1.71 Å for a 2.0 Å tolerance, and converges only in a cell
    1.95× taller, after four tries and ~8 min). Otherwise the cell is made 25 % taller and packed
    again (up to ``tries`` times): long, rigidly packed conformers (a C30 alkane: 100 copies in
    83 s at 40 % of the liquid density, 325 s at 55 %, > 14 min at 64 %) then start less dense
    and the barostat compresses them. After the last try :class:`BoxError` says what to change.
    The system's ``meta`` records ``packmol_converged`` and the closest contact
    (``min_distance_A``).
    """
    if count < 1:
        raise BoxError(f"The number of molecules must be at least 1 (got {count}).")
    if tries < 1:
        raise BoxError(f"Packmol needs at least one attempt (tries = {tries}).")
    centred = molecule.coords - molecule.coords.mean(axis=0)
    extent = molecule_extent(centred)
    if extent + tolerance > min(lx, ly):
        raise BoxError(
            f"{molecule.smiles!r} is {extent:.1f} Å long even in its most compact conformer, "
            f"which does not fit the {lx:g} x {ly:g} Å cross-section without touching its own "
            "periodic image: enlarge box_A (--set box_A=[40,40,200]) or choose a smaller molecule."
        )
    lz = count * molecule.mass / AVOGADRO / (density_g_cm3 * 1e-24) / (lx * ly)
    exe = packmol_executable()
    with tempfile.TemporaryDirectory(prefix="mdxfer-packmol-") as tmp:
        work = Path(tmp)
        _write_xyz(work / "molecule.xyz", molecule.symbols, centred)
        for _attempt in range(tries):
            if STOP.is_set():  # a campaign run is stopping: no new attempt (LAMMPS likewise)
                raise BoxError("Packmol not started: the run is stopping.")
            text = "\n".join(
                [
                    f"tolerance {tolerance:.3f}",
                    "filetype xyz",
                    "output packed.xyz",
                    f"seed {int(seed) % 2_000_000_000 + 1}",
                    "nloop 60",
                    f"pbc 0.0 0.0 0.0 {lx:.4f} {ly:.4f} {lz:.4f}",
                    "structure molecule.xyz",
                    f"  number {int(count)}",
                    "end structure",
                    "",
                ]
            )
            (work / "pack.inp").write_text(text)
            (work / "packed.xyz").unlink(missing_ok=True)
            with open(work / "pack.inp") as stdin:
                proc = subprocess.run(
                    [exe], stdin=stdin, cwd=work, capture_output=True, text=True, timeout=1800
                )
            log = proc.stdout + proc.stderr
            converged = "Success!" in log
            if (work / "packed.xyz").exists():
                xyz = _read_xyz(work / "packed.xyz", count * molecule.n_atoms)
                system = _assemble(molecule, count, xyz, (lx, ly, lz))
                closest = tolerance if converged else min_intermolecular_distance(system)
                if closest >= accept_fraction * tolerance:
                    break
            lz *= 1.25
        else:
            tail = "\n".join(log.strip().splitlines()[-8:])
            raise BoxError(
                f"Packmol could not place {count} copies of {molecule.smiles!r} {tolerance} Å "
                f"apart in a {lx:g} x {ly:g} Å cell even {1.25 ** (tries - 1):.2f}x taller than "
                f"{density_g_cm3:.2f} g/cm³ needs: lower pack_density_fraction or n_molecules."
                f"\nPackmol said:\n{tail}"
            )
    system.meta.update(
        {
            "seed": seed,
            "min_distance_A": round(float(min(closest, tolerance)), 3),
            "packing": "packmol",
            "packmol_converged": converged,
        }
    )
    return system


def _assemble(
    molecule: MoleculeFF, count: int, xyz: np.ndarray, box: tuple[float, float, float]
) -> System:
    """``count`` copies of ``molecule`` at Packmol's coordinates ``xyz`` (Å) in ``box`` (Å)."""
    n = molecule.n_atoms
    coords = [xyz[k * n : (k + 1) * n] for k in range(count)]
    return assemble([molecule], [0] * count, coords, np.array(box, dtype=float))
