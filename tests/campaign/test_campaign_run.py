"""Campaigns with real Parsl executors and real (short) LAMMPS runs, one rank each.

The protocol is `quick` shortened further (8 molecules, 1 ps stages): fewer steps, never faked
results. Every run loads Parsl with its run_dir under the campaign's work directory.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
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
from mdxfer.cli.main import app

pytestmark = pytest.mark.slow

GOOD = ["CCO", "CC(C)=O", "CCCC"]
INCHIKEY_DIR = re.compile(r"^[A-Z]{14}-[A-Z]{10}-[A-Z]-[0-9a-f]{8}$")


def write_campaign(
    directory: Path,
    smiles: list[str],
    name: str = "camp",
    retry: str = "",
    campaign: str = "",
    execution: str = "",
) -> Path:
    """A campaign file with the tiny protocol and the local profile (1 LAMMPS rank)."""
    directory.mkdir(parents=True, exist_ok=True)
    proto = protocol_toml()
    text = (
        f'[campaign]\npartner = "CC(=C)C=C"\n{campaign}\n'
        f"[candidates]\nsmiles = {json.dumps(smiles)}\n"
        f"{proto}\n"
        f'[execution]\nprofile = "local"\n[execution.lammps]\nranks = 1\n{execution}\n'
        f"{retry}"
    )
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def stage_files(workdir: Path) -> dict[str, int]:
    """mtime (ns) of every stage summary and LAMMPS log under ``workdir``."""
    out = {}
    for pattern in ("*/species/*/*.json", "*/pairs/*/*.json", "*/*/*/*.log"):
        for p in workdir.glob(pattern):
            out[str(p.relative_to(workdir))] = p.stat().st_mtime_ns
    return out


def processes_in(directory: Path) -> list[int]:
    """Processes (other than this one) whose working directory is inside ``directory``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(directory)):
            pids.append(int(proc.name))
    return pids


