"""The default ``transfer`` (``--mode auto``): every candidate cross-validated, the best saved,
the selection scored by nested CV, the spread calibrated. Tables are real QM9 rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mdxfer.errors import DataError
from mdxfer.learn.data import qm9
from mdxfer.learn.ensemble import GPMember, encoder_embeddings, features_for, load_ensemble, predict
from mdxfer.learn.featurize import morgan_counts
from mdxfer.learn.transfer import MODES, NO_TRANSFER, TransferSettings, transfer

FAST = {"folds": 3, "repeats": 2, "max_epochs": 300, "patience": 50}


@pytest.fixture(scope="module")
def base_dir(small_paper_model):
    return small_paper_model


def _qm9_table(path, column: str, n: int, random_state: int):
    """``n`` QM9 molecules outside the pretraining subset with one property as ``target``."""
    df = qm9.load_qm9()
    pool = df[~df.qm9_index.isin(set(qm9.subset(300).qm9_index))]
    rows = pool.sample(n, random_state=random_state)
    rows[["SMILES", column]].set_axis(["smiles", "target"], axis=1).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def homo(tmp_path_factory):
    """HOMO energies of 24 molecules: Morgan-count ridge beats every transfer mode in CV here."""
    return _qm9_table(tmp_path_factory.mktemp("homo") / "homo.csv", "HOMO_au", 24, 5)


@pytest.fixture(scope="module")
def pol(tmp_path_factory):
    """Polarisabilities of 24 molecules: ridge on the Cv encoder's embedding wins by far."""
    return _qm9_table(tmp_path_factory.mktemp("pol") / "pol.csv", "Polarizability_bohr3", 24, 5)


@pytest.fixture(scope="module")
def auto_pol(base_dir, pol, tmp_path_factory):
    out = tmp_path_factory.mktemp("auto_pol")
    return out, transfer(base_dir, pol, out, TransferSettings(**FAST), progress=False)


def test_default_saves_the_baseline_where_it_wins_cv(base_dir, homo, tmp_path):
    m = transfer(base_dir, homo, tmp_path, TransferSettings(**FAST), progress=False)
    maes = {k: v["mae_val"] for k, v in m["methods"].items()}
    assert set(maes) == set(MODES)
    best_transfer = min(v for k, v in maes.items() if k not in NO_TRANSFER)
    assert maes["fp_ridge"] < best_transfer  # the table is what it claims
    assert m["mode"] in NO_TRANSFER and m["mae_val"] == min(maes.values())
    assert m["mae_val"] <= maes["fp_ridge"]  # never worse than the baseline in CV
    sel = m["selection"]
    assert sel["transfer_helped"] is False and sel["margin_cv_mae_over_best_baseline"] >= 0
    assert m["summary"].startswith("transfer did not help on this table")
    ens = load_ensemble(tmp_path)
    assert ens.mode == m["mode"] and all(x.uses == "fingerprint" for x in ens.members)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["selection"]["selected"] == m["mode"]


def test_default_saves_transfer_where_it_wins_cv(auto_pol):
    out, m = auto_pol
    maes = {k: v["mae_val"] for k, v in m["methods"].items()}
    assert m["mode"] not in NO_TRANSFER and m["mae_val"] == min(maes.values())
    assert m["mae_val"] < min(maes[k] for k in NO_TRANSFER)
    assert m["selection"]["transfer_helped"] is True
    assert m["summary"].startswith(f"transfer helped on this table: best transfer mode {m['mode']}")
    assert load_ensemble(out).mode == m["mode"]


def test_selection_is_scored_by_nested_cv(auto_pol):
    _, m = auto_pol
    nested = m["selection"]["nested_cv"]
    assert len(nested["picks"]) == 3 and set(nested["picks"]) <= set(MODES)
    assert np.isfinite(nested["r2"]) and np.isfinite(nested["baseline_r2"])
    # the selection's own figure, not the winner's CV score: they differ
    assert nested["r2"] != pytest.approx(m["r2_val"])
    assert f"nested-CV R² of the selection {nested['r2']:.3f}" in m["summary"]


def test_finetune_stays_one_flag_away_and_reproducible(base_dir, pol, auto_pol, tmp_path):
    _, auto = auto_pol
    a = transfer(
        base_dir,
        pol,
        tmp_path / "a",
        TransferSettings(mode="finetune", compare=("finetune",), **FAST),
        progress=False,
    )
    b = transfer(
        base_dir,
        pol,
        tmp_path / "b",
        TransferSettings(mode="finetune", compare=("finetune",), **FAST),
        progress=False,
    )
    assert a["mode"] == "finetune" and a["r2_val"] == b["r2_val"] and a["mae_val"] == b["mae_val"]
    # fine-tuning alone gives the figures it has inside the auto comparison (same folds)
    assert a["r2_val"] == pytest.approx(auto["methods"]["finetune"]["r2_val"], abs=1e-12)
    assert "nested_cv" not in a["selection"]
    assert a["selection"]["selected_by"] == "--mode" and "kept finetune as asked" in a["summary"]


