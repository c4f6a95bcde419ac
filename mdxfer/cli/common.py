"""Helpers shared by the CLI modules: one error path, and printing that never reads user text
as Rich markup.

Every command is wrapped in :func:`friendly_errors`: whatever goes wrong ends in one paragraph
on stderr and exit status 1 — no traceback unless ``mdxfer --debug`` or ``MDXFER_DEBUG=1``
asks for one. Usage errors (a bad option value) stay typer's: a usage panel and status 2.

Every command that writes an output folder runs inside :func:`command_log`, which writes its
arguments (``OUT/args.json``) and a log of everything it prints (``OUT/mdxfer.log``, or
``--log-file``) there.

Every console of the CLI is made by :func:`make_console` with markup off, so a SMILES such as
``c1cc[nH]c1``, a path with ``[/x]`` or a campaign name print as written (in tables, titles,
progress and errors alike); styles are given as :class:`rich.text.Text` spans, never as tags.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sqlite3
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable, Iterator, TypeVar

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
    return DEBUG or os.environ.get("MDXFER_DEBUG", "").strip().lower() not in (
        "",
        "0",
        "false",
        "no",
    )


def error_message(exc: BaseException) -> str:
    """One paragraph for an exception that ended a command."""
    if isinstance(exc, MdxferError):
        return str(exc)
    if isinstance(exc, sqlite3.DatabaseError):
        return (
            f"SQLite: {exc}. The database file is not an mdxfer database, or it is damaged "
            "or locked."
        )
    if isinstance(exc, UnicodeDecodeError):
        return f"A file is not UTF-8 text ({exc}); give a text file."
    if isinstance(exc, OSError):
        return str(exc) if str(exc) else f"{type(exc).__name__} (an operating-system error)"
    if isinstance(exc, MemoryError):
        return "Out of memory."
    text = re.sub(r"\s+", " ", str(exc)).strip()
    return (
        f"Unexpected {type(exc).__name__}: {text or 'no message'}. This is an input mdxfer "
        "does not check yet, or a bug: run again with --debug (or MDXFER_DEBUG=1) for the "
        "traceback, and report it."
    )


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


# ------------------------------------------------------------------------------ run records

#: written into every output folder of a command: its arguments, and the log of what it printed
ARGS_FILE = "args.json"
LOG_FILE = "mdxfer.log"
LOG_FILE_HELP = (
    f"Append the command's log (arguments, versions, everything it prints) to this file "
    f"instead of OUT/{LOG_FILE}."
)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _jsonable(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class _Log:
    """The log file of a command: text is buffered in memory until ``out_dir`` exists (a
    command refused before it writes anything leaves no folder behind), then appended to
    ``path``. With ``eager`` (an explicit ``--log-file``) it is written from the start."""

    def __init__(self, path: Path, out_dir: Path, eager: bool):
        self.path, self.out_dir, self.eager = path, out_dir, eager
        self.pending: list[str] = []
        self.fh = None

    def write(self, text: str) -> None:
        if self.fh is None and (self.eager or self.out_dir.is_dir()):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.path, "a", encoding="utf-8")
            self.fh.write("".join(self.pending))
            self.pending = []
        if self.fh is None:
            self.pending.append(text)
        else:
            self.fh.write(text)
            self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


class _Tee:
    """A text stream that writes to ``stream`` and, line by line without terminal control codes
    (progress bars), to a :class:`_Log`."""

    def __init__(self, stream, log: _Log):
        self.stream, self.log, self.partial = stream, log, ""

    def write(self, text: str) -> int:
        n = self.stream.write(text)
        lines = (self.partial + _ANSI.sub("", text)).split("\n")
        self.partial = lines.pop()
        if lines:
            self.log.write("".join(ln.rsplit("\r", 1)[-1] + "\n" for ln in lines))
        return n if n is not None else len(text)

    def flush(self) -> None:
        self.stream.flush()

    def finish(self) -> None:
        """Log an unterminated last line."""
        if self.partial.strip():
            self.log.write(self.partial.rsplit("\r", 1)[-1] + "\n")
        self.partial = ""

    def __getattr__(self, name: str):  # isatty, encoding, fileno ... of the real stream
        return getattr(self.stream, name)


@contextmanager
def command_log(
    out_dir: Path, command: str, params: dict, log_file: Path | None = None
) -> Iterator[None]:
    """Record a command that writes the folder ``out_dir``: ``OUT/args.json`` (command line,
    parameters, working directory, software versions, start time) and ``OUT/mdxfer.log`` (or
    ``log_file``, appended: a header with the same facts, everything the command prints on
    stdout and stderr, then the exit status and wall time). Nothing is written while
    ``out_dir`` does not exist, so a command refused before it starts leaves no folder."""
    from mdxfer.fileio import write_json_atomic
    from mdxfer.provenance import software_versions

    out_dir = Path(out_dir)
    log_path = Path(log_file) if log_file else out_dir / LOG_FILE
    started = datetime.now(UTC)
    record = {
        "command": f"mdxfer {command}",
        "argv": [sys.argv[0].rsplit("/", 1)[-1], *sys.argv[1:]],
        "params": {k: _jsonable(v) for k, v in params.items()},
        "cwd": os.getcwd(),
        "started": started.isoformat(timespec="seconds"),
        "log_file": str(log_path),
        "versions": software_versions(),
    }
    header = (
        f"==== {record['started']} mdxfer {command}\n"
        f"params: {json.dumps(record['params'], sort_keys=True)}\n"
        f"versions: {json.dumps(record['versions'], sort_keys=True)}\n"
    )
    log = _Log(log_path, out_dir, eager=log_file is not None)
    log.write(header)
    real = sys.stdout, sys.stderr
    tees = _Tee(real[0], log), _Tee(real[1], log)
    sys.stdout, sys.stderr = tees
    status = "exit status 0"
    t0 = time.perf_counter()
    try:
        yield
    except SystemExit as exc:
        status = f"exit status {exc.code}"
        raise
    except BaseException as exc:
        log.write(f"error: {error_message(exc)}\n")
        status = "exit status 1"
        raise
    finally:
        sys.stdout, sys.stderr = real
        for tee in tees:
            tee.finish()
        if out_dir.is_dir():
            write_json_atomic(out_dir / ARGS_FILE, record)
        log.write(f"==== {status} after {time.perf_counter() - t0:.1f} s\n")
        log.close()


def logged(command: str, out_param: str = "out") -> Callable[[F], F]:
    """Decorate a command whose option ``out_param`` is its output folder: adds ``--log-file``
    and runs the command inside :func:`command_log` (``OUT/args.json`` and ``OUT/mdxfer.log``).
    Put it under :func:`friendly_errors`, so that errors are logged too."""
    import inspect
    from typing import Optional

    import typer

    def decorate(func: F) -> F:
        sig = inspect.signature(func)
        extra = inspect.Parameter(
            "log_file",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Optional[Path],
            default=typer.Option(None, "--log-file", help=LOG_FILE_HELP),
        )

        @functools.wraps(func)
        def wrapper(*args, log_file: Path | None = None, **kwargs):
            params = dict(sig.bind_partial(*args, **kwargs).arguments)
            out = params.get(out_param)
            if out is None:
                return func(*args, **kwargs)
            with command_log(Path(out), command, {**params, "log_file": log_file}, log_file):
                return func(*args, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), extra])  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
