"""The loop's state, in the campaign's SQLite file (its own tables, created if missing).

Tables
------
``al_meta``          the loop's settings (JSON) and pool digest, checked on resume
``al_observations``  every measured molecule the model may learn from: canonical SMILES,
                     value and stderr (target unit), ``done``/``failed``, where it came from
                     (``initial`` file, ``campaign`` result from outside the loop, ``oracle``
                     answer to a pick) and the round that asked for it
``al_rounds``        one row per round: ``selected`` (model fitted, picks written, oracle not
                     finished) or ``done``; training set, cross-validated model quality,
                     best so far, timings and the fitted model itself (``model`` BLOB)
``al_predictions``   every pool molecule's predicted mean, spread and acquisition score, per round
``al_picks``         the picks of every round, with their predictions, status and value

A round is written in one transaction when it is selected (model + predictions + picks), each
measurement in one transaction (pick + observation), and the round is closed in one more: a
``kill -9`` at any moment leaves either a round not yet selected (selected again, identically,
from the same seed) or a selected round whose pending picks are measured on resume — no round
is repeated or lost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from mdxfer.db import Database, now, table_names
from mdxfer.errors import ALError
from mdxfer.fileio import DatabaseLock

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS al_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS al_observations (
    smiles TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    value REAL, stderr REAL, error TEXT,
    source TEXT NOT NULL, round INTEGER,
    added_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS al_rounds (
    round INTEGER PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('selected', 'done')),
    acquisition TEXT NOT NULL,
    n_train INTEGER NOT NULL,
    n_picks INTEGER NOT NULL,
    n_measured INTEGER,
    best_value REAL, best_smiles TEXT,
    cv_r2 REAL, cv_mae REAL, cv_spearman REAL, cv_coverage REAL,
    cv_json TEXT, train_json TEXT,
    model_format TEXT, model BLOB, model_info TEXT,
    fit_s REAL, select_s REAL, oracle_s REAL,
    started_at TEXT NOT NULL, finished_at TEXT);
CREATE TABLE IF NOT EXISTS al_predictions (
    round INTEGER NOT NULL REFERENCES al_rounds (round),
    smiles TEXT NOT NULL,
    mean REAL, std REAL, score REAL, in_domain INTEGER,
    PRIMARY KEY (round, smiles));
CREATE TABLE IF NOT EXISTS al_picks (
    round INTEGER NOT NULL REFERENCES al_rounds (round),
    rank INTEGER NOT NULL,
    smiles TEXT NOT NULL,
    mean REAL, std REAL, score REAL, member INTEGER,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    value REAL, stderr REAL, error TEXT, measured_at TEXT,
    PRIMARY KEY (round, smiles));
CREATE INDEX IF NOT EXISTS al_picks_status ON al_picks (status);
"""


