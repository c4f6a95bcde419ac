"""SQLite plumbing shared by the campaign store (:mod:`mdxfer.campaign.store`) and the
active-learning state (:mod:`mdxfer.al.state`), which live in the same database file.

:func:`open_db` opens a database the one way both use it; :class:`Database` holds the
connection and the explicit ``BEGIN IMMEDIATE`` transactions (nested uses join the outermost,
so a batch of inserts is one commit).
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Iterator

from mdxfer.errors import MdxferError


def now() -> str:
    """UTC time stamp, ISO 8601 with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


JOURNAL_MODES = ("wal", "delete", "truncate")


def open_db(
    path: str | Path,
    journal: str = "wal",
    readonly: bool = False,
    error: type[Exception] = MdxferError,
    missing: str = "",
) -> sqlite3.Connection:
    """Open a SQLite database the way mdxfer's stores share it: autocommit (transactions are
    explicit), ``sqlite3.Row`` rows, a 30 s busy timeout; read-only through a ``mode=ro`` URI
    (``missing``: the message if the file does not exist), or read-write with the ``journal``
    mode checked (``":memory:"`` keeps its own) and ``synchronous = FULL``."""
    memory = str(path) == ":memory:"
    if journal.lower() not in JOURNAL_MODES:
        raise error(
            f"Unknown SQLite journal mode {journal!r}; use one of {', '.join(JOURNAL_MODES)}."
        )
    if not memory and Path(path).is_dir():
        raise error(
            f"Database {path} is a folder, not a SQLite file: name a file ([campaign] database)."
        )
    if readonly:
        if not Path(path).exists():
            raise error(missing or f"Database {path} does not exist.")
    elif not memory:
        parent = Path(path).parent
        if parent.exists() and not parent.is_dir():
            raise error(f"Database {path}: {parent} is a file, not a folder.")
        parent.mkdir(parents=True, exist_ok=True)
    try:
        if readonly:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None
            )
        else:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # garbage fails here
        if not readonly and not memory:
            mode = conn.execute(f"PRAGMA journal_mode = {journal.upper()}").fetchone()[0]
            if mode.lower() != journal.lower():
                conn.close()
                raise error(
                    f"SQLite refused journal mode {journal!r} for {path} (got {mode!r}); set "
                    "[campaign] sqlite_journal = 'delete' on network file systems."
                )
            conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.DatabaseError as exc:
        raise error(
            f"Database {path} cannot be used: SQLite says {exc!s}. It is not an mdxfer "
            "database (or it is damaged); name another file as the database."
        ) from None
    return conn


def table_names(conn: sqlite3.Connection) -> set[str]:
    """Names of the tables of an open database."""
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class Database:
    """An open SQLite database (:func:`open_db`); a context manager, or call :meth:`close`."""

    def __init__(
        self,
        path: str | Path,
        journal: str = "wal",
        readonly: bool = False,
        error: type[Exception] = MdxferError,
        missing: str = "",
    ):
        self._depth = 0
        self.conn = open_db(path, journal, readonly, error, missing)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def has_table(self, name: str) -> bool:
        return (
            self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
            is not None
        )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on an exception). Nested uses join
        the outermost transaction (one commit for a batch of inserts)."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self.conn.execute("COMMIT")

    def query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, args).fetchall()
