"""Blocks of a run: the scheduler jobs Parsl asked for, in the store, watched and cleaned up.

A cluster profile (``htex``/``mpi``) runs its stages on *blocks*: batch jobs (Slurm, PBS) or
local processes that start Parsl's worker pool, which connects back to the runner. This module

- records every block in the ``jobs`` table (job id, last scheduler state, when it got its
  node, when a worker connected) so that ``campaign status`` shows them;
- stops a run with a clear :class:`CampaignError` instead of waiting for ever when a block holds
  its nodes for ``executor.worker_start_timeout`` seconds and no worker connects (a broken
  ``worker_init``, a firewall, an unreachable address), or when Parsl gives the executor up;
- cancels (``scancel``/``qdel``) the jobs a killed runner left queued or running: the next
  ``campaign run`` does it before it submits anything, and every run cancels its own at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from mdxfer.campaign.store import JOB_TERMINAL, Store
from mdxfer.errors import CampaignError

_CANCEL = {"slurm": ["scancel"], "pbspro": ["qdel"]}


def _tail(path: str | None, lines: int = 6) -> str:
    if not path:
        return ""
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def cancel_jobs(store: Store, rows: list, note: str) -> list[str]:
    """Cancel the jobs of ``rows`` (``jobs`` table rows) with their scheduler's command, mark
    them ``cancelled`` with ``note``; returns their job ids."""
    done: list[str] = []
    by_provider: dict[str, list] = {}
    for r in rows:
        by_provider.setdefault(r["provider"], []).append(r)
    for provider, group in by_provider.items():
        ids = [r["job_id"] for r in group]
        if provider in _CANCEL:
            try:
                out = subprocess.run(
                    _CANCEL[provider] + ids, capture_output=True, text=True, timeout=60
                )
                said = (out.stdout + out.stderr).strip()
            except (OSError, subprocess.SubprocessError) as exc:
                said = f"{_CANCEL[provider][0]} failed: {exc}"
        else:  # local provider: the job id is the pid of the block's shell, its own session
            said = ""
            for pid in ids:
                try:
                    os.killpg(int(pid), signal.SIGTERM)
                except (OSError, ValueError):
                    pass
        for r in group:
            store.end_job(r["id"], "cancelled", f"{note}{'; ' + said if said else ''}")
            done.append(r["job_id"])
    return done


def cancel_leftovers(store: Store, run_id: int, say: Callable[[str], None]) -> list[str]:
    """Cancel jobs that earlier runs left queued or running (their runner was killed)."""
    rows = store.open_jobs(before_run=run_id)
    if not rows:
        return []
    runs = sorted({r["run_id"] for r in rows})
    ids = cancel_jobs(
        store, rows, f"left by run {', '.join(map(str, runs))}; cancelled by run {run_id}"
    )
    say(f"cancelled {len(ids)} job(s) left queued or running by an earlier run: {', '.join(ids)}")
    return ids


_INTERCHANGE_NOTE = "interchange pids: "


def note_interchanges(store: Store, run_id: int, executors: list) -> None:
    """Remember the pids of this run's Parsl interchanges (runs.note): a runner killed with
    SIGKILL leaves them behind, and the next run on this host stops them."""
    pids = [
        str(ex.interchange_proc.pid)
        for ex in executors
        if getattr(ex, "interchange_proc", None) is not None
    ]
    if pids:
        store.set_run_note(run_id, _INTERCHANGE_NOTE + ",".join(pids))


def stop_stale_interchanges(store: Store, run_id: int, say: Callable[[str], None]) -> list[int]:
    """SIGTERM the interchanges of earlier runs on this host that did not end (their runner
    was killed); a pid is signalled only while it still is a Parsl interchange."""
    host = os.uname().nodename
    stopped = []
    for r in store.query(
        "SELECT note, host FROM runs WHERE id < ? AND status != 'finished' AND note LIKE ?",
        (run_id, _INTERCHANGE_NOTE + "%"),
    ):
        if r["host"] != host:
            continue
        for pid in r["note"][len(_INTERCHANGE_NOTE) :].split(","):
            try:
                cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
            except (OSError, ValueError):
                continue
            if b"interchange" in cmdline:
                try:
                    os.kill(int(pid), signal.SIGTERM)
                    stopped.append(int(pid))
                except OSError:
                    pass
    if stopped:
        say(
            f"stopped {len(stopped)} Parsl interchange(s) left by an earlier run: "
            f"{', '.join(map(str, stopped))}"
        )
    return stopped


class BlockWatch:
    """Follows the blocks of the loaded Parsl executors for run ``run_id``; :meth:`poll` writes
    them to the store and raises :class:`CampaignError` when workers never come."""

    def __init__(
        self,
        store: Store,
        run_id: int,
        executors: list,
        provider_kind: str,
        timeout_s: float,
        period_s: float = 2.0,
    ):
        self.store, self.run_id, self.kind = store, run_id, provider_kind
        self.executors = [
            ex
            for ex in executors
            if getattr(ex, "provider", None) is not None and hasattr(ex, "blocks_to_job_id")
        ]
        self.timeout_s, self.period_s = timeout_s, period_s
        self.allocated: dict[tuple[str, str], float] = {}  # block -> first seen on a node
        self.connected: set[tuple[str, str]] = set()
        self.seen: dict[tuple[str, str], tuple] = {}
        self.last = 0.0

    def __bool__(self) -> bool:
        return bool(self.executors)

    def poll(self, final: bool = False) -> None:
        """Record block states (at most every ``period_s``); check the executors' health."""
        now = time.monotonic()
        if not final and now - self.last < self.period_s:
            return
        self.last = now
        for ex in self.executors:
            statuses = dict(ex.status_facade)
            connected: set[str] = set()
            if not final and hasattr(ex, "connected_blocks"):
                try:
                    connected = {str(b) for b in ex.connected_blocks()}
                except Exception:  # the interchange is busy or gone: try next time
                    connected = set()
            for block, job_id in list(ex.blocks_to_job_id.items()):
                st = statuses.get(block)
                state = st.state.name.lower() if st is not None else "pending"
                key = (ex.label, str(block))
                is_connected = str(block) in connected
                if is_connected:
                    self.connected.add(key)
                if state == "running" or state in JOB_TERMINAL or is_connected:
                    self.allocated.setdefault(key, now)
                message = getattr(st, "message", None) if st is not None else None
                record = (str(job_id), state, message, is_connected)
                if self.seen.get(key) != record:
                    self.seen[key] = record
                    self.store.record_job(
                        self.run_id,
                        ex.label,
                        str(block),
                        str(job_id),
                        self.kind,
                        state,
                        message,
                        connected=is_connected,
                    )
        if not final:
            self.check(now)

    def check(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for ex in self.executors:
            if ex.bad_state_is_set:
                raise CampaignError(
                    f"Parsl gave up executor '{ex.label}' (its blocks failed): "
                    f"{ex.executor_exception}".strip()
                )
        if not any(ex.outstanding() for ex in self.executors):
            return
        live = [
            k for k in self.connected if self.seen.get(k, ("", "pending"))[1] not in JOB_TERMINAL
        ]
        if live:
            return
        stuck = [
            (k, t)
            for k, t in self.allocated.items()
            if k not in self.connected and now - t > self.timeout_s
        ]
        if not stuck:
            return
        (label, block), _ = min(stuck, key=lambda kt: kt[1])
        ex = next(e for e in self.executors if e.label == label)
        job_id = str(ex.blocks_to_job_id.get(block, "?"))
        info: dict[str, Any] = getattr(ex.provider, "resources", {}).get(job_id, {}) or {}
        state = self.seen.get((label, block), ("", "?"))[1]
        err = _tail(info.get("job_stderr_path")) or _tail(info.get("job_stdout_path"))
        raise CampaignError(
            f"No worker connected within {self.timeout_s:g} s of block {block} (job {job_id}, "
            f"{self.kind}) getting its node(s) (state now: {state}). Check "
            "[execution.provider] worker_init (the job must find process_worker_pool.py and "
            "mdxfer) and that the nodes reach [execution.executor] address."
            + (f" The job's output ends with:\n{err}" if err else "")
            + (
                f"\nJob script and output: {Path(info['job_stdout_path']).parent}"
                if info.get("job_stdout_path")
                else ""
            )
        )
