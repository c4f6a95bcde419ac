"""The campaign's tasks: plain functions over :mod:`mdxfer.md.interaction`, made Parsl apps by
the runner (``parsl.python_app(fn, executors=[...])``).

Each function works in its own task directory (under an exclusive lock on ``.lock``), lets the
MD stage function skip a stage whose ``<stage>.json`` exists for the same protocol, and returns
a small, picklable record: ``{"stage", "workdir", "ran", "host", "started", "finished",
"lammps_s", ...}``. Every failure leaves as a :class:`~mdxfer.errors.StageFailure` (picklable,
with its failure class, :mod:`.retry`) so that the retry policy and the store see the same
reason whatever executor ran it. Physics happens only in :mod:`mdxfer.md`, imported inside the
tasks (RDKit, Open Babel, pandas: the runner process need not load them).
"""

from __future__ import annotations

import json
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from mdxfer.campaign.retry import error_class
from mdxfer.errors import MdxferError, StageFailure
from mdxfer.fileio import FileLock, write_json_atomic
from mdxfer.md.lammps import STOP, Launcher
from mdxfer.md.protocol import Protocol

# STOP (:data:`mdxfer.md.lammps.STOP`) is set by the runner when a run is interrupted: stages
# that have not started yet in this process (thread workers) fail at once with class
# ``stopped``, and LAMMPS runs of stages already under way are not started or are ended.


@contextmanager
def _stage(stage: str, workdir: str | Path) -> Iterator[dict[str, Any]]:
    """Lock the task directory, time the stage, turn every exception into a StageFailure."""
    workdir = Path(workdir)
    if STOP.is_set():
        raise StageFailure("the campaign run was stopped", stage, "stopped", str(workdir))
    rec: dict[str, Any] = {
        "stage": stage,
        "workdir": str(workdir),
        "ran": False,
        "host": socket.gethostname(),
        "started": time.time(),
        "lammps_s": 0.0,
    }
    try:
        # two campaigns sharing a work directory never run the same stage at once
        with FileLock(workdir / ".lock", wait=True):
            yield rec
    except StageFailure:
        raise
    except MdxferError as exc:
        raise StageFailure(str(exc), stage, error_class(exc), str(workdir)) from None
    except Exception as exc:  # a bug or an I/O problem: keep the reason, stay picklable
        raise StageFailure(f"{type(exc).__name__}: {exc}", stage, "error", str(workdir)) from None
    rec["finished"] = time.time()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def stage_done(workdir: Path, stage: str, protocol: Protocol) -> bool:
    """Whether ``workdir`` holds ``stage``'s summary for this protocol (it finished)."""
    from mdxfer.md.interaction import summary_matches

    return summary_matches(workdir, _read_json(workdir / f"{stage}.json"), protocol)


def box_finished(workdir: str | Path, protocol: Protocol, role: str = "candidate") -> bool:
    """True when ``workdir`` holds this protocol's finished box in ``role`` (its NVT summary
    matches): e.g. a partner box another campaign sharing the work directory has run."""
    workdir = Path(workdir)
    info = _read_json(workdir / "species.json") or {}
    return role_matches(info, role, protocol) and stage_done(workdir, "nvt", protocol)


def role_matches(info: dict[str, Any], role: str, protocol: Protocol) -> bool:
    """Whether a box's ``species.json`` (``info``) ran its NVT for ``role``: the same role, or
    both roles run the same NVT length."""
    return info.get("role", "candidate") == role or protocol.partner_ps == protocol.nvt_ps


def build_species(
    smiles: str, protocol: Protocol, workdir: str, role: str = "candidate"
) -> dict[str, Any]:
    """Type, charge and pack ``protocol.n_molecules`` copies of ``smiles`` (canonical) into
    ``workdir/system.data``; skipped when ``species.json`` already holds this box in this
    ``role`` (``candidate`` or ``partner``: the partner's NVT runs ``protocol.partner_ps``)."""
    from mdxfer.md.interaction import box_matches, prepare_species

    with _stage("build", workdir) as rec:
        info = _read_json(Path(workdir) / "species.json") or {}
        same_box = info.get("smiles") == smiles and box_matches(info, protocol)
        rec["ran"] = not (same_box and info.get("role", "candidate") == role)
        if same_box and rec["ran"] and protocol.partner_ps != protocol.nvt_ps:
            # the same box in the other role: its NVT summary is for the other NVT length
            (Path(workdir) / "nvt.json").unlink(missing_ok=True)
        prepare_species(smiles, protocol, workdir, role=role)
    return rec


