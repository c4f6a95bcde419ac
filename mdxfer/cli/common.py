"""Helpers shared by the CLI modules: one error path, and printing that never reads user text
as Rich markup.

Every command is wrapped in :func:`friendly_errors`: whatever goes wrong ends in one paragraph
on stderr and exit status 1 — no traceback unless ``mdxfer --debug`` or ``MDXFER_DEBUG=1``
asks for one. Usage errors (a bad option value) stay typer's: a usage panel and status 2.

Every console of the CLI is made by :func:`make_console` with markup off, so a SMILES such as
``c1cc[nH]c1``, a path with ``[/x]`` or a campaign name print as written (in tables, titles,
progress and errors alike); styles are given as :class:`rich.text.Text` spans, never as tags.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import sys
from typing import Callable, TypeVar

from rich.console import Console
from rich.text import Text

from mdxfer.errors import MdxferError

F = TypeVar("F", bound=Callable)

#: Set by ``mdxfer --debug``; ``MDXFER_DEBUG=1`` does the same.
DEBUG = False
#: Exit status of ``campaign run`` / ``retry`` when the run ended with failed candidates
#: (1 is an error, 2 a bad option value, 130 an interrupt).
EXIT_FAILED_TASKS = 3


def make_console(stderr: bool = True, **kwargs) -> Console:
    """A Rich console that prints strings literally (markup and highlighting off)."""
    return Console(stderr=stderr, markup=False, highlight=False, **kwargs)


console = make_console()


def styled(label: str, style: str, message: str) -> Text:
    """``label`` in ``style`` followed by ``message`` as plain text."""
    return Text.assemble((label, style), message)


def warn(message: str, out: Console | None = None) -> None:
    """``warning: message`` on stderr (the message printed literally)."""
    (out or console).print(styled("warning: ", "yellow", message), soft_wrap=True)


def debug_enabled() -> bool:
    """True when tracebacks are wanted: ``--debug`` or ``MDXFER_DEBUG`` set to a true value."""
    return DEBUG or os.environ.get("MDXFER_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def error_message(exc: BaseException) -> str:
    """One paragraph for an exception that ended a command."""
    if isinstance(exc, MdxferError):
        return str(exc)
    if isinstance(exc, sqlite3.DatabaseError):
        return (f"SQLite: {exc}. The database file is not an mdxfer database, or it is damaged "
                "or locked.")
    if isinstance(exc, UnicodeDecodeError):
        return f"A file is not UTF-8 text ({exc}); give a text file."
    if isinstance(exc, OSError):
        return str(exc) if str(exc) else f"{type(exc).__name__} (an operating-system error)"
    if isinstance(exc, MemoryError):
        return "Out of memory."
    text = re.sub(r"\s+", " ", str(exc)).strip()
    return (f"Unexpected {type(exc).__name__}: {text or 'no message'}. This is an input mdxfer "
            "does not check yet, or a bug: run again with --debug (or MDXFER_DEBUG=1) for the "
            "traceback, and report it.")


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` (literally) and exit with ``code``."""
    console.print(styled("error: ", "bold red", message), soft_wrap=True)
    sys.exit(code)


def friendly_errors(func: F) -> F:
    """Run a command; any exception but typer's own (usage errors, Exit, Abort) becomes
    ``error: <one paragraph>`` and exit status 1, unless :func:`debug_enabled`."""
    from typer import Abort, Exit
    from typer.exceptions import TyperException

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (TyperException, Exit, Abort):
            raise
        except Exception as exc:
            if debug_enabled():
                raise
            fail(error_message(exc))

    return wrapper  # type: ignore[return-value]
