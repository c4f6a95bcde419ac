"""Transfer to a small table built from real QM9 rows (polarisability, bohr³)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mdxfer.errors import DataError
from mdxfer.learn.data import qm9
from mdxfer.learn.data.targets import read_target_table
from mdxfer.learn.ensemble import (
    ForestMember,
    HeadMember,
    LinearMember,
    load_ensemble,
    predict,
    predict_members,
)
from mdxfer.learn.featurize import featurize_smiles, morgan_counts
from mdxfer.learn.models import GraphModel
from mdxfer.learn.nn.graph import embed_graphs
from mdxfer.learn.transfer import MODES, TransferSettings, fit_member, transfer

FAST = dict(folds=3, repeats=2, max_epochs=300, patience=50)


@pytest.fixture(scope="module")
def base_dir(small_paper_model):
    return small_paper_model


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """24 QM9 molecules outside the pretraining subset; target = polarisability (bohr³)."""
    df = qm9.load_qm9()
    used = set(qm9.subset(300).qm9_index)
    pool = df[~df.qm9_index.isin(used)]
    rows = pool.sample(24, random_state=5)
    path = tmp_path_factory.mktemp("data") / "pol.csv"
    rows[["SMILES", "Polarizability_bohr3"]].rename(
        columns={"SMILES": "smiles", "Polarizability_bohr3": "target"}
    ).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def finetuned(base_dir, table, tmp_path_factory):
    out = tmp_path_factory.mktemp("finetune")
    m = transfer(base_dir, table, out, TransferSettings(mode="finetune", **FAST), progress=False)
    return out, m


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_finetune_changes_only_the_head(base_dir, finetuned):
    out, m = finetuned
    base = GraphModel.load(base_dir)
    ens = load_ensemble(out)
    assert ens.mode == "finetune" and len(ens.members) == 6 == m["ensemble_size"]
    # convolutions + pooling: bit-identical to the pretrained ones
    assert _states_equal(ens.base.model.encoder.state_dict(), base.model.encoder.state_dict())
    # the pretrained head in the bundle is untouched too
    assert _states_equal(ens.base.model.head.state_dict(), base.model.head.state_dict())
    for member in ens.members:
        assert isinstance(member, HeadMember)
        new, old = member.head.state_dict(), base.model.head.state_dict()
        changed = [k for k in new if not torch.equal(new[k], old[k])]
        assert changed, "a fine-tuned head kept the pretrained weights"
        assert any(k.endswith("weight") for k in changed)


def test_target_scaling_is_fitted_on_the_target(finetuned, table):
    out, _ = finetuned
    y = pd.read_csv(table).target.to_numpy()
    ens = load_ensemble(out)
    base_mean = ens.base.scaler.mean  # Cv, ~31 cal/(mol K)
    for member in ens.members:
        assert abs(member.scaler.mean - y.mean()) < 2 * y.std()
        assert abs(member.scaler.mean - base_mean) > 20  # polarisability ~75 bohr³
        assert member.info["lr"] == 1e-4


def test_learning_rate_is_applied(base_dir, table):
    base = GraphModel.load(base_dir)
    t = read_target_table(table)
    f = featurize_smiles(list(t.smiles))
    E = embed_graphs(base.model.encoder, f.graphs)
    y = t.target.to_numpy()
    idx = np.arange(len(y))
    frozen = fit_member(
        "finetune", base, E, None, y, idx, TransferSettings(lr=0.0, max_epochs=50, patience=50), 0
    )
    moved = fit_member(
        "finetune", base, E, None, y, idx, TransferSettings(lr=1e-4, max_epochs=50, patience=50), 0
    )
    assert _states_equal(frozen.head.state_dict(), base.model.head.state_dict())
    assert not _states_equal(moved.head.state_dict(), base.model.head.state_dict())


def test_reported_metrics_and_files(finetuned):
    out, m = finetuned
    saved = json.loads((out / "metrics.json").read_text())
    assert {"r2_train", "r2_val", "mae_val"} <= set(saved)
    assert set(saved["methods"]) == set(MODES)
    assert saved["methods"]["finetune"]["r2_val"] == pytest.approx(saved["r2_val"])
    assert saved["folds"] == 3 and saved["repeats"] == 2 and saved["n"] == 24
    assert isinstance(saved["transfer_beats_baseline"], bool)
    assert (out / "parity.png").stat().st_size > 10_000
    cvp = pd.read_csv(out / "cv_predictions.csv")
    assert len(cvp) == 24 and {"finetune_cv_mean", "fp_ridge_cv_std", "in_domain"} <= set(
        cvp.columns
    )
    # out-of-fold predictions are real predictions, not the targets echoed back
    assert not np.allclose(cvp.finetune_cv_mean, cvp.target)
    assert cvp.in_domain.all()


def test_every_prediction_has_mean_and_spread(finetuned):
    out, _ = finetuned
    ens = load_ensemble(out)
    smiles = list(qm9.subset(10, seed=99).SMILES) + ["not smiles"]
    mean, std = predict(ens, smiles)
    members = predict_members(ens, smiles)
    assert members.shape == (6, 11)
    assert np.allclose(mean[:10], members[:, :10].mean(0))
    assert np.all(std[:10] > 0) and np.isnan(mean[10]) and np.isnan(std[10])
    # polarisability of small molecules: tens of bohr³, not heat capacities
    assert 20 < np.nanmean(mean) < 150


@pytest.mark.parametrize(
    "mode, kind", [("ridge", LinearMember), ("rf", ForestMember), ("fp_ridge", LinearMember)]
)
def test_feature_extraction_and_baseline_modes_save_and_load(base_dir, table, tmp_path, mode, kind):
    m = transfer(
        base_dir,
        table,
        tmp_path,
        TransferSettings(mode=mode, compare=(mode,), **FAST),
        progress=False,
    )
    assert m["mode"] == mode and set(m["methods"]) == {mode}
    ens = load_ensemble(tmp_path)
    assert all(isinstance(x, kind) for x in ens.members) and len(ens.members) == 6
    smiles = list(pd.read_csv(table).smiles[:5])
    mean, std = predict(ens, smiles)
    assert np.all(np.isfinite(mean)) and np.all(std >= 0)
    fresh = load_ensemble(tmp_path)  # same numbers after a second load
    assert np.array_equal(predict(fresh, smiles)[0], mean)


def test_auto_picks_lowest_cv_mae(base_dir, table, tmp_path):
    m = transfer(
        base_dir,
        table,
        tmp_path,
        TransferSettings(mode="auto", compare=("ridge", "fp_ridge"), **FAST),
        progress=False,
    )
    maes = {k: v["mae_val"] for k, v in m["methods"].items()}
    assert m["mode"] == min(maes, key=maes.get)


def test_outside_domain_molecules_are_flagged(base_dir, table, tmp_path):
    df = pd.read_csv(table)
    extra = pd.DataFrame({"smiles": ["ClCC(=O)O", "CCCCCCCCCCO"], "target": [40.0, 120.0]})
    path = tmp_path / "with_cl.csv"
    pd.concat([df, extra]).to_csv(path, index=False)
    m = transfer(
        base_dir,
        path,
        tmp_path / "out",
        TransferSettings(mode="ridge", compare=("ridge",), **FAST),
        progress=False,
    )
    assert m["n_outside_domain"] == 2
    cvp = pd.read_csv(tmp_path / "out" / "cv_predictions.csv")
    flagged = cvp[~cvp.in_domain]
    assert flagged.smiles.tolist() == ["ClCC(=O)O", "CCCCCCCCCCO"]
    assert flagged.domain_note.tolist() == ["elements Cl", "11 heavy atoms > 9"]


def test_renamed_columns(base_dir, table, tmp_path):
    df = pd.read_csv(table).rename(columns={"smiles": "SMILES", "target": "E_int_kcal_mol"})
    path = tmp_path / "renamed.csv"
    df.to_csv(path, index=False)
    t = read_target_table(path, "SMILES", "E_int_kcal_mol")
    assert len(t) == 24 and t.line.tolist()[:2] == [2, 3]
    assert t.stderr.isna().all()  # no E_int_kcal_mol_stderr column


def test_stderr_column_follows_its_rows(tmp_path):
    """A row skipped for its status does not shift the stderr of the rows after it."""
    p = tmp_path / "export.csv"
    p.write_text(
        "smiles,status,E_int,E_int_stderr\n"
        "CCO,done,1.0,0.5\nCCC,failed,,\nCCCC,done,3.0,\nCCCCO,done,4.0,0.7\n"
        "CCCCC,done,5.0,0.9\nCCCCCC,done,6.0,1.1\n"
    )
    t = read_target_table(p, "smiles", "E_int")
    assert t.smiles.tolist() == ["CCO", "CCCC", "CCCCO", "CCCCC", "CCCCCC"]
    assert np.allclose(t.stderr.to_numpy(), [0.5, np.nan, 0.7, 0.9, 1.1], equal_nan=True)


def test_bad_tables_name_the_problem(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("smiles,value\nCCO,1\n")
    with pytest.raises(DataError, match="no column 'target'"):
        read_target_table(p)
    p.write_text("smiles,target\nCCO,1\nC1CC,2\nCCC,abc\nCCCC,3\nO,4\nN,5\n")
    with pytest.raises(DataError, match="line 3") as err:
        read_target_table(p)
    assert "line 3" in str(err.value) and "C1CC" in str(err.value) and "line 4" in str(err.value)
    p.write_text("smiles,target\nCCO,1\nCC,2\n")
    with pytest.raises(DataError, match="at least 5"):
        read_target_table(p)
    with pytest.raises(DataError, match="does not exist"):
        read_target_table(tmp_path / "missing.csv")


def test_fingerprints_are_counts():
    fp = morgan_counts(["CCCC", "xx"])
    assert fp.shape == (2, 2048) and fp[0].max() >= 2 and fp[1].sum() == 0


def test_duplicate_molecules_are_refused(tmp_path):
    p = tmp_path / "dup.csv"
    rows = "".join(f"CCO,{k}\n" for k in range(20))  # one molecule, 20 targets
    p.write_text("smiles,target\n" + rows)
    with pytest.raises(
        DataError, match=r"line 3: 'CCO' is the molecule of line 2 again.*one row per molecule"
    ):
        read_target_table(p)
    # the same molecule written two ways is a duplicate too, even with the same target
    p.write_text("smiles,target\nCCO,1\nCCC,2\nCCCC,3\nO,4\nN,5\nOCC,1\n")
    with pytest.raises(DataError, match=r"line 7: 'OCC' is the molecule of line 2 again"):
        read_target_table(p)


def test_constant_target_and_read_in_part_smiles_are_refused(tmp_path):
    p = tmp_path / "const.csv"
    p.write_text("smiles,target\nCCO,2.5\nCCC,2.5\nCCCC,2.5\nO,2.5\nN,2.5\nCN,2.5\n")
    with pytest.raises(DataError, match="every target value is 2.5"):
        read_target_table(p)
    p.write_text("smiles,target\nCCO,1\nCCÖ,2\nCCCC,3\nO,4\nN,5\nCN,6\n")
    with pytest.raises(
        DataError, match=r"line 3: RDKit cannot parse SMILES 'CCÖ' \(a character no SMILES"
    ):
        read_target_table(p)


def test_fewer_rows_than_folds_is_refused(base_dir, table, tmp_path):
    with pytest.raises(
        DataError, match="30-fold cross-validation needs at least 30 rows; the table has 24"
    ):
        transfer(
            base_dir,
            table,
            tmp_path / "o",
            TransferSettings(mode="ridge", compare=("ridge",), folds=30, repeats=1),
            progress=False,
        )
    assert not (tmp_path / "o").exists()
    from typer.testing import CliRunner

    from mdxfer.cli.main import app

    for folds in ("0", "1"):
        r = CliRunner().invoke(
            app,
            [
                "transfer",
                "--base",
                str(base_dir),
                "--data",
                str(table),
                "--out",
                str(tmp_path / "o"),
                "--folds",
                folds,
            ],
        )
        assert r.exit_code == 2 and "--folds" in r.stderr, r.stderr
    r = CliRunner().invoke(
        app,
        [
            "transfer",
            "--base",
            str(base_dir),
            "--data",
            str(table),
            "--out",
            str(tmp_path / "o"),
            "--folds",
            "25",
            "--mode",
            "ridge",
            "--no-progress",
        ],
    )
    assert r.exit_code == 1 and "needs at least 25 rows" in " ".join(r.stderr.split()), r.stderr


def _export_like(path, table) -> int:
    """A `mdxfer campaign export` CSV (its real columns) whose done rows carry the table's
    targets as E_int, with failed, pending and running rows, and a done row without E_int."""
    import csv

    from mdxfer.campaign.runner import EXPORT_COLUMNS

    df = pd.read_csv(table)
    rows = [
        {"smiles": s, "status": "done", "E_int": y, "E_int_stderr": 0.1, "name": f"m{k}"}
        for k, (s, y) in enumerate(zip(df.smiles, df.target))
    ]
    rows[3]["E_int"] = ""  # done but no value
    rows += [
        {
            "smiles": "CCCCCCCCCC",
            "status": "failed",
            "error": "LAMMPS: lost atoms",
            "failed_stage": "nvt",
        },
        {"smiles": "c1ccccc1O", "status": "failed", "error": "timeout"},
        {"smiles": "CCOCC", "status": "pending"},
        {"smiles": "CC(C)O", "status": "running"},
        {"smiles": "C1CC", "status": "failed", "error": "RDKit cannot parse"},
    ]  # never checked
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=EXPORT_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return len(df) - 1


def test_campaign_export_feeds_transfer_as_it_is(base_dir, table, tmp_path):
    from typer.testing import CliRunner

    from mdxfer.cli.main import app

    export = tmp_path / "results.csv"
    n_done = _export_like(export, table)
    t = read_target_table(export, target_col="E_int")
    assert len(t) == n_done and t.attrs["skipped"] == {"status": 5, "missing_target": 1}
    assert t.line.tolist()[:4] == [2, 3, 4, 6]  # line 5: done, no E_int
    out = tmp_path / "eint"
    r = CliRunner().invoke(
        app,
        [
            "transfer",
            "--base",
            str(base_dir),
            "--data",
            str(export),
            "--out",
            str(out),
            "--target-col",
            "E_int",
            "--unit",
            "kcal/mol",
            "--mode",
            "ridge",
            "--folds",
            "3",
            "--repeats",
            "1",
            "--epochs",
            "30",
            "--patience",
            "10",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    text = " ".join((r.stdout + r.stderr).split())
    assert "skipped 5 row(s) whose status is not done and 1 row(s) without a target value" in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == n_done and m["rows_skipped"] == {"status": 5, "missing_target": 1}
    assert len(pd.read_csv(out / "cv_predictions.csv")) == n_done
    # the model folder records how it was made: arguments, log, versions
    args = json.loads((out / "args.json").read_text())
    assert args["command"] == "mdxfer transfer" and args["params"]["target_col"] == "E_int"
    assert "skipped 5 row(s)" in (out / "mdxfer.log").read_text()
    env = torch.load(out / "ensemble.pt", weights_only=False)["provenance"]["environment"]
    assert {"rdkit", "openbabel", "torch", "torch_geometric"} <= set(env)


def test_text_targets_are_still_errors_but_empty_ones_are_skipped(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("smiles,target\nCCO,1\nCCC,\nCCCC,NaN\nO,4\nN,5\nCN,6\nCO,7\n")
    t = read_target_table(p)
    assert (
        t.smiles.tolist() == ["CCO", "O", "N", "CN", "CO"]
        and t.attrs["skipped"]["missing_target"] == 2
    )
    p.write_text("smiles,target\nCCO,1\nCCC,inf\nCCCC,abc\nO,4\nN,5\nCN,6\n")
    with pytest.raises(
        DataError, match=r"line 3: target 'inf' is not a number; line 4: target 'abc'"
    ):
        read_target_table(p)
