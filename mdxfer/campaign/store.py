"""The campaign database: one SQLite file per campaign (WAL journal by default).

Tables
------
``molecules``  every input SMILES as given (canonical SMILES, InChIKey, or why it is invalid)
``tasks``      units of work keyed by content — ``species`` (one molecule's box) and ``pair``
               (a candidate stacked on the partner, with E_int) — with their state
               (pending, running, done, failed), last finished stage and failure reason
``candidates`` which molecule asked for which pair task
``results``    E_int and friends (kcal/mol) with provenance, one row per finished candidate:
               the aggregate over its replicas (``n_replicas``, ``replicas``, ...)
``replica_results``  one row per finished replica (its pair task), the record of
               :func:`mdxfer.md.interaction.replica_result`; a candidate's result is the
               aggregate of its replicas' rows, so finished replicas are never run again
``stage_runs`` one row per stage execution reported by a task (ran = 0: skipped, its output
               already existed), with host, times and attempts: the audit trail of resumes
``runs``       one row per ``campaign run`` (pid, host, start, end, status)
``jobs``       one row per block a run asked a provider for (Slurm/PBS job id or local pid),
               its last known scheduler state, when a worker of it connected, and whether a
               later run cancelled it as a leftover of a killed runner
``protocols``  the protocol behind every digest

Task keys are content hashes of (kind, canonical SMILES, partner, protocol digest, force-field
version): the same simulation has the same key in every campaign and is never run twice.
Only the process running the campaign writes; it commits after every event, so a ``kill -9``
loses at most the event in flight, never a finished result.

Schema version 2 added the results columns of :data:`ADDED_RESULT_COLUMNS` and the
``replica_results`` table; a version 1 database is migrated when opened for writing
(``ALTER TABLE ... ADD COLUMN``; its rows keep NULL there, ``n_replicas`` NULL meaning 1).
Version 3 added ``E_int_stderr_run``, ``E_cross_stderr_run`` and ``E_cross_replica_sd`` the
same way (rows stored before keep NULL: their record JSON has what they were written with).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mdxfer.db import Database, now, table_names
from mdxfer.errors import CampaignError

SCHEMA_VERSION = 3
STATES = ("pending", "running", "done", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS protocols (
    digest TEXT PRIMARY KEY, name TEXT NOT NULL, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS molecules (
    id INTEGER PRIMARY KEY,
    input_smiles TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    smiles TEXT,
    inchikey TEXT,
    error TEXT,
    added_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('species', 'pair')),
    smiles TEXT,
    partner TEXT,
    protocol_digest TEXT NOT NULL,
    forcefield TEXT NOT NULL,
    workdir TEXT,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    stage TEXT,
    error TEXT,
    error_class TEXT,
    failed_stage TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    run_id INTEGER);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks (kind, state);
CREATE TABLE IF NOT EXISTS candidates (
    molecule_id INTEGER NOT NULL REFERENCES molecules (id),
    task_key TEXT NOT NULL REFERENCES tasks (key),
    PRIMARY KEY (molecule_id, task_key));
CREATE TABLE IF NOT EXISTS results (
    task_key TEXT PRIMARY KEY REFERENCES tasks (key),
    smiles TEXT NOT NULL,
    partner TEXT NOT NULL,
    protocol_digest TEXT NOT NULL,
    forcefield TEXT NOT NULL,
    E_int REAL, E_int_stderr REAL, E_int_pe REAL, E_int_pe_stderr REAL,
    E_tot REAL, E_tot_stderr REAL, E_chem REAL, E_chem_stderr REAL,
    E_partner REAL, E_partner_stderr REAL,
    density_chem_g_cm3 REAL, density_partner_g_cm3 REAL, density_stack_g_cm3 REAL,
    lz_chem_A REAL, lz_partner_A REAL, lz_stack_A REAL,
    mdxfer_version TEXT, lammps_version TEXT, lammps_command TEXT,
    protocol_name TEXT, protocol_json TEXT, seed INTEGER,
    host TEXT, wall_s REAL, partner_wall_s REAL,
    warnings TEXT, record TEXT NOT NULL, created_at TEXT NOT NULL,
    E_cross REAL, E_cross_stderr REAL, E_int_replica_sd REAL, n_replicas INTEGER,
    replicas TEXT, estimator TEXT, E_int_stderr_with_partner REAL,
    E_int_stderr_run REAL, E_cross_stderr_run REAL, E_cross_replica_sd REAL);
CREATE TABLE IF NOT EXISTS replica_results (
    task_key TEXT PRIMARY KEY REFERENCES tasks (key),
    candidate_key TEXT NOT NULL REFERENCES tasks (key),
    replica INTEGER NOT NULL,
    seed INTEGER,
    E_int REAL, E_int_stderr REAL,
    record TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS replica_results_candidate ON replica_results (candidate_key);
CREATE TABLE IF NOT EXISTS stage_runs (
    id INTEGER PRIMARY KEY,
    task_key TEXT NOT NULL REFERENCES tasks (key),
    stage TEXT NOT NULL,
    run_id INTEGER,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    ran INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    host TEXT, started_at TEXT, finished_at TEXT,
    app_s REAL, lammps_s REAL, error TEXT);
CREATE INDEX IF NOT EXISTS stage_runs_task ON stage_runs (task_key, stage);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL, finished_at TEXT,
    host TEXT NOT NULL, pid INTEGER NOT NULL, profile TEXT,
    status TEXT NOT NULL, note TEXT);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    executor TEXT NOT NULL,
    block TEXT NOT NULL,
    job_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT,
    submitted_at TEXT NOT NULL,
    started_at TEXT,
    connected_at TEXT,
    ended_at TEXT,
    updated_at TEXT NOT NULL,
    UNIQUE (run_id, executor, block));
"""
#: scheduler states after which a job holds no node (Parsl's terminal JobStates, lower case)
JOB_TERMINAL = ("completed", "failed", "cancelled", "timeout", "missing", "scaled_in")