class ALState(Database):
    """The loop's tables in ``path`` (the campaign database; ``":memory:"`` for benchmarks)."""

    def __init__(self, path: str | Path, journal: str = "wal", readonly: bool = False):
        self.path = str(path)
        super().__init__(
            self.path,
            journal,
            readonly,
            ALError,
            f"Database {self.path} does not exist yet: start the loop with `mdxfer al run FILE`.",
        )
        have = table_names(self.conn)
        if have and not any(t == "meta" or t.startswith("al_") for t in have):
            self.conn.close()
            raise ALError(
                f"Database {self.path} is another program's SQLite database (tables "
                f"{', '.join(sorted(have)[:5])}); mdxfer will not write into it."
            )
        if readonly:
            if "al_rounds" not in have:
                raise ALError(
                    f"{self.path} holds no active-learning state yet (start the loop "
                    "with `mdxfer al run FILE`)."
                )
            return
        with self.transaction() as c:
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    c.execute(stmt)
            row = c.execute("SELECT value FROM al_meta WHERE key = 'schema'").fetchone()
            if row is None:
                c.execute("INSERT INTO al_meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise ALError(
                    f"{self.path} has active-learning schema {row[0]}; this mdxfer "
                    f"reads {SCHEMA_VERSION}."
                )

    # ------------------------------------------------------------ settings
    def meta(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM al_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO al_meta VALUES (?, ?)",
                (key, json.dumps(value, sort_keys=True)),
            )

    # ------------------------------------------------------------ observations
    def add_observations(
        self, rows: Sequence[dict[str, Any]], source: str, round_: int | None = None
    ) -> int:
        """Insert measurements not yet known (an existing one is kept); returns how many were new."""
        n = 0
        with self.transaction() as c:
            for r in rows:
                n += c.execute(
                    "INSERT OR IGNORE INTO al_observations (smiles, status, value, stderr, error, source,"
                    " round, added_at) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        r["smiles"],
                        r["status"],
                        r.get("value"),
                        r.get("stderr"),
                        r.get("error"),
                        source,
                        round_,
                        now(),
                    ),
                ).rowcount
        return n

    def observations(self, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM al_observations"
        args: tuple = ()
        if status:
            sql += " WHERE status = ?"
            args = (status,)
        return [dict(r) for r in self.query(sql + " ORDER BY rowid", args)]

    # ------------------------------------------------------------ rounds
    def rounds(self) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.query(
                "SELECT round, state, acquisition, n_train, n_picks, n_measured, best_value, best_smiles, "
                "cv_r2, cv_mae, cv_spearman, cv_coverage, model_format, model_info, fit_s, select_s, "
                "oracle_s, started_at, finished_at FROM al_rounds ORDER BY round"
            )
        ]

    def round_row(self, r: int, with_model: bool = False) -> dict[str, Any] | None:
        cols = (
            "*"
            if with_model
            else (
                "round, state, acquisition, n_train, n_picks, n_measured, best_value, "
                "best_smiles, cv_r2, cv_mae, cv_spearman, cv_coverage, cv_json, "
                "train_json, model_format, model_info, fit_s, select_s, oracle_s, "
                "started_at, finished_at"
            )
        )
        row = self.conn.execute(f"SELECT {cols} FROM al_rounds WHERE round = ?", (r,)).fetchone()
        return None if row is None else dict(row)

    def last_round(self) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT round FROM al_rounds ORDER BY round DESC LIMIT 1"
        ).fetchone()
        return None if row is None else self.round_row(row[0])

    def write_round(
        self,
        r: int,
        acquisition: str,
        train: list[str],
        picks: list[dict[str, Any]],
        predictions: list[tuple] | None,
        cv: dict[str, Any] | None,
        model: tuple[str, bytes] | None,
        model_info: dict[str, Any] | None,
        fit_s: float,
        select_s: float,
        started_at: str,
    ) -> None:
        """Round ``r`` selected: model, predictions and picks in one transaction."""
        cv = cv or {}
        with self.transaction() as c:
            c.execute(
                "INSERT INTO al_rounds (round, state, acquisition, n_train, n_picks, cv_r2, cv_mae, "
                "cv_spearman, cv_coverage, cv_json, train_json, model_format, model, model_info, "
                "fit_s, select_s, started_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    r,
                    "selected",
                    acquisition,
                    len(train),
                    len(picks),
                    cv.get("r2"),
                    cv.get("mae"),
                    cv.get("spearman"),
                    cv.get("coverage_2sd"),
                    json.dumps(cv) if cv else None,
                    json.dumps(train),
                    model[0] if model else None,
                    model[1] if model else None,
                    json.dumps(model_info) if model_info else None,
                    fit_s,
                    select_s,
                    started_at,
                ),
            )
            if predictions:
                c.executemany(
                    "INSERT INTO al_predictions (round, smiles, mean, std, score, in_domain) "
                    "VALUES (?,?,?,?,?,?)",
                    [(r, *p) for p in predictions],
                )
            c.executemany(
                "INSERT INTO al_picks (round, rank, smiles, mean, std, score, member, status) "
                "VALUES (?,?,?,?,?,?,?, 'pending')",
                [
                    (
                        r,
                        k + 1,
                        p["smiles"],
                        p.get("mean"),
                        p.get("std"),
                        p.get("score"),
                        p.get("member"),
                    )
                    for k, p in enumerate(picks)
                ],
            )

    def record_measurement(self, r: int, m: dict[str, Any]) -> None:
        """A pick's answer: the pick row and the observation, in one transaction."""
        with self.transaction() as c:
            c.execute(
                "UPDATE al_picks SET status = ?, value = ?, stderr = ?, error = ?, measured_at = ? "
                "WHERE round = ? AND smiles = ?",
                (
                    m["status"],
                    m.get("value"),
                    m.get("stderr"),
                    m.get("error"),
                    now(),
                    r,
                    m["smiles"],
                ),
            )
            c.execute(
                "INSERT OR IGNORE INTO al_observations (smiles, status, value, stderr, error, source,"
                " round, added_at) VALUES (?,?,?,?,?,'oracle',?,?)",
                (
                    m["smiles"],
                    m["status"],
                    m.get("value"),
                    m.get("stderr"),
                    m.get("error"),
                    r,
                    now(),
                ),
            )

    def finish_round(
        self,
        r: int,
        n_measured: int,
        best_value: float | None,
        best_smiles: str | None,
        oracle_s: float,
    ) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE al_rounds SET state = 'done', n_measured = ?, best_value = ?, best_smiles = ?, "
                "oracle_s = COALESCE(oracle_s, 0) + ?, finished_at = ? WHERE round = ?",
                (n_measured, best_value, best_smiles, oracle_s, now(), r),
            )

    def add_oracle_time(self, r: int, seconds: float) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE al_rounds SET oracle_s = COALESCE(oracle_s, 0) + ? WHERE round = ?",
                (seconds, r),
            )

    def picks(self, r: int | None = None, status: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM al_picks WHERE 1=1", []
        if r is not None:
            sql += " AND round = ?"
            args.append(r)
        if status:
            sql += " AND status = ?"
            args.append(status)
        return [dict(x) for x in self.query(sql + " ORDER BY round, rank", tuple(args))]

    def predictions(self, r: int) -> list[dict[str, Any]]:
        return [
            dict(x)
            for x in self.query("SELECT * FROM al_predictions WHERE round = ? ORDER BY rowid", (r,))
        ]

    def model_blob(self, r: int) -> tuple[str | None, bytes | None]:
        row = self.conn.execute(
            "SELECT model_format, model FROM al_rounds WHERE round = ?", (r,)
        ).fetchone()
        return (None, None) if row is None else (row[0], row[1])


class LoopLock(DatabaseLock):
    """``<database>.al.lock``: one loop per database at a time (released by the kernel when the
    process dies, so a killed loop never leaves a stale lock). Separate from the campaign
    runner's own lock, which the loop takes (through the campaign) while it simulates."""

    suffix = ".al.lock"

    def busy_error(self, owner: str) -> Exception:
        return ALError(f"An active-learning loop is already running on this database ({owner}).")
