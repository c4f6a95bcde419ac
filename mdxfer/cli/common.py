"""Helpers shared by the CLI modules: error reporting without tracebacks."""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

from rich.console import Console

from mdxfer.errors import MdxferError

console = Console(stderr=True)
F = TypeVar("F", bound=Callable)


def friendly_errors(func: F) -> F:
    """Turn :class:`MdxferError` (and bad files) into a one-paragraph message and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MdxferError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
            sys.exit(1)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
