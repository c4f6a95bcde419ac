"""The loop end to end: table oracle (improves on its initial set, report, resume rules, a real
SIGKILL of `mdxfer al run` and its resume) and the real MD campaign as oracle (tiny protocol).

The pretrained model is a small QM9-Cv GCN (400 molecules, a few epochs) made once per session.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_protocol import protocol_toml

from mdxfer.al.acquisition import Acquisition, ALError
from mdxfer.al.diversity import Diversity
from mdxfer.al.loop import ActiveLearner, LoopSettings, load_al_config
from mdxfer.al.oracles import TableOracle
from mdxfer.al.state import ALState
from mdxfer.al.surrogate import SurrogateSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory):
    """A small pretrained QM9-Cv model (paper preset: 400 molecules, 8 epochs)."""
    from mdxfer.learn.pretrain import PretrainSettings, pretrain

    out = tmp_path_factory.mktemp("cv_small")
    pretrain(
        out,
        PretrainSettings(n=400, n_val=80, preset="paper", max_epochs=8),
        threads=1,
        progress=False,
        use_cache=False,
    )
    return out


@pytest.fixture(scope="session")
def oracle_csv(tmp_path_factory):
    """300 QM9 molecules (outside the pretraining subsets) with their polarisability (bohr³)."""
    from mdxfer.al.benchmark import make_qm9_oracle

    return make_qm9_oracle(tmp_path_factory.mktemp("oracle") / "polar.csv", n=300, seed=7)


def settings(**kw) -> LoopSettings:
    base = dict(
        batch_size=5,
        rounds=4,
        n_initial=10,
        acquisition=Acquisition("ucb", maximize=True),
        diversity=Diversity("maxmin"),
        surrogate=SurrogateSettings(features="morgan", members=8),
        seed=0,
    )
    base.update(kw)
    return LoopSettings(**base)


def test_short_loop_improves_on_its_initial_set(pretrained, oracle_csv, tmp_path):
    oracle = TableOracle(oracle_csv)
    pool = list(oracle.values)
    s = settings(
        surrogate=SurrogateSettings(
            features="embedding+morgan", members=8, model_dir=str(pretrained)
        )
    )
    with ALState(tmp_path / "al.db") as state:
        res = ActiveLearner(pool, oracle, state, s).run()
        rounds = state.rounds()
        picks = state.picks()
        assert [r["round"] for r in rounds] == [0, 1, 2, 3, 4] and all(
            r["state"] == "done" for r in rounds
        )
        assert res["simulations"] == 10 + 4 * 5 == len(picks) == len({p["smiles"] for p in picks})
        initial_best = max(p["value"] for p in picks if p["round"] == 0)
        assert res["best_value"] > initial_best
        # better than chance: of the 20 model-chosen molecules at least 8 are in the pool's top
        # 10 % (random picking gets 2 on average; P(>= 8) = 0.0004), and the best is found
        values = np.array(list(oracle.values.values()))
        top10 = np.quantile(values, 0.9)
        chosen = np.array([p["value"] for p in picks if p["round"] > 0])
        assert (chosen > top10).sum() >= 8, (chosen, top10)
        assert res["best_value"] == values.max()
        # every model round stored its model, its predictions of the whole pool, CV quality
        for r in rounds[1:]:
            assert len(state.predictions(r["round"])) == len(pool)
            assert r["cv_r2"] is not None and r["n_train"] == 10 + 5 * (r["round"] - 1)
            fmt, blob = state.model_blob(r["round"])
            assert fmt == "npz" and np.load(io.BytesIO(blob))["coef"].shape[0] == 8
        assert all(p["mean"] is not None and p["std"] > 0 for p in picks if p["round"] > 0)

        from mdxfer.al.report import write_report

        path = write_report(state, tmp_path / "report", "test", "polarisability", True)
    text = path.read_text()
    assert "best_so_far.png" in text and "parity_round004.png" in text and "## Round 4" in text
    assert (tmp_path / "report" / "parity_round001.png").stat().st_size > 1000
    table = pd.read_csv(tmp_path / "report" / "picks.csv")
    assert len(table) == len(picks) and set(table["status"]) == {"done"}
    assert np.allclose(table["measured"], [p["value"] for p in picks])
    assert np.allclose(table["measured"], [oracle.values[s] for s in table["smiles"]])
    later = table[table["round"] > 0]
    assert np.allclose(later["predicted"], [p["mean"] for p in picks if p["round"] > 0])


def test_random_picking_fails_the_same_bar(pretrained, oracle_csv, tmp_path):
    """The bar above is one that chance does not clear: the same loop with random acquisition
    (same seed, rounds and model) picks far fewer top-10 % molecules and misses the best."""
    oracle = TableOracle(oracle_csv)
    pool = list(oracle.values)
    s = settings(
        acquisition=Acquisition("random", maximize=True),
        surrogate=SurrogateSettings(
            features="embedding+morgan", members=8, model_dir=str(pretrained)
        ),
    )
    with ALState(tmp_path / "random.db") as state:
        res = ActiveLearner(pool, oracle, state, s).run()
        chosen = np.array([p["value"] for p in state.picks() if p["round"] > 0])
    values = np.array(list(oracle.values.values()))
    assert (chosen > np.quantile(values, 0.9)).sum() < 8
    assert res["best_value"] < values.max()


def test_minimize_thompson_and_resume_rules(oracle_csv, tmp_path):
    oracle = TableOracle(oracle_csv)
    pool = list(oracle.values)
    s = settings(
        acquisition=Acquisition("thompson", maximize=False), rounds=2, diversity=Diversity("none")
    )
    with ALState(tmp_path / "al.db") as state:
        ActiveLearner(pool, oracle, state, s).run(max_rounds=2)  # round 0 and 1 only
        assert [r["round"] for r in state.rounds()] == [0, 1]
        picks = state.picks(1)
        assert all(p["member"] is not None for p in picks)
        assert len({p["member"] for p in picks}) == len(picks)  # one member per pick
        # other settings are refused; more rounds are fine
        with pytest.raises(ALError, match="acquisition"):
            ActiveLearner(
                pool,
                oracle,
                state,
                settings(
                    acquisition=Acquisition("greedy", maximize=False),
                    rounds=2,
                    diversity=Diversity("none"),
                ),
            ).run()
        res = ActiveLearner(
            pool,
            oracle,
            state,
            settings(
                acquisition=Acquisition("thompson", maximize=False),
                rounds=3,
                diversity=Diversity("none"),
            ),
        ).run()
        assert [r["round"] for r in state.rounds()] == [0, 1, 2, 3] and res["finished"]
        values = [p["value"] for p in state.picks()]
        assert res["best_value"] == min(values)


def write_table_campaign(
    directory: Path, oracle_csv: Path, name: str, rounds: int = 5, delay: float = 0.0
) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(f"""[campaign]
database = "{name}.db"