def stack_pair(
    candidate_dir: str, partner_dir: str, protocol: Protocol, workdir: str, *after: Any
) -> dict[str, Any]:
    """Stack the NVT cells of the candidate (bottom) and the partner (top) in ``workdir``.
    ``after``: results of the stages this one waits for (Parsl futures, resolved)."""
    from mdxfer.md.interaction import prepare_stack

    with _stage("stack", workdir) as rec:
        info = _read_json(Path(workdir) / "species.json") or {}
        rec["ran"] = info.get("protocol_digest") != protocol.digest()
        prepare_stack(candidate_dir, partner_dir, protocol, workdir)
    return rec


def _lammps_stage(
    stage: str, run: Callable, workdir: str, protocol: Protocol, launcher: Launcher
) -> dict[str, Any]:
    with _stage(stage, workdir) as rec:
        rec["ran"] = not stage_done(Path(workdir), stage, protocol)
        summary = run(workdir, protocol, launcher)
        if rec["ran"]:
            rec["lammps_s"] = float(summary.get("wall_s", 0.0))
            rec["command"] = summary.get("command", "")
        rec["steps"] = summary.get("steps")
    return rec


def compress_stage(
    workdir: str,
    protocol: Protocol,
    launcher: Launcher,
    *after: Any,
    parsl_resource_specification: dict | None = None,
) -> dict[str, Any]:
    """Minimise and compress along z at ``protocol.pressure_atm`` (LAMMPS)."""
    from mdxfer.md.interaction import run_compress

    return _lammps_stage("compress", run_compress, workdir, protocol, launcher)


def nvt_stage(
    workdir: str,
    protocol: Protocol,
    launcher: Launcher,
    *after: Any,
    parsl_resource_specification: dict | None = None,
) -> dict[str, Any]:
    """NVT at the mean compressed cell height (LAMMPS); energy averages in kcal/mol."""
    from mdxfer.md.interaction import run_nvt

    return _lammps_stage("nvt", run_nvt, workdir, protocol, launcher)


def combine_pair(
    smiles: str,
    candidate_dir: str,
    partner_dir: str,
    pair_dir: str,
    protocol: Protocol,
    partner_protocol: Protocol,
    launcher: Launcher,
    nvt_record: dict[str, Any] | None = None,
    *after: Any,
) -> dict[str, Any]:
    """The result record of one replica, by :func:`mdxfer.md.interaction.replica_result` (the
    one result path: the same fields and meanings as ``mdxfer interaction``'s records); it
    writes ``pair_dir/replica_result.json`` atomically; the record is returned as ``result``.

    ``protocol`` is the replica's protocol (candidate box and stack), ``partner_protocol`` the
    shared partner box's; every leg must have finished its stages for its protocol. ``smiles``:
    the candidate as the user wrote it. ``wall_s`` is the LAMMPS time of the candidate box and
    the stack (s), ``partner_wall_s`` the shared partner box's. ``host`` is where the stack's
    NVT ran (``nvt_record``), not where this light task runs.
    """
    from mdxfer.md.interaction import replica_result, summary_matches

    with _stage("combine", pair_dir) as rec:
        dirs = {
            "candidate": Path(candidate_dir),
            "partner": Path(partner_dir),
            "stack": Path(pair_dir),
        }
        legs: dict[str, dict[str, Any]] = {}
        for name, d in dirs.items():
            prot = partner_protocol if name == "partner" else protocol
            legs[name] = {}
            for stage in ("compress", "nvt"):
                data = _read_json(d / f"{stage}.json")
                if not summary_matches(d, data, prot):
                    raise StageFailure(
                        f"the {name} box in {d} has no finished '{stage}' stage for this protocol",
                        "combine",
                        "error",
                        pair_dir,
                    )
                legs[name][stage] = data
        rec["ran"] = not (dirs["stack"] / "replica_result.json").exists()
        result = replica_result(
            smiles, dirs["candidate"], dirs["partner"], dirs["stack"], protocol, launcher, legs=legs
        )
        host = (nvt_record or {}).get("host")
        if host and result.get("host") != host:
            result["host"] = host
            write_json_atomic(dirs["stack"] / "replica_result.json", result)
        rec["result"] = result
    return rec
