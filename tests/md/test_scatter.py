"""The between-replica scatter (mdxfer/md/scatter.py): pooled σ, the calibrated stderr, and how
results use it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mdxfer.md import scatter
from mdxfer.md.interaction import aggregate
from mdxfer.md.protocol import PRESETS


def test_pooled_between_sd_recovers_the_scatter_of_synthetic_replicas():
    rng = np.random.default_rng(0)
    sigma, se = 6.0, 2.0
    groups = []
    for mean in rng.normal(0, 30, 40):  # 40 candidates x 4 replicas
        vals = mean + rng.normal(0, sigma, 4) + rng.normal(0, se, 4)
        groups.append((list(vals), [se] * 4))
    est, dof = scatter.pooled_between_sd(groups)
    assert dof == 120
    assert est == pytest.approx(sigma, rel=0.15)


def test_pooled_between_sd_skips_single_replicas_and_floors_at_zero():
    # SD of (1, 3) is sqrt(2) < in-run stderr 5: no extra scatter, not a negative variance
    assert scatter.pooled_between_sd([([1.0, 3.0], [5.0, 5.0]), ([7.0], [1.0])]) == (0.0, 1)
    est, dof = scatter.pooled_between_sd([([10.0], [1.0])])
    assert dof == 0 and math.isnan(est)
    # by hand: SD² of (0, 10) is 50, minus mean se² 1 -> 49
    assert scatter.pooled_between_sd([([0.0, 10.0], [1.0, 1.0])])[0] == pytest.approx(7.0)


def test_the_shipped_table_covers_the_production_preset():
    digest = PRESETS["production"].family_digest()
    assert PRESETS["production"].replica(2).family_digest() == digest  # every replica
    sigma = scatter.between_replica_sd(digest)
    assert sigma is not None and sigma > 0
    assert scatter.calibrated_stderr(3.0, digest) == pytest.approx(math.hypot(3.0, sigma))
    cross = scatter.between_replica_sd(digest, "E_cross")
    assert cross is not None and 0 < cross < sigma  # E_cross repeats better than E_int
    assert scatter.calibrated_stderr(1.0, digest, "E_cross") == pytest.approx(math.hypot(1, cross))
    unrelaxed = scatter.between_replica_sd(digest, "E_int_unrelaxed")
    assert unrelaxed is not None and unrelaxed > 0
    # any other digest (a changed number) is unmeasured: the in-run value comes back
    assert scatter.between_replica_sd("0" * 12) is None
    assert scatter.calibrated_stderr(3.0, "0" * 12) == 3.0
    assert scatter.calibrated_stderr(3.0, "0" * 12, "E_cross") == 3.0


def _rep(e: float, se: float, run: float) -> dict:
    return {
        "E_int": e,
        "E_int_stderr": se,
        "E_int_stderr_run": run,
        "E_cross": -e / 2,
        "E_cross_stderr": 1.0,
        "E_cross_stderr_run": 0.5,
        "E_partner_stderr": 0.5,
        "interface_area_A2": 1800.0,
        "warnings": [],
        "seed": 1,
    }


def test_aggregate_never_reports_less_than_the_replica_scatter_with_three_replicas():
    reps = [_rep(0.0, 1.0, 1.0), _rep(10.0, 1.0, 1.0), _rep(20.0, 1.0, 1.0)]
    out = aggregate(reps)
    assert out["E_int_replica_sd"] == pytest.approx(10.0)
    assert out["E_int_stderr"] == pytest.approx(10.0 / math.sqrt(3))
    assert out["E_int_stderr_run"] == pytest.approx(math.sqrt(3) / 3)
    # E_cross the same way: its replica SD (5) over its calibrated stderrs (1 each)
    assert out["E_cross_replica_sd"] == pytest.approx(5.0)
    assert out["E_cross_stderr"] == pytest.approx(5.0 / math.sqrt(3))
    assert out["E_cross_stderr_run"] == pytest.approx(0.5 * math.sqrt(3) / 3)
    # two replicas: their SD is too uncertain to override the stderrs
    two = aggregate(reps[:2])
    assert two["E_int_stderr"] == pytest.approx(math.sqrt(2) / 2)
    assert two["E_cross_stderr"] == pytest.approx(math.sqrt(2) / 2)


def test_an_unmeasured_protocol_warns_that_its_stderr_is_in_run_only():
    import dataclasses

    from mdxfer.md.interaction import _warnings

    leg = {"nvt": {"lz_A": 40.0}, "compress": {"plateau": True}}
    legs = {"candidate": leg, "partner": leg, "stack": leg}
    changed = dataclasses.replace(PRESETS["production"], nvt_ps=61.0)
    assert any("in-run estimate only" in w for w in _warnings(changed, legs))
    assert not any("in-run estimate only" in w for w in _warnings(PRESETS["production"], legs))
    # a family measured for E_int only (as an older calibration file has them) warns about
    # E_cross alone: the shipped table with such an entry for this family
    import unittest.mock as um

    table = {**scatter._table(), changed.family_digest(): {"sigma_between_kcal": 5.0}}
    with um.patch.object(scatter, "_table", lambda: table):
        (w,) = [w for w in _warnings(changed, legs) if "in-run estimate only" in w]
    assert w.startswith("E_cross_stderr: the in-run")


def test_a_stored_result_is_read_with_the_installed_calibration():
    """Records written before E_cross was calibrated (its stderr is the within-run one) and
    after (the within-run one kept apart) give the same error bars under today's σ; with three
    replicas their own spread is the floor; an unmeasured family keeps the within-run figure."""
    from mdxfer.md.interaction import recalibrated

    family = PRESETS["production"].family_digest()
    s_int = scatter.between_replica_sd(family)
    s_cross = scatter.between_replica_sd(family, "E_cross")
    old = {"E_int_stderr": 4.0, "E_int_stderr_run": 2.0, "E_cross_stderr": 1.0}
    old["E_partner_stderr"] = 0.5
    new = {
        "E_int_stderr_run": 2.0,
        "E_cross_stderr": 9.0,
        "E_cross_stderr_run": 1.0,
        "E_cross_between_replica_sd": 1.23,
        "E_partner_stderr": 0.5,
    }
    for rec in (old, new):
        out = recalibrated(rec, family)
        assert out["E_int_stderr"] == pytest.approx(math.hypot(2.0, s_int))
        assert out["E_cross_stderr"] == pytest.approx(math.hypot(1.0, s_cross))
        assert out["E_cross_stderr_run"] == 1.0 and out["E_int_stderr_run"] == 2.0
        assert out["E_int_stderr_with_partner"] == pytest.approx(
            math.hypot(out["E_int_stderr"], 0.5)
        )
    # the mean of 4 replicas: sigma²/4 beyond the run stderr of the mean, or their own spread
    agg = dict(new, n_replicas=4, E_int_replica_sd=1.0, E_cross_replica_sd=20.0)
    out = recalibrated(agg, family)
    assert out["E_int_stderr"] == pytest.approx(math.sqrt(4.0 + s_int**2 / 4))
    assert out["E_cross_stderr"] == pytest.approx(10.0)
    unmeasured = recalibrated(old, "0" * 12)
    assert unmeasured["E_int_stderr"] == 2.0 and unmeasured["E_cross_stderr"] == 1.0
    assert recalibrated({"E_int": 1.0}, family) == {}


def test_unrelaxed_interaction_and_its_aggregate():
    """E_int_unrelaxed = E_cross − ½(E_halves of the candidate cell + of the partner cell); its
    within-run stderr carries the stack's E_cross and the candidate cell's half, not the
    partner's (a common offset); three replicas are averaged and their SD floors the stderr."""
    from mdxfer.md.interaction import unrelaxed_interaction

    stack = {"ecross": -150.0, "ecross_stderr": 1.2}
    cand = {"ehalves": -160.0, "ehalves_stderr": 1.0}
    partner = {"ehalves": -190.0, "ehalves_stderr": 9.0}
    value, se = unrelaxed_interaction(stack, cand, partner)
    assert value == pytest.approx(-150.0 + 80.0 + 95.0)
    assert se == pytest.approx(math.hypot(1.2, 0.5))
    # a cell that did not log its halves (run before they were): no value, no error
    assert unrelaxed_interaction(stack, {"pe_nh": 1.0}, partner) == (None, None)
    reps = []
    for e in (20.0, 24.0, 28.0):
        r = _rep(e, 1.0, 1.0)
        r.update(E_int_unrelaxed=e, E_int_unrelaxed_stderr=1.0, E_int_unrelaxed_stderr_run=0.5)
        reps.append(r)
    out = aggregate(reps)
    assert out["E_int_unrelaxed"] == pytest.approx(24.0)
    assert out["E_int_unrelaxed_replicas"] == [20.0, 24.0, 28.0]
    assert out["E_int_unrelaxed_replica_sd"] == pytest.approx(4.0)
    assert out["E_int_unrelaxed_stderr"] == pytest.approx(4.0 / math.sqrt(3))
    assert out["E_int_unrelaxed_stderr_run"] == pytest.approx(0.5 * math.sqrt(3) / 3)
    # replicas without it (older cells) aggregate to None, not to an error
    old = aggregate([_rep(1.0, 1.0, 1.0), _rep(2.0, 1.0, 1.0)])
    assert old["E_int_unrelaxed"] is None and old["E_int_unrelaxed_replica_sd"] is None


