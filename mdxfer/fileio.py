"""Files: atomic writes and locks.

Atomic file writes shared by the MD stages, model files, manifests and exports: write a
temporary file beside the target, ``fsync`` it, rename it over the target, ``fsync`` the
folder — so a crash (or a full disk) never leaves half a file, and a finished rename survives
a power cut. The file gets the permissions a plain ``open`` would give it (``0666`` less the
umask: group-readable under umask 022 or 027), not ``mkstemp``'s private ``0600``; a write
that fails removes its temporary file and leaves the target as it was.

Locks: one kind, :class:`FileLock` (an exclusive ``flock``, released by the kernel when the
process dies, so a ``kill -9`` never leaves a stale lock), used for a campaign task directory
(waiting), and — through :class:`DatabaseLock` — for the campaign runner and the
active-learning loop (refusing a second process)."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any, Iterator

from mdxfer.errors import MdxferError


def current_umask() -> int:
    """The process's umask (from ``/proc/self/status`` on Linux; elsewhere set and restored)."""
    with suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(folder: str | Path) -> None:
    """``fsync`` a folder, so that a rename inside it is on disk (a no-op where the file
    system refuses it)."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing (``mode`` ``"w"`` or ``"wb"``); when
    the block ends normally it is flushed, ``fsync``-ed, given ``0666 & ~umask``, renamed over
    ``path`` and the folder is ``fsync``-ed. An exception removes the temporary file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_csv(path: str | Path, rows: list[dict[str, Any]], columns: list[str]) -> int:
    """``rows`` as CSV at ``path`` with ``columns`` (lists and dicts as JSON text), written by
    :func:`atomic_write` (a failed write leaves no file behind); the number of rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()}
            )
    return len(rows)


def write_json_atomic(path: str | Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` atomically (:func:`atomic_write`)."""
    with atomic_write(path) as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=float)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`)."""
    with atomic_write(path) as fh:
        fh.write(text)


class FileLock:
    """An exclusive ``flock`` on ``path`` (created with its folder if missing), as a context
    manager. ``wait=False`` (default): raise :meth:`busy_error` at once when another process
    holds it; ``wait=True``: block until it is free, and run unlocked on a file system without
    lock support. The holder writes ``pid N on HOST`` into the file (named in the busy error)."""

    def __init__(self, path: str | Path, wait: bool = False):
        self.path, self.wait = Path(path), wait
        self.fh: IO | None = None

    def busy_error(self, owner: str) -> Exception:
        """The error raised when another process (``owner``) holds the lock."""
        return MdxferError(f"{self.path} is locked by {owner}.")

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            fh.close()
            raise self.busy_error(owner) from None
        except OSError:  # pragma: no cover - e.g. Lustre mounted without flock
            if not self.wait:
                fh.close()
                raise
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {os.uname().nodename}")
        fh.flush()
        self.fh = fh

    def release(self) -> None:
        if self.fh:
            self.fh.close()
            self.fh = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    @staticmethod
    def is_held(path: str | Path) -> bool:
        """Whether some process holds the lock on ``path`` now."""
        path = Path(path)
        if not path.exists():
            return False
        with open(path, "a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


class DatabaseLock(FileLock):
    """A non-blocking :class:`FileLock` on ``<database><suffix>``, beside the database's real
    path (symlinks and ``..`` resolved), so another spelling of the same database takes the
    same lock. Subclasses set :attr:`suffix` and :meth:`busy_error`."""

    suffix = ".lock"

    def __init__(self, db: str | Path):
        super().__init__(self.lock_path(db))

    @classmethod
    def lock_path(cls, db: str | Path) -> Path:
        """``<real path of db><suffix>``."""
        return Path(os.path.realpath(Path(db).expanduser()) + cls.suffix)

    @classmethod
    def held(cls, db: str | Path) -> bool:
        """Whether some process holds this lock of database ``db`` now."""
        return cls.is_held(cls.lock_path(db))
