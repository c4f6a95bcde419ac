"""Atomic file writes shared by the MD stages, model files and manifests: write a temporary
file beside the target, then rename it over the target, so a crash never leaves half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json_atomic(path: str | Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` via a temporary file and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=float)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_torch_atomic(data: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` via a temporary file and an atomic rename."""
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(data, tmp)
    tmp.replace(path)
