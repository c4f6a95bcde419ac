"""The analysis helpers of two benchmark scripts (benchmarks/density_cause.py,
benchmarks/eint_terms.py) on real inputs: a force field mdxfer writes, a pooled SD by hand."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def bench(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lj(text: str) -> dict[tuple[str, str], tuple[float, float]]:
    out = {}
    for line in text.splitlines():
        m = re.match(
            r"pair_coeff \d+ \d+ (?:lj/cut/coul/long )?([\d.]+) (\S+)\s+# (\S+) (\S+)", line
        )
        if m:
            out[(m[3], m[4])] = (float(m[1]), float(m[2]))
    return out


@pytest.mark.parametrize("smiles", ["CCO", "CC"])  # charged (hybrid/overlay) and not
def test_replacing_one_types_lj_remixes_only_its_pairs(smiles, tmp_path, quick):
    from mdxfer.md.interaction import prepare_species

    wd = prepare_species(smiles, quick, tmp_path / "box")
    before = (wd / "forcefield.lmp").read_text()
    after, changed = bench("density_cause").replace_lj(before, "H_", 0.030, 2.50)
    old, new = lj(before), lj(after)
    assert set(old) == set(new) and changed == sum("H_" in pair for pair in old) > 0
    for (a, b), (eps, sigma) in new.items():
        if "H_" not in (a, b):
            assert (eps, sigma) == old[(a, b)]
            continue
        other = b if a == "H_" else a
        e_o, s_o = (0.030, 2.50) if other == "H_" else old[(other, other)]
        assert eps == pytest.approx(math.sqrt(0.030 * e_o), abs=1e-6)
        assert sigma == pytest.approx(math.sqrt(2.50 * s_o), abs=1e-6)
    # everything but the LJ lines is as it was
    assert [ln for ln in before.splitlines() if not ln.startswith("pair_coeff")] == [
        ln for ln in after.splitlines() if not ln.startswith("pair_coeff")
    ]
    lj_lines = [
        ln for ln in after.splitlines() if ln.startswith("pair_coeff") and "hbond" not in ln
    ]
    assert len(lj_lines) == len(new)  # every LJ pair was read, none skipped
    with pytest.raises(ValueError, match="no LJ self pair"):
        bench("density_cause").replace_lj(before, "Cl", 0.1, 3.0)


def test_pooled_replica_sd_and_sd_across_candidates():
    t = pd.DataFrame(
        {"smiles": ["A", "A", "A", "B", "B", "C"], "x": [1.0, 2.0, 3.0, 10.0, 14.0, 99.0]}
    )
    sd, across, dof = bench("eint_terms").pooled(t, "x")
    # A: SS 2 (2 dof), B: SS 8 (1 dof); C has one replica and counts in neither
    assert dof == 3 and sd == pytest.approx(math.sqrt(10 / 3))
    assert across == pytest.approx(np.std([2.0, 12.0], ddof=1))


def _bench_oracle():
    import sys

    sys.path.insert(0, str(BENCH))  # bench_oracle imports its sibling eint_terms
    try:
        return bench("bench_oracle")
    finally:
        sys.path.remove(str(BENCH))


def panel_report():
    import sys

    sys.path.insert(0, str(BENCH))  # panel_report imports its sibling scripts
    try:
        return bench("panel_report")
    finally:
        sys.path.remove(str(BENCH))


def test_cpu_hours_are_missing_not_zero_where_a_run_kept_no_log(tmp_path):
    """An archive may keep a replica's results without its LAMMPS logs: that replica has no
    CPU-hours (NaN, left out of the mean), not 0, which would make the preset look cheaper."""
    log = (
        "Loop time of 1800.0 on 1 procs for 5000 steps with 1000 atoms\n"
        "50.0% CPU use with 1 MPI tasks x 1 OpenMP threads\n"
    )
    dirs = {}
    for k in ("cell0", "stack0", "cell1", "stack1", "cell2"):
        dirs[k] = tmp_path / k
        dirs[k].mkdir()
    for k in ("cell1", "stack1", "cell2"):
        (dirs[k] / "nvt.log").write_text(log)
    (dirs["cell0"] / "nvt.thermo.csv").write_text("step,pe\n")  # results kept, logs not
    t = pd.DataFrame(
        {
            "name": ["x", "x", "x"],
            "smiles": ["C", "C", "C"],
            "candidate_dir": [str(dirs["cell0"]), str(dirs["cell1"]), str(dirs["cell2"])],
            "stack_dir": [str(dirs["stack0"]), str(dirs["stack1"]), str(tmp_path / "gone")],
        }
    )
    cpu = panel_report().with_cpu_hours(t).cpu_h
    assert np.isnan(cpu[0]) and np.isnan(cpu[2])
    assert cpu[1] == pytest.approx(2 * 1800 * 0.5 / 3600)  # cell + stack, at 50 % CPU use
    assert cpu.mean() == pytest.approx(0.5)  # pandas leaves the NaN out


def test_where_replicas_differ_separates_shared_from_unshared_offsets():
    """A replica offset the stack and the cell share (A) leaves E_int alone and shows as a
    correlation of +1; one only the stack has (B) shows in E_int and breaks it."""
    report = panel_report()
    offsets = [0.0, 10.0, -10.0]  # the stacks' replica offsets, A and B alike
    t = pd.DataFrame(
        {
            "name": ["A"] * 3 + ["B"] * 3,
            "smiles": ["A"] * 3 + ["B"] * 3,
            "E_tot": [100 + o for o in offsets] + [200 + o for o in offsets],
            "E_chem": [40 + o for o in offsets] + [81.0, 80.0, 80.0],
            "E_cross": [-5.0, -6.0, -4.0, -9.0, -9.5, -8.5],
        }
    )
    t["E_int"] = t.E_tot - t.E_chem - 50.0
    for col in ("E_int_stderr_run", "E_tot_stderr", "E_chem_stderr", "E_cross_stderr"):
        t[col] = 2.0
    spread, corr = report.where_replicas_differ(t)
    # E_cross's within-run stderr is read where the export has it beside the calibrated one
    calibrated = report.where_replicas_differ(t.assign(E_cross_stderr_run=1.0))[0]
    assert calibrated.set_index("energy").loc["E_cross", "rms_stderr"] == 1.0
    assert spread.set_index("energy").loc["E_cross", "rms_stderr"] == 2.0
    sd = spread.set_index("energy")["replica_sd"]
    # A's E_int is constant; B's E_int values are 69, 80 and 60: pooled over 4 dof
    b = np.array([69.0, 80.0, 60.0])
    assert sd["E_int"] == pytest.approx(np.sqrt(((b - b.mean()) ** 2).sum() / 4))
    assert sd["E_tot"] == pytest.approx(10.0)
    assert spread.set_index("energy").loc["E_tot", "sd/stderr"] == pytest.approx(5.0)
    assert corr["A"] == pytest.approx(1.0) and corr["B"] == pytest.approx(0.0, abs=1e-9)


def test_beside_compares_two_presets_by_candidate():
    """Means per candidate of two exports side by side, only the candidates both have, and
    the Spearman correlation of their means (here E_int reversed, E_cross in the same order)."""
    names = ["a", "b", "c", "d"]
    prod = pd.DataFrame(
        {
            "name": [n for n in names for _ in range(2)],
            "E_int": [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0],
            "E_cross": [-10.0, -12.0, -20.0, -22.0, -30.0, -32.0, -40.0, -42.0],
        }
    )
    paper = pd.DataFrame({"name": ["d", "c", "b", "a", "e"], "E_int": [1.0, 2.0, 3.0, 4.0, 99.0]})
    paper["E_cross"] = [-50.0, -40.0, -30.0, -20.0, 0.0]
    for t in (prod, paper):
        for col in ("E_int_stderr", "E_cross_stderr", "density_chem_g_cm3", "cpu_h"):
            t[col] = 1.0
    both, rho = panel_report().beside(prod, paper)
    assert list(both["name"]) == names  # "e" is in one table only
    assert list(both["E_int_a"]) == [2.0, 6.0, 10.0, 14.0]
    assert list(both["E_int_b"]) == [4.0, 3.0, 2.0, 1.0]
    assert rho["E_int"] == pytest.approx(-1.0) and rho["E_cross"] == pytest.approx(1.0)
    _, rho = panel_report().beside(prod, paper[paper.name.isin(["a", "b"])])
    assert np.isnan(rho["E_int"])  # two candidates rank nothing


def _series(levels: list[tuple[float, float]], seed: int, ps: float = 50.0) -> pd.DataFrame:
    """A thermo series of ``ps`` ps (a sample every 0.2 ps) whose potential energy is
    ``level`` from ``start`` ps on (``levels``: (start, level) pairs), plus white noise of 0.5."""
    time_fs = np.arange(0.0, ps * 1000.0 + 1.0, 200.0)
    pe = np.zeros_like(time_fs)
    for start, level in levels:
        pe[time_fs >= start * 1000.0] = level
    pe += np.random.default_rng(seed).normal(0.0, 0.5, len(time_fs))
    zero = np.zeros_like(time_fs)
    return pd.DataFrame(
        {
            "Time": time_fs,
            "PotEng": pe,
            "E_bond": zero,
            "E_angle": zero,
            "E_impro": zero,
            "c_cross": -100.0 + zero,
        }
    )


def test_shorter_reads_each_run_as_if_it_had_stopped_early():
    """Three replicas of two candidates whose cells agree for their first 10 ps and then part
    (each settles at its own level): E_int from the first 10 ps of the cells repeats, from all
    30 ps it does not, and the summary says so against the runs as made."""
    oracle = _bench_oracle()
    protocol = oracle.load_protocol("production")
    series = {}
    for i, (name, base) in enumerate((("a", 0.0), ("b", 40.0))):
        for k, late in enumerate((-20.0, 0.0, 20.0)):
            cell = _series([(0.0, base), (10.0, base + late)], seed=10 * i + k, ps=30.0)
            stack = _series([(0.0, 2 * base + 5.0)], seed=100 + 10 * i + k)
            series[(name, k)] = (cell, stack, None, None)
    partner = {protocol.estimator: 1.0}
    t = oracle.truncated_rows(series, partner, protocol, [10.0, 30.0], [50.0])
    early = t[t.cell_ps == 10.0].set_index(["name", "replica"]).E_int
    # E_int = stack − cell(first 10 ps) − partner = (2 base + 5) − base − 1
    assert early.loc["a"].to_numpy() == pytest.approx([4.0] * 3, abs=0.5)
    assert early.loc["b"].to_numpy() == pytest.approx([44.0] * 3, abs=0.5)
    s = oracle.length_summary(t, boot=200).set_index("cell_nvt_ps")
    assert s.loc[10.0, "E_int_replica_sd"] < 0.5 < 5.0 < s.loc[30.0, "E_int_replica_sd"]
    assert s.loc[30.0, "E_int_shift"] == 0.0 and s.loc[30.0, "E_int_replica_sd"] > 15.0
    assert s.loc[10.0, "spearman_vs_full"] == pytest.approx(1.0)  # b stays above a
    assert s.loc[10.0, "sd_diff_hi"] < 0.0  # the drop is more than chance in every draw
    assert np.isnan(s.loc[10.0, "cpu_h"])  # no logs: no cost, not 0
    per = oracle.per_candidate_sd(t)
    assert list(per.replicas) == [3, 3]
    assert (per["10/50"] < 0.5).all() and (per["30/50"] > 15.0).all()


def test_volume_coupling_finds_a_slope_the_replicas_share_and_removes_it():
    """Six candidates × 5 replicas whose E_int rises 3 kcal/mol per 0.1 Å of cell height (plus
    noise of SD 1) and whose E_cross does not depend on it: the common slope is found, removing
    it takes E_int's replica SD down to the noise, the permutation test says it is no chance;
    for E_cross neither (no slope, no drop). A candidate with 2 replicas is left out."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(6):
        lz = 20.0 + i + rng.normal(0.0, 0.3, 5)
        e_int = 10.0 * i + 30.0 * (lz - lz.mean()) + rng.normal(0.0, 1.0, 5)
        for k in range(5):
            rows.append(
                {
                    "name": f"m{i}",
                    "lz_chem_A": lz[k],
                    "E_int": e_int[k],
                    "E_cross": -100.0 + rng.normal(0.0, 1.0),
                }
            )
    rows += [
        {"name": "two", "lz_chem_A": 20.0 + k, "E_int": 99.0 * k, "E_cross": 0.0} for k in range(2)
    ]
    per, common = panel_report().volume_coupling(
        pd.DataFrame(rows), cols=("E_int", "E_cross"), permutations=500
    )
    assert "two" not in set(per.name) and (per.n == 5).all()
    assert (per["E_int_r"] > 0.8).all()
    c = common.set_index("energy")
    assert c.loc["E_int", "slope_per_0.1A"] == pytest.approx(3.0, abs=0.5)
    assert c.loc["E_int", "replica_sd"] > 5.0 and c.loc["E_int", "sd_without_height"] < 1.5
    assert c.loc["E_int", "p_permutation"] < 0.01 and c.loc["E_int", "dof"] == 24
    assert abs(c.loc["E_cross", "slope_per_0.1A"]) < 0.5
    assert c.loc["E_cross", "sd_without_height"] > 0.8 * c.loc["E_cross", "replica_sd"]
    assert c.loc["E_cross", "p_permutation"] > 0.01