#: the measured values of a result, in the order the export shows them
RESULT_VALUES = (
    "E_int",
    "E_int_stderr",
    "E_int_stderr_with_partner",
    "n_replicas",
    "E_int_replica_sd",
    "replicas",
    "estimator",
    "E_cross",
    "E_cross_stderr",
    "E_cross_replica_sd",
    "E_int_stderr_run",
    "E_cross_stderr_run",
    "E_int_pe",
    "E_int_pe_stderr",
    "E_tot",
    "E_tot_stderr",
    "E_chem",
    "E_chem_stderr",
    "E_partner",
    "E_partner_stderr",
    "density_chem_g_cm3",
    "density_partner_g_cm3",
    "density_stack_g_cm3",
    "lz_chem_A",
    "lz_partner_A",
    "lz_stack_A",
)
#: how a result was made (seed, versions, machine, wall time)
RESULT_PROVENANCE = (
    "seed",
    "mdxfer_version",
    "lammps_version",
    "lammps_command",
    "host",
    "wall_s",
    "partner_wall_s",
)
#: the results table's columns besides its keys
RESULT_COLUMNS = RESULT_VALUES + RESULT_PROVENANCE
#: results columns added in schema version 2, with their SQL types (the migration adds them)
ADDED_RESULT_COLUMNS = (
    ("E_cross", "REAL"),
    ("E_cross_stderr", "REAL"),
    ("E_int_replica_sd", "REAL"),
    ("n_replicas", "INTEGER"),
    ("replicas", "TEXT"),
    ("estimator", "TEXT"),
    ("E_int_stderr_with_partner", "REAL"),
    # schema version 3: the within-run stderrs beside the calibrated ones, E_cross's replica SD
    ("E_int_stderr_run", "REAL"),
    ("E_cross_stderr_run", "REAL"),
    ("E_cross_replica_sd", "REAL"),
)
#: results columns that hold JSON text (lists)
JSON_RESULT_COLUMNS = ("replicas",)


def iso(epoch: float | None) -> str | None:
    return (
        None
        if epoch is None
        else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")
    )


def content_key(*parts: str) -> str:
    """24 hex digits of SHA-256 over ``parts`` (kind, SMILES, partner, protocol digest, ...)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def species_key(smiles: str, protocol_digest: str, forcefield: str) -> str:
    """Key of one molecule's box (canonical ``smiles``) under a protocol and force field."""
    return content_key("species", smiles, protocol_digest, forcefield)


def pair_key(smiles: str, partner: str, protocol_digest: str, forcefield: str) -> str:
    """Key of E_int(candidate ``smiles``, ``partner``) under a protocol and force field."""
    return content_key("pair", smiles, partner, protocol_digest, forcefield)


