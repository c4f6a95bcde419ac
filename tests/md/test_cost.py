"""Cost up front (mdxfer.md.cost): LAMMPS's own speed figures, the cache, the projection."""

from __future__ import annotations

import json

import pytest

from mdxfer.md import cost
from mdxfer.md.protocol import load_protocol

LOG = """LAMMPS (22 Jul 2025 - Update 4)
pair_style      lj/cut/coul/long {cut}
Loop time of 0.5 on 1 procs for 200 steps with 1000 atoms
Loop time of 10.0 on {ranks} procs for 5000 steps with 1000 atoms
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MDXFER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "throughput.json"


def test_a_shared_core_counts_the_cpu_it_got(tmp_path):
    """Four runs on two cores: LAMMPS says 50 % CPU use, so the loop's work took half its wall
    time of CPU, and the per-core speed is twice the wall-clock figure."""
    log = tmp_path / "shared.log"
    log.write_text(
        "pair_style      lj/cut/coul/long 10\n"
        "Loop time of 10.0 on 1 procs for 5000 steps with 1000 atoms\n\n"
        "Performance: 1 ns/day, 500 timesteps/s, 500 katom-step/s\n"
        "50.0% CPU use with 1 MPI tasks x 1 OpenMP threads\n"
    )
    work, seconds, _ = cost.log_work(log)
    assert work == pytest.approx(5e6) and seconds == pytest.approx(5.0)


def test_log_work_sums_runs_and_scales_to_the_reference_cutoff(tmp_path):
    log = tmp_path / "a.log"
    log.write_text(LOG.format(cut=10, ranks=1))
    work, seconds, ranks = cost.log_work(log)
    assert work == pytest.approx(5200 * 1000) and seconds == pytest.approx(10.5) and ranks == 1
    log.write_text(LOG.format(cut=12, ranks=2))
    work12, _, ranks = cost.log_work(log)
    assert work12 == pytest.approx(5200 * 1000 * 1.2**3) and ranks == 2
    assert cost.log_work(tmp_path / "missing.log") == (0.0, 0.0, 1)


def test_the_cache_learns_this_machine(tmp_path, cache):
    speed, source = cost.throughput(1)
    assert source == "built-in default" and speed == cost.DEFAULT_KATOM_STEPS_S
    log = tmp_path / "a.log"
    log.write_text(LOG.format(cut=10, ranks=1))
    assert cost.record_log(log) == pytest.approx(5200 * 1000 / 10.5 / 1000)
    speed, source = cost.throughput(1)
    assert "measured here" in source and speed == pytest.approx(495.2, rel=1e-3)
    assert json.loads(cache.read_text())["1"]["seconds"] == pytest.approx(10.5)
    # no 2-rank figure yet: the 1-rank one scaled, and a log without timed steps changes nothing
    speed2, source2 = cost.throughput(2)
    assert speed2 == pytest.approx(2 * 0.8 * speed) and "1-rank" in source2
    empty = tmp_path / "empty.log"
    empty.write_text("LAMMPS\nERROR: nothing ran\n")
    assert cost.record_log(empty) is None
    assert cost.throughput(1)[0] == pytest.approx(speed)


def test_projection_counts_what_the_protocol_runs(cache):
    prod = load_protocol("production")
    one = cost.project("CCO", prod, "CC(=C)C=C", replicas=1, partner_done=True)
    three = cost.project("CCO", prod, "CC(=C)C=C", replicas=3, partner_done=True)
    fresh = cost.project("CCO", prod, "CC(=C)C=C", replicas=1)
    assert three.atom_steps == pytest.approx(3 * one.atom_steps)
    # the partner's 1 ns NVT is most of a first run's cost
    assert fresh.atom_steps > 2 * one.atom_steps
    assert one.atom_steps_max > one.atom_steps and one.cpu_s > 0
    # two workers: the replicas' cells and stacks side by side, wall about half the CPU time
    both = cost.project("CCO", prod, "CC(=C)C=C", replicas=2, workers=2, partner_done=True)
    assert both.wall_s == pytest.approx(both.cpu_s / 2, rel=0.05)
    # a bigger molecule costs more; a 12 Å cut-off runs slower than 10 Å
    assert (
        cost.project("CCCCCCCCCC", prod, "CC(=C)C=C", partner_done=True).atom_steps > one.atom_steps
    )
    assert (
        cost.project("CCO", load_protocol("paper"), "CC(=C)C=C").katom_steps_s < fresh.katom_steps_s
    )
    assert "projected LAMMPS time" in one.describe()


def test_a_real_run_refreshes_the_cache(quick_ethanol_run):
    out, _ = quick_ethanol_run
    work, seconds, _ = cost.log_work(
        out / "replica_00" / "candidate" / "nvt.log"
        if (out / "replica_00").exists()
        else next(out.glob("**/nvt.log"))
    )
    assert work > 0 and seconds > 0
    speed, source = cost.throughput(1)
    assert "measured here" in source and speed > 0
