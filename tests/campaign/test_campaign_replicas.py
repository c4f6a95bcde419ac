"""Replicas in a campaign (``protocol.replicas = 2``): real Parsl (local threads) and real,
short LAMMPS runs (the `quick` protocol shortened as in test_campaign_run.py), one rank each.

One campaign: ethanol (both replicas finish) and propane (replica 1's data file is damaged, so
that replica fails in LAMMPS while replica 0 finishes). The last test changes the number of
replicas and checks that finished replicas are reused.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sqlite3
import statistics
from pathlib import Path

import pytest
from tiny_protocol import protocol_toml

from mdxfer.campaign import Campaign, load_spec

pytestmark = pytest.mark.slow

NEW_COLUMNS = (
    "E_cross",
    "E_cross_stderr",
    "E_int_replica_sd",
    "n_replicas",
    "replicas",
    "estimator",
    "E_int_stderr_with_partner",
)


def write_campaign(directory: Path, smiles: list[str], replicas: int) -> Path:
    """The tiny protocol with ``replicas``, the local profile (1 LAMMPS rank), no retries."""
    directory.mkdir(parents=True, exist_ok=True)
    proto = protocol_toml(replicas=replicas)
    path = directory / "rep.toml"
    path.write_text(
        f'[campaign]\npartner = "CC(=C)C=C"\n'
        f"[candidates]\nsmiles = {json.dumps(smiles)}\n"
        f"{proto}\n"
        f'[execution]\nprofile = "local"\n[execution.lammps]\nranks = 1\n'
        f"[retry]\nmax_retries = 0\n"
    )
    return path


def db_rows(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def replica_dirs(camp: Campaign, smiles: str, k: int) -> tuple[Path, Path]:
    """(candidate box, stack) directories of replica ``k`` of ``smiles``."""
    from mdxfer.molecule import canonical_smiles, inchikey

    canon = canonical_smiles(smiles)
    skey, pkey = camp.replica_tasks(canon, inchikey(canon), k)
    return tuple(camp.spec.workdir / camp.store.task(key)["workdir"] for key in (skey, pkey))


@pytest.fixture(scope="module")
def run2(tmp_path_factory):
    from mdxfer.campaign.apps import build_species

    d = tmp_path_factory.mktemp("replicas")
    path = write_campaign(d, ["CCO", "CCC"], replicas=2)
    spec = load_spec(path)
    messages: list[str] = []
    with Campaign.open(spec) as camp:
        box, _ = replica_dirs(camp, "CCC", 1)
        build_species("CCC", spec.protocol.replica(1), str(box))
        data = box / "system.data"
        data.write_text(data.read_text()[: len(data.read_text()) // 2])  # LAMMPS will fail
        report = camp.run(progress=messages.append)
        rows = {r["smiles"]: r for r in camp.results()}
        status = camp.status()
        exported = d / "results.csv"
        camp.export(exported)
        per_replica = d / "replicas.csv"
        camp.export_replicas(per_replica)
        dirs = {k: replica_dirs(camp, "CCO", k) for k in (0, 1)}
        partner_dir = spec.workdir / camp.store.task(camp.partner_key)["workdir"]
        partner_key = camp.partner_key
    return {
        "path": path,
        "spec": spec,
        "report": report,
        "rows": rows,
        "status": status,
        "csv": exported,
        "replicas_csv": per_replica,
        "dirs": dirs,
        "partner_dir": partner_dir,
        "partner_key": partner_key,
        "messages": messages,
    }


def test_two_replicas_are_run_and_aggregated(run2):
    spec, row = run2["spec"], run2["rows"]["CCO"]
    assert row["status"] == "done", row
    assert row["n_replicas"] == 2 and len(row["replicas"]) == 2
    assert all(math.isfinite(e) for e in row["replicas"])
    assert row["E_int"] == pytest.approx(statistics.mean(row["replicas"]), rel=1e-12)
    assert row["E_int_replica_sd"] == pytest.approx(statistics.stdev(row["replicas"]), rel=1e-9)
    assert row["E_int_stderr"] > 0 and row["E_int_stderr_with_partner"] >= row["E_int_stderr"]
    assert row["estimator"] == spec.protocol.estimator
    assert row["E_cross"] is not None and row["E_cross_stderr"] is not None
    # each replica: its own record, its own seed and cells, one shared partner box
    reps = db_rows(
        spec.database,
        "SELECT replica, seed, E_int, record FROM replica_results "
        "WHERE candidate_key = ? ORDER BY replica",
        (row["task_key"],),
    )
    assert [r[0] for r in reps] == [0, 1]
    assert [r[1] for r in reps] == [spec.protocol.seed, spec.protocol.seed + 1009]
    assert [r[2] for r in reps] == row["replicas"]
    workdirs = [json.loads(r[3])["workdirs"] for r in reps]
    assert workdirs[0]["candidate"] != workdirs[1]["candidate"]
    assert workdirs[0]["stack"] != workdirs[1]["stack"]
    assert workdirs[0]["partner"] == workdirs[1]["partner"] == str(run2["partner_dir"])
    for k, (box, stack) in run2["dirs"].items():
        assert workdirs[k] == {
            "candidate": str(box),
            "partner": str(run2["partner_dir"]),
            "stack": str(stack),
        }
        assert (stack / "replica_result.json").exists()
    # the partner box: built once, in the partner role
    ran = db_rows(
        spec.database,
        "SELECT stage, COUNT(*) FROM stage_runs WHERE task_key = ? "
        "AND ran = 1 AND status = 'done' GROUP BY stage",
        (run2["partner_key"],),
    )
    assert dict(ran) == {"build": 1, "compress": 1, "nvt": 1}
    assert json.loads((run2["partner_dir"] / "species.json").read_text())["role"] == "partner"
    assert run2["status"]["replicas"] == 2 and run2["status"]["counts"]["done"] == 1
    assert any("mean of 2 replicas" in m for m in run2["messages"]), run2["messages"]


def test_per_replica_export_has_each_finished_replica(run2):
    """`campaign export --replicas`: one row per finished replica — both of ethanol, replica 0
    of propane (its replica 1 failed) — with the seeds, E_int values and folders the
    candidate's result aggregates."""
    with open(run2["replicas_csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["smiles"], r["replica"]) for r in rows] == [("CCO", "0"), ("CCO", "1"), ("CCC", "0")]
    ethanol = run2["rows"]["CCO"]
    mine = [r for r in rows if r["smiles"] == "CCO"]
    assert [float(r["E_int"]) for r in mine] == pytest.approx(ethanol["replicas"], rel=1e-12)
    seed = run2["spec"].protocol.seed
    assert [int(r["seed"]) for r in mine] == [seed, seed + 1009]
    for r, k in zip(mine, (0, 1)):
        box, stack = run2["dirs"][k]
        assert (r["candidate_dir"], r["stack_dir"]) == (str(box), str(stack))
        assert r["partner_dir"] == str(run2["partner_dir"])
        assert float(r["E_cross"]) < 0 and float(r["E_int_stderr"]) > 0
        assert float(r["density_chem_g_cm3"]) > 0


def test_a_failed_replica_fails_its_candidate_and_the_rest_carries_on(run2):
    spec, row = run2["spec"], run2["rows"]["CCC"]
    assert (run2["report"].done, run2["report"].failed) == (1, 1)
    assert row["status"] == "failed" and row["error_class"] == "lammps_input"
    assert row["failed_stage"] == "compress" and row["error"].startswith("replica 1: ")
    assert "Unexpected end of data file" in row["error"]
    assert row["E_int"] is None and row["replicas"] is None
    # replica 0 of the failed candidate still finished, and is kept for a later run
    (n,) = db_rows(
        spec.database,
        "SELECT COUNT(*) FROM replica_results WHERE candidate_key = ?",
        (row["task_key"],),
    )
    assert n == (1,)


def test_export_has_the_replica_and_estimator_columns(run2):
    with open(run2["csv"]) as fh:
        rows = {r["smiles"]: r for r in csv.DictReader(fh)}
    header = list(next(iter(rows.values())))
    assert header[:5] == ["smiles", "status", "E_int", "E_int_stderr", "error"]
    assert set(NEW_COLUMNS) <= set(header)
    r = rows["CCO"]
    assert json.loads(r["replicas"]) == run2["rows"]["CCO"]["replicas"]
    assert int(r["n_replicas"]) == 2 and float(r["E_int_replica_sd"]) > 0
    assert r["estimator"] and float(r["E_int_stderr_with_partner"]) > 0
    assert rows["CCC"]["replicas"] == "" and rows["CCC"]["status"] == "failed"
    cols = {c[1] for c in db_rows(run2["spec"].database, "PRAGMA table_info(results)")}
    assert set(NEW_COLUMNS) <= cols


def test_the_campaign_result_is_the_interaction_result(run2, tmp_path, launcher):
    """`mdxfer interaction` on the very cells of the campaign (copied; every stage is found
    finished, no LAMMPS runs) gives the same record: same fields, same values."""
    from mdxfer.md.interaction import interaction_energy

    spec, row = run2["spec"], run2["rows"]["CCO"]
    ((record,),) = db_rows(
        spec.database, "SELECT record FROM results WHERE task_key = ?", (row["task_key"],)
    )
    record = json.loads(record)
    on_disk = json.loads((Path(row["workdir"]) / "result.json").read_text())
    assert on_disk == record
    out = tmp_path / "plain"
    for k, (box, stack) in run2["dirs"].items():
        base = out if k == 0 else out / f"replica_{k:02d}"
        shutil.copytree(box, base / "candidate")
        shutil.copytree(stack, base / "stack")
    logs = {p: p.stat().st_mtime_ns for p in out.rglob("*.log")}
    plain = interaction_energy(
        "CCO", spec.protocol, out, launcher=launcher, partner_dir=run2["partner_dir"]
    )
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.log")} == logs  # nothing ran again
    assert set(plain) == set(record)
    for key in (
        "E_int",
        "E_int_stderr",
        "E_int_stderr_with_partner",
        "E_int_replica_sd",
        "E_cross",
        "E_cross_stderr",
        "E_partner_stderr",
        "wall_s",
        "partner_wall_s",
        "E_int_etotal",
        "E_int_pe",
        "E_int_pe_nh",
    ):
        assert plain[key] == pytest.approx(record[key], rel=1e-12), key
    for key in (
        "replicas",
        "replica_seeds",
        "n_replicas",
        "estimator",
        "protocol_digest",
        "seed",
        "n_molecules_chem",
        "smiles",
        "partner",
    ):
        assert plain[key] == record[key], key
    assert record["protocol_digest"] == spec.protocol.digest()


def test_fewer_then_more_replicas_reuse_the_finished_ones(run2):
    path, spec = run2["path"], run2["spec"]
    before = run2["rows"]["CCO"]
    # one replica: re-aggregated from the stored replica 0, no stage runs
    write_campaign(path.parent, ["CCO", "CCC"], replicas=1)
    with Campaign.open(path) as camp:
        assert {r["smiles"]: r["status"] for r in camp.results()} == {
            "CCO": "pending",
            "CCC": "failed",
        }
        report = camp.run()
        assert (report.done, report.stages_ran) == (1, 0)
        assert camp.retry() >= 1  # CCC: its replica 0 alone is a result
        report = camp.run()
        assert (report.done, report.stages_ran) == (1, 0)
        rows = {r["smiles"]: r for r in camp.results()}
    assert rows["CCO"]["n_replicas"] == 1 and rows["CCO"]["E_int_replica_sd"] is None
    assert rows["CCO"]["E_int"] == before["replicas"][0] and rows["CCC"]["status"] == "done"
    # two again, with propane's damaged box repaired: only propane's replica 1 runs
    write_campaign(path.parent, ["CCO", "CCC"], replicas=2)
    with Campaign.open(path) as camp:
        (replica_box, _) = replica_dirs(camp, "CCC", 1)
        (replica_box / "species.json").unlink()  # the box is built again
        report = camp.run()
        rows = {r["smiles"]: r for r in camp.results()}
        ccc_replica_1 = set(
            camp.replica_tasks(rows["CCC"]["canonical_smiles"], rows["CCC"]["inchikey"], 1)
        )
    assert (report.done, report.failed) == (2, 0)
    assert rows["CCO"]["replicas"] == before["replicas"]
    assert rows["CCO"]["E_int"] == pytest.approx(before["E_int"], rel=1e-12)
    assert rows["CCC"]["n_replicas"] == 2 and rows["CCC"]["E_int_replica_sd"] is not None
    run_id = db_rows(spec.database, "SELECT MAX(id) FROM runs")[0][0]
    ran = db_rows(
        spec.database,
        "SELECT DISTINCT task_key FROM stage_runs WHERE run_id = ? AND ran = 1",
        (run_id,),
    )
    assert {k for (k,) in ran} == ccc_replica_1  # its box and its stack, nothing else


def on_a_copy(run2, directory: Path, smiles: list[str], replicas: int) -> Path:
    """A campaign file for ``smiles`` with ``replicas`` on a copy of the module campaign's
    database and on its work directory (its finished files are found there)."""
    spec = run2["spec"]
    directory.mkdir(parents=True, exist_ok=True)
    copy = directory / "copy.db"
    src, dst = sqlite3.connect(spec.database), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    path = write_campaign(directory, smiles, replicas=replicas)
    text = path.read_text().replace(
        "[campaign]\n", f'[campaign]\ndatabase = "{copy}"\nworkdir = "{spec.workdir}"\n'
    )
    path.write_text(text)
    return path


def test_eta_counts_every_replica(run2, tmp_path):
    """What is left is costed from the CPU time of all of a finished candidate's replicas
    (both boxes and stacks), not replica 0's alone."""
    from mdxfer.md.cost import log_work

    path = on_a_copy(run2, tmp_path / "more", ["CCO", "CCC", "CCCO"], replicas=2)

    def cpu(folders):
        return sum(
            sec * ranks for d in folders for f in d.glob("*.log") for _, sec, ranks in [log_work(f)]
        )

    with Campaign.open(path) as camp:
        eta = camp.eta()
        done = [r["smiles"] for r in camp.results() if r["status"] == "done"]
        per = [cpu([d for k in (0, 1) for d in replica_dirs(camp, s, k)]) for s in done]
    # (CCO is done; CCC too when the test above has repaired it)
    assert "CCO" in done and eta["remaining"] == 1
    assert eta["basis"].startswith(f"CPU time of {len(done)} finished")
    assert eta["cpu_s"] == pytest.approx(sum(per) / len(per))
    both, replica0 = cpu(run2["dirs"][0] + run2["dirs"][1]), cpu(run2["dirs"][0])
    assert both > 1.5 * replica0


def test_eta_leaves_out_replicas_finished_on_disk(run2, tmp_path):
    """With 3 replicas asked of a campaign whose ethanol has 2 finished, ethanol counts for
    the one replica left and a new candidate for all 3 (the estimate used to count all 3 for
    every candidate). Propane, from the database copied, has 1 or 2 finished (2 when the test
    above has repaired it)."""
    from mdxfer.cli.campaign import _eta_line
    from mdxfer.md.cost import project

    names = ("CCO", "CCC", "CCCO")
    path = on_a_copy(run2, tmp_path / "three", list(names), replicas=3)
    with Campaign.open(path) as camp:
        rows = {r["smiles"]: r for r in camp.results()}
        left = {s: camp.replicas_left(rows[s]) for s in names}
        eta = camp.eta()
        per = [
            project(rows[s]["canonical_smiles"], camp.protocol, camp.partner, 3, partner_done=True)
            for s in names
        ]
    assert left["CCO"] == 1 and left["CCCO"] == 3 and left["CCC"] in (1, 2)
    assert eta["remaining"] == 3 and eta["replicas_left"] == sum(left.values())
    assert eta["basis"] == "cost model (mdxfer.md.cost)"
    mean = sum(p.cpu_s for p in per) / len(per)
    assert eta["cpu_s"] == pytest.approx(mean * sum(left.values()) / 3)
    assert f"≈ {sum(left.values()):.1f} of 9 replica runs' work" in _eta_line(eta)
