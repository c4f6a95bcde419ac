"""Campaign files, the store's content keys, and the cluster profiles rendered to Parsl objects
and job scripts (no scheduler runs here: the scripts come from Parsl's own providers, with the
submission command replaced by a dry run). No LAMMPS in this file."""

from __future__ import annotations

import os
import sqlite3
import sys

import pytest
from typer.testing import CliRunner

from mdxfer.campaign.profiles import (
    PROFILES,
    build_config,
    build_executors,
    light_label,
    make_launcher,
    render_job_script,
    resolve_profile,
    resource_spec,
)
from mdxfer.campaign.spec import CampaignError, example_text, load_spec, spec_from_dict
from mdxfer.campaign.store import Store, pair_key, species_key
from mdxfer.cli.main import app


def _spec(tmp_path, profile="local", **execution):
    data = {
        "campaign": {"partner": "CC(=C)C=C"},
        "candidates": {"smiles": ["CCO"]},
        "protocol": {"preset": "quick"},
        "execution": {"profile": profile, **execution},
    }
    return spec_from_dict(data, tmp_path)


# ------------------------------------------------------------------ campaign file


def test_init_writes_a_valid_example_and_paths_are_relative_to_the_file(tmp_path, monkeypatch):
    out = tmp_path / "sub" / "demo.toml"
    monkeypatch.chdir("/")  # the CWD must not matter
    result = CliRunner().invoke(app, ["campaign", "init", "--out", str(out)])
    assert result.exit_code == 0, result.output
    spec = load_spec(out)
    assert [c.smiles for c in spec.candidates] == ["CCO", "CC(C)=O", "CCCC"]
    assert spec.protocol.name == "quick" and spec.profile_name == "local"
    assert spec.database == tmp_path / "sub" / "demo.db"
    assert spec.workdir == tmp_path / "sub" / "demo-runs"
    assert spec.parsl_run_dir == tmp_path / "sub" / "demo-runs" / "parsl"
    assert resolve_profile(spec)["executor"]["kind"] == "threads"
    again = CliRunner().invoke(app, ["campaign", "init", "--out", str(out)])
    assert again.exit_code == 1 and "--force" in again.output


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_profile_example_is_valid(tmp_path, profile):
    path = tmp_path / f"{profile}.toml"
    path.write_text(example_text(path.stem, profile))
    spec = load_spec(path)
    assert spec.profile_name == profile
    assert resolve_profile(spec) == PROFILES[profile]


