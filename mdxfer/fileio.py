"""Atomic file writes shared by the MD stages, model files, manifests and exports: write a
temporary file beside the target, ``fsync`` it, rename it over the target, ``fsync`` the
folder — so a crash (or a full disk) never leaves half a file, and a finished rename survives
a power cut. The file gets the permissions a plain ``open`` would give it (``0666`` less the
umask: group-readable under umask 022 or 027), not ``mkstemp``'s private ``0600``; a write
that fails removes its temporary file and leaves the target as it was."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any, Iterator


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


def write_json_atomic(path: str | Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` atomically (:func:`atomic_write`)."""
    with atomic_write(path) as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=float)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`)."""
    with atomic_write(path) as fh:
        fh.write(text)


def save_torch_atomic(data: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (:func:`atomic_write`)."""
    import torch

    with atomic_write(path, "wb") as fh:
        torch.save(data, fh)