def test_calibration_recovers_the_extra_scatter_and_checks_it_on_left_out_candidates():
    """Synthetic panel: 8 candidates x 5 replicas whose values scatter by σ = 3 beyond an
    in-run stderr of 1 (E_cross columns, a calibrated stderr already stored beside the run
    one: the run column is the one read)."""
    oracle = _bench_oracle()
    rng = np.random.default_rng(3)
    rows = []
    for c in range(8):
        for _ in range(5):
            rows.append(
                {
                    "name": f"c{c}",
                    "E_cross": -100.0 * c + rng.normal(0, 3.0) + rng.normal(0, 1.0),
                    "E_cross_stderr": 99.0,  # calibrated earlier: must not be used
                    "E_cross_stderr_run": 1.0,
                }
            )
    c = oracle.calibration(pd.DataFrame(rows), "E_cross")
    assert c["dof"] == 32
    assert c["sigma"] == pytest.approx(3.0, rel=0.3)
    assert list(c["table"].stderr_run) == pytest.approx([1.0] * 8)
    # the in-run stderr alone is far too small; calibrated with the others' σ it holds
    assert c["run_ratio"] < 0.5
    assert 0.7 < c["loo_ratio"] < 1.5
    # σ left out of one candidate is the pooled σ of the other seven
    left = oracle.calibration(pd.DataFrame([r for r in rows if r["name"] != "c0"]), "E_cross")
    assert c["table"].set_index("name").sigma_loo["c0"] == pytest.approx(left["sigma"])


