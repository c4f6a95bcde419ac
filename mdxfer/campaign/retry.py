"""Failure classes and the retry policy: which failed stages are worth another try.

A leaf module (it imports only :mod:`mdxfer.errors`; Parsl only inside :func:`failure_class`),
read by the campaign file loader (:mod:`.spec`), the tasks (:mod:`.apps`), the Parsl
configuration (:mod:`.profiles`) and the runner alike.

Failure classes: ``molecule`` (invalid SMILES), ``forcefield`` (an atom DREIDING does not
cover), ``box`` (packing), ``protocol`` (invalid settings) — permanent, never retried —, and
``lammps_input`` (LAMMPS refused its input with an ERROR line that is not a blow-up: the same
input fails again) — permanent, never retried —, and ``lost`` (worker, manager, block or wall
time lost), ``lammps`` (LAMMPS blew up, died without an ERROR line or timed out), ``error``
(anything unexpected), ``dependency`` (an upstream stage failed), ``stopped``
(the run was interrupted before the stage started).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mdxfer.errors import (
    BoxError,
    ForceFieldError,
    LammpsError,
    MdxferError,
    MoleculeError,
    ProtocolError,
    StageFailure,
)

#: Failure classes the retry policy can name.
RETRYABLE = ("lost", "lammps", "error")
#: Failure classes that never succeed on a retry of the same input.
PERMANENT = ("molecule", "forcefield", "box", "protocol", "lammps_input")

#: The failure class of each mdxfer error raised inside a stage (first match wins).
ERROR_CLASSES: tuple[tuple[type[MdxferError], str], ...] = (
    (MoleculeError, "molecule"),
    (ForceFieldError, "forcefield"),
    (BoxError, "box"),
    (ProtocolError, "protocol"),
    (LammpsError, "lammps"),
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed stage is tried again, and for which failure classes.

    ``max_retries``: extra attempts per stage (Parsl ``Config(retries=...)``). ``retry_on``:
    failure classes worth retrying — ``lost`` (worker/manager/node lost, walltime), ``lammps``
    (LAMMPS blew up — the next attempt starts from new velocities —, died without an ERROR
    line or timed out), ``error`` (any other unexpected exception). Invalid molecules,
    unsupported elements, packing and protocol errors and LAMMPS refusing its input
    (``lammps_input``) are never retried.
    """

    max_retries: int = 2
    retry_on: tuple[str, ...] = ("lost", "lammps")


def error_class(exc: MdxferError) -> str:
    """The failure class of an mdxfer error raised by a stage (``error`` if none fits)."""
    if isinstance(exc, LammpsError) and exc.repeatable:
        return "lammps_input"
    return next((kind for cls, kind in ERROR_CLASSES if isinstance(exc, cls)), "error")


def failure_class(exc: BaseException) -> str:
    """The retry policy's name for ``exc``: a StageFailure's kind, ``lost`` for lost workers,
    managers, blocks and timeouts, ``dependency`` for an upstream failure, else ``error``."""
    if isinstance(exc, StageFailure):
        return exc.kind
    from parsl.app.errors import AppTimeout
    from parsl.dataflow.errors import DependencyError
    from parsl.executors.errors import BadStateException
    from parsl.executors.high_throughput.errors import ManagerLost, WorkerLost

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
