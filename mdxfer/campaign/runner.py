"""Running a campaign: the task graph, state updates and resume.

For every candidate the graph is ``build → compress → nvt`` (its own box), then
``stack → compress → nvt → combine`` (the candidate cell under the partner cell), wired by Parsl
futures. The partner's ``build → compress → nvt`` is submitted once per protocol and every
pair waits on the same future (or on its finished directory from an earlier run).

Replicas (``protocol.replicas = N``): replica ``k`` of a candidate runs its own candidate box
and stack under ``protocol.replica(k)`` (another seed, hence another digest: its tasks are keyed
and placed like those of a campaign with that protocol); all share the partner box. Replica 0
is the candidate's own pair task. Each finished replica's record (``replica_result``) goes to
the ``replica_results`` table; when all N are there, the candidate's result is their
:func:`~mdxfer.md.interaction.aggregate` (as ``mdxfer interaction`` writes it) and the candidate
is done. A failed replica fails the candidate with its reason. A later run with another N
reuses every finished replica.

Resume: only the process holding ``<database>.lock`` runs; tasks left ``running`` by a killed
run become ``pending``; finished pairs (in ``results``) are never submitted again, and inside a
resubmitted task every stage whose ``<stage>.json`` exists for the protocol is skipped (the
stage records it with ``ran = 0``). Library use::

    from mdxfer.campaign import Campaign

    with Campaign.open("campaign.toml") as camp:
        camp.add_candidates(["CCO", "CC(C)O"])
        camp.run()
        rows = camp.results()          # one dict per candidate, E_int in kcal/mol
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from mdxfer.campaign import apps
from mdxfer.campaign.blocks import (
    BlockWatch,
    cancel_jobs,
    cancel_leftovers,
    note_interchanges,
    stop_stale_interchanges,
)
from mdxfer.campaign.profiles import (
    LAMMPS_LABEL,
    build_config,
    concurrency,
    light_label,
    make_launcher,
    ranks_per_run,
    resolve_profile,
    resource_spec,
    worker_start_timeout,
)
from mdxfer.campaign.retry import failure_class
from mdxfer.campaign.spec import CampaignSpec, Candidate, load_spec
from mdxfer.campaign.store import (
    JSON_RESULT_COLUMNS,
    RESULT_COLUMNS,
    RESULT_PROVENANCE,
    RESULT_VALUES,
    Store,
    content_key,
    pair_key,
    species_key,
)
from mdxfer.errors import CampaignError, MdxferError, StageFailure
from mdxfer.fileio import DatabaseLock, write_csv, write_json_atomic
from mdxfer.md.cost import log_work, project, stack_share

Progress = Callable[[str], None]

#: Set by :func:`request_stop`: the run loop stops at its next check (within about a second),
#: as on Ctrl-C, but from a point where no lock is half taken.
STOP_REQUEST = threading.Event()
#: Set while a run loop (:meth:`_Graph.execute`) is there to see :data:`STOP_REQUEST`.
_LOOP_RUNNING = threading.Event()
#: How often the run loop looks at :data:`STOP_REQUEST` while it waits for stages, s.
STOP_CHECK_S = 1.0


def request_stop(signum: int, frame: Any) -> None:
    """Signal handler (SIGTERM, SIGINT under the CLI): stop the campaign run like Ctrl-C —
    running LAMMPS stopped, unfinished tasks back to pending, the run recorded as interrupted.

    While the run loop waits for stages it only sets :data:`STOP_REQUEST` and the loop stops
    itself: a KeyboardInterrupt raised inside ``concurrent.futures.wait`` can land between a
    lock's acquire and release and end the run with "RuntimeError: release unlocked lock"
    instead of a clean stop. Outside the loop, or on a second signal, it stops at once."""
    if _LOOP_RUNNING.is_set() and not STOP_REQUEST.is_set():
        STOP_REQUEST.set()
        return
    raise KeyboardInterrupt


EXPORT_COLUMNS = [
    "smiles",
    "status",
    *RESULT_VALUES[:2],  # E_int, E_int_stderr
    "error",
    "name",
    "canonical_smiles",
    "inchikey",
    "partner",
    "failed_stage",
    "error_class",
    *RESULT_VALUES[2:],
    "protocol",
    "protocol_digest",
    "forcefield",
    *RESULT_PROVENANCE,
    "finished_at",
    "task_key",
    "workdir",
]
#: columns of the per-replica export (:meth:`Campaign.export_replicas`); values from each
#: replica's record (kcal/mol, g/cm³, Å, s), the folders it ran in last
REPLICA_EXPORT_COLUMNS = [
    "smiles",
    "name",
    "canonical_smiles",
    "inchikey",
    "replica",
    "seed",
    "E_int",
    "E_int_stderr",
    "E_int_stderr_run",
    "E_cross",
    "E_cross_stderr",
    "E_cross_stderr_run",
    "E_cross_method",
    "E_cross_groupgroup",
    "E_int_unrelaxed",
    "E_int_unrelaxed_stderr",
    "E_int_unrelaxed_stderr_run",
    "E_halves_chem",
    "E_halves_chem_stderr",
    "E_halves_partner",
    "E_int_pe",
    "E_int_pe_stderr",
    "E_tot",
    "E_tot_stderr",
    "E_chem",
    "E_chem_stderr",
    "E_partner",
    "E_partner_stderr",
    "n_molecules_chem",
    "density_chem_g_cm3",
    "density_stack_g_cm3",
    "lz_chem_A",
    "lz_stack_A",
    "wall_s",
    "estimator",
    "protocol_digest",
    "task_key",
    "candidate_dir",
    "stack_dir",
    "partner_dir",
]
#: export columns that come from a finished result (None while a candidate is not done)
RESULT_FIELDS = [c for c in EXPORT_COLUMNS if c in RESULT_COLUMNS]


class RunnerLock(DatabaseLock):
    """``<database>.lock``: one process runs (or requeues) a campaign at a time."""

    suffix = ".lock"

    def busy_error(self, owner: str) -> Exception:
        return CampaignError(
            f"This campaign is already running ({owner}); wait for it or "
            "stop it before starting another run."
        )


@dataclass
class RunReport:
    """What one ``run`` did. Times in seconds."""

    run_id: int
    candidates: int = 0
    done: int = 0
    failed: int = 0
    requeued: int = 0
    stages_ran: int = 0
    stages_skipped: int = 0
    wall_s: float = 0.0
    app_s: float = 0.0
    lammps_s: float = 0.0
    messages: list[str] = field(default_factory=list)


@dataclass
class _Handle:
    key: str  # task key
    kind: str  # species | pair
    stage: str
    final: bool  # the task's last stage
    candidate: str | None = None  # pair stages: the candidate's task key
    replica: int = 0  # pair stages: which replica of that candidate


@dataclass
class _Cand:
    """A submitted candidate: the records of its replicas as they arrive."""

    key: str  # its task key (= replica 0's pair task)
    workdir: Path  # replica 0's pair directory (the aggregate's result.json)
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    waiting: set[int] = field(default_factory=set)
    failed: bool = False


class _Failed:
    """A species box that failed in an earlier run (not retried until `campaign retry`)."""

    def __init__(self, reason: str):
        self.reason = reason


def terminate_children() -> int:
    """SIGTERM this process's own child processes (LAMMPS runs of thread workers); Linux only.
    Returns how many were signalled."""
    pids: set[int] = set()
    for children in Path("/proc/self/task").glob("*/children"):
        try:
            pids.update(int(p) for p in children.read_text().split())
        except (OSError, ValueError):
            continue
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    return len(pids)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def root_cause(exc: BaseException) -> BaseException:
    """The first non-dependency exception behind a Parsl ``DependencyError`` chain."""
    from parsl.dataflow.errors import DependencyError

    while isinstance(exc, DependencyError) and exc.dependent_exceptions_tids:
        exc = exc.dependent_exceptions_tids[0][0]
    return exc


class Campaign:
    """A campaign: its spec, its store, and the methods to grow, run and read it."""

    def __init__(self, spec: CampaignSpec, store: Store, readonly: bool = False):
        # RDKit and the force field table: loaded when a campaign is opened, not imported
        from mdxfer.forcefield.parameters import load_table
        from mdxfer.molecule import canonical_smiles, inchikey

        self.spec, self.store = spec, store
        self.profile = resolve_profile(spec)
        self.protocol = spec.protocol
        self.digest = self.protocol.digest()
        self.forcefield = str(load_table()["version"])
        self.partner = canonical_smiles(spec.partner)
        self.partner_inchikey = inchikey(self.partner)
        self.cell_digest = self.protocol.cell_digest()
        self.partner_cell_digest = self.protocol.cell_digest("partner")
        self.partner_key = species_key(self.partner, self.partner_cell_digest, self.forcefield)
        self.root = self.root_of(self.digest)
        self.replica_protocols = [self.protocol.replica(k) for k in range(self.protocol.replicas)]
        self.readonly = readonly
        if readonly:
            return
        store.add_protocol(self.digest, self.protocol.name, self.protocol.to_dict())
        for prot in self.replica_protocols[1:]:
            store.add_protocol(prot.digest(), prot.name, prot.to_dict())
        store.ensure_task(
            self.partner_key,
            "species",
            self.partner,
            None,
            self.partner_cell_digest,
            self.forcefield,
            self._rel(
                self.species_dir(self.partner, self.partner_inchikey, self.partner_cell_digest)
            ),
        )
        self.add_candidates(spec.candidates)
        # another number of replicas than their results hold: run (or re-aggregate) them again
        self.store.requeue_replicas(
            self.digest, self.partner, self.forcefield, self.protocol.replicas
        )

    # ------------------------------------------------------------ opening
    @classmethod
    def open(cls, spec_or_path: CampaignSpec | str | Path, readonly: bool = False) -> Campaign:
        """Open (creating if needed) the campaign of a spec or a campaign TOML file and register
        its candidates. ``readonly``: only read the existing database (status, export)."""
        spec = spec_or_path if isinstance(spec_or_path, CampaignSpec) else load_spec(spec_or_path)
        if readonly:
            return cls(spec, Store(spec.database, readonly=True), readonly=True)
        spec.workdir.mkdir(parents=True, exist_ok=True)
        return cls(spec, Store(spec.database, spec.sqlite_journal))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Campaign:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ layout
    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.spec.workdir))

    def root_of(self, digest: str) -> Path:
        """``<workdir>/<protocol digest>-<force-field hash>``: the tasks of one protocol."""
        return self.spec.workdir / f"{digest}-{content_key(self.forcefield)[:6]}"

    def species_dir(self, smiles: str, key_inchikey: str, cell_digest: str | None = None) -> Path:
        """``<workdir>/<cell digest>-<ff>/species/<InChIKey>-<hash>``: never the SMILES. Boxes
        are keyed by the protocol's :meth:`~mdxfer.md.protocol.Protocol.cell_digest`, so
        protocols that differ only in stack settings share them."""
        return (
            self.root_of(cell_digest or self.cell_digest)
            / "species"
            / (f"{key_inchikey}-{content_key(smiles)[:8]}")
        )

    def pair_dir(self, smiles: str, key_inchikey: str, digest: str | None = None) -> Path:
        """``<workdir>/<digest>-<ff>/pairs/<InChIKey>-<hash>__<partner InChIKey>-<hash>``."""
        return (
            (self.root_of(digest) if digest else self.root)
            / "pairs"
            / (
                f"{key_inchikey}-{content_key(smiles)[:8]}__"
                f"{self.partner_inchikey}-{content_key(self.partner)[:8]}"
            )
        )

    def _replica_keys(self, smiles: str, k: int) -> tuple[str, str, str, str]:
        """(protocol digest, cell digest, species key, pair key) of replica ``k`` of candidate
        ``smiles`` (canonical); replica 0's are the candidate's own. Registers nothing."""
        prot = self.replica_protocols[k]
        digest = prot.digest() if k else self.digest
        cell = prot.cell_digest() if k else self.cell_digest
        return (
            digest,
            cell,
            species_key(smiles, cell, self.forcefield),
            pair_key(smiles, self.partner, digest, self.forcefield),
        )

    def replica_tasks(self, smiles: str, key_inchikey: str, k: int) -> tuple[str, str]:
        """(species key, pair key) of replica ``k`` of candidate ``smiles`` (canonical),
        registered in the store; replica 0's are the candidate's own. A replica's tasks are
        those of a campaign run with ``protocol.replica(k)``: the pair keyed by its digest under
        ``<digest>-<ff>/pairs``, the box by its cell digest under ``<cell digest>-<ff>/species``."""
        digest, cell, skey, pkey = self._replica_keys(smiles, k)
        if k:
            with self.store.transaction():
                self.store.ensure_task(
                    skey,
                    "species",
                    smiles,
                    None,
                    cell,
                    self.forcefield,
                    self._rel(self.species_dir(smiles, key_inchikey, cell)),
                )
                self.store.ensure_task(
                    pkey,
                    "pair",
                    smiles,
                    self.partner,
                    digest,
                    self.forcefield,
                    self._rel(self.pair_dir(smiles, key_inchikey, digest)),
                )
        return skey, pkey

    # ------------------------------------------------------------ candidates
    def add_candidates(self, items: Iterable[str | Candidate]) -> list[str]:
        """Register candidates (SMILES strings or :class:`Candidate`); returns their pair task
        keys. Invalid SMILES are stored as failed candidates with RDKit's reason."""
        with self.store.transaction():  # one commit for the whole batch
            return [self._add_one(item) for item in items]

    def _add_one(self, item: str | Candidate) -> str:
        from mdxfer.molecule import canonical_smiles, inchikey

        cand = item if isinstance(item, Candidate) else Candidate(str(item))
        try:
            canon = canonical_smiles(cand.smiles)
            ikey, error = inchikey(canon), None
        except MdxferError as exc:
            canon, ikey, error = None, None, str(exc)
        mol_id = self.store.add_molecule(cand.smiles, cand.name, canon, ikey, error)
        if canon is None:
            key = content_key("invalid", cand.smiles, self.partner, self.digest, self.forcefield)
            self.store.ensure_task(
                key,
                "pair",
                None,
                self.partner,
                self.digest,
                self.forcefield,
                None,
                state="failed",
                error=error,
                error_class="molecule",
                failed_stage="parse",
            )
        else:
            skey = species_key(canon, self.cell_digest, self.forcefield)
            self.store.ensure_task(
                skey,
                "species",
                canon,
                None,
                self.cell_digest,
                self.forcefield,
                self._rel(self.species_dir(canon, ikey)),
            )
            key = pair_key(canon, self.partner, self.digest, self.forcefield)
            self.store.ensure_task(
                key,
                "pair",
                canon,
                self.partner,
                self.digest,
                self.forcefield,
                self._rel(self.pair_dir(canon, ikey)),
            )
        self.store.link_candidate(mol_id, key)
        return key

    def has_candidates(self) -> bool:
        """Whether the database holds any candidate (from the file or an earlier run)."""
        return bool(self.store.query("SELECT 1 FROM candidates LIMIT 1"))

    # ------------------------------------------------------------ running
    def run(
        self, candidates: Iterable[str | Candidate] | None = None, progress: Progress | None = None
    ) -> RunReport:
        """Start or resume: run every pending candidate; returns a :class:`RunReport`.

        Loads Parsl with this campaign's profile (run_dir under the work directory) for the
        duration of the call; it must not be loaded already in this process.
        """
        import parsl

        if candidates is not None:
            self.add_candidates(candidates)
        say = progress or (lambda msg: None)
        with RunnerLock(self.spec.database):
            requeued = self.store.requeue_interrupted()
            if requeued:
                say(f"resuming: {requeued} task(s) interrupted earlier are pending again")
            run_id = self.store.begin_run(self.spec.profile_name)
            # jobs a killed runner left queued or running hold nodes and would compute stages
            # this run is about to submit again: cancel them first
            cancel_leftovers(self.store, run_id, say)
            stop_stale_interchanges(self.store, run_id, say)
            if not self.store.count_pending(self.digest, self.partner, self.forcefield):
                say(
                    "nothing to run: every candidate is done or failed "
                    "(`mdxfer campaign retry FILE` runs the failed ones again)"
                )
                self.store.end_run(run_id, "finished")
                return RunReport(run_id=run_id)
            status = "failed"
            watch = None
            try:
                config = build_config(self.profile, self.spec.parsl_run_dir, self.spec.retry)
                with parsl.load(config) as dfk:
                    note_interchanges(self.store, run_id, list(dfk.executors.values()))
                    watch = BlockWatch(
                        self.store,
                        run_id,
                        list(dfk.executors.values()),
                        self.profile.get("provider", {}).get("kind", "local"),
                        worker_start_timeout(self.profile),
                    )
                    try:
                        report = _Graph(self, run_id, say, watch).execute()
                    except BaseException:
                        # before Parsl's clean-up waits for them: queued stages of thread
                        # workers fail at once, running LAMMPS (own children only) is stopped
                        if self.profile["executor"].get("kind") == "threads":
                            apps.STOP.set()
                            terminate_children()
                        raise
                report.requeued = requeued
                status = "finished"
                return report
            except (KeyboardInterrupt, SystemExit):
                status = "interrupted"
                raise
            finally:
                apps.STOP.clear()
                STOP_REQUEST.clear()
                if watch:
                    # Parsl scaled its blocks in on the way out (unless it had given the
                    # executor up): record that, and cancel whatever is still queued or running
                    watch.poll(final=True)
                    left = [r for r in self.store.open_jobs() if r["run_id"] == run_id]
                    if left:
                        cancel_jobs(self.store, left, f"cancelled at the end of run {run_id}")
                if status != "finished":
                    self.store.requeue_interrupted()
                self.store.end_run(run_id, status)

    def requeue(self) -> tuple[int, int]:
        """Under the runner lock (refused while a run holds it): failed tasks (not invalid
        SMILES) and tasks left ``running`` by a run that is gone (killed, crashed) become
        pending; returns (failed, interrupted) counts."""
        with RunnerLock(self.spec.database):
            return self.store.reset_failed(), self.store.requeue_interrupted()

    def retry(self) -> int:
        """:meth:`requeue`; returns how many tasks are pending again."""
        return sum(self.requeue())

    # ------------------------------------------------------------ reading
    def results(self) -> list[dict[str, Any]]:
        """One row per candidate (as in :data:`EXPORT_COLUMNS`): status, E_int and its stderr
        in kcal/mol (None until done; with replicas, the mean over them), ``n_replicas``,
        ``E_int_replica_sd``, ``replicas`` (the per-replica E_int values, a list), the failure
        reason, provenance. The stderrs are those of the installed calibration
        (:func:`~mdxfer.md.interaction.recalibrated`: within-run plus the protocol's measured
        between-replica scatter), whenever the result was stored."""
        from mdxfer.md.interaction import recalibrated

        out, family = [], self.protocol.family_digest()
        for r in self.store.candidate_rows(self.digest, self.partner, self.forcefield):
            row = {c: r.get(c) for c in EXPORT_COLUMNS}
            if r["state"] != "done":  # e.g. requeued for more replicas: no result yet
                row.update({c: None for c in RESULT_FIELDS})
            for c in JSON_RESULT_COLUMNS:
                if isinstance(row.get(c), str):
                    row[c] = json.loads(row[c])
            error = r["error"] or r["molecule_error"]
            row.update(
                smiles=r["input_smiles"],
                status=r["state"],
                error=error.split("\n", 1)[0] if error else None,
                partner=self.partner,
                protocol=self.protocol.name,
                protocol_digest=self.digest,
                forcefield=self.forcefield,
                workdir=(str(self.spec.workdir / r["workdir"]) if r["workdir"] else None),
            )
            if r["state"] != "done":
                for k in ("seed", "mdxfer_version", "lammps_version", "lammps_command", "host"):
                    row[k] = None
            elif r.get("record"):
                errors = recalibrated(json.loads(r["record"]), family)
                row.update((k, v) for k, v in errors.items() if k in row)
            out.append(row)
        return out

    def export(self, path: str | Path) -> int:
        """Write :meth:`results` as CSV (one row per candidate; ``replicas`` as JSON text);
        returns the number of rows."""
        return write_csv(path, self.results(), EXPORT_COLUMNS)

    def replica_results(self) -> list[dict[str, Any]]:
        """One row per finished replica (as in :data:`REPLICA_EXPORT_COLUMNS`): each
        independent run's E_int, stderrs, E_cross, densities and folders — what the replica
        SD of a candidate's result is computed from."""
        from mdxfer.md.interaction import recalibrated

        out, family = [], self.protocol.family_digest()
        for r in self.store.replica_rows(self.digest, self.partner, self.forcefield):
            rec, dirs = r["record"], r["record"].get("workdirs") or {}
            row = {c: rec.get(c) for c in REPLICA_EXPORT_COLUMNS}
            row.update((k, v) for k, v in recalibrated(rec, family).items() if k in row)
            row.update(
                smiles=r["input_smiles"],
                name=r["name"],
                canonical_smiles=r["canonical_smiles"],
                inchikey=r["inchikey"],
                replica=r["replica"],
                seed=r["seed"],
                task_key=r["task_key"],
                candidate_dir=dirs.get("candidate"),
                stack_dir=dirs.get("stack"),
                partner_dir=dirs.get("partner"),
            )
            out.append(row)
        return out

    def export_replicas(self, path: str | Path) -> int:
        """Write :meth:`replica_results` as CSV; returns the number of rows."""
        return write_csv(path, self.replica_results(), REPLICA_EXPORT_COLUMNS)

    def status(self, top: int = 5) -> dict[str, Any]:
        """Counts per state, failures with reasons, the best results so far, progress."""
        rows = self.results()
        counts = {s: 0 for s in ("pending", "running", "done", "failed")}
        for r in rows:
            counts[r["status"]] += 1
        done = [r for r in rows if r["status"] == "done" and r["E_int"] is not None]
        best = sorted(done, key=lambda r: r["E_int"])[:top]
        tasks: dict[str, dict[str, int]] = {}
        digests = sorted(
            {
                d
                for p in self.replica_protocols
                for d in (p.digest(), p.cell_digest(), p.cell_digest("partner"))
            }
        )
        marks = ", ".join("?" for _ in digests)
        for t in self.store.query(
            "SELECT kind, state, COUNT(*) AS n FROM tasks WHERE "
            f"protocol_digest IN ({marks}) GROUP BY kind, state",
            tuple(digests),
        ):
            tasks.setdefault(t["kind"], {})[t["state"]] = t["n"]
        partner = self.store.task(self.partner_key)
        finished = counts["done"] + counts["failed"]
        walls = [r["wall_s"] for r in done if r["wall_s"] is not None]
        runs = [dict(r) for r in self.store.runs()]
        jobs = [dict(r) for r in self.store.jobs()]
        last_jobs = max((j["run_id"] for j in jobs), default=None)
        return {
            "campaign": self.spec.name,
            "database": str(self.spec.database),
            "protocol": self.protocol.name,
            "protocol_digest": self.digest,
            "replicas": self.protocol.replicas,
            "partner": self.partner,
            "partner_state": partner["state"] if partner else None,
            "candidates": len(rows),
            "counts": counts,
            "tasks": tasks,
            "progress": finished / len(rows) if rows else 1.0,
            "failures": [
                {k: r[k] for k in ("smiles", "failed_stage", "error_class", "error")}
                for r in rows
                if r["status"] == "failed"
            ],
            "best": [
                {
                    k: r[k]
                    for k in (
                        "smiles",
                        "name",
                        "E_int",
                        "E_int_stderr",
                        "n_replicas",
                        "E_int_replica_sd",
                    )
                }
                for r in best
            ],
            "mean_wall_s": sum(walls) / len(walls) if walls else None,
            "runner_active": RunnerLock.held(self.spec.database),
            "runs": len(runs),
            "last_run": runs[-1] if runs else None,
            # blocks (scheduler jobs) of the latest run that had any, and their count overall
            "jobs": [j for j in jobs if j["run_id"] == last_jobs],
            "jobs_total": len(jobs),
            "eta": self.eta(rows, walls, partner),
        }

    def _cpu_seconds(self, row: dict[str, Any]) -> float:
        """CPU seconds of LAMMPS a finished candidate cost: its own box and its stack, of every
        replica (from the replica records' folders; for a result without them, replica 0's
        stack folder and, through its ``species.json``, its box, times the protocol's number of
        replicas). 0 when the logs are gone."""
        reps = self.store.replica_workdirs(row["task_key"]) if row.get("task_key") else []
        if reps:
            folders = [Path(w[k]) for w in reps for k in ("candidate", "stack") if w.get(k)]
            return _folders_cpu_seconds(folders) * self.protocol.replicas / len(reps)
        pair = row.get("workdir")
        if not pair:
            return 0.0
        folders = [Path(pair)]
        try:
            bottom = json.loads((Path(pair) / "species.json").read_text()).get("bottom")
        except (OSError, ValueError):
            bottom = None
        if bottom:
            folders.append(Path(bottom))
        return _folders_cpu_seconds(folders) * self.protocol.replicas

    def replicas_left(self, row: dict[str, Any]) -> float:
        """How much of the candidate ``row``'s replicas is still to run, in replicas: 1 for
        each replica with no stored result, less when its files are already on disk (a
        campaign sharing the work directory ran them): 0 when its stack's NVT is done, the
        stack's share (:func:`mdxfer.md.cost.stack_share`, the same for every replica) when
        only its box is. Reads the store and the folders; registers nothing."""
        smiles, key_ik = row.get("canonical_smiles"), row.get("inchikey")
        if not smiles or not key_ik:
            return float(self.protocol.replicas)
        left, share = 0.0, None
        for k, prot in enumerate(self.replica_protocols):
            digest, cell, _, pkey = self._replica_keys(smiles, k)
            if self.store.replica_record(pkey) is not None:
                continue
            if apps.stage_done(self.pair_dir(smiles, key_ik, digest), "nvt", prot):
                continue
            if not apps.box_finished(self.species_dir(smiles, key_ik, cell), prot):
                left += 1.0
                continue
            if share is None:
                try:
                    share = stack_share(smiles, self.protocol, self.partner)
                except Exception:  # noqa: BLE001 - a candidate the cost model cannot read
                    share = 1.0
            left += share
        return left

    def eta(
        self,
        rows: list[dict[str, Any]] | None = None,
        walls: list[float] | None = None,
        partner: Any = None,
        sample: int = 8,
    ) -> dict[str, Any]:
        """What is left, in LAMMPS time: ``remaining`` candidates, ``cpu_s`` (rank-seconds of
        single-rank runs), ``eta_s`` at the profile's concurrency, and ``basis``: the mean of the
        finished candidates (``walls``, s) when there are any, else the cost model of
        :mod:`mdxfer.md.cost` on up to ``sample`` of the unfinished candidates. A candidate with
        some replicas finished (:meth:`replicas_left`) counts for the share still to run;
        ``replicas_left`` is their number over all candidates."""
        rows = self.results() if rows is None else rows
        left = [r for r in rows if r["status"] in ("pending", "running")]
        done = [r for r in rows if r["status"] == "done"]
        if walls is None:
            walls = [r["wall_s"] for r in done if r["wall_s"]]
        partner = self.store.task(self.partner_key) if partner is None else partner
        partner_left = (not partner or partner["state"] != "done") and not (
            partner
            and apps.box_finished(self.spec.workdir / partner["workdir"], self.protocol, "partner")
        )  # a campaign sharing the work directory may have run it
        per, basis = None, None
        used = [c for c in (self._cpu_seconds(r) for r in done[-20:]) if c]
        if used:  # what the finished ones really cost (CPU, not wall: runs may share cores)
            per = sum(used) / len(used)
            basis = f"CPU time of {len(used)} finished candidate(s), from their LAMMPS logs"
        elif walls:
            per, basis = sum(walls) / len(walls), f"mean of {len(walls)} finished candidate(s)"
        cpu = 0.0
        if left and per is None:
            smiles = [r["canonical_smiles"] or r["smiles"] for r in left[:sample]]
            projected = []
            for smi in smiles:
                try:
                    projected.append(
                        project(
                            smi,
                            self.protocol,
                            self.partner,
                            replicas=self.protocol.replicas,
                            partner_done=True,
                        ).cpu_s
                    )
                except Exception:  # noqa: BLE001 - a candidate the cost model cannot read
                    continue
            if projected:
                per, basis = sum(projected) / len(projected), "cost model (mdxfer.md.cost)"
        if partner_left and left:
            p = project(self.partner, self.protocol, self.partner, replicas=0)
            cpu += p.cpu_s
        # a candidate's cost covers all its replicas; those finished on disk cost nothing more
        runs_left = sum(self.replicas_left(r) for r in left)
        cpu += (per or 0.0) * runs_left / self.protocol.replicas
        workers = max(1, concurrency(self.profile))
        # cpu is in rank-seconds; each of the `workers` runs side by side uses its ranks
        return {
            "remaining": len(left),
            "replicas_left": runs_left,
            "replicas": self.protocol.replicas,
            "cpu_s": cpu,
            "eta_s": cpu / (workers * ranks_per_run(self.profile)),
            "workers": workers,
            "basis": basis,
            "partner_left": bool(partner_left and left),
        }