def test_smi_file_names_overrides_and_retry_policy(tmp_path):
    (tmp_path / "c.smi").write_text("# candidates\nCCO ethanol\n\nCC(C)O  2-propanol\n")
    (tmp_path / "c.toml").write_text(
        '[candidates]\nsmiles = [{smiles = "CCCC", name = "butane"}, "CCN"]\nfile = "c.smi"\n'
        '[protocol]\npreset = "quick"\nnvt_ps = 5.0\n'
        '[retry]\nmax_retries = 0\nretry_on = ["lost"]\n'
    )
    spec = load_spec(tmp_path / "c.toml")
    assert [(c.smiles, c.name) for c in spec.candidates] == [
        ("CCCC", "butane"),
        ("CCN", ""),
        ("CCO", "ethanol"),
        ("CC(C)O", "2-propanol"),
    ]
    assert spec.protocol.nvt_ps == 5.0 and spec.protocol.compress_ps == 3.0
    assert spec.retry.max_retries == 0 and spec.retry.retry_on == ("lost",)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[campaign]\ndatabse = 'x.db'\n", "databse"),
        ("[protocol]\npreset = 'quick'\nnvt = 3\n", "nvt"),
        ("[protocol]\npreset = 'fast'\n", "fast"),
        ("[retry]\nretry_on = ['molecule']\n", "never retried"),
        ("[execution]\nprofile = 'kubernetes'\n", "kubernetes"),
        ("[execution]\nprofile = 'slurm'\n[execution.provider]\npartitoin = 'gpu'\n", "partitoin"),
        (
            "[execution]\nprofile = 'slurm'\n[execution.provider]\n"
            "partition = \"gpu\\n#SBATCH --wrap='rm -rf ~'\"\n",
            "job script",
        ),
        (
            "[execution]\nprofile = 'slurm-mpi'\n[execution.provider]\nlauncher = 'single'\n",
            "simple",
        ),
        ("[execution]\nprofile = 'local'\n[execution.resources]\nnum_nodes = 2\n", "mpi"),
        ("[campaign]\npartner = 'C1CC'\n", "partner"),
        ("[candidates]\nfile = 'missing.smi'\n", "missing.smi"),
        ("[campaign\n", "not valid TOML"),
    ],
)
def test_bad_campaign_files_fail_with_a_clear_reason(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(CampaignError, match=message.replace("(", r"\(")) as err:
        load_spec(path)
    assert str(path) in str(err.value)


def test_content_keys_and_store_schema(tmp_path):
    k1 = pair_key("CCO", "C=CC(=C)C", "abc", "ff1")
    assert k1 == pair_key("CCO", "C=CC(=C)C", "abc", "ff1")
    assert (
        len(
            {
                k1,
                pair_key("CCO", "C=CC(=C)C", "abd", "ff1"),
                pair_key("CCO", "C=CC(=C)C", "abc", "ff2"),
                pair_key("CCC", "C=CC(=C)C", "abc", "ff1"),
                species_key("CCO", "abc", "ff1"),
            }
        )
        == 5
    )
    with Store(tmp_path / "c.db") as store:
        store.ensure_task(k1, "pair", "CCO", "C=CC(=C)C", "abc", "ff1", "p/x")
        store.ensure_task(k1, "pair", "CCO", "C=CC(=C)C", "abc", "ff1", "p/x", state="failed")
        assert store.task(k1)["state"] == "pending"  # an existing task keeps its state
        with pytest.raises(sqlite3.IntegrityError):
            store.conn.execute("UPDATE tasks SET state = 'lost' WHERE key = ?", (k1,))
    conn = sqlite3.connect(tmp_path / "c.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "molecules",
        "tasks",
        "results",
        "candidates",
        "stage_runs",
        "runs",
        "replica_results",
    } <= tables


def test_a_version_1_database_is_migrated(tmp_path):
    """A database written before replicas (schema 1: no replica columns, no replica_results)
    gains them when opened for writing; its rows are kept; a newer schema is refused."""
    from mdxfer.campaign.store import ADDED_RESULT_COLUMNS, SCHEMA, SCHEMA_VERSION

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    v1 = SCHEMA.split("CREATE TABLE IF NOT EXISTS replica_results")[0]
    last = "record TEXT NOT NULL, created_at TEXT NOT NULL,"  # results as schema 1 had it
    head, tail = v1.split(last)
    v1 = head + last[:-1] + tail[tail.index(");") :]
    conn.executescript(v1)
    conn.execute("INSERT INTO meta VALUES ('schema', '1')")
    conn.execute(
        "INSERT INTO tasks (key, kind, smiles, partner, protocol_digest, forcefield, "
        "state, created_at, updated_at) VALUES ('k', 'pair', 'CCO', 'C', 'd', 'f', "
        "'done', 't', 't')"
    )
    conn.execute(
        "INSERT INTO results (task_key, smiles, partner, protocol_digest, forcefield, "
        "E_int, record, created_at) VALUES ('k', 'CCO', 'C', 'd', 'f', -1.5, '{}', 't')"
    )
    conn.commit()
    before = {r[1] for r in conn.execute("PRAGMA table_info(results)")}
    conn.close()
    assert not {n for n, _ in ADDED_RESULT_COLUMNS} & before
    with Store(db) as store:
        cols = {r[1] for r in store.query("PRAGMA table_info(results)")}
        assert {n for n, _ in ADDED_RESULT_COLUMNS} <= cols
        assert store.query("SELECT value FROM meta WHERE key = 'schema'")[0][0] == str(
            SCHEMA_VERSION
        )
        assert [tuple(r) for r in store.query("SELECT E_int, n_replicas FROM results")] == [
            (-1.5, None)
        ]
        assert store.replica_record("k") is None
        # a finished single-run result is requeued only when more replicas are asked for
        store.conn.execute("INSERT INTO molecules (input_smiles, added_at) VALUES ('CCO', 't')")
        store.link_candidate(1, "k")
        assert store.requeue_replicas("d", "C", "f", 1) == 0
        assert (
            store.requeue_replicas("d", "C", "f", 2) == 1 and store.task("k")["state"] == "pending"
        )
    with Store(db) as store:  # opening again changes nothing
        assert store.query("SELECT E_int FROM results")[0][0] == -1.5
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    conn.commit()
    conn.close()
    with pytest.raises(CampaignError, match="schema version 99"):
        Store(db)


# ------------------------------------------------------------------ profiles


def test_local_profile_is_a_thread_pool_sized_by_cores_and_ranks(tmp_path):
    from parsl.executors import ThreadPoolExecutor

    spec = _spec(tmp_path, lammps={"ranks": 1})
    profile = resolve_profile(spec)
    config = build_config(profile, spec.parsl_run_dir, spec.retry)
    ex, light = config.executors
    assert isinstance(ex, ThreadPoolExecutor)
    assert ex.max_threads == max(1, len(os.sched_getaffinity(0)))
    # building, stacking and combining never wait behind a LAMMPS run
    assert isinstance(light, ThreadPoolExecutor) and light.label == "light"
    assert light.max_threads == 1 and light_label(profile) == "light"
    assert config.run_dir == str(tmp_path / "campaign-runs" / "parsl")
    assert config.usage_tracking == 0 and config.retries == 2
    assert resource_spec(profile) == {}
    launcher = make_launcher(profile)
    assert launcher.command is None and launcher.ranks == 1
    argv = launcher.argv()
    assert argv[:3] == [sys.executable, "-I", "-S"] and argv[3].endswith("guard.py")
    assert argv[4] == str(os.getpid()) and argv[-1].endswith("lmp")
    assert not launcher.describe().endswith("guard.py") and "guard" not in launcher.describe()


def test_slurm_gpu_profile_renders_htex_and_its_job_script(tmp_path):
    from parsl.executors import HighThroughputExecutor
    from parsl.launchers import SingleNodeLauncher
    from parsl.providers import SlurmProvider

    spec = _spec(
        tmp_path, "slurm", provider={"account": "chem42", "max_blocks": 8, "walltime": "04:00:00"}
    )
    profile = resolve_profile(spec)
    (ex,) = build_executors(profile)
    assert isinstance(ex, HighThroughputExecutor)
    assert ex.available_accelerators == ["0", "1", "2", "3"]
    assert isinstance(ex.provider, SlurmProvider) and ex.provider.max_blocks == 8
    assert isinstance(ex.provider.launcher, SingleNodeLauncher)
    assert make_launcher(profile).describe() == "lmp -sf gpu -pk gpu 1"
    script = render_job_script(profile, tmp_path / "scripts")
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --account=chem42",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --exclusive",
        "#SBATCH --nodes=1",
        "#SBATCH --time=240",
        "module load lammps/gpu",
        "# submitted with: sbatch ",
        "--available-accelerators 0 1 2 3",
        "--max_workers_per_node=4",
    ):
        assert line in script, line
    assert "process_worker_pool.py" in script


