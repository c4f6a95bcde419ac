"""Cost up front: the projected LAMMPS time of a protocol before any of it runs.

The work of a LAMMPS stage is close to proportional to atoms × time steps; a run's speed is
LAMMPS's own "katom-step/s" figure (the ``Performance:`` line of every log). mdxfer keeps the
speed measured on this machine in a small cache (``~/.cache/mdxfer/throughput.json``, or
``$MDXFER_CACHE``), refreshed after every LAMMPS run, so projections follow the machine they
run on; before the first run it uses :data:`DEFAULT_KATOM_STEPS_S` (measured on a 2-core
laptop-class machine with the production preset, one rank per run, two runs side by side).

The figure is a projection, not a promise: barostat extensions (up to ``compress_extra_max_ps``)
and packing are not in the base figure; the upper figure counts every extension.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mdxfer.fileio import write_json_atomic
from mdxfer.md.protocol import Protocol

#: katom-step/s of one single-rank LAMMPS run when nothing has been measured here yet:
#: 310 on this project's 2-core machine (production preset, 10 Å cut-off, PPPM 1e-4,
#: DREIDING H-bonds, SHAKE; two runs side by side), 2026-12-01.
DEFAULT_KATOM_STEPS_S = 300.0
_PERF = re.compile(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms")
_CPU = re.compile(r"([0-9.]+)% CPU use with")
_CUTOFF = re.compile(r"^pair_style\s.*?coul/long\s+([0-9.]+)", re.MULTILINE)
#: Speeds are kept as if at this LJ/Coulomb cut-off (Å): a run's speed is scaled by
#: (cut-off / 10 Å)³ when stored and by (10 Å / cut-off)³ when projected (pair work grows with
#: the neighbours inside the cut-off sphere; an assumption, not a measurement).
REFERENCE_CUTOFF_A = 10.0


def cache_file() -> Path:
    """Where the measured throughput is kept (``$MDXFER_CACHE/throughput.json``)."""
    root = os.environ.get("MDXFER_CACHE") or Path.home() / ".cache" / "mdxfer"
    return Path(root) / "throughput.json"


def log_work(log: str | Path) -> tuple[float, float, int]:
    """(atom-steps at the reference cut-off, CPU seconds of the loops, MPI ranks) summed over the
    runs of one LAMMPS log; a loop's CPU seconds are its wall time × the "% CPU use" LAMMPS
    prints after it, so a run that shared its core counts what it got."""
    work = seconds = 0.0
    ranks = 1
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return 0.0, 0.0, 1
    cut = _CUTOFF.search(text)
    factor = (float(cut[1]) / REFERENCE_CUTOFF_A) ** 3 if cut else 1.0
    for m in _PERF.finditer(text):
        loop, procs, steps, atoms = float(m[1]), int(m[2]), int(m[3]), int(m[4])
        if steps > 0 and loop > 0:
            # the CPU share LAMMPS got (its "% CPU use" line after the loop): on a machine with
            # more runs than cores the loop's wall time overstates the work
            cpu = _CPU.search(text, m.end(), m.end() + 400)
            share = min(1.0, float(cpu[1]) / 100.0) if cpu else 1.0
            work += steps * atoms * factor
            seconds += loop * share
            ranks = procs
    return work, seconds, ranks


def read_cache() -> dict:
    try:
        data = json.loads(cache_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def record_log(log: str | Path) -> float | None:
    """Fold a finished LAMMPS log into the cache (per rank count; runs weighted by their work).

    Returns the log's own katom-step/s per rank, or None when it held no timed steps. Never
    raises: a cache that cannot be written only loses the refinement.
    """
    work, seconds, ranks = log_work(log)
    if work <= 0 or seconds <= 0:
        return None
    speed = work / seconds / 1000.0
    data = read_cache()
    entry = data.get(str(ranks), {})
    old_work = float(entry.get("atom_steps", 0.0))
    old_s = float(entry.get("seconds", 0.0))
    # a decaying memory: the newest ~1e10 atom-steps dominate, so a changed machine shows
    scale = min(1.0, 1e10 / max(old_work, 1.0))
    data[str(ranks)] = {"atom_steps": old_work * scale + work, "seconds": old_s * scale + seconds}
    try:
        cache_file().parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cache_file(), data)
    except OSError:
        pass
    return speed


def throughput(ranks: int = 1) -> tuple[float, str]:
    """(katom-step/s of one run with ``ranks`` MPI ranks at the reference cut-off, where the
    figure comes from)."""
    entry = read_cache().get(str(ranks))
    if entry and entry.get("seconds", 0) > 0:
        return entry["atom_steps"] / entry["seconds"] / 1000.0, f"measured here ({cache_file()})"
    one = read_cache().get("1")
    if one and one.get("seconds", 0) > 0:  # no figure for this rank count: scale the 1-rank one
        speed = one["atom_steps"] / one["seconds"] / 1000.0
        return speed * ranks * 0.8, f"1-rank figure measured here × {ranks} × 0.8"
    return DEFAULT_KATOM_STEPS_S * ranks * (0.8 if ranks > 1 else 1.0), "built-in default"


@dataclass(frozen=True)
class Projection:
    """Projected LAMMPS work and time of one ``interaction`` (seconds are of one run's ranks)."""

    atom_steps: float  # the base plan (no barostat extensions)
    atom_steps_max: float  # every barostat extension taken
    katom_steps_s: float  # the throughput used
    source: str  # where it comes from
    cpu_s: float  # base CPU seconds (atom-steps / per-rank speed)
    cpu_s_max: float
    wall_s: float  # with ``workers`` runs side by side
    wall_s_max: float

    def describe(self) -> str:
        return (
            f"projected LAMMPS time ≈ {_fmt(self.wall_s)} (up to {_fmt(self.wall_s_max)} if "
            f"every barostat extension runs), {self.cpu_s / 3600:.2f} CPU-hours; "
            f"{self.katom_steps_s:.0f} katom-step/s per run ({self.source})"
        )


def _fmt(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def atoms_in_box(smiles: str, protocol: Protocol) -> int:
    """Atoms of the box mdxfer builds for ``smiles`` under ``protocol`` (no packing is done)."""
    from rdkit import Chem

    from mdxfer.molecule import canonical_smiles

    canon = canonical_smiles(smiles)
    per = Chem.AddHs(Chem.MolFromSmiles(canon)).GetNumAtoms()
    if protocol.packing == "random" or protocol.min_slab_A <= 0:
        return per * protocol.n_molecules
    from mdxfer.md.packmol import molecules_for_slab
    from mdxfer.molecule import PACKING_FRACTION, embed_compact, vdw_volume

    mol = embed_compact(canon, seed=protocol.seed, n_conformers=1)
    lx, ly, _ = protocol.box_A
    return per * molecules_for_slab(
        vdw_volume(mol), lx * ly, protocol.min_slab_A, protocol.n_molecules, PACKING_FRACTION
    )


def _cell_ps(protocol: Protocol, nvt_ps: float) -> tuple[float, float]:
    base = (
        protocol.precompress_ps
        + protocol.squeeze_ps
        + protocol.anneal_ps
        + protocol.compress_ps
        + protocol.nvt_anneal_ps
        + nvt_ps
    )
    return base, base + protocol.compress_extra_max_ps


def _stack_ps(protocol: Protocol) -> float:
    """Simulated time of a stack (ps): its NVT, and its barostat stage when it has one."""
    barostat = protocol.stack_compress_ps if protocol.stack_barostat else 0.0
    return protocol.nvt_anneal_ps + protocol.stack_nvt_ps + barostat


def stack_share(smiles: str, protocol: Protocol, partner: str) -> float:
    """The stack's share (0-1) of one replica's work (atom-steps): its candidate box runs
    first, then the stack; what is left of a replica whose box is finished."""
    n_cand, n_part = atoms_in_box(smiles, protocol), atoms_in_box(partner, protocol)
    cell, _ = _cell_ps(protocol, protocol.nvt_ps)
    stack = (n_cand + n_part) * _stack_ps(protocol)
    return stack / (n_cand * cell + stack)


def project(
    smiles: str,
    protocol: Protocol,
    partner: str,
    replicas: int = 1,
    ranks: int = 1,
    workers: int = 1,
    partner_done: bool = False,
) -> Projection:
    """The projected cost of ``mdxfer interaction smiles`` with ``replicas`` replicas.

    ``ranks``: MPI ranks of each LAMMPS run; ``workers``: runs side by side; ``partner_done``:
    the partner box is reused (``--partner-dir``). Minimisations are not counted (seconds).
    """
    n_cand, n_part = atoms_in_box(smiles, protocol), atoms_in_box(partner, protocol)
    fs = protocol.timestep_fs / 1000.0
    cell, cell_max = _cell_ps(protocol, protocol.nvt_ps)
    part, part_max = _cell_ps(protocol, protocol.partner_ps)
    stack_ps = _stack_ps(protocol)
    stack_max = stack_ps + (protocol.compress_extra_max_ps if protocol.stack_barostat else 0.0)
    per_rep = n_cand * cell / fs + (n_cand + n_part) * stack_ps / fs
    per_rep_max = n_cand * cell_max / fs + (n_cand + n_part) * stack_max / fs
    partner_work = 0.0 if partner_done else n_part * part / fs
    partner_max = 0.0 if partner_done else n_part * part_max / fs
    total, total_max = replicas * per_rep + partner_work, replicas * per_rep_max + partner_max
    speed, source = throughput(ranks)
    speed *= (REFERENCE_CUTOFF_A / protocol.cutoff_A) ** 3
    cpu = total / (speed * 1000.0) * ranks
    cpu_max = total_max / (speed * 1000.0) * ranks
    # wall: the cells (partner + replicas) side by side, then the stacks side by side; the
    # partner's long NVT usually sets the first phase
    w = max(1, workers)
    cells = [n_cand * cell / fs] * replicas + ([partner_work] if partner_work else [])
    cells_max = [n_cand * cell_max / fs] * replicas + ([partner_max] if partner_max else [])
    stacks = (n_cand + n_part) * stack_ps / fs
    stacks_max = (n_cand + n_part) * stack_max / fs

    def phase(jobs: list[float]) -> float:
        return max(max(jobs, default=0.0), sum(jobs) / w)

    wall = (phase(cells) + stacks * math.ceil(replicas / w)) / (speed * 1000.0)
    wall_max = (phase(cells_max) + stacks_max * math.ceil(replicas / w)) / (speed * 1000.0)
    return Projection(total, total_max, speed, source, cpu, cpu_max, wall, wall_max)
