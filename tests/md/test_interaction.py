"""The whole procedure end to end (quick protocol, real LAMMPS), through the library and CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mdxfer.md.interaction import interaction_energy, read_json

FIELDS = ("smiles", "protocol", "E_int", "E_int_stderr", "E_tot", "E_chem", "E_partner")


def test_quick_interaction_result(quick_ethanol_run):
    out, result = quick_ethanol_run
    on_disk = json.loads((out / "result.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    for key in FIELDS:
        assert key in on_disk
    assert on_disk["protocol"] == "quick"
    for key in ("E_int", "E_int_stderr", "E_tot", "E_chem", "E_partner", "E_int_pe"):
        assert np.isfinite(on_disk[key])
    assert on_disk["E_int_stderr"] > 0
    assert on_disk["E_int"] == pytest.approx(
        on_disk["E_tot"] - on_disk["E_chem"] - on_disk["E_partner"]
    )
    assert on_disk["interfaces"] == 2
    assert any("quick protocol" in w for w in on_disk["warnings"])
    for png in ("density.png", "energy.png"):
        assert (out / png).stat().st_size > 5000
    # the stack holds both boxes
    info = read_json(out / "stack" / "species.json")
    assert info["n_atoms"] == 20 * 9 + 20 * 13
    assert on_disk["lammps_version"] != "unknown"


def test_rerun_resumes_without_running_lammps_again(quick_ethanol_run, quick, launcher):
    out, result = quick_ethanol_run
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.log")}
    again = interaction_energy("OCC", quick, out, launcher=launcher)
    assert again["E_int"] == result["E_int"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.log")} == stamps


def test_partner_box_is_reused(quick_ethanol_run, quick, launcher, tmp_path):
    out, _ = quick_ethanol_run
    partner_logs = {p: p.stat().st_mtime_ns for p in (out / "partner").glob("*.log")}
    result = interaction_energy(
        "CC#N", quick, tmp_path / "acn", launcher=launcher, partner_dir=out / "partner"
    )
    assert np.isfinite(result["E_int"])
    assert not (tmp_path / "acn" / "partner").exists()
    assert {p: p.stat().st_mtime_ns for p in (out / "partner").glob("*.log")} == partner_logs


def run_cli(*args, cwd=None):
    env = dict(os.environ, MDXFER_RANKS="1")
    return subprocess.run(
        [sys.executable, "-m", "mdxfer", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def test_cli_interaction_end_to_end(tmp_path):
    proc = run_cli(
        "interaction",
        "CO",
        "--protocol",
        "quick",
        "--out",
        str(tmp_path / "m"),
        "--set",
        "n_molecules=10",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "m" / "result.json").read_text())
    assert result["smiles"] == "CO" and result["n_molecules"] == 10
    assert "E_int" in proc.stderr + proc.stdout
    assert "projected LAMMPS time" in proc.stderr + proc.stdout  # the cost, before it runs


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["interaction", "C1CC", "--protocol", "quick"], "Cannot parse SMILES"),
        (["interaction", "C[SiH3]", "--protocol", "quick"], "unsupported"),
        (
            [
                "build",
                "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCC",
                "--box",
                "12",
                "--box",
                "12",
                "--box",
                "100",
            ],
            "does not fit",
        ),
        (["interaction", "CCO", "--protocol", "nonsense"], "Unknown protocol"),
        (["interaction", "CCO", "--protocol", "quick", "--set", "nvt_ps=-1"], "must be positive"),
    ],
)
def test_cli_bad_input_gives_one_paragraph_and_nonzero_exit(tmp_path, args, fragment):
    proc = run_cli(*args, "--out", str(tmp_path / "bad"))
    assert proc.returncode != 0
    assert fragment in proc.stderr.replace("\n", " ")
    assert "Traceback" not in proc.stderr + proc.stdout


def test_cli_build_writes_system_data_without_importing_torch(tmp_path):
    code = (
        "import sys; from mdxfer.cli.main import app; "
        "from typer.testing import CliRunner; "
        f"r = CliRunner().invoke(app, ['build', 'CC(=C)C=C', '--out', {str(tmp_path / 'b')!r}]); "
        "print(r.exit_code, 'torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.split() == ["0", "False"], proc.stderr
    text = (tmp_path / "b" / "system.data").read_text()
    assert "1300 atoms" in text and "Atom Type Labels" in text


def test_trajectory_reads_with_mdanalysis(quick_ethanol_run):
    import MDAnalysis as mda

    out, result = quick_ethanol_run
    u = mda.Universe(
        str(out / "stack" / "system.data"),
        str(out / "stack" / "traj_nvt.dcd"),
        topology_format="DATA",
        atom_style="id resid type charge x y z",
    )
    assert len(u.atoms) == 20 * 9 + 20 * 13
    assert len(u.trajectory) >= 2
    assert u.trajectory[-1].dimensions[2] == pytest.approx(result["lz_stack_A"], rel=1e-3)