def test_pbs_gpu_profile_renders_its_job_script(tmp_path):
    from parsl.providers import PBSProProvider

    spec = _spec(tmp_path, "pbs", provider={"queue": "workq", "account": "proj7"})
    profile = resolve_profile(spec)
    (ex,) = build_executors(profile)
    assert isinstance(ex.provider, PBSProProvider)
    assert ex.provider.queue == "workq" and ex.provider.account == "proj7"
    script = render_job_script(profile, tmp_path / "scripts")
    assert "#PBS -l select=1:ncpus=64:ngpus=4" in script
    assert "#PBS -l walltime=12:00:00" in script
    assert "cd $PBS_O_WORKDIR" in script and "--available-accelerators 0 1 2 3" in script
    assert "# submitted with: qsub  -q workq -A proj7 " in script


@pytest.mark.parametrize(
    "profile, mpi_launcher, expect, gpus",
    [
        (
            "slurm-mpi",
            "srun",
            "srun --ntasks 8 --ntasks-per-node 4 --nodelist n1,n2 --nodes 2 "
            "--gpus-per-task=1 --gpu-bind=closest",
            "1",
        ),
        ("pbs-mpi", "mpiexec", "mpiexec -n 8 -ppn 4 -hosts n1,n2", "4"),
    ],
)
def test_mpi_profiles_use_mpiexecutor_and_the_parsl_mpi_prefix(
    tmp_path, monkeypatch, profile, mpi_launcher, expect, gpus
):
    from parsl.executors import MPIExecutor, ThreadPoolExecutor
    from parsl.executors.high_throughput.mpi_prefix_composer import compose_all
    from parsl.launchers import SimpleLauncher

    spec = _spec(tmp_path, profile)
    prof = resolve_profile(spec)
    lammps_ex, light_ex = build_executors(prof)
    assert isinstance(lammps_ex, MPIExecutor) and lammps_ex.mpi_launcher == mpi_launcher
    assert isinstance(lammps_ex.provider.launcher, SimpleLauncher)
    assert lammps_ex.provider.nodes_per_block == 4
    assert isinstance(light_ex, ThreadPoolExecutor) and light_ex.label == "light"
    res = resource_spec(prof)
    assert res["num_nodes"] == 2 and res["ranks_per_node"] == 4
    assert lammps_ex.validate_resource_spec(res) is None  # Parsl accepts it
    launcher = make_launcher(prof)
    assert launcher.describe() == f"$PARSL_MPI_PREFIX lmp -sf gpu -pk gpu {gpus}"
    # the prefix a worker on nodes n1, n2 gets from Parsl for this resource specification
    prefix = compose_all(mpi_launcher, res, ["n1", "n2"])["PARSL_MPI_PREFIX"]
    assert prefix.split() == expect.split()
    monkeypatch.setenv("PARSL_MPI_PREFIX", prefix)
    argv = launcher.argv()
    assert argv[5:] == expect.split() + ["lmp", "-sf", "gpu", "-pk", "gpu", gpus]
    assert launcher.describe() == f"{expect} lmp -sf gpu -pk gpu {gpus}"
    assert "--enable_mpi_mode" in render_job_script(prof, tmp_path / "scripts")


