"""The campaign's tasks: plain functions over :mod:`mdxfer.md.interaction`, made Parsl apps by
the runner (``parsl.python_app(fn, executors=[...])``).

Each function works in its own task directory (under an exclusive lock on ``.lock``), lets the
MD stage function skip a stage whose ``<stage>.json`` exists for the same protocol, and returns
a small, picklable record: ``{"stage", "workdir", "ran", "host", "started", "finished",
"lammps_s", ...}``. Every failure leaves as a :class:`StageFailure` (picklable, with its failure
class) so that the retry policy and the store see the same reason whatever executor ran it.
Physics happens only in :mod:`mdxfer.md`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from mdxfer.campaign.spec import RetryPolicy
from mdxfer.errors import (BoxError, ForceFieldError, LammpsError, MdxferError, MoleculeError,
                           ProtocolError)
from mdxfer.md.lammps import Launcher
from mdxfer.md.protocol import Protocol

GUARD = str(Path(__file__).with_name("guard.py"))
#: Set by the runner when a run is interrupted: stages that have not started yet in this process
#: (thread workers) fail at once with class ``stopped`` instead of starting LAMMPS.
STOP = threading.Event()


@dataclass
class CampaignLauncher(Launcher):
    """:class:`~mdxfer.md.lammps.Launcher` plus what a campaign task needs.

    ``mpi_prefix``: prepend the ``$PARSL_MPI_PREFIX`` that Parsl's MPIExecutor sets for the task
    (e.g. ``srun --ntasks 8 ... --nodelist n1,n2``), split with :func:`shlex.split`, never via a
    shell. ``guard``: start LAMMPS through :mod:`mdxfer.campaign.guard`, so it is killed when the
    process that started it dies (no orphan keeps writing into a task directory).
    """

    mpi_prefix: bool = False
    guard: bool = True

    def lammps_argv(self) -> list[str]:
        """The LAMMPS command line (MPI prefix included), without the guard."""
        argv = super().argv()
        if self.mpi_prefix:
            prefix = os.environ.get("PARSL_MPI_PREFIX")
            if not prefix:
                raise LammpsError("setup", "mpi_prefix is on but $PARSL_MPI_PREFIX is not set; it "
                                  "is set by Parsl's MPIExecutor (executor kind 'mpi')")
            argv = shlex.split(prefix) + argv
        return argv

    def argv(self) -> list[str]:
        argv = self.lammps_argv()
        if self.guard:
            argv = [sys.executable, "-I", "-S", GUARD, str(os.getpid()), *argv]
        return argv

    def describe(self) -> str:
        """The LAMMPS command for provenance (``$PARSL_MPI_PREFIX`` when not inside a task)."""
        if self.mpi_prefix and not os.environ.get("PARSL_MPI_PREFIX"):
            return "$PARSL_MPI_PREFIX " + shlex.join(super().argv())
        return shlex.join(self.lammps_argv())


class StageFailure(Exception):
    """A task stage failed. ``kind``: molecule | forcefield | box | protocol | lammps | error."""

    def __init__(self, message: str, stage: str, kind: str, workdir: str = ""):
        super().__init__(message, stage, kind, workdir)
        self.message, self.stage, self.kind, self.workdir = message, stage, kind, workdir

    def __str__(self) -> str:
        return self.message


_KINDS: list[tuple[type, str]] = [(MoleculeError, "molecule"), (ForceFieldError, "forcefield"),
                                  (BoxError, "box"), (ProtocolError, "protocol"),
                                  (LammpsError, "lammps")]


def failure_class(exc: BaseException) -> str:
    """The retry policy's name for ``exc``: a StageFailure's kind, ``lost`` for lost workers,
    managers, blocks and timeouts, ``dependency`` for an upstream failure, else ``error``."""
    from parsl.app.errors import AppTimeout
    from parsl.dataflow.errors import DependencyError
    from parsl.executors.errors import BadStateException
    from parsl.executors.high_throughput.errors import ManagerLost, WorkerLost

    if isinstance(exc, StageFailure):
        return exc.kind
    if isinstance(exc, (WorkerLost, ManagerLost, BadStateException, AppTimeout)):
        return "lost"
    if isinstance(exc, DependencyError):
        return "dependency"
    return "error"


def retry_handler(policy: RetryPolicy) -> Callable[[BaseException, Any], float]:
    """A Parsl ``retry_handler``: cost 1 for failure classes in ``policy.retry_on`` (retried
    until ``max_retries``), and a cost beyond ``max_retries`` (no retry) for all others."""
    def handler(exc: BaseException, task_record: Any) -> float:
        return 1.0 if failure_class(exc) in policy.retry_on else float(policy.max_retries + 1)

    return handler


@contextmanager
def task_lock(workdir: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``workdir/.lock`` (two campaigns sharing a work directory
    never run the same stage at once). Without lock support on the file system, runs unlocked."""
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except OSError:  # pragma: no cover - e.g. Lustre mounted without flock
            pass
        yield