def test_a_partner_that_can_hydrogen_bond_with_the_candidate_is_warned_about():
    """compute group/group counts DREIDING hydrogen bonds between its groups only in part: a
    stack whose E_cross is still that figure is warned about when candidate and partner can
    form them (by DREIDING's donors and acceptors), not for isoprene, not once the stack has
    the single points."""
    from mdxfer.md.interaction import _cross_hbond_warning, hbonds_across

    in_run = {"ecross": -100.0, "ecross_method": "compute group/group"}

    def warned(smiles: str, partner: str, nvt: dict = in_run) -> int:
        return len(_cross_hbond_warning(nvt, {"smiles": smiles, "partner": partner}))

    assert not hbonds_across("CO", "C=CC(=C)C") and warned("CO", "C=CC(=C)C") == 0  # isoprene
    assert warned("CCCCCC", "O") == 0  # hexane with water
    assert hbonds_across("CO", "CC(C)=O") and warned("CO", "CC(C)=O") == 1  # donor, acceptor
    assert warned("CC#N", "O") == 1  # acceptor with a donor
    # a nitro N+ and an amide N are not DREIDING acceptors; an N-H amide is a donor
    assert not hbonds_across("C[N+](=O)[O-]", "CN(C)C")  # nitromethane (O acceptors) vs amine
    assert hbonds_across("CC(=O)NC", "CC(C)=O")  # N-methylacetamide's N-H donates to acetone
    exact = {**in_run, "ecross_method": "single points", "ecross_groupgroup": -90.0}
    assert warned("CO", "CC(C)=O", exact) == 0
    failed = {**in_run, "ecross_exact_error": "no traj_nvt.dcd"}
    assert "no traj_nvt.dcd" in _cross_hbond_warning(failed, {"smiles": "CO", "partner": "O"})[0]


def test_aggregate_says_how_its_replicas_measured_e_cross():
    """The replicas' common ``E_cross_method`` (``mixed`` where they differ) and the mean of
    their in-run group/group figures (None unless every replica has one)."""
    exact = [
        {**_rep(e, 1.0, 1.0), "E_cross_method": "single points", "E_cross_groupgroup": g}
        for e, g in ((0.0, -3.0), (10.0, -5.0))
    ]
    out = aggregate(exact)
    assert out["E_cross_method"] == "single points"
    assert out["E_cross_groupgroup"] == pytest.approx(-4.0)
    older = {**_rep(5.0, 1.0, 1.0), "E_cross_method": "compute group/group"}
    out = aggregate([*exact, older])
    assert out["E_cross_method"] == "mixed" and out["E_cross_groupgroup"] is None
