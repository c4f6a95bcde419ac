"""Acquisition functions on known means and spreads; batch diversity; oracles; config errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from mdxfer.al.acquisition import (
    Acquisition,
    ALError,
    expected_improvement,
    greedy,
    thompson_draws,
    ucb,
    uncertainty,
)
from mdxfer.al.diversity import Diversity, morgan_bits, select_batch, tanimoto

MEAN = np.array([1.0, 3.0, 2.0, 2.9])
STD = np.array([2.0, 0.1, 0.5, 0.0])


def top(scores: np.ndarray) -> int:
    return int(np.argmax(scores))


# ---------------------------------------------------------------- acquisitions


def test_greedy_follows_the_direction():
    assert top(greedy(MEAN, maximize=True)) == 1
    assert top(greedy(MEAN, maximize=False)) == 0
    assert np.allclose(greedy(MEAN, False), -MEAN)


def test_ucb_trades_mean_against_spread():
    assert np.allclose(ucb(MEAN, STD, beta=1.0), MEAN + STD)
    assert top(ucb(MEAN, STD, beta=0.0)) == 1  # beta 0 is greedy
    assert top(ucb(MEAN, STD, beta=1.0)) == 1  # 3.1 > 3.0 > 2.9 > 2.5
    assert top(ucb(MEAN, STD, beta=2.0)) == 0  # 1 + 4 = 5 wins
    # minimising: optimism points down, -mean + beta*std
    assert np.allclose(ucb(MEAN, STD, beta=1.0, maximize=False), -MEAN + STD)
    assert top(ucb(MEAN, STD, beta=1.0, maximize=False)) == 0


def test_expected_improvement_closed_form():
    best = 2.5
    ei = expected_improvement(MEAN, STD, best, maximize=True)
    d = MEAN - best
    expect = d * norm.cdf(d / np.where(STD > 0, STD, 1)) + STD * norm.pdf(
        d / np.where(STD > 0, STD, 1)
    )
    expect[3] = max(d[3], 0.0)  # no spread: the improvement itself
    assert np.allclose(ei, expect)
    assert np.all(ei >= 0)
    assert ei[3] == pytest.approx(0.4)
    # a certain candidate worse than the best has zero EI
    assert expected_improvement(np.array([1.0]), np.array([0.0]), best)[0] == 0.0
    # minimising: improvement is below the best
    ei_min = expected_improvement(MEAN, STD, best, maximize=False)
    dm = best - MEAN
    assert ei_min[3] == 0.0 and ei_min[0] == pytest.approx(
        dm[0] * norm.cdf(dm[0] / 2) + 2 * norm.pdf(dm[0] / 2)
    )
    # margin xi lowers every EI
    assert np.all(expected_improvement(MEAN, STD, best, xi=0.5) <= ei + 1e-12)


def test_uncertainty_is_the_spread():
    assert top(uncertainty(STD)) == 0
    assert np.allclose(uncertainty(STD), STD)


def test_thompson_uses_one_member_per_pick():
    # member k prefers candidate k
    members = np.eye(4) * 10.0
    rows, drawn = thompson_draws(members, 3, np.random.default_rng(0), maximize=True)
    assert rows.shape == (3, 4) and len(set(drawn.tolist())) == 3  # distinct members
    for row, k in zip(rows, drawn):
        assert np.allclose(row, members[k]) and top(row) == k
    rows_min, drawn_min = thompson_draws(members, 2, np.random.default_rng(0), maximize=False)
    assert np.allclose(rows_min, -members[drawn_min])
    # more picks than members: members repeat, every member used
    _, many = thompson_draws(members, 9, np.random.default_rng(1))
    assert len(many) == 9 and set(many.tolist()) == {0, 1, 2, 3}


def test_acquisition_object_and_batch_scores():
    rng = np.random.default_rng(0)
    members = MEAN[None, :] + np.array([[-1.0], [1.0]]) * STD[None, :]
    for name, expect in (("greedy", 1), ("ucb", 1), ("uncertainty", 0)):
        rows = Acquisition(name, maximize=True).score_matrix(MEAN, STD, members, 3, rng, best=2.5)
        assert rows.shape == (1, 4) and top(rows[0]) == expect
    rows, drawn = Acquisition("thompson").batch_scores(MEAN, STD, members, 2, rng)
    assert rows.shape == (2, 4) and sorted(drawn.tolist()) == [0, 1]
    ei = Acquisition("ei").scores(MEAN, STD, best=2.5)
    assert np.allclose(ei, expected_improvement(MEAN, STD, 2.5))
    r1 = Acquisition("random").scores(MEAN, STD, rng=np.random.default_rng(3))
    r2 = Acquisition("random").scores(MEAN, STD, rng=np.random.default_rng(3))
    assert np.allclose(r1, r2) and not np.allclose(
        r1, Acquisition("random").scores(MEAN, STD, rng=np.random.default_rng(4))
    )
    # NaN predictions are never picked
    nan_mean = MEAN.copy()
    nan_mean[1] = np.nan
    assert top(Acquisition("greedy").scores(nan_mean, STD)) == 3
    with pytest.raises(ALError, match="Unknown acquisition"):
        Acquisition("best")
    with pytest.raises(ALError, match="beta"):
        Acquisition("ucb", beta=-1)
    with pytest.raises(ALError, match="best value"):
        Acquisition("ei").scores(MEAN, STD)


# ---------------------------------------------------------------- diversity

# two chemical families: long alcohols (all scored high) and aromatics/amides (scored lower)
ALCOHOLS = ["CCCCCCO", "CCCCCCCO", "CCCCCCCCO", "CCCCCCCCCO", "CCCCCCCCCCO", "CC(C)CCCCO"]
OTHERS = ["c1ccccc1", "CC(=O)N", "C1CCNCC1", "OC(=O)c1ccccc1", "CC#N", "FC(F)(F)C"]


def test_tanimoto_basics():
    fp = morgan_bits(["CCO", "CCO", "c1ccccc1", "not a smiles"])
    sim = tanimoto(fp, fp)
    assert sim[0, 1] == pytest.approx(1.0) and sim[0, 2] < 0.2
    assert fp[3].sum() == 0


def test_diverse_batch_differs_from_top_b():
    smiles = ALCOHOLS + OTHERS
    scores = np.array([10, 9.9, 9.8, 9.7, 9.6, 9.5, 5, 4.9, 4.8, 4.7, 4.6, 4.5])
    fps = morgan_bits(smiles)
    topb = select_batch(scores, 4, Diversity("none"), fps=fps)
    assert topb == [0, 1, 2, 3]
    for div in (Diversity("maxmin", shortlist=3.0), Diversity("sphere", threshold=0.5)):
        picks = select_batch(scores, 4, div, fps=fps)
        assert picks[0] == 0  # the best candidate always comes first
        assert len(set(picks)) == 4 and set(picks) != set(topb)
        assert any(i >= len(ALCOHOLS) for i in picks)

        def mean_pair_sim(idx):
            s = tanimoto(fps[idx], fps[idx])
            return s[np.triu_indices(len(idx), 1)].mean()

        assert mean_pair_sim(picks) < mean_pair_sim(topb)
    # the shortlist bounds how far down the list MaxMin reaches
    tight = select_batch(scores, 4, Diversity("maxmin", shortlist=1.0), fps=fps)
    assert set(tight) == set(topb)


def test_cluster_selection_and_availability():
    smiles = ALCOHOLS + OTHERS
    scores = np.linspace(10, 5, len(smiles))
    emb = np.vstack(
        [
            np.tile([0.0, 0.0], (6, 1)) + np.arange(6)[:, None] * 0.01,
            np.tile([5.0, 5.0], (6, 1)) + np.arange(6)[:, None] * 0.01,
        ]
    )
    picks = select_batch(scores, 2, Diversity("cluster", shortlist=6.0), embedding=emb)
    assert len(picks) == 2 and {p < 6 for p in picks} == {True, False}
    avail = np.ones(len(smiles), dtype=bool)
    avail[[0, 1]] = False
    picks = select_batch(scores, 3, Diversity("none"), available=avail)
    assert picks == [2, 3, 4]
    assert select_batch(scores, 50, Diversity("none"), available=avail) == list(range(2, 12))
    with pytest.raises(ALError, match="fingerprints"):
        select_batch(scores, 2, Diversity("maxmin"))
    with pytest.raises(ALError, match="Unknown diversity"):
        Diversity("spread")


def test_thompson_rows_in_batch_selection():
    rows = np.array([[1.0, 5.0, 0.0], [9.0, 8.0, 0.0], [0.0, 0.0, 7.0]])
    assert select_batch(rows, 3, Diversity("none")) == [1, 0, 2]


# ---------------------------------------------------------------- oracles and config


def test_table_oracle_and_pool(tmp_path):
    from mdxfer.al.oracles import TableOracle, read_pool

    (tmp_path / "t.csv").write_text("smiles,target\nOCC,1.5\nCC(C)=O,2\n")
    o = TableOracle(tmp_path / "t.csv")
    ms = o.measure(["CCO", "CCCC"])
    assert ms[0].status == "done" and ms[0].value == 1.5  # canonical keys
    assert ms[1].status == "failed" and "not in the oracle table" in ms[1].error
    (tmp_path / "bad.csv").write_text("smiles,target\nC1CC,1\nCC,x\n")
    with pytest.raises(ALError, match="line 2.*line 3"):
        TableOracle(tmp_path / "bad.csv")
    (tmp_path / "p.smi").write_text("# pool\nCCO ethanol\nOCC dup\nXX bad\nc1ccccc1\n")
    keys, inputs, problems = read_pool(tmp_path / "p.smi")
    assert keys == ["CCO", "c1ccccc1"] and len(problems) == 1 and "p.smi:4" in problems[0]


def test_config_errors(tmp_path):
    from mdxfer.al.loop import load_al_config

    (tmp_path / "pool.smi").write_text("CCO\nCCC\n")
    base = '[campaign]\ndatabase = "x.db"\n'
    f = tmp_path / "a.toml"
    f.write_text(base)
    with pytest.raises(ALError, match="no \\[active_learning\\]"):
        load_al_config(f)
    f.write_text(base + '[active_learning]\npool = "pool.smi"\n')
    with pytest.raises(ALError, match="direction"):
        load_al_config(f)
    f.write_text(base + '[active_learning]\npool = "pool.smi"\ndirection = "minimize"\nbogus = 1\n')
    with pytest.raises(ALError, match="bogus"):
        load_al_config(f)
    f.write_text(
        base + '[active_learning]\npool = "pool.smi"\ndirection = "minimize"\n'
        'acquisition = "magic"\n[active_learning.model]\nfeatures = "morgan"\n'
    )
    with pytest.raises(ALError, match="magic"):
        load_al_config(f)
    f.write_text(base + '[active_learning]\npool = "pool.smi"\ndirection = "minimize"\n')
    with pytest.raises(ALError, match="pretrained model"):
        load_al_config(f)  # default features need model_dir
    f.write_text(
        base + '[active_learning]\npool = "pool.smi"\ndirection = "maximize"\nrounds = 2\n'
        'oracle = "table"\ntable = "t.csv"\n[active_learning.model]\nfeatures = "morgan"\n'
    )
    cfg = load_al_config(f)
    assert cfg.database == tmp_path / "x.db" and cfg.table == tmp_path / "t.csv"
    assert cfg.settings.acquisition.maximize and cfg.settings.rounds == 2
    assert cfg.label == "target"  # a table's unit is unknown unless given
    f.write_text(f.read_text().replace("rounds = 2\n", 'rounds = 2\nunit = "bohr^3"\n'))
    assert load_al_config(f).label == "target [bohr^3]"
    f.write_text(f.read_text().replace('unit = "bohr^3"', "unit = 3"))
    with pytest.raises(ALError, match="unit"):
        load_al_config(f)


# ---------------------------------------------------------------- measurement noise in the fit


def _linear_table(n: int = 20):
    from mdxfer.al.surrogate import FeatureTable, SurrogateSettings

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    y = X @ np.array([1.0, -0.5, 0.2]) + 0.05 * rng.normal(size=n)
    table = FeatureTable(
        [f"m{i}" for i in range(n)],
        X.astype(np.float32),
        None,
        np.zeros((n, 8), dtype=bool),
        [None] * n,
        SurrogateSettings(features="morgan"),
    )
    return table, y


def test_noise_weights():
    from mdxfer.al.surrogate import noise_weights

    assert noise_weights(None) is None and noise_weights([None, None]) is None
    assert noise_weights([0.0, 0.0, None]) is None  # nothing to weigh by
    w = noise_weights([1.0, 1.0, 3.0, None])  # s0 = median = 1
    expect = 1 / (np.array([1.0, 1.0, 9.0, 1.0]) + 1.0)  # missing: the median
    assert np.allclose(w, expect / expect.mean()) and w.mean() == pytest.approx(1.0)


def test_a_noisy_point_pulls_the_ridge_fit_less():
    """The same outlier moves the fit less when its measurement says it is noisy; without any
    stderr the fit is the unweighted one, exactly."""
    from mdxfer.al.surrogate import fit_ensemble, predict_rows

    table, y = _linear_table()
    truth = float(y[0])
    y = y.copy()
    y[0] += 10.0  # one far-off measurement
    smiles = table.smiles
    rows = table.rows(smiles[:1])

    def pull(se0: float | None, model: str = "ridge") -> float:
        import dataclasses

        t = dataclasses.replace(table, settings=dataclasses.replace(table.settings, model=model))
        stderr = None if se0 is None else [se0] + [0.5] * (len(y) - 1)
        ens = fit_ensemble(t, smiles, y, seed=3, members=8, stderr=stderr)
        return abs(float(predict_rows(t, ens, rows).mean()) - truth)

    small, huge, none = pull(0.5), pull(50.0), pull(None)
    assert huge < 0.5 * small, (small, huge)
    assert small == pytest.approx(none, rel=0.05)  # equal noise ~ unweighted
    assert pull(None) == none  # deterministic
    base = fit_ensemble(table, smiles, y, seed=3, members=8)
    assert base.info["noise_weighted"] is False
    unknown = fit_ensemble(table, smiles, y, seed=3, members=8, stderr=[None] * len(y))
    assert np.array_equal(base.coef, unknown.coef)  # no stderr: as before
    assert pull(50.0, "rf") < pull(0.5, "rf")


def test_campaign_error_is_the_larger_of_stderr_and_replica_spread():
    from mdxfer.al.oracles import measured_error

    assert measured_error(
        {"E_int_stderr": 1.0, "E_int_replica_sd": 3.0, "n_replicas": 2}
    ) == pytest.approx(3.0 / 2**0.5)
    assert measured_error({"E_int_stderr": 2.5, "E_int_replica_sd": 1.0, "n_replicas": 4}) == 2.5
    assert measured_error({"E_int_stderr": 1.0, "E_int_replica_sd": None}) == 1.0
    assert measured_error({}) is None
    # E_cross the same way, from its own columns
    row = {"E_int_stderr": 9.0, "E_cross_stderr": 1.0, "E_cross_replica_sd": 4.0, "n_replicas": 4}
    assert measured_error(row, "E_cross") == pytest.approx(2.0)
    assert measured_error(row) == 9.0


def test_table_oracle_and_pool_take_a_campaign_export(tmp_path):
    """A `mdxfer campaign export` CSV as it is: unfinished rows and rows without E_int are
    skipped and counted by the oracle; the pool takes every row's molecule."""
    import csv

    from mdxfer.al.oracles import TableOracle, read_pool
    from mdxfer.campaign.runner import EXPORT_COLUMNS

    path = tmp_path / "results.csv"
    rows = [
        {"smiles": "OCC", "status": "done", "E_int": "-3.5"},
        {"smiles": "CCC", "status": "failed"},
        {"smiles": "CCCC", "status": "pending"},
        {"smiles": "CC(C)=O", "status": "done", "E_int": ""},
        {"smiles": "c1ccccc1", "status": "done", "E_int": "-7.25"},
    ]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=EXPORT_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    o = TableOracle(path, target_col="E_int")
    assert o.values == {"CCO": -3.5, "c1ccccc1": -7.25}
    assert (
        o.skipped == "skipped 2 row(s) whose status is not done and 1 row(s) without a target value"
    )
    keys, _inputs, problems = read_pool(path)
    assert keys == ["CCO", "CCC", "CCCC", "CC(C)=O", "c1ccccc1"] and problems == []
    with pytest.raises(ALError, match="has no column 'target'.*'E_int'"):
        TableOracle(path)
