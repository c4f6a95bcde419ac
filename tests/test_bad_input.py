"""Bad input never crashes and never passes as good (issue 14).

Classes, each over every command it reaches: SMILES that RDKit would read only in part;
numbers that are NaN, inf, strings or out of range (CLI options, ``--set``, protocol and
campaign files, the ``[active_learning]`` section); molecules the MD side refuses; output
paths that are files; broken databases and campaign files; launch commands and environment
variables; Rich markup in user text; scheduler fields that would put lines into a job script.
Each case must end in a one-paragraph error and a non-zero exit (no traceback), or — where
the input was valid — in the right result. No case starts LAMMPS.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mdxfer.cli.main import app


@pytest.fixture(autouse=True)
def no_lammps(monkeypatch):
    """Should bad input get through to the MD stages, LAMMPS fails at once (``false``) and the
    test fails on the message, instead of running a simulation."""
    monkeypatch.setenv("MDXFER_LMP", "false")


BAD_SMILES = ["CCÖ", "CC O", "CC\tO", "CC\x00", "C1CC", "CC)", "CC(", "CC[/x]", "", "  "]


def cli(*args, env: dict | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def clean_error(r, fragment: str | None = None, code: int = 1) -> str:
    """``r`` exited with ``code`` through the error path (no exception escaped), and its
    output, whitespace-normalised, holds ``fragment``."""
    text = " ".join((r.stdout + r.stderr).split())
    assert r.exit_code == code, (r.exit_code, text, r.exception)
    assert isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in text
    if fragment is not None:
        assert fragment in text, text
    return text


# ------------------------------------------------------------------------------------ SMILES


@pytest.mark.parametrize("smiles", BAD_SMILES)
def test_smiles_read_in_part_is_refused_by_the_md_commands(tmp_path, smiles):
    clean_error(cli("types", smiles), "SMILES")
    clean_error(cli("build", smiles, "--out", tmp_path / "b", "--protocol", "quick"), "SMILES")
    out = tmp_path / "i"
    clean_error(cli("interaction", smiles, "--out", out, "--protocol", "quick"), "SMILES")
    assert not out.exists()  # refused before anything was written
    clean_error(
        cli("interaction", "CCO", "--partner", smiles, "--out", out, "--protocol", "quick"),
        "SMILES",
    )


def test_strict_parsing_names_the_dropped_character():
    from mdxfer.errors import MoleculeError
    from mdxfer.learn.featurize import parse_smiles_or_none as ml_parse
    from mdxfer.molecule import canonical_smiles, parse_smiles

    with pytest.raises(MoleculeError, match=r"'Ö' at position 3"):
        parse_smiles("CCÖ")
    with pytest.raises(MoleculeError, match="whitespace"):
        parse_smiles("CC O")
    for s in BAD_SMILES:
        assert ml_parse(s) is None, s  # the learning side refuses the same strings
    # valid SMILES keep working, on both sides
    for s in (
        "c1cc[nH]c1",
        "[2H]C([2H])([2H])[2H]",
        "C[C@@H](O)F",
        "ClCCl",
        "BrC=CBr",
        "OB(O)O",
        "[13CH4]",
        "C%12CC%12",
        "[H]C([H])([H])[H]",
        "F/C=C/F",
        " CCO ",
    ):
        assert ml_parse(s) is not None, s
        assert canonical_smiles(s)


def test_no_qm9_molecule_is_refused_by_the_strict_check():
    from rdkit import Chem

    from mdxfer.learn.data import qm9
    from mdxfer.validate import smiles_consumed_problem, smiles_text_problem

    for s in qm9.load_qm9().SMILES.sample(3000, random_state=0):
        mol = Chem.MolFromSmiles(s)
        if mol is not None:
            assert smiles_text_problem(s) is None and smiles_consumed_problem(s, mol) is None, s


@pytest.mark.parametrize(
    "smiles, why",
    [
        ("CCO.O", "fragments"),
        ("[CH3]", "radical"),
        ("CC(=O)[O-]", "net charge -1"),
        ("[Na+].[Cl-]", "fragments"),
        ("[Fe]", "Fe"),
        ("C[SiH3]", "Si"),
        ("*C", "*"),
    ],
)
def test_what_md_refuses_is_refused_before_any_box(tmp_path, smiles, why):
    clean_error(cli("build", smiles, "--out", tmp_path / "b", "--protocol", "quick"), why)
    assert not (tmp_path / "b").exists()


def test_md_support_rule():
    from mdxfer.learn.featurize import parse_smiles_or_none
    from mdxfer.molecule import md_elements, md_support_problem

    assert md_elements() == {"H", "C", "N", "O", "F", "S", "Cl", "Br"}
    assert md_support_problem(parse_smiles_or_none("CCO")) == ""
    assert (
        md_support_problem(parse_smiles_or_none("C[N+](C)(C)CC(=O)[O-]")) == ""
    )  # zwitterion: neutral
    assert md_support_problem(parse_smiles_or_none("[Na+].[Cl-]")) == (
        "several fragments; unsupported element(s) Na (the force field covers Br, C, Cl, F, H, N, O, S)"
    )


def write_campaign(
    path: Path,
    campaign: str = "",
    candidates: str = '["CCO"]',
    protocol: str = "",
    execution: str = "",
) -> Path:
    path.write_text(
        f'[campaign]\ndatabase = "{path.stem}.db"\n{campaign}\n'
        f"[candidates]\nsmiles = {candidates}\n"
        f'[protocol]\npreset = "quick"\n{protocol}\n{execution}\n'
    )
    return path


def test_campaign_partner_md_cannot_simulate_stops_validation(tmp_path):
    f = write_campaign(tmp_path / "c.toml", campaign='partner = "[Fe]"')
    clean_error(cli("campaign", "profile", f), "partner is not a molecule mdxfer can simulate")
    f = write_campaign(tmp_path / "c.toml", campaign='partner = "CC(=C)C=CÖ"')
    clean_error(cli("campaign", "profile", f), "'Ö' at position")


def test_campaign_candidate_read_in_part_fails_with_its_reason(tmp_path):
    from mdxfer.campaign import Campaign

    f = write_campaign(tmp_path / "c.toml", candidates='["CCO", "CCÖ", "CC O"]')
    with Campaign.open(f) as camp:
        rows = {r["smiles"]: r for r in camp.results()}
    assert rows["CCO"]["status"] == "pending"
    for s in ("CCÖ", "CC O"):
        assert rows[s]["status"] == "failed" and rows[s]["error_class"] == "molecule", rows[s]
        assert rows[s]["canonical_smiles"] is None


# ------------------------------------------------------------------------------------ numbers


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("pressure_atm=NaN", "'pressure_atm' must be a finite number"),
        ("pressure_atm=Infinity", "must be a finite number"),
        ("nvt_ps=-Infinity", "must be a finite number"),
        ('box_A=["a", 30, 100]', "'box_A' entry 1 must be a finite number, got 'a'"),
        ("box_A=[NaN, 30, 100]", "'box_A' entry 1"),
        ("box_A=[30, 30]", "list of 3 numbers"),
        ("n_molecules=2.5", "'n_molecules' must be an integer"),
        ("n_molecules=many", "'n_molecules' must be an integer"),
        ("seed=-1", "'seed' must be an integer in [0,"),
        ("seed=4294967296", "'seed' must be an integer in [0,"),
        ("charges=3", "'charges' must be a string"),
        ("hbond=1", "true or false"),
    ],
)
def test_protocol_numbers_from_set_are_checked(tmp_path, override, fragment):
    clean_error(
        cli("build", "CCO", "--out", tmp_path / "b", "--protocol", "quick", "--set", override),
        fragment,
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["build", "CCO", "--box", "nan", "--box", "30", "--box", "30"], "--box"),
        (["build", "CCO", "--box", "inf", "--box", "30", "--box", "30"], "--box"),
        (["build", "CCO", "--box", "-5", "--box", "30", "--box", "30"], "--box"),
        (["build", "CCO", "--n", "0"], "--n"),
        (["build", "CCO", "--seed", "-1"], "--seed"),
        (["interaction", "CCO", "--timeout", "nan"], "--timeout"),
        (["interaction", "CCO", "--ranks", "0"], "--ranks"),
        (["interaction", "CCO", "--replicas", "0"], "--replicas"),
    ],
)
def test_md_options_out_of_range_are_usage_errors(tmp_path, args, fragment):
    clean_error(cli(*args, "--out", tmp_path / "o"), fragment, code=2)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["pretrain", "--out", "P", "--batch-size", "0"],
        ["pretrain", "--out", "P", "--threads", "0"],
        ["pretrain", "--out", "P", "--seed", "-1"],
        ["pretrain", "--out", "P", "--seed", str(2**32)],
        ["pretrain", "--out", "P", "--time-limit", "nan"],
        ["transfer", "--base", "B", "--data", "d.csv", "--out", "P", "--folds", "0"],
        ["transfer", "--base", "B", "--data", "d.csv", "--out", "P", "--folds", "1"],
        ["transfer", "--base", "B", "--data", "d.csv", "--out", "P", "--threads", "0"],
        ["transfer", "--base", "B", "--data", "d.csv", "--out", "P", "--lr", "inf"],
        ["rank", "c.smi", "--model", "M", "--top", "0"],
        ["rank", "c.smi", "--model", "M", "--top", "-1"],
        ["rank", "c.smi", "--model", "M", "--threads", "0"],
        ["rank", "c.smi", "--model", "M", "--unsupported", "maybe"],
        ["selfsup", "--out", "P", "--batch-size", "0"],
        ["library", "build", "--out", "P", "--jobs", "0"],
        ["library", "build", "--out", "P", "--model-minutes", "nan"],
        ["benchmark", "small-data", "--seeds", "0"],
        ["benchmark", "extrapolation", "--quantile", "1.5"],
        ["al", "benchmark", "--oracle", "o.csv", "--out", "P", "--initial", "0"],
        ["al", "benchmark", "--oracle", "o.csv", "--out", "P", "--seeds", "0"],
        ["al", "benchmark", "--oracle", "o.csv", "--out", "P", "--beta", "nan"],
        ["al", "oracle", "--out", "o.csv", "--seed", "-1"],
        ["campaign", "status", "c.toml", "--top", "-1"],
    ],
)
def test_learning_options_out_of_range_are_usage_errors(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    r = cli(*args)
    clean_error(r, code=2)
    assert "Invalid value" in r.stderr or "must be" in r.stderr
    assert not (tmp_path / "P").exists()


def test_protocol_file_numbers_name_the_file(tmp_path):
    p = tmp_path / "prot.toml"
    p.write_text('preset = "quick"\npressure_atm = nan\n')
    text = clean_error(
        cli("build", "CCO", "--out", tmp_path / "b", "--protocol", p), "must be a finite number"
    )
    assert str(p) in text
    p.write_bytes(b"\xff\xfe\x00binary")
    clean_error(cli("build", "CCO", "--out", tmp_path / "b", "--protocol", p), "not valid TOML")


@pytest.mark.parametrize(
    "protocol, execution, fragment",
    [
        ("box_A = [nan, 30.0, 100.0]", "", "'box_A' entry 1 must be a finite number"),
        ("pressure_atm = inf", "", "'pressure_atm' must be a finite number"),
        ("seed = -1", "", "'seed'"),
        (
            "",
            '[execution]\nprofile = "local"\n[execution.executor]\nworkers = -3',
            "workers must be an integer >= 0",
        ),
        (
            "",
            '[execution]\nprofile = "local"\n[execution.executor]\nworkers = "many"',
            "workers must be an integer",
        ),
        (
            "",
            '[execution]\nprofile = "local"\n[execution.lammps]\nranks = 0',
            "ranks must be an integer >= 1",
        ),
        (
            "",
            '[execution]\nprofile = "local"\n[execution.executor]\nworkers = 100000',
            "100000 LAMMPS ranks",
        ),
        (
            "",
            '[execution]\nprofile = "local"\n[execution.lammps]\nranks = 4096',
            "LAMMPS ranks on this machine",
        ),
        (
            "",
            '[execution]\nprofile = "local"\n[execution.lammps]\ncommand = "lmp \'x"',
            "cannot be split",
        ),
    ],
)
def test_campaign_file_numbers_are_checked(tmp_path, protocol, execution, fragment):
    f = write_campaign(tmp_path / "c.toml", protocol=protocol, execution=execution)
    text = clean_error(cli("campaign", "profile", f), fragment)
    assert str(f) in text


def test_campaign_section_numbers_are_checked(tmp_path):
    for campaign, fragment in (
        ("max_in_flight = true", "max_in_flight must be an integer"),
        ("max_in_flight = 0", "max_in_flight must be an integer >= 1"),
        ('name = "a\\nb"', "control character"),
    ):
        f = write_campaign(tmp_path / "c.toml", campaign=campaign)
        clean_error(cli("campaign", "profile", f), fragment)
    f = write_campaign(tmp_path / "c.toml")
    f.write_text(f.read_text() + "[retry]\nmax_retries = -1\n")
    clean_error(cli("campaign", "profile", f), "max_retries must be an integer >= 0")


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("oracle_delay_s", "-5", "oracle_delay_s must be a finite number >= 0"),
        ("oracle_delay_s", "nan", "oracle_delay_s must be a finite number"),
        ("beta", "inf", "beta must be a finite number >= 0"),
        ("seed", "-1", "seed must be an integer in [0, 4294967295]"),
        ("cross_validate", '"yes"', "cross_validate must be true or false"),
    ],
)
def test_active_learning_numbers_are_checked(tmp_path, key, value, fragment):
    (tmp_path / "o.csv").write_text("smiles,target\nCCO,1\nCCC,2\n")
    f = tmp_path / "al.toml"
    f.write_text(
        f'[campaign]\ndatabase = "al.db"\n[active_learning]\npool = "o.csv"\noracle = "table"\n'
        f'table = "o.csv"\nrounds = 1\ndirection = "maximize"\n{key} = {value}\n'
        '[active_learning.model]\nfeatures = "morgan"\n'
    )
    text = clean_error(cli("al", "status", f), fragment)
    assert "[active_learning]" in text  # not eaten as markup


# ------------------------------------------------------------------------------ one error path


@pytest.fixture
def campaign_file(tmp_path):
    return write_campaign(tmp_path / "camp.toml")


def _broken_databases(db: Path):
    """(label, make) pairs that leave ``db`` unusable in different ways."""

    def directory():
        db.mkdir()

    def garbage():
        db.write_bytes(b"this is not a database\n" * 100)

    def empty():
        db.write_bytes(b"")

    def foreign():
        with sqlite3.connect(db) as c:
            c.execute("CREATE TABLE other (x)")

    def truncated():
        from mdxfer.campaign import Campaign

        with Campaign.open(db.with_suffix(".toml")):
            pass
        for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            extra.unlink(missing_ok=True)
        with open(db, "r+b") as fh:
            fh.truncate(db.stat().st_size // 3)

    return [
        ("directory", directory),
        ("garbage", garbage),
        ("empty", empty),
        ("foreign", foreign),
        ("truncated", truncated),
    ]


@pytest.mark.parametrize("kind", ["directory", "garbage", "empty", "foreign", "truncated"])
def test_broken_database_is_an_error_for_status_export_retry(campaign_file, kind):
    db = campaign_file.with_suffix(".db")
    dict(_broken_databases(db))[kind]()
    for args in (
        ["status"],
        ["status", "--json"],
        ["export", "--out", campaign_file.parent / "x.csv"],
        ["retry", "--no-run"],
    ):
        if kind == "empty" and args == ["retry", "--no-run"]:
            continue  # an empty file is a new database: fine
        clean_error(cli("campaign", *args, campaign_file), "Database")
    if kind == "foreign":  # nothing was written into it
        with sqlite3.connect(db) as c:
            assert [r[0] for r in c.execute("SELECT name FROM sqlite_master")] == ["other"]


def test_binary_campaign_file_is_an_error(tmp_path):
    f = tmp_path / "bin.toml"
    f.write_bytes(bytes(range(256)) * 4)
    for cmd in ("run", "status", "export", "retry", "profile"):
        args = ["--out", tmp_path / "x.csv"] if cmd == "export" else []
        clean_error(cli("campaign", cmd, f, *args), "not valid TOML")
    clean_error(cli("al", "status", f), "not valid TOML")
    smi = tmp_path / "c.smi"
    smi.write_bytes(b"CCO\x00\x01\x02")
    g = write_campaign(tmp_path / "c.toml")
    g.write_text(g.read_text().replace('smiles = ["CCO"]', 'file = "c.smi"'))
    clean_error(cli("campaign", "profile", g), "binary")


def test_out_that_is_a_file_is_an_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    (tmp_path / "o.csv").write_text("smiles,target\nCCO,1\n")
    camp = write_campaign(tmp_path / "c.toml")
    for args in (
        ["build", "CCO", "--protocol", "quick", "--out", f],
        ["interaction", "CCO", "--protocol", "quick", "--out", f],
        ["pretrain", "--out", f],
        ["selfsup", "--out", f],
        ["library", "build", "--out", f],
        ["transfer", "--base", tmp_path, "--data", tmp_path / "o.csv", "--out", f],
        ["al", "benchmark", "--oracle", tmp_path / "o.csv", "--out", f],
        ["build", "CCO", "--protocol", "quick", "--out", f / "below"],
        ["campaign", "export", camp, "--out", tmp_path],
        ["campaign", "export", camp, "--out", f / "x.csv"],
        ["campaign", "init", "--out", f / "x.toml"],
        ["rank", tmp_path / "c.smi", "--model", tmp_path, "--out", tmp_path],
    ):
        clean_error(cli(*args), str(tmp_path))
    assert f.read_text() == "x"


def test_launch_settings_are_checked(tmp_path):
    out = tmp_path / "i"
    clean_error(
        cli("interaction", "CCO", "--out", out, "--protocol", "quick", env={"MDXFER_RANKS": "abc"}),
        "MDXFER_RANKS='abc' must be a positive integer",
    )
    clean_error(
        cli("interaction", "CCO", "--out", out, "--protocol", "quick", env={"MDXFER_RANKS": "0"}),
        "MDXFER_RANKS",
    )
    clean_error(
        cli("interaction", "CCO", "--out", out, "--protocol", "quick", "--lmp", "lmp -in 'x"),
        "No closing quotation",
    )
    clean_error(
        cli(
            "interaction",
            "CCO",
            "--out",
            out,
            "--protocol",
            "quick",
            env={"MDXFER_LMP": 'mpirun "lmp'},
        ),
        "MDXFER_LMP",
    )
    assert not out.exists()


def test_unreadable_tables_and_wrong_columns_are_errors(tmp_path):
    for name, content in (("empty.csv", b""), ("binary.csv", bytes(range(256)) * 4)):
        path = tmp_path / name
        path.write_bytes(content)
        clean_error(
            cli(
                "al",
                "benchmark",
                "--oracle",
                path,
                "--out",
                tmp_path / "o",
                "--features",
                "morgan",
                "-q",
            ),
            "cannot be read as CSV",
        )
    clean_error(
        cli(
            "pretrain", "--out", tmp_path / "p", "--target", "SMILES", "--n", "50", "--n-val", "10"
        ),
        "Unknown QM9 property 'SMILES'",
    )
    clean_error(
        cli("pretrain", "--out", tmp_path / "p", "--n", "50", "--n-val", "50"), "--n-val", code=2
    )


def test_text_file_as_model_is_an_error(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.pt").write_text("not a model\n" * 50)
    (tmp_path / "c.smi").write_text("CCO\n")
    clean_error(
        cli("rank", tmp_path / "c.smi", "--model", tmp_path / "m", "--out", tmp_path / "r.csv"),
        "Cannot read",
    )
    (tmp_path / "d.csv").write_text(
        "smiles,target\n" + "".join(f"{'C' * k}O,{k}\n" for k in range(1, 8))
    )
    clean_error(
        cli(
            "transfer",
            "--base",
            tmp_path / "m",
            "--data",
            tmp_path / "d.csv",
            "--out",
            tmp_path / "t",
        ),
        "Cannot read",
    )


def test_unexpected_errors_are_one_paragraph_unless_debug(monkeypatch, capsys):
    from mdxfer.cli import common

    @common.friendly_errors
    def boom():
        raise ValueError("bad\nthing [/x]")

    monkeypatch.delenv("MDXFER_DEBUG", raising=False)
    with pytest.raises(SystemExit, match="^1$") as exc:
        boom()
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "Unexpected ValueError: bad thing [/x]" in " ".join(err.split()) and "--debug" in err
    monkeypatch.setenv("MDXFER_DEBUG", "1")
    with pytest.raises(ValueError, match=r"bad\nthing \[/x\]"):
        boom()


def test_debug_shows_the_traceback(tmp_path):
    cmd = [sys.executable, "-m", "mdxfer"]
    plain = subprocess.run(cmd + ["types", "C1CC"], capture_output=True, text=True)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    dbg = subprocess.run(cmd + ["--debug", "types", "C1CC"], capture_output=True, text=True)
    assert dbg.returncode == 1 and "Traceback" in dbg.stderr and "MoleculeError" in dbg.stderr
    env = dict(os.environ, MDXFER_DEBUG="1")
    dbg = subprocess.run(cmd + ["types", "C1CC"], capture_output=True, text=True, env=env)
    assert dbg.returncode == 1 and "Traceback" in dbg.stderr


# ------------------------------------------------------------------------------------ markup


def test_user_text_prints_literally(tmp_path):
    r = cli("types", "c1cc[nH]c1")
    assert r.exit_code == 0 and "DREIDING typing of c1cc[nH]c1" in " ".join(r.stderr.split())
    clean_error(cli("types", "CC[/x]"), "'CC[/x]'")
    out = tmp_path / "a[/x]b[bold]"
    r = cli("build", "CCO", "--protocol", "quick", "--out", out)
    assert r.exit_code == 0, (r.stderr, r.exception)
    assert f"wrote{out / 'system.data'}" in "".join(r.stderr.split())  # wrapped, never eaten
    f = write_campaign(
        tmp_path / "w.toml", campaign='name = "[/x]weird[bold]"', candidates='["CCO", "CC[/y]"]'
    )
    from mdxfer.campaign import Campaign

    with Campaign.open(f):
        pass
    r = cli("campaign", "status", f)
    assert r.exit_code == 0, (r.stderr, r.exception)
    text = " ".join(r.stderr.split())
    assert "[/x]weird[bold]: 2 candidates" in text and "CC[/y]" in text


# --------------------------------------------------------------------------- scheduler fields


@pytest.mark.parametrize(
    "profile, provider, fragment",
    [
        (
            "pbs",
            'cpus_per_node = "64\\n#PBS -W x\\ntouch /tmp/owned"',
            "cpus_per_node must be an integer",
        ),
        ("slurm", 'mem_per_node = "lots"', "mem_per_node must be an integer"),
        ("slurm", 'cores_per_node = "8"', "cores_per_node must be an integer"),
        ("slurm", "nodes_per_block = 1.5", "nodes_per_block must be an integer"),
        ("slurm", 'exclusive = "no"', "exclusive must be true or false"),
        ("slurm", "parallelism = nan", "parallelism must be a finite number"),
        ("slurm", 'partition = "gpu\\n#SBATCH --x"', "partition"),
        ("slurm", 'regex_job_id = "a\\nb"', "control character"),
        ("slurm", 'kind = ["slurm"]', "kind must be a name"),
    ],
)
def test_every_job_script_field_is_typed(tmp_path, profile, provider, fragment):
    f = write_campaign(
        tmp_path / "c.toml",
        execution=f'[execution]\nprofile = "{profile}"\n[execution.provider]\n{provider}',
    )
    r = cli("campaign", "profile", f)
    clean_error(r, fragment)
    assert "#PBS -W x" not in r.stdout and "touch" not in r.stdout


def test_shell_fields_are_copied_verbatim_into_the_shown_script(tmp_path):
    f = write_campaign(
        tmp_path / "c.toml",
        execution=(
            '[execution]\nprofile = "slurm"\n[execution.provider]\n'
            'worker_init = "module load lammps\\nsource $HOME/venv/bin/activate"\n'
            'scheduler_options = "#SBATCH --mail-type=END"\n'
            "[execution.executor]\ncores_per_worker = 2.0"
        ),
    )
    r = cli("campaign", "profile", f)
    assert r.exit_code == 0, (r.stderr, r.exception)
    assert "module load lammps\nsource $HOME/venv/bin/activate" in r.stdout
    assert "#SBATCH --mail-type=END" in r.stdout
