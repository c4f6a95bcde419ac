"""Start a command that dies with the process that started it (Linux ``PR_SET_PDEATHSIG``).

Used as ``python -I -S guard.py PARENT_PID COMMAND ARGS...``: it asks the kernel to SIGKILL
it when its parent goes away, checks that the parent is still ``PARENT_PID``, then *replaces
itself* (``execvp``, no shell) with the command, which keeps that setting. So when
``mdxfer campaign run`` is killed with ``kill -9``, the LAMMPS it started does not keep
writing into the task directory while a resumed run works there.

Standard library only, so that it starts in a few milliseconds without ``site``.
"""

import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write("usage: guard.py PARENT_PID COMMAND [ARGS...]\n")
        return 2
    parent, command = int(argv[0]), argv[1:]
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: run unguarded
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        return 137
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.stderr.write(f"ERROR: cannot start {command[0]!r}: {exc.strerror}\n")
        return 127
    return 0  # pragma: no cover - execvp does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