def test_profile_command_prints_config_and_script(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(example_text("s", "slurm"))
    result = CliRunner().invoke(app, ["campaign", "profile", str(path)])
    assert result.exit_code == 0, result.output
    assert 'kind = "slurm"' in result.stdout and "#SBATCH --gpus-per-node=4" in result.stdout
    assert "not submitted" in result.stdout


def test_slurm_local_profile_renders_a_cpu_job_in_the_default_partition(tmp_path):
    """`slurm-local`: no GPU, not exclusive, no partition line, this environment on PATH, the
    executor's heartbeats and the provider's 5 s status poll as set; nothing submitted."""
    from pathlib import Path

    profile = resolve_profile(_spec(tmp_path, "slurm-local"))
    script = render_job_script(profile)
    assert "#SBATCH --nodes=1" in script and "--exclusive" not in script
    assert "--partition" not in script and "--gpus-per-node" not in script
    assert f"export PATH={Path(sys.executable).parent}:$PATH" in script
    assert "--hb_period=2" in script and "--hb_threshold=10" in script
    (executor,) = build_executors(profile)
    assert executor.provider.status_polling_interval == 5
    assert type(executor.provider).__name__ == "SlurmProvider"
    assert make_launcher(profile).command is None  # the PyPI wheel
    with pytest.raises(CampaignError, match="worker_start_timeout"):
        resolve_profile(_spec(tmp_path, "slurm-local", executor={"worker_start_timeout": 0}))