def db_rows(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


# ------------------------------------------------------------------ a whole campaign


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """3 good candidates, a bad SMILES and an unsupported element, run once on `local`."""
    d = tmp_path_factory.mktemp("campaign")
    retry = '[retry]\nmax_retries = 2\nretry_on = ["lost", "lammps", "error"]\n'
    path = write_campaign(d, GOOD + ["C1CC(", "C[Se]C"], retry=retry)
    messages: list[str] = []
    t0 = time.perf_counter()
    with Campaign.open(path) as camp:
        report = camp.run(progress=messages.append)
        rows = camp.results()
        status = camp.status()
    return {
        "path": path,
        "dir": d,
        "report": report,
        "rows": rows,
        "status": status,
        "messages": messages,
        "wall_s": time.perf_counter() - t0,
    }


def test_three_candidates_finish_and_bad_ones_fail_with_their_reason(finished):
    rows = {r["smiles"]: r for r in finished["rows"]}
    assert set(rows) == set(GOOD) | {"C1CC(", "C[Se]C"}
    for s in GOOD:
        r = rows[s]
        assert r["status"] == "done", r
        assert math.isfinite(r["E_int"]) and r["E_int_stderr"] > 0
        assert r["error"] is None
    bad = rows["C1CC("]
    assert bad["status"] == "failed" and bad["error_class"] == "molecule"
    assert "Cannot parse SMILES 'C1CC('" in bad["error"] and bad["E_int"] is None
    se = rows["C[Se]C"]
    assert se["status"] == "failed" and se["error_class"] == "forcefield"
    assert se["failed_stage"] == "build" and "Se" in se["error"]
    report = finished["report"]
    assert (report.done, report.failed) == (3, 1)  # the bad SMILES never reached Parsl
    # each finished candidate's progress line gives both figures as stored
    for s in GOOD:
        r = rows[s]
        line = f"{s}: E_int = {r['E_int']:.2f} ± {r['E_int_stderr']:.2f}, E_cross = "
        line += f"{r['E_cross']:.2f} ± {r['E_cross_stderr']:.2f} kcal/mol"
        assert any(m.endswith(line) for m in finished["messages"]), (line, finished["messages"])
    db = load_spec(finished["path"]).database
    # permanent failures are not retried, even with retry_on = [..., "error"]
    (attempts,) = db_rows(db, "SELECT attempts FROM stage_runs WHERE status = 'failed'")
    assert attempts == (1,)


def test_partner_box_is_simulated_once_and_shared(finished):
    spec = load_spec(finished["path"])
    with Campaign.open(spec, readonly=True) as camp:
        pkey = camp.partner_key
        partner_dir = spec.workdir / camp.store.task(pkey)["workdir"]
        ran = db_rows(
            spec.database,
            "SELECT stage, COUNT(*) FROM stage_runs WHERE task_key = ? "
            "AND ran = 1 AND status = 'done' GROUP BY stage",
            (pkey,),
        )
    assert dict(ran) == {"build": 1, "compress": 1, "nvt": 1}
    # one of each: compress, NVT, and the halves' single points taken from its trajectory
    assert sorted(p.name for p in partner_dir.glob("*.log")) == [
        "compress.log",
        "halves.log",
        "nvt.log",
    ]
    tops = set()
    for r in finished["rows"]:
        if r["status"] == "done":
            info = json.loads((Path(r["workdir"]) / "species.json").read_text())
            tops.add(info["top"])
    assert tops == {str(partner_dir.resolve())}
    walls = {r["partner_wall_s"] for r in finished["rows"] if r["status"] == "done"}
    assert len(walls) == 1 and walls.pop() > 0


def test_results_carry_provenance_and_match_the_files(finished):
    db = load_spec(finished["path"]).database
    rows = [r for r in finished["rows"] if r["status"] == "done"]
    for r in rows:
        for key in (
            "mdxfer_version",
            "lammps_version",
            "lammps_command",
            "host",
            "seed",
            "wall_s",
            "forcefield",
            "protocol_digest",
        ):
            assert r[key] not in (None, "", "unknown"), key
        assert "guard.py" not in r["lammps_command"] and r["lammps_command"].endswith("lmp")
        on_disk = json.loads((Path(r["workdir"]) / "result.json").read_text())
        assert on_disk["E_int"] == pytest.approx(r["E_int"], rel=1e-12)
        log_head = (Path(r["workdir"]) / "nvt.log").read_text().splitlines()[0]
        assert log_head == f"LAMMPS ({r['lammps_version']})"
    (proto,) = db_rows(db, "SELECT DISTINCT protocol_json FROM results")
    assert json.loads(proto[0])["n_molecules"] == 8
    # task directories are named by InChIKey + content hash, never by SMILES
    spec = load_spec(finished["path"])
    dirs = [p.name for p in spec.workdir.glob("*/species/*")]
    assert len(dirs) == 5 and all(INCHIKEY_DIR.match(n) for n in dirs), dirs
    pairs = [p.name.split("__") for p in spec.workdir.glob("*/pairs/*")]
    assert len(pairs) == 3 and all(
        INCHIKEY_DIR.match(a) and INCHIKEY_DIR.match(b) for a, b in pairs
    )
    assert (spec.workdir / "parsl" / "000" / "parsl.log").exists()  # run_dir is not the CWD


def test_campaign_equals_the_plain_pipeline(finished, tmp_path, launcher):
    """The same candidate through mdxfer.md.interaction (reusing the campaign's partner box)
    gives the same E_int: the campaign adds orchestration, not physics."""
    from mdxfer.md.interaction import interaction_energy

    spec = load_spec(finished["path"])
    row = next(r for r in finished["rows"] if r["smiles"] == "CCO")
    partner_dir = Path(json.loads((Path(row["workdir"]) / "species.json").read_text())["top"])
    plain = interaction_energy(
        "CCO", spec.protocol, tmp_path / "plain", launcher=launcher, partner_dir=partner_dir
    )
    assert plain["E_int"] == pytest.approx(row["E_int"], rel=1e-9)
    assert plain["E_int_stderr"] == pytest.approx(row["E_int_stderr"], rel=1e-9)


def test_status_and_export_commands(finished, tmp_path):
    path = finished["path"]
    result = CliRunner().invoke(app, ["campaign", "status", str(path), "--json"])
    assert result.exit_code == 0, result.output
    st = json.loads(result.stdout)
    assert st["counts"] == {"pending": 0, "running": 0, "done": 3, "failed": 2}
    assert st["progress"] == 1.0 and st["partner_state"] == "done"
    assert [b["E_int"] for b in st["best"]] == sorted(b["E_int"] for b in st["best"])
    assert {f["smiles"] for f in st["failures"]} == {"C1CC(", "C[Se]C"}
    text = CliRunner().invoke(app, ["campaign", "status", str(path)])
    assert text.exit_code == 0
    assert "3 done, 2 failed" in text.output and "best so far" in text.output
    assert "unsupported" in text.output
    out = tmp_path / "results.csv"
    result = CliRunner().invoke(app, ["campaign", "export", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5
    assert list(rows[0])[:5] == ["smiles", "status", "E_int", "E_int_stderr", "error"]
    by = {r["smiles"]: r for r in rows}
    assert by["CCO"]["status"] == "done" and float(by["CCO"]["E_int"]) < 1e6
    assert by["CCO"]["lammps_version"] and by["CCO"]["mdxfer_version"]
    assert by["C[Se]C"]["status"] == "failed" and "Se" in by["C[Se]C"]["error"]


def test_a_second_run_repeats_nothing(finished):
    spec = load_spec(finished["path"])
    before = stage_files(spec.workdir)
    n_before = db_rows(spec.database, "SELECT COUNT(*) FROM stage_runs")[0][0]
    with Campaign.open(spec) as camp:
        report = camp.run()
    assert report.candidates == 0 and report.stages_ran == 0
    assert db_rows(spec.database, "SELECT COUNT(*) FROM stage_runs")[0][0] == n_before
    assert stage_files(spec.workdir) == before


# ------------------------------------------------------------------ kill -9 and resume


def test_kill_9_mid_run_then_resume_repeats_no_finished_stage(tmp_path):
    path = write_campaign(tmp_path / "k", GOOD, campaign="max_in_flight = 1")
    spec = load_spec(path)
    mdxfer = str(Path(sys.executable).parent / "mdxfer")
    proc = subprocess.Popen(
        [mdxfer, "campaign", "run", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    try:
        while True:  # one candidate finished and LAMMPS running for the next one
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no result within 180 s"
            try:
                n = db_rows(spec.database, "SELECT COUNT(*) FROM results")[0][0]
            except sqlite3.OperationalError:  # not created yet
                n = 0
            if n >= 1 and processes_in(spec.workdir):
                break
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.5)
    assert processes_in(spec.workdir) == []  # the guard took LAMMPS down with it
    killed = stage_files(spec.workdir)
    results_before = dict(db_rows(spec.database, "SELECT task_key, E_int FROM results"))
    assert 1 <= len(results_before) < 3
    states = dict(
        db_rows(
            spec.database, "SELECT state, COUNT(*) FROM tasks WHERE kind = 'pair' GROUP BY state"
        )
    )
    assert states.get("running", 0) >= 1  # left behind by the killed run

    with Campaign.open(path) as camp:  # `campaign run` again
        report = camp.run()
        rows = camp.results()
    assert report.requeued >= 1
    assert [r["status"] for r in rows] == ["done"] * 3
    after = stage_files(spec.workdir)
    unchanged = {k: v for k, v in killed.items() if after.get(k) == v}
    assert unchanged == killed  # no finished stage was written again
    assert set(after) > set(killed)
    repeated = db_rows(
        spec.database,
        "SELECT task_key, stage, COUNT(*) FROM stage_runs WHERE "
        "ran = 1 AND status = 'done' GROUP BY task_key, stage HAVING COUNT(*) > 1",
    )
    assert repeated == []
    for key, e_int in results_before.items():  # finished results kept, not recomputed
        assert db_rows(spec.database, "SELECT E_int FROM results WHERE task_key = ?", (key,)) == [
            (e_int,)
        ]
        assert db_rows(
            spec.database,
            "SELECT COUNT(*) FROM stage_runs WHERE task_key = ? AND run_id = 2",
            (key,),
        ) == [(0,)]
    runs = db_rows(spec.database, "SELECT id, status FROM runs ORDER BY id")
    assert runs == [(1, "interrupted"), (2, "finished")]


# ------------------------------------------------------------------ a LAMMPS crash, retries


def test_lammps_crash_fails_one_candidate_then_is_fixed(tmp_path):
    """A candidate whose data file is damaged makes LAMMPS exit with an ERROR: that candidate
    fails with LAMMPS's reason, at once (the same input would fail the same way: class
    ``lammps_input``, not retried although ``retry_on`` names ``lammps``); the other one
    finishes. After the damage is repaired, `campaign retry` finishes it."""
    from mdxfer.campaign.apps import build_species

    path = write_campaign(
        tmp_path / "crash",
        ["CCO", "CCC"],
        retry='[retry]\nmax_retries = 1\nretry_on = ["lammps"]\n',
    )
    spec = load_spec(path)
    with Campaign.open(spec) as camp:
        species = camp.store.query(
            "SELECT workdir FROM tasks WHERE kind='species' AND smiles = 'CCC'"
        )[0][0]
        wd = spec.workdir / species
        build_species("CCC", spec.protocol, str(wd))
        data = wd / "system.data"
        data.write_text(data.read_text()[: len(data.read_text()) // 2])
        report = camp.run()
        rows = {r["smiles"]: r for r in camp.results()}
    assert (report.done, report.failed) == (1, 1)
    assert rows["CCO"]["status"] == "done"
    r = rows["CCC"]
    assert r["status"] == "failed" and r["error_class"] == "lammps_input"
    assert r["failed_stage"] == "compress" and "Unexpected end of data file" in r["error"]
    attempts = db_rows(spec.database, "SELECT attempts FROM stage_runs WHERE status = 'failed'")
    assert attempts == [(1,)]  # not retried: max_retries = 1 would have made it 2

    (wd / "species.json").unlink()  # repair: the box is built again
    result = CliRunner().invoke(app, ["campaign", "retry", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    with Campaign.open(spec, readonly=True) as camp:
        rows = {r["smiles"]: r for r in camp.results()}
    assert rows["CCC"]["status"] == "done" and math.isfinite(rows["CCC"]["E_int"])
    assert rows["CCO"]["status"] == "done"


# ------------------------------------------------------------------ HighThroughputExecutor


def test_htex_executor_runs_a_campaign(tmp_path):
    """The cluster executor (HTEX, here with a LocalProvider): tasks, their results and their
    failures travel between processes."""
    path = write_campaign(
        tmp_path / "htex",
        ["CCO", "C[Se]C"],
        execution=(
            '[execution.executor]\nkind = "htex"\nmax_workers_per_node = 2\n'
            '[execution.provider]\nkind = "local"\n'
        ),
    )
    with Campaign.open(path) as camp:
        report = camp.run()
        rows = {r["smiles"]: r for r in camp.results()}
    assert (report.done, report.failed) == (1, 1)
    assert math.isfinite(rows["CCO"]["E_int"])
    assert rows["C[Se]C"]["error_class"] == "forcefield" and "Se" in rows["C[Se]C"]["error"]
    hosts = db_rows(
        load_spec(path).database, "SELECT DISTINCT host FROM stage_runs WHERE status = 'done'"
    )
    assert len(hosts) == 1
    assert (load_spec(path).workdir / "parsl" / "000" / "lammps" / "interchange.log").exists()


# ------------------------------------------------------------------ the init example as written


def test_init_example_runs_as_written(tmp_path):
    """`campaign init` then `campaign run`: local profile, quick protocol, three candidates."""
    path = tmp_path / "demo.toml"
    runner = CliRunner()
    assert runner.invoke(app, ["campaign", "init", "--out", str(path)]).exit_code == 0
    result = runner.invoke(app, ["campaign", "run", str(path)])
    assert result.exit_code == 0, result.output
    assert "3 done, 0 failed" in result.output
    with Campaign.open(path, readonly=True) as camp:
        rows = camp.results()
    assert [r["status"] for r in rows] == ["done"] * 3
    assert all(r["protocol"] == "quick" and math.isfinite(r["E_int"]) for r in rows)


def test_cost_up_front_before_anything_runs(tmp_path):
    """Registered, nothing run: the ETA comes from the cost model and counts the partner box;
    a finished campaign has nothing left."""
    path = write_campaign(tmp_path, ["CCO", "CCCO", "C1CC("])
    with Campaign.open(path) as camp:
        eta = camp.eta()
    assert eta["remaining"] == 2 and eta["partner_left"]
    assert eta["basis"].startswith("cost model") and eta["cpu_s"] > 0
    assert eta["eta_s"] == pytest.approx(eta["cpu_s"] / eta["workers"])
    text = CliRunner().invoke(app, ["campaign", "status", str(path)])
    assert text.exit_code == 0, text.output
    assert "left: 2 candidate(s)" in text.output and "incl. the partner box" in text.output


def test_eta_divides_the_cpu_time_over_runs_and_their_ranks(tmp_path):
    """CPU time is counted in rank-seconds: with 2 MPI ranks per run the wall-time estimate is
    the CPU time over (runs side by side × ranks), not over the runs alone."""
    from mdxfer.campaign.profiles import concurrency

    one = write_campaign(tmp_path / "one", ["CCO", "CCCO"])
    two = write_campaign(tmp_path / "two", ["CCO", "CCCO"])
    two.write_text(two.read_text().replace("ranks = 1", "ranks = 2"))
    with Campaign.open(one) as a, Campaign.open(two) as b:
        ea, eb = a.eta(), b.eta()
        workers_b = max(1, concurrency(b.profile))
    assert eb["cpu_s"] == pytest.approx(ea["cpu_s"])  # the same work
    assert eb["eta_s"] == pytest.approx(eb["cpu_s"] / (2 * workers_b))
    assert ea["eta_s"] == pytest.approx(ea["cpu_s"] / ea["workers"])


def test_finished_campaign_has_no_eta(finished):
    eta = finished["status"]["eta"]
    assert eta["remaining"] == 0 and eta["cpu_s"] == 0


def test_a_stack_only_change_reuses_every_box(finished, tmp_path):
    """Interface walls change only the stack: a campaign with them (same work directory, its
    own database) runs the pairs again and no candidate or partner box."""
    spec = load_spec(finished["path"])
    species = {k: v for k, v in stage_files(spec.workdir).items() if "/species/" in k}
    path = write_campaign(
        finished["dir"], GOOD[:2], name="walls", campaign=f'workdir = "{spec.workdir}"'
    )
    text = path.read_text().replace("[protocol]\n", "[protocol]\ninterface_wall_A = 1.0\n")
    path.write_text(text)
    with Campaign.open(path) as camp:
        assert camp.digest != spec.protocol.digest()
        assert camp.cell_digest == spec.protocol.cell_digest()
        # its own database has no partner task done, the shared folder has the box
        assert camp.store.task(camp.partner_key)["state"] != "done"
        assert not camp.eta()["partner_left"]
        report = camp.run()
        rows = camp.results()
    assert report.done == 2 and all(r["status"] == "done" for r in rows)
    after = stage_files(spec.workdir)
    assert {k: after[k] for k in species} == species  # no box ran again
    new = [k for k in after if k not in species and "/pairs/" in k and k.startswith(camp.digest)]
    assert any(k.endswith("nvt.json") for k in new)  # the stacks did
    for r in rows:
        assert r["protocol_digest"] == camp.digest
        assert "fix             iwall" in (Path(r["workdir"]) / "in.nvt.lmp").read_text()


def test_eta_from_the_cpu_time_of_finished_candidates(finished, tmp_path):
    """One more candidate in (a copy of) the finished campaign's store: what is left is costed
    from the CPU seconds in the LAMMPS logs of the finished ones (not their wall time, which
    grows when runs share cores)."""
    from mdxfer.md.cost import log_work

    spec = load_spec(finished["path"])
    copy = tmp_path / "copy.db"
    src, dst = sqlite3.connect(spec.database), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    path = write_campaign(
        tmp_path,
        GOOD + ["CCCCO"],
        name="more",
        campaign=f'database = "{copy}"\nworkdir = "{spec.workdir}"',
    )
    with Campaign.open(path) as camp:
        eta = camp.eta()
        rows = [r for r in camp.results() if r["status"] == "done"]
    assert eta["remaining"] == 1 and eta["basis"].startswith("CPU time of 3 finished")
    cpu = []
    for r in rows:
        stack = Path(r["workdir"])
        cell = Path(json.loads((stack / "species.json").read_text())["bottom"])
        cpu.append(sum(log_work(f)[1] for d in (stack, cell) for f in d.glob("*.log")))
    assert eta["cpu_s"] == pytest.approx(sum(cpu) / len(cpu))