@contextmanager
def _stage(stage: str, workdir: str | Path) -> Iterator[dict[str, Any]]:
    """Lock the task directory, time the stage, turn every exception into a StageFailure."""
    workdir = Path(workdir)
    if STOP.is_set():
        raise StageFailure("the campaign run was stopped", stage, "stopped", str(workdir))
    rec: dict[str, Any] = {"stage": stage, "workdir": str(workdir), "ran": False,
                           "host": socket.gethostname(), "started": time.time(), "lammps_s": 0.0}
    try:
        with task_lock(workdir):
            yield rec
    except StageFailure:
        raise
    except MdxferError as exc:
        kind = next((k for cls, k in _KINDS if isinstance(exc, cls)), "error")
        raise StageFailure(str(exc), stage, kind, str(workdir)) from None
    except Exception as exc:  # a bug or an I/O problem: keep the reason, stay picklable
        raise StageFailure(f"{type(exc).__name__}: {exc}", stage, "error", str(workdir)) from None
    rec["finished"] = time.time()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _stage_done(workdir: Path, stage: str, protocol: Protocol) -> bool:
    from mdxfer.md.interaction import summary_matches

    return summary_matches(workdir, _read_json(workdir / f"{stage}.json"), protocol)


def build_species(smiles: str, protocol: Protocol, workdir: str,
                  role: str = "candidate") -> dict[str, Any]:
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


def stack_pair(candidate_dir: str, partner_dir: str, protocol: Protocol, workdir: str,
               *after: Any) -> dict[str, Any]:
    """Stack the NVT cells of the candidate (bottom) and the partner (top) in ``workdir``.
    ``after``: results of the stages this one waits for (Parsl futures, resolved)."""
    from mdxfer.md.interaction import prepare_stack

    with _stage("stack", workdir) as rec:
        info = _read_json(Path(workdir) / "species.json") or {}
        rec["ran"] = info.get("protocol_digest") != protocol.digest()
        prepare_stack(candidate_dir, partner_dir, protocol, workdir)
    return rec


def _lammps_stage(stage: str, run: Callable, workdir: str, protocol: Protocol,
                  launcher: Launcher) -> dict[str, Any]:
    with _stage(stage, workdir) as rec:
        rec["ran"] = not _stage_done(Path(workdir), stage, protocol)
        summary = run(workdir, protocol, launcher)
        if rec["ran"]:
            rec["lammps_s"] = float(summary.get("wall_s", 0.0))
            rec["command"] = summary.get("command", "")
        rec["steps"] = summary.get("steps")
    return rec


def compress_stage(workdir: str, protocol: Protocol, launcher: Launcher, *after: Any,
                   parsl_resource_specification: dict | None = None) -> dict[str, Any]:
    """Minimise and compress along z at ``protocol.pressure_atm`` (LAMMPS)."""
    from mdxfer.md.interaction import run_compress

    return _lammps_stage("compress", run_compress, workdir, protocol, launcher)


def nvt_stage(workdir: str, protocol: Protocol, launcher: Launcher, *after: Any,
              parsl_resource_specification: dict | None = None) -> dict[str, Any]:
    """NVT at the mean compressed cell height (LAMMPS); energy averages in kcal/mol."""
    from mdxfer.md.interaction import run_nvt

    return _lammps_stage("nvt", run_nvt, workdir, protocol, launcher)


def combine_pair(smiles: str, candidate_dir: str, partner_dir: str, pair_dir: str,
                 protocol: Protocol, partner_protocol: Protocol, launcher: Launcher,
                 nvt_record: dict[str, Any] | None = None, *after: Any) -> dict[str, Any]:
    """The result record of one replica, by :func:`mdxfer.md.interaction.replica_result` (the
    one result path: the same fields and meanings as ``mdxfer interaction``'s records); it
    writes ``pair_dir/replica_result.json`` atomically; the record is returned as ``result``.

    ``protocol`` is the replica's protocol (candidate box and stack), ``partner_protocol`` the
    shared partner box's; every leg must have finished its stages for its protocol. ``smiles``:
    the candidate as the user wrote it. ``wall_s`` is the LAMMPS time of the candidate box and
    the stack (s), ``partner_wall_s`` the shared partner box's. ``host`` is where the stack's
    NVT ran (``nvt_record``), not where this light task runs.
    """
    from mdxfer.fileio import write_json_atomic
    from mdxfer.md.interaction import replica_result, summary_matches

    with _stage("combine", pair_dir) as rec:
        dirs = {"candidate": Path(candidate_dir), "partner": Path(partner_dir),
                "stack": Path(pair_dir)}
        legs: dict[str, dict[str, Any]] = {}
        for name, d in dirs.items():
            prot = partner_protocol if name == "partner" else protocol
            legs[name] = {}
            for stage in ("compress", "nvt"):
                data = _read_json(d / f"{stage}.json")
                if not summary_matches(d, data, prot):
                    raise StageFailure(f"the {name} box in {d} has no finished '{stage}' stage "
                                       "for this protocol", "combine", "error", pair_dir)
                legs[name][stage] = data
        rec["ran"] = not (dirs["stack"] / "replica_result.json").exists()
        result = replica_result(smiles, dirs["candidate"], dirs["partner"], dirs["stack"],
                                protocol, launcher, legs=legs)
        host = (nvt_record or {}).get("host")
        if host and result.get("host") != host:
            result["host"] = host
            write_json_atomic(dirs["stack"] / "replica_result.json", result)
        rec["result"] = result
    return rec