[active_learning]
pool = "{oracle_csv}"
oracle = "table"
table = "{oracle_csv}"
n_initial = 6
batch_size = 4
rounds = {rounds}
acquisition = "ucb"
direction = "maximize"
seed = 3
oracle_delay_s = {delay}
[active_learning.model]
features = "morgan"
members = 8
""")
    return path


def al_rows(db: Path, sql: str) -> list[tuple]:
    """Rows of ``sql``; [] while the database or its tables do not exist yet."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    except sqlite3.OperationalError:
        return []
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def test_sigkill_and_resume(oracle_csv, tmp_path):
    """SIGKILL a running `mdxfer al run` in the middle of a round's simulations, resume it, and
    compare with an uninterrupted run: same rounds, same picks, nothing repeated or lost."""
    cmd = [sys.executable, "-m", "mdxfer", "al", "run"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    killed = write_table_campaign(tmp_path, oracle_csv, "killed", delay=0.15)
    db = tmp_path / "killed.db"
    proc = subprocess.Popen(
        cmd + [str(killed), "--no-report"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    seen = None
    try:
        while time.time() < deadline:
            rows = al_rows(
                db,
                "SELECT r.round FROM al_rounds r WHERE r.state = 'selected' AND r.round >= 2 AND "
                "EXISTS (SELECT 1 FROM al_picks p WHERE p.round = r.round AND p.status = 'done') "
                "AND EXISTS (SELECT 1 FROM al_picks p WHERE p.round = r.round AND p.status = 'pending')",
            )
            if rows:
                seen = rows[0][0]
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert seen is not None, "the loop never reached the middle of round 2"
    before = al_rows(db, f"SELECT smiles, status FROM al_picks WHERE round = {seen} ORDER BY rank")
    assert {"done", "pending"} <= {s for _, s in before}
    assert al_rows(db, "SELECT MAX(round) FROM al_rounds")[0][0] == seen

    res = subprocess.run(
        cmd + [str(killed), "--no-report"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stderr
    assert f"resuming round {seen}" in res.stderr
    after = al_rows(db, f"SELECT smiles, status FROM al_picks WHERE round = {seen} ORDER BY rank")
    assert [s for s, _ in after] == [s for s, _ in before] and {s for _, s in after} == {"done"}

    reference = write_table_campaign(tmp_path, oracle_csv, "reference")
    res = subprocess.run(
        cmd + [str(reference), "--no-report"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stderr
    q = "SELECT round, rank, smiles, status, value FROM al_picks ORDER BY round, rank"
    got, want = al_rows(db, q), al_rows(tmp_path / "reference.db", q)
    assert got == want and len(got) == 6 + 5 * 4
    assert len({r[2] for r in got}) == len(got)
    assert al_rows(db, "SELECT round, state FROM al_rounds ORDER BY round") == [
        (r, "done") for r in range(6)
    ]
    assert al_rows(db, "SELECT COUNT(*) FROM al_observations")[0][0] == len(got)

    status = subprocess.run(
        cmd[:-1] + ["status", str(killed), "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    st = json.loads(status.stdout)
    assert st["simulations"] == 26 and len(st["rounds"]) == 6 and not st["running"]


@pytest.mark.slow
def test_loop_with_the_md_campaign(pretrained, tmp_path):
    """The real oracle: picks go to the campaign, Parsl runs LAMMPS (1 rank), E_int comes back."""
    pool = ["CCO", "CC(C)=O", "CCCC", "CO", "CC#N", "CCOC"]
    (tmp_path / "pool.smi").write_text("\n".join(pool) + "\n")
    proto = protocol_toml()
    f = tmp_path / "md.toml"
    f.write_text(f"""[campaign]
partner = "CC(=C)C=C"
[candidates]
smiles = ["CCCO"]
{proto}
[execution]
profile = "local"
[execution.lammps]
ranks = 1

[active_learning]
pool = "pool.smi"
n_initial = 2
batch_size = 1
rounds = 1
acquisition = "ei"
direction = "minimize"
model_dir = "{pretrained}"
[active_learning.model]
features = "embedding+morgan"
members = 4
cv_folds = 3
""")
    from typer.testing import CliRunner

    from mdxfer.cli.main import app

    res = CliRunner().invoke(app, ["al", "run", str(f)])
    assert res.exit_code == 0, res.output
    cfg = load_al_config(f)
    with ALState(cfg.database, readonly=True) as state:
        picks = state.picks()
        rounds = state.rounds()
    assert [r["round"] for r in rounds] == [0, 1] and len(picks) == 3, (rounds, picks, res.output)
    assert all(p["status"] == "done" and np.isfinite(p["value"]) for p in picks), picks
    # the campaign's own candidate (not in the pool) was simulated first and trained round 1
    assert rounds[1]["n_train"] == 3 and "CCCO" not in {p["smiles"] for p in picks}, (
        rounds,
        res.output,
    )
    # the values are the campaign's E_int results
    from mdxfer.campaign import Campaign

    with Campaign.open(cfg.spec, readonly=True) as camp:
        e_int = {r["canonical_smiles"]: r["E_int"] for r in camp.results() if r["status"] == "done"}
    assert {p["smiles"]: p["value"] for p in picks} == {
        k: e_int[k] for k in (p["smiles"] for p in picks)
    }
    assert "CCCO" in e_int
    assert rounds[1]["best_value"] == min(e_int.values()), (rounds, e_int)
    assert (cfg.report_dir / "report.md").exists()
    assert cfg.label == "E_int [kcal/mol]"  # the MD oracle's unit on every axis
    assert "Target: **E_int [kcal/mol]**" in (cfg.report_dir / "report.md").read_text()
    res = CliRunner().invoke(app, ["al", "status", str(f)])
    assert res.exit_code == 0 and "ei" in res.output, res.output
    # the same store read for E_cross (the stationary, precise target): its values and stderrs
    from mdxfer.al.oracles import CampaignOracle

    with Campaign.open(cfg.spec, readonly=True) as camp:
        cross = {
            r["canonical_smiles"]: (r["E_cross"], r["E_cross_stderr"])
            for r in camp.results()
            if r["status"] == "done"
        }
    known = {m.smiles: (m.value, m.stderr) for m in CampaignOracle(cfg.spec, "E_cross").known()}
    assert known == cross and all(v < 0 for v, _ in known.values())
    f.write_text(
        f.read_text().replace(
            'direction = "minimize"', 'direction = "minimize"\ntarget_column = "E_foo"'
        )
    )
    with pytest.raises(ALError, match="E_int' or 'E_cross"):
        load_al_config(f)


def test_a_failed_pick_and_a_budget_beyond_the_pool(oracle_csv, tmp_path):
    """The oracle fails on one pool molecule (not in its table): that pick is recorded as
    failed with the reason and the loop goes on; a budget larger than the pool ends when the
    pool is used up, every molecule simulated once."""
    oracle = TableOracle(oracle_csv)
    pool = list(oracle.values)[:12] + ["CCCCCCCCCCCC"]
    s = settings(n_initial=5, batch_size=4, rounds=None, budget=100, diversity=Diversity("none"))
    with ALState(tmp_path / "al.db") as state:
        res = ActiveLearner(pool, oracle, state, s).run()
        picks = state.picks()
    assert res["finished"] and len(picks) == len(pool) == len({p["smiles"] for p in picks})
    failed = [p for p in picks if p["status"] == "failed"]
    assert [p["smiles"] for p in failed] == ["CCCCCCCCCCCC"]
    assert "not in the oracle table" in failed[0]["error"]
    done = [p["value"] for p in picks if p["status"] == "done"]
    assert len(done) == 12 and res["best_value"] == max(done)


def test_select_only_from_known_molecules(oracle_csv, tmp_path):
    """n_initial = 0: round 0 is an acquisition round fitted on the known molecules; with
    select_only the picks are chosen, kept pending and reported, and nothing is measured until
    the next run, which measures exactly them."""
    import pandas as pd

    from mdxfer.al.oracles import Measurement

    class CountingOracle(TableOracle):
        calls = 0
        pending_runs = 0  # a campaign oracle runs its pending candidates here

        def measure(self, smiles, log=None, on_result=None):
            CountingOracle.calls += len(smiles)
            return super().measure(smiles, log, on_result)

        def run_pending(self, log=None):
            CountingOracle.pending_runs += 1
            return 0

    table = pd.read_csv(oracle_csv)
    known_csv = tmp_path / "known.csv"
    known = table.iloc[:20].assign(target_stderr=0.5)
    known.to_csv(known_csv, index=False)
    initial = TableOracle(known_csv)
    assert set(initial.stderr.values()) == {0.5}  # the table's stderr column is read
    oracle = CountingOracle(oracle_csv)
    pool = [s for s in oracle.values if s not in initial.values]
    known_ms = [Measurement(s, "done", v, initial.stderr[s]) for s, v in initial.values.items()]
    s = settings(n_initial=0, batch_size=4, rounds=1, diversity=Diversity("none"))
    with ALState(tmp_path / "al.db") as state:
        res = ActiveLearner(pool, oracle, state, s, known_ms).run(select_only=True)
        assert CountingOracle.calls == 0 and res["round"] == 0 and len(res["picks"]) == 4
        assert CountingOracle.pending_runs == 0  # --select-only starts no simulation at all
        assert all(p["status"] == "pending" and p["mean"] is not None for p in res["picks"])
        assert state.rounds()[0]["acquisition"] == "ucb"  # not a random "initial" round
        chosen = [p["smiles"] for p in res["picks"]]
        assert all(c in pool for c in chosen)
        again = ActiveLearner(pool, oracle, state, s, known_ms).run(select_only=True)
        assert [p["smiles"] for p in again["picks"]] == chosen and len(state.rounds()) == 1
        ActiveLearner(pool, oracle, state, s, known_ms).run(max_rounds=1)
        assert CountingOracle.calls == 4
        assert sorted(p["smiles"] for p in state.picks(0, status="done")) == sorted(chosen)
    # rounds counts acquisition rounds: with n_initial = 0, rounds = 2 is rounds 0 and 1
    s2 = settings(n_initial=0, batch_size=3, rounds=2, diversity=Diversity("none"))
    with ALState(tmp_path / "two.db") as state:
        res = ActiveLearner(pool, oracle, state, s2, known_ms).run()
        assert [r["round"] for r in state.rounds()] == [0, 1] and res["finished"]
        assert {r["acquisition"] for r in state.rounds()} == {"ucb"}
        assert res["simulations"] == 6
    # without known molecules there is nothing to fit round 0 on
    with ALState(tmp_path / "empty.db") as state:
        with pytest.raises(ALError, match="at least 3"):
            ActiveLearner(pool, oracle, state, s).run(select_only=True)


def test_cli_select_only(oracle_csv, tmp_path):
    """`mdxfer al run --select-only` prints the chosen molecules and simulates nothing."""
    import pandas as pd

    known_csv = tmp_path / "known.csv"
    pd.read_csv(oracle_csv).iloc[:15].to_csv(known_csv, index=False)
    path = write_table_campaign(tmp_path, oracle_csv, "sel", rounds=2)
    text = path.read_text().replace("n_initial = 6", f'n_initial = 0\ninitial = "{known_csv}"')
    path.write_text(text)
    r = subprocess.run(
        [sys.executable, "-m", "mdxfer", "al", "run", str(path), "--select-only", "--no-report"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr  # tables go to the console (stderr), the summary to stdout
    assert "chosen, not simulated yet" in out and "without --select-only" in r.stdout
    n_done = al_rows(tmp_path / "sel.db", "SELECT COUNT(*) FROM al_picks WHERE status = 'done'")
    n_pending = al_rows(
        tmp_path / "sel.db", "SELECT COUNT(*) FROM al_picks WHERE status = 'pending'"
    )
    assert n_done == [(0,)] and n_pending == [(4,)]
