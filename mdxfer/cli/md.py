"""`mdxfer build` and `mdxfer interaction`: the expensive target side."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the MD commands to ``app``."""