def test_spread_is_calibrated_on_out_of_fold_predictions(auto_pol, pol):
    out, m = auto_pol
    cal = m["calibration"]
    assert cal["scale"] > 0
    cvp = pd.read_csv(out / "cv_predictions.csv")
    e2 = (cvp.target - cvp.selected_cv_mean) ** 2
    # after scaling, the out-of-fold z-scores have unit variance (pooled over the table)
    assert e2.sum() / (cvp.selected_cv_std_calibrated**2).sum() == pytest.approx(1.0, rel=1e-9)
    for k in ("1sd", "2sd"):
        for when in ("before", "after", "after_crossfit"):
            assert 0.0 <= cal[f"coverage_{k}_{when}"] <= 1.0
    assert cal["coverage_1sd_after"] <= cal["coverage_2sd_after"]
    ens = load_ensemble(out)
    assert ens.spread_scale == pytest.approx(cal["scale"])
    smiles = list(pd.read_csv(pol).smiles[:6])
    mean, std = predict(ens, smiles)
    mean0, std0 = predict(ens, smiles, calibrated=False)
    assert (
        np.array_equal(mean, mean0) and np.allclose(std, cal["scale"] * std0) and np.all(std0 > 0)
    )
    assert (out / "calibration.png").stat().st_size > 10_000


def test_ranked_csv_carries_the_calibrated_spread(auto_pol, tmp_path):
    from mdxfer.learn.rank import rank_file

    out, _ = auto_pol
    smi = tmp_path / "c.smi"
    sub = qm9.subset(30, seed=77)
    smi.write_text("".join(f"{s} m{k}\n" for k, s in enumerate(sub.SMILES)))
    rank_file(smi, out, tmp_path / "ranked.csv", progress=False)
    ranked = pd.read_csv(tmp_path / "ranked.csv")
    mean, std = predict(load_ensemble(out), list(ranked.smiles))
    assert np.allclose(ranked["std"], std, rtol=1e-3) and np.allclose(
        ranked["mean"], mean, rtol=1e-5
    )


@pytest.mark.parametrize("mode", ["fp_gp", "emb_gp"])
def test_gaussian_process_ensembles_save_load_and_rank(base_dir, pol, tmp_path, mode):
    m = transfer(
        base_dir,
        pol,
        tmp_path,
        TransferSettings(mode=mode, compare=(mode,), **FAST),
        progress=False,
    )
    assert m["mode"] == mode and np.isfinite(m["r2_val"])
    ens = load_ensemble(tmp_path)
    assert len(ens.members) == 6 and all(isinstance(x, GPMember) for x in ens.members)
    assert len({id(x.table) for x in ens.members}) == 1  # one stored feature table, shared
    cvp = pd.read_csv(tmp_path / "cv_predictions.csv")
    mean, std = predict(ens, list(cvp.smiles))
    assert np.allclose(mean, cvp.ensemble_fit_mean) and np.allclose(std, cvp.ensemble_fit_std)
    assert np.all(std > 0)  # the GPs' own variance counts
    from mdxfer.learn.rank import rank_smiles

    ranked = rank_smiles(ens, list(cvp.smiles))  # rank's own path (fingerprints from its mols)
    assert np.allclose(ranked.mean, mean) and np.allclose(ranked.std, std)
    # a member fits its own training rows better than it predicts the rows it never saw
    member = ens.members[0]
    smiles, y = list(cvp.smiles), cvp.target.to_numpy()
    X = features_for(member.uses, encoder_embeddings(ens, smiles), morgan_counts(smiles))
    seen = np.zeros(len(y), bool)
    seen[member.rows] = True
    err = np.abs(member.predict(X) - y)
    assert err[seen].mean() < err[~seen].mean()


def test_unknown_mode_names_the_choices(base_dir, pol, tmp_path):
    with pytest.raises(DataError, match="Unknown transfer mode 'gp'.*fp_gp.*or auto"):
        transfer(base_dir, pol, tmp_path, TransferSettings(mode="gp", **FAST), progress=False)
    with pytest.raises(DataError, match="No transfer mode to compare"):
        transfer(
            base_dir, pol, tmp_path, TransferSettings(compare=("nothing",), **FAST), progress=False
        )


def test_cli_default_is_auto_and_prints_one_line(base_dir, homo, tmp_path):
    from typer.testing import CliRunner

    from mdxfer.cli.main import app

    r = CliRunner().invoke(
        app,
        [
            "transfer",
            "--base",
            str(base_dir),
            "--data",
            str(homo),
            "--out",
            str(tmp_path / "o"),
            "--folds",
            "3",
            "--repeats",
            "2",
            "--epochs",
            "300",
            "--patience",
            "50",
            "--no-nested",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert "transfer did not help on this table: best transfer mode" in text
    assert "nested-CV" not in text and "spread calibrated x" in text
    saved = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert saved["mode"] in NO_TRANSFER and set(saved["methods"]) == set(MODES)