class Store(Database):
    """The campaign database. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path, journal: str = "wal", readonly: bool = False):
        super().__init__(
            path,
            journal,
            readonly,
            CampaignError,
            f"Campaign database {path} does not exist yet (run `mdxfer campaign run FILE` first).",
        )
        self.path = Path(path)
        have = table_names(self.conn)
        if readonly and not {"meta", "molecules", "tasks", "results"} <= have:
            self.conn.close()
            raise CampaignError(
                f"Database {self.path} holds no campaign yet (no campaign tables): "
                "run `mdxfer campaign run FILE` first, or check [campaign] database."
            )
        if have and not any(t == "meta" or t.startswith("al_") for t in have):
            self.conn.close()
            raise CampaignError(
                f"Database {self.path} is another program's SQLite database (tables "
                f"{', '.join(sorted(have)[:5])}); mdxfer will not write into it. Name "
                "a new file as [campaign] database."
            )
        if not readonly:
            self.conn.execute("PRAGMA foreign_keys = ON")
            with self.transaction():
                row = (
                    self.conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                    if self.has_table("meta")
                    else None
                )
                if row is not None and int(row[0]) > SCHEMA_VERSION:
                    raise CampaignError(
                        f"{self.path} has schema version {row[0]}; this mdxfer "
                        f"reads versions up to {SCHEMA_VERSION}."
                    )
                self._migrate()
                for stmt in SCHEMA.split(";"):
                    if stmt.strip():
                        self.conn.execute(stmt)
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )

    def _migrate(self) -> None:
        """Bring an older database to this schema: add the results columns it lacks."""
        if not self.has_table("results"):
            return
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(results)")}
        for name, sqltype in ADDED_RESULT_COLUMNS:
            if name not in have:
                self.conn.execute(f"ALTER TABLE results ADD COLUMN {name} {sqltype}")

    # ------------------------------------------------------------ molecules and tasks
    def add_protocol(self, digest: str, name: str, data: dict[str, Any]) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO protocols VALUES (?, ?, ?)",
                (digest, name, json.dumps(data, sort_keys=True)),
            )

    def add_molecule(
        self,
        input_smiles: str,
        name: str,
        smiles: str | None,
        inchikey: str | None,
        error: str | None,
    ) -> int:
        """Insert (or find) a molecule by its input SMILES; returns its id."""
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO molecules (input_smiles, name, smiles, inchikey, "
                "error, added_at) VALUES (?, ?, ?, ?, ?, ?)",
                (input_smiles, name, smiles, inchikey, error, now()),
            )
            if name:
                c.execute(
                    "UPDATE molecules SET name = ? WHERE input_smiles = ? AND name = ''",
                    (name, input_smiles),
                )
            return c.execute(
                "SELECT id FROM molecules WHERE input_smiles = ?", (input_smiles,)
            ).fetchone()[0]

    def ensure_task(
        self,
        key: str,
        kind: str,
        smiles: str | None,
        partner: str | None,
        protocol_digest: str,
        forcefield: str,
        workdir: str | None,
        state: str = "pending",
        error: str | None = None,
        error_class: str | None = None,
        failed_stage: str | None = None,
    ) -> None:
        """Create the task unless it exists (an existing task keeps its state)."""
        t = now()
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO tasks (key, kind, smiles, partner, protocol_digest, "
                "forcefield, workdir, state, error, error_class, failed_stage, created_at, "
                "updated_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    key,
                    kind,
                    smiles,
                    partner,
                    protocol_digest,
                    forcefield,
                    workdir,
                    state,
                    error,
                    error_class,
                    failed_stage,
                    t,
                    t,
                    t if state == "failed" else None,
                ),
            )

    def link_candidate(self, molecule_id: int, task_key: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO candidates VALUES (?, ?)", (molecule_id, task_key))

    def task(self, key: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM tasks WHERE key = ?", (key,)).fetchone()

    def tasks(self, kind: str | None = None, state: str | None = None) -> list[sqlite3.Row]:
        sql, args = "SELECT * FROM tasks WHERE 1=1", []
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        if state:
            sql += " AND state = ?"
            args.append(state)
        return self.query(sql + " ORDER BY rowid", tuple(args))

    def set_running(self, key: str, run_id: int) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE tasks SET state = 'running', run_id = ?, started_at = ?, "
                "updated_at = ?, error = NULL, error_class = NULL, failed_stage = NULL "
                "WHERE key = ? AND state != 'done'",
                (run_id, now(), now(), key),
            )

    def set_done(self, key: str, stage: str) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE tasks SET state = 'done', stage = ?, finished_at = ?, updated_at = ?,"
                " error = NULL, error_class = NULL, failed_stage = NULL WHERE key = ?",
                (stage, now(), now(), key),
            )

    def set_failed(
        self, key: str, stage: str, error: str, error_class: str, attempts: int = 1
    ) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE tasks SET state = 'failed', failed_stage = ?, error = ?, "
                "error_class = ?, attempts = attempts + ?, finished_at = ?, updated_at = ? "
                "WHERE key = ? AND state != 'done'",
                (stage, error, error_class, attempts, now(), now(), key),
            )

    def record_stage(
        self,
        key: str,
        run_id: int,
        rec: dict[str, Any],
        attempts: int = 1,
        status: str = "done",
        error: str | None = None,
    ) -> None:
        """One stage execution as reported by the task (``rec`` from :mod:`apps`)."""
        started, finished = rec.get("started"), rec.get("finished")
        with self.transaction() as c:
            c.execute(
                "INSERT INTO stage_runs (task_key, stage, run_id, status, ran, attempts, "
                "host, started_at, finished_at, app_s, lammps_s, error) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    key,
                    rec["stage"],
                    run_id,
                    status,
                    int(bool(rec.get("ran"))),
                    attempts,
                    rec.get("host"),
                    iso(started),
                    iso(finished),
                    (finished - started) if started and finished else None,
                    rec.get("lammps_s"),
                    error,
                ),
            )
            if status == "done":
                c.execute(
                    "UPDATE tasks SET stage = ?, updated_at = ? WHERE key = ?",
                    (rec["stage"], now(), key),
                )

    def record_result(
        self, key: str, result: dict[str, Any], protocol_json: dict[str, Any] | None = None
    ) -> None:
        """Store a candidate's result (the aggregate over its replicas) and mark its task done,
        in one transaction. ``protocol_json``: the campaign's protocol (``to_dict``)."""
        values = [
            json.dumps(result[k])
            if k in JSON_RESULT_COLUMNS and result.get(k) is not None
            else result.get(k)
            for k in RESULT_COLUMNS
        ]
        cols = ", ".join(RESULT_COLUMNS)
        marks = ", ".join("?" for _ in RESULT_COLUMNS)
        with self.transaction() as c:
            c.execute(
                f"INSERT OR REPLACE INTO results (task_key, smiles, partner, protocol_digest, "
                f"forcefield, {cols}, protocol_name, protocol_json, warnings, record, created_at) "
                f"VALUES (?, ?, ?, ?, ?, {marks}, ?, ?, ?, ?, ?)",
                (
                    key,
                    result["smiles"],
                    result["partner"],
                    result["protocol_digest"],
                    str(result["forcefield"]),
                    *values,
                    result.get("protocol"),
                    json.dumps(protocol_json, sort_keys=True),
                    json.dumps(result.get("warnings", [])),
                    json.dumps(result, sort_keys=True, default=float),
                    now(),
                ),
            )
            c.execute(
                "UPDATE tasks SET state = 'done', stage = 'combine', finished_at = ?, "
                "updated_at = ?, error = NULL, error_class = NULL, failed_stage = NULL "
                "WHERE key = ?",
                (now(), now(), key),
            )

    def record_replica(
        self, key: str, candidate_key: str, replica: int, result: dict[str, Any]
    ) -> None:
        """Store one replica's record (its pair task ``key``); a replica other than the
        candidate's own task (replica 0) is marked done too. One transaction."""
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO replica_results (task_key, candidate_key, replica, "
                "seed, E_int, E_int_stderr, record, created_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    key,
                    candidate_key,
                    replica,
                    result.get("seed"),
                    result.get("E_int"),
                    result.get("E_int_stderr"),
                    json.dumps(result, sort_keys=True, default=float),
                    now(),
                ),
            )
            if key != candidate_key:
                c.execute(
                    "UPDATE tasks SET state = 'done', stage = 'combine', finished_at = ?, "
                    "updated_at = ?, error = NULL, error_class = NULL, failed_stage = NULL "
                    "WHERE key = ?",
                    (now(), now(), key),
                )

    def replica_record(self, key: str) -> dict[str, Any] | None:
        """The stored record of a finished replica (its pair task ``key``), or None."""
        row = self.conn.execute(
            "SELECT record FROM replica_results WHERE task_key = ?", (key,)
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def replica_workdirs(self, candidate_key: str) -> list[dict[str, str]]:
        """The folders (``candidate``, ``stack``, ``partner``) of each finished replica of the
        candidate whose pair task is ``candidate_key``, in replica order."""
        rows = self.conn.execute(
            "SELECT record FROM replica_results WHERE candidate_key = ? ORDER BY replica",
            (candidate_key,),
        ).fetchall()
        return [w for w in (json.loads(r[0]).get("workdirs") for r in rows) if w]

    def requeue_replicas(
        self, protocol_digest: str, partner: str, forcefield: str, replicas: int
    ) -> int:
        """Done candidates of this protocol/partner/force field whose result aggregates another
        number of replicas than ``replicas`` become pending (their finished replicas are reused
        by the next run); returns how many."""
        with self.transaction() as c:
            return c.execute(
                "UPDATE tasks SET state = 'pending', updated_at = ? WHERE kind = 'pair' AND "
                "state = 'done' AND protocol_digest = ? AND forcefield = ? AND partner = ? AND "
                "key IN (SELECT task_key FROM candidates) AND key IN (SELECT task_key FROM "
                "results WHERE COALESCE(n_replicas, 1) != ?)",
                (now(), protocol_digest, forcefield, partner, replicas),
            ).rowcount

    def requeue_interrupted(self) -> int:
        """Tasks left 'running' by a run that is gone become 'pending'; returns how many."""
        with self.transaction() as c:
            n = c.execute(
                "UPDATE tasks SET state = 'pending', updated_at = ? WHERE state = 'running'",
                (now(),),
            ).rowcount
            c.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
        return n

    def reset_failed(self) -> int:
        """Failed tasks become 'pending' again, except inputs that are not molecules."""
        with self.transaction() as c:
            return c.execute(
                "UPDATE tasks SET state = 'pending', error = NULL, error_class = NULL,"
                " failed_stage = NULL, updated_at = ? WHERE state = 'failed' AND "
                "smiles IS NOT NULL",
                (now(),),
            ).rowcount

    # ------------------------------------------------------------ runs
    def begin_run(self, profile: str, note: str = "") -> int:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO runs (started_at, host, pid, profile, status, note) "
                "VALUES (?, ?, ?, ?, 'running', ?)",
                (now(), socket.gethostname(), os.getpid(), profile, note),
            )
            return int(cur.lastrowid)

    def set_run_note(self, run_id: int, note: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET note = ? WHERE id = ?", (note, run_id))

    def end_run(self, run_id: int, status: str) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET finished_at = ?, status = ? WHERE id = ?", (now(), status, run_id)
            )

    # ------------------------------------------------------------ reading
    def candidate_rows(
        self, protocol_digest: str, partner: str, forcefield: str
    ) -> list[dict[str, Any]]:
        """One row per candidate molecule of this protocol/partner/force field, joined with its
        pair task and result (``None`` columns where there is none)."""
        rows = self.query(
            "SELECT m.id AS molecule_id, m.input_smiles, m.name, m.smiles AS canonical_smiles, "
            "m.inchikey, m.error AS molecule_error, t.key AS task_key, t.state, t.stage, "
            "t.error, t.error_class, t.failed_stage, t.workdir, t.attempts, t.finished_at, "
            "r.* FROM molecules m JOIN candidates c ON c.molecule_id = m.id "
            "JOIN tasks t ON t.key = c.task_key LEFT JOIN results r ON r.task_key = t.key "
            "WHERE t.kind = 'pair' AND t.protocol_digest = ? AND t.forcefield = ? "
            "AND t.partner = ? ORDER BY m.id",
            (protocol_digest, forcefield, partner),
        )
        return [dict(r) for r in rows]

    def replica_rows(
        self, protocol_digest: str, partner: str, forcefield: str
    ) -> list[dict[str, Any]]:
        """One row per finished replica of the candidates of this protocol/partner/force field:
        the molecule's names, ``replica``, ``seed`` and the replica's stored ``record`` (a
        dict), in molecule then replica order."""
        rows = self.query(
            "SELECT m.input_smiles, m.name, m.smiles AS canonical_smiles, m.inchikey, "
            "rr.task_key, rr.replica, rr.seed, rr.record "
            "FROM molecules m JOIN candidates c ON c.molecule_id = m.id "
            "JOIN tasks t ON t.key = c.task_key "
            "JOIN replica_results rr ON rr.candidate_key = t.key "
            "WHERE t.kind = 'pair' AND t.protocol_digest = ? AND t.forcefield = ? "
            "AND t.partner = ? ORDER BY m.id, rr.replica",
            (protocol_digest, forcefield, partner),
        )
        return [{**dict(r), "record": json.loads(r["record"])} for r in rows]

    def count_pending(self, protocol_digest: str, partner: str, forcefield: str) -> int:
        """How many candidate pair tasks of this protocol/partner/force field are pending."""
        return self.conn.execute(
            "SELECT COUNT(DISTINCT t.key) FROM candidates c JOIN tasks t ON t.key = c.task_key "
            "WHERE t.kind = 'pair' AND t.state IN ('pending', 'running') AND "
            "t.protocol_digest = ? AND t.forcefield = ? AND t.partner = ?",
            (protocol_digest, forcefield, partner),
        ).fetchone()[0]

    def stage_runs(self, key: str | None = None) -> list[sqlite3.Row]:
        if key:
            return self.query("SELECT * FROM stage_runs WHERE task_key = ? ORDER BY id", (key,))
        return self.query("SELECT * FROM stage_runs ORDER BY id")

    def runs(self) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM runs ORDER BY id")

    # ------------------------------------------------------------ blocks (scheduler jobs)
    def record_job(
        self,
        run_id: int,
        executor: str,
        block: str,
        job_id: str,
        provider: str,
        state: str,
        message: str | None = None,
        connected: bool = False,
    ) -> None:
        """Insert or update the job of ``block``: its state (lower case), first seen running,
        first worker connection, end."""
        t = now()
        running = state == "running"
        ended = state in JOB_TERMINAL
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO jobs (run_id, executor, block, job_id, provider, "
                "state, submitted_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
                (run_id, executor, block, job_id, provider, state, t, t),
            )
            c.execute(
                "UPDATE jobs SET job_id = ?, state = CASE WHEN state = 'cancelled' THEN "
                "state ELSE ? END, message = COALESCE(?, message), updated_at = ?, "
                "started_at = CASE WHEN started_at IS NULL AND (? OR ?) THEN ? ELSE "
                "started_at END, connected_at = CASE WHEN connected_at IS NULL AND ? THEN ? "
                "ELSE connected_at END, ended_at = CASE WHEN ended_at IS NULL AND ? THEN ? "
                "ELSE ended_at END WHERE run_id = ? AND executor = ? AND block = ?",
                (
                    job_id,
                    state,
                    message,
                    t,
                    running,
                    connected,
                    t,
                    connected,
                    t,
                    ended,
                    t,
                    run_id,
                    executor,
                    block,
                ),
            )

    def open_jobs(self, before_run: int | None = None) -> list[sqlite3.Row]:
        """Jobs whose last known state is not terminal (of runs before ``before_run``)."""
        marks = ", ".join("?" for _ in JOB_TERMINAL)
        sql = f"SELECT * FROM jobs WHERE state NOT IN ({marks})"
        args: tuple = JOB_TERMINAL
        if before_run is not None:
            sql += " AND run_id < ?"
            args += (before_run,)
        return self.query(sql + " ORDER BY id", args)

    def end_job(self, job_row_id: int, state: str, message: str | None = None) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE jobs SET state = ?, message = COALESCE(?, message), ended_at = "
                "COALESCE(ended_at, ?), updated_at = ? WHERE id = ?",
                (state, message, now(), now(), job_row_id),
            )

    def jobs(self, run_id: int | None = None) -> list[sqlite3.Row]:
        """Jobs of one run (all runs: ``None``), in submission order; [] before the table
        existed (a database of an older mdxfer opened read-only)."""
        if not self.has_table("jobs"):
            return []
        if run_id is None:
            return self.query("SELECT * FROM jobs ORDER BY id")
        return self.query("SELECT * FROM jobs WHERE run_id = ? ORDER BY id", (run_id,))