def _folders_cpu_seconds(folders: list[Path]) -> float:
    """Rank-seconds of CPU of every LAMMPS log in ``folders`` (:func:`mdxfer.md.cost.log_work`)."""
    return sum(
        sec * ranks
        for d in folders
        if d.is_dir()
        for log in d.glob("*.log")
        for _, sec, ranks in [log_work(log)]
    )


class _Graph:
    """One run's task graph: submits chains, follows their futures, writes the store."""

    def __init__(self, campaign: Campaign, run_id: int, say: Progress, watch: Any = None):
        from parsl import python_app

        self.c, self.store, self.run_id, self.say = campaign, campaign.store, run_id, say
        self.watch = watch  # BlockWatch of a cluster profile (None or empty: threads)
        self.protocol = campaign.protocol
        self.launcher = make_launcher(campaign.profile)
        self.resources = resource_spec(campaign.profile)
        light = light_label(campaign.profile)
        self.app = {
            "build": python_app(apps.build_species, executors=[light]),
            "stack": python_app(apps.stack_pair, executors=[light]),
            "compress": python_app(apps.compress_stage, executors=[LAMMPS_LABEL]),
            "nvt": python_app(apps.nvt_stage, executors=[LAMMPS_LABEL]),
            "combine": python_app(apps.combine_pair, executors=[light]),
        }
        self.window = campaign.spec.max_in_flight or 2 * concurrency(campaign.profile)
        self.in_flight: dict[Future, _Handle] = {}
        self.species_nvt: dict[str, Future | _Failed | None] = {}
        self.labels: dict[str, str] = {}  # workdir -> "candidate box" / "partner box"
        self.failed_now: set[str] = set()
        self.pair_smiles: dict[str, str] = {}
        self.cands: dict[str, _Cand] = {}
        self.report = RunReport(run_id=run_id)

    # ------------------------------------------------------------ submission
    def _lammps(self, stage: str, wd: str, protocol: Any, *after: Any) -> Future:
        kwargs = {"parsl_resource_specification": self.resources} if self.resources else {}
        return self.app[stage](wd, protocol, self.launcher, *after, **kwargs)

    def _track(
        self,
        fut: Future,
        key: str,
        kind: str,
        stage: str,
        final: bool = False,
        candidate: str | None = None,
        replica: int = 0,
    ) -> None:
        self.in_flight[fut] = _Handle(key, kind, stage, final, candidate, replica)

    def _workdir(self, key: str) -> Path:
        return self.c.spec.workdir / self.store.task(key)["workdir"]

    def species(
        self, key: str, protocol: Any, role: str = "candidate", label: str = "candidate box"
    ) -> Future | _Failed | None:
        """The NVT future of a species box; None when it is finished on disk already. The
        partner's box is always built with ``role = "partner"`` (its NVT: ``partner_ps``); a
        candidate equal to the partner shares it."""
        if key in self.species_nvt:
            return self.species_nvt[key]
        if key == self.c.partner_key:
            role, label, protocol = "partner", "partner box", self.protocol
        row = self.store.task(key)
        wd = self.c.spec.workdir / row["workdir"]
        self.labels[str(wd)] = label
        info = _read_json(wd / "species.json")
        same_role = apps.role_matches(info, role, protocol)
        if row["state"] == "done" and (wd / "nvt.json").exists() and same_role:
            self.species_nvt[key] = None
            return None
        if row["state"] == "failed":
            self.species_nvt[key] = _Failed(
                f"the {label} failed in stage '{row['failed_stage']}' ({row['error']})"
            )
            return self.species_nvt[key]
        self.store.set_running(key, self.run_id)
        b = self.app["build"](row["smiles"], protocol, str(wd), role)
        comp = self._lammps("compress", str(wd), protocol, b)
        nvt = self._lammps("nvt", str(wd), protocol, comp)
        self._track(b, key, "species", "build")
        self._track(comp, key, "species", "compress")
        self._track(nvt, key, "species", "nvt", final=True)
        self.species_nvt[key] = nvt
        return nvt

    def pair(self, row: dict[str, Any]) -> bool:
        """Submit one candidate's unfinished replicas. False when nothing was submitted: it
        failed at once (a failed box), or all its replicas had finished (it is done now)."""
        key, smiles = row["task_key"], row["canonical_smiles"]
        self.pair_smiles[key] = row["input_smiles"]
        cand = _Cand(key, self.c.spec.workdir / row["workdir"])
        self.cands[key] = cand
        todo = []
        for k, prot in enumerate(self.c.replica_protocols):
            skey, pkey = self.c.replica_tasks(smiles, row["inchikey"], k)
            record = self.store.replica_record(pkey)
            if record is not None:  # finished in an earlier run (or for another N)
                cand.records[k] = record
            else:
                todo.append((k, prot, skey, pkey))
        if not todo:
            self._complete(cand)
            return False
        partner = self.species(self.c.partner_key, self.protocol, "partner", "partner box")
        boxes = [
            self.species(skey, prot, "candidate", "candidate box") for _, prot, skey, _ in todo
        ]
        for dep in (partner, *boxes):
            if isinstance(dep, _Failed):
                self.store.set_failed(key, "stack", dep.reason, "dependency", attempts=0)
                self._finished_pair(key, f"failed: {dep.reason}", failed=True)
                return False
        partner_wd = str(self._workdir(self.c.partner_key))
        self.store.set_running(key, self.run_id)
        for (k, prot, skey, pkey), box in zip(todo, boxes):
            cand_wd, wd = str(self._workdir(skey)), str(self._workdir(pkey))
            if pkey != key:
                self.store.set_running(pkey, self.run_id)
            deps = [d for d in (box, partner) if d is not None]
            s = self.app["stack"](cand_wd, partner_wd, prot, wd, *deps)
            comp = self._lammps("compress", wd, prot, s)
            nvt = self._lammps("nvt", wd, prot, comp)
            res = self.app["combine"](
                row["input_smiles"],
                cand_wd,
                partner_wd,
                wd,
                prot,
                self.protocol,
                self.launcher,
                nvt,
            )
            for fut, stage in ((s, "stack"), (comp, "compress"), (nvt, "nvt")):
                self._track(fut, pkey, "pair", stage, candidate=key, replica=k)
            self._track(res, pkey, "pair", "combine", final=True, candidate=key, replica=k)
            cand.waiting.add(k)
        return True

    # ------------------------------------------------------------ completion
    def _finished_pair(self, key: str, message: str, failed: bool) -> None:
        if failed:
            self.report.failed += 1
        else:
            self.report.done += 1
        n = self.report.done + self.report.failed
        self.say(f"[{n}/{self.report.candidates}] {self.pair_smiles.get(key, key)}: {message}")

    def _complete(self, cand: _Cand) -> None:
        """All replicas of ``cand`` finished: store their aggregate (as ``mdxfer interaction``
        writes it) as the candidate's result, and ``result.json`` in its pair directory."""
        from mdxfer.md.interaction import aggregate

        result = aggregate([cand.records[k] for k in range(len(self.c.replica_protocols))])
        result["protocol_digest"] = self.c.digest
        cand.workdir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cand.workdir / "result.json", result)
        self.store.record_result(cand.key, result, self.protocol.to_dict())
        msg = f"E_int = {result['E_int']:.2f} ± {result['E_int_stderr']:.2f}"
        if result["n_replicas"] > 1:
            msg += (
                f" (mean of {result['n_replicas']} replicas, SD {result['E_int_replica_sd']:.2f})"
            )
        if result.get("E_cross") is not None and result.get("E_cross_stderr") is not None:
            msg += f", E_cross = {result['E_cross']:.2f} ± {result['E_cross_stderr']:.2f}"
        self._finished_pair(cand.key, msg + " kcal/mol", failed=False)

    def _resolved(self, cand: _Cand, k: int) -> str | None:
        """Replica ``k`` of ``cand`` is over; the candidate's key once all of them are."""
        cand.waiting.discard(k)
        if cand.waiting:
            return None
        if not cand.failed:
            self._complete(cand)
        return cand.key

    def _attempts(self, fut: Future, failed: bool = False) -> int:
        """Tries of the task behind ``fut`` (Parsl counts failures in ``fail_count``)."""
        rec = getattr(fut, "task_record", None) or {}
        fails = int(rec.get("fail_count", 0))
        return max(1, fails) if failed else fails + 1

    def _reason(self, h: _Handle, cause: BaseException) -> tuple[str, str, str]:
        """(stage, failure class, message) of ``cause`` as seen by task ``h``."""
        if isinstance(cause, StageFailure):
            label = self.labels.get(cause.workdir)
            if h.kind == "pair" and label:
                return (
                    cause.stage,
                    cause.kind,
                    (f"the {label} failed in stage '{cause.stage}': {cause.message}"),
                )
            return cause.stage, cause.kind, cause.message
        kind = failure_class(cause)
        message = f"{type(cause).__name__}: {cause}"
        if type(cause).__name__ in ("ManagerLost", "WorkerLost"):
            message += (
                " (the worker's block ended under the task: its job was cancelled, "
                "ran out of wall time or lost its node)"
            )
        return h.stage, kind, message

    def handle(self, fut: Future) -> str | None:
        """Record the outcome of ``fut``; returns a candidate's key when that candidate is
        over (every replica finished or failed), else None."""
        from parsl.dataflow.errors import DependencyError

        h = self.in_flight.pop(fut)
        cand = self.cands.get(h.candidate) if h.candidate else None
        exc = fut.exception()
        if exc is None:
            rec = fut.result()
            self.store.record_stage(h.key, self.run_id, rec, attempts=self._attempts(fut))
            self.report.stages_ran += int(bool(rec.get("ran")))
            self.report.stages_skipped += int(not rec.get("ran"))
            self.report.app_s += rec.get("finished", 0) - rec.get("started", 0)
            self.report.lammps_s += rec.get("lammps_s") or 0.0
            if h.final and cand is not None:
                self.store.record_replica(h.key, cand.key, h.replica, rec["result"])
                cand.records[h.replica] = rec["result"]
                return self._resolved(cand, h.replica)
            if h.final:
                self.store.set_done(h.key, h.stage)
            return None
        cause = root_cause(exc)
        stage, kind, message = self._reason(h, cause)
        if cand is not None and len(self.c.replica_protocols) > 1:
            message = f"replica {h.replica}: {message}"
        if not isinstance(exc, DependencyError):
            self.store.record_stage(
                h.key,
                self.run_id,
                {"stage": h.stage, "ran": True},
                attempts=self._attempts(fut, failed=True),
                status="failed",
                error=message,
            )
        if h.key not in self.failed_now:
            self.failed_now.add(h.key)
            self.store.set_failed(
                h.key,
                stage,
                message,
                kind,
                attempts=0
                if isinstance(exc, DependencyError)
                else self._attempts(fut, failed=True),
            )
        if not (h.final and cand is not None):
            return None
        if not cand.failed:  # the first failed replica fails the candidate; the rest carry on
            cand.failed = True
            if cand.key not in self.failed_now:
                self.failed_now.add(cand.key)
                self.store.set_failed(cand.key, stage, message, kind, attempts=0)
            self._finished_pair(
                cand.key, f"failed in stage '{stage}' ({kind}): {message}", failed=True
            )
        return self._resolved(cand, h.replica)

    # ------------------------------------------------------------ the loop
    def pending(self) -> list[dict[str, Any]]:
        rows, seen = [], set()
        for r in self.store.candidate_rows(self.c.digest, self.c.partner, self.c.forcefield):
            if r["state"] == "pending" and r["task_key"] not in seen:
                seen.add(r["task_key"])
                rows.append(r)
        return rows

    def execute(self) -> RunReport:
        start = time.perf_counter()
        queue = self.pending()
        self.report.candidates = len(queue)
        active: set[str] = set()
        if queue:
            self.say(
                f"{len(queue)} candidate(s) to run, up to {self.window} at once; partner "
                f"{self.c.partner} ({self.protocol.name} protocol {self.c.digest})"
            )
        _LOOP_RUNNING.set()
        try:
            while queue or self.in_flight:
                while queue and len(active) < self.window:
                    row = queue.pop(0)
                    if self.pair(row):
                        active.add(row["task_key"])
                if self.watch:
                    self.watch.poll()  # at most every watch.period_s
                if STOP_REQUEST.is_set():
                    raise KeyboardInterrupt
                if not self.in_flight:
                    continue
                done, _ = wait(
                    list(self.in_flight), return_when=FIRST_COMPLETED, timeout=STOP_CHECK_S
                )
                for fut in done:
                    over = self.handle(fut)
                    if over:
                        active.discard(over)
        finally:
            _LOOP_RUNNING.clear()
        self.report.wall_s = time.perf_counter() - start
        return self.report


def run_campaign(
    spec_or_path: CampaignSpec | str | Path,
    candidates: Iterable[str | Candidate] | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Open a campaign, add ``candidates``, run everything pending, return :meth:`results`."""
    with Campaign.open(spec_or_path) as camp:
        camp.run(candidates, progress=progress)
        return camp.results()