def test_lz_states_runs_a_barostat_on_from_where_the_stage_stopped(tmp_path, quick, launcher):
    """benchmarks/lz_states.py on a real quick cell: the continuation starts from the stage's
    end state (its first Lz is the stage's last), runs the asked length, and the report's
    replica SDs are those of the columns, pooled by degrees of freedom."""
    from mdxfer.md.interaction import prepare_species, run_compress

    lzs = bench("lz_states")
    cell = prepare_species("CCO", quick, tmp_path / "cell")
    made = run_compress(cell, quick, launcher)
    s = lzs.run_on(cell, tmp_path / "more" / "ethanol-0", "quick", 0, ps=0.4)
    series = pd.read_csv(tmp_path / "more" / "ethanol-0" / "more.thermo.csv")
    assert series.Lz.iloc[0] == pytest.approx(made["final_lz_A"], abs=1e-6)
    assert series.Time.iloc[-1] - series.Time.iloc[0] == pytest.approx(400.0)  # fs
    assert s["ps"] == 0.4 and (cell / "compress.data").exists()
    # resumable: a finished replica is not run again
    assert lzs.run_on(cell, tmp_path / "more" / "ethanol-0", "quick", 0, ps=0.4) == s
    export = tmp_path / "export.csv"
    pd.DataFrame(
        [{"name": "ethanol", "replica": 0, "lz_chem_A": made["lz_A"], "candidate_dir": str(cell)}]
    ).to_csv(export, index=False)
    t = lzs.collect(tmp_path / "more", export, width_ps=0.2)
    assert list(t.columns[:3]) == ["name", "replica", "lz_made"]
    assert {"w0.2", "w0.4", "lz_more", "lz_more_se"} <= set(t.columns)
    assert t.lz_more.iloc[0] == pytest.approx(series.Lz.iloc[1:].mean())
    assert np.isfinite(t.lz_slope_A_per_100ps.iloc[0]) and np.isfinite(t.pe_change.iloc[0])
    # replica SDs: two candidates (2 and 3 replicas), pooled with 1 and 2 degrees of freedom
    synth = pd.DataFrame(
        {
            "name": ["a", "a", "b", "b", "b"],
            "replica": [0, 1, 0, 1, 2],
            "lz_made": [20.0, 20.2, 30.0, 30.1, 30.2],
            "lz_more": [20.0, 20.0, 30.0, 30.0, 30.0],
            "lz_more_se": [0.1] * 5,
        }
    )
    sd = lzs.replica_sds(synth)
    assert sd.loc["a", "lz_made"] == pytest.approx(np.std([20.0, 20.2], ddof=1))
    pooled = np.sqrt((1 * 0.02 + 2 * 0.01) / 3)
    assert sd.loc["pooled", "lz_made"] == pytest.approx(pooled)
    assert sd.loc["pooled", "lz_more"] == 0.0
