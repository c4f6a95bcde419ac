"""Presets, short pretraining on real QM9 rows, resume, and save/load across processes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from rdkit import Chem

from mdxfer.errors import DataError
from mdxfer.learn.data import qm9
from mdxfer.learn.featurize import featurize_mols, featurize_smiles
from mdxfer.learn.models import GraphModel
from mdxfer.learn.nn.graph import PRESETS, build_model, predict_scaled, preset
from mdxfer.learn.pretrain import PretrainSettings, pretrain

SMALL = dict(n=300, n_val=60)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    metrics = pretrain(
        out,
        PretrainSettings(**SMALL, preset="paper", max_epochs=40),
        progress=False,
        use_cache=False,
    )
    return out, metrics


def test_paper_preset_is_the_seeds_architecture():
    from torch_geometric.nn import GCNConv

    cfg = PRESETS["paper"]
    assert cfg.lr == 1e-3 and cfg.lr_schedule == "constant"
    m = build_model(cfg)
    convs = [x for x in m.encoder.modules() if isinstance(x, GCNConv)]
    linears = [x for x in m.head if isinstance(x, torch.nn.Linear)]
    relus = [x for x in m.head if isinstance(x, torch.nn.ReLU)]
    assert len(convs) == 2  # 2 graph convolutions
    assert len(linears) == 4 and len(relus) == 3  # 3 fully connected layers + output
    assert linears[-1].out_features == 1
    assert convs[0].in_channels == 74  # DGL-LifeSci's 74-bit atom vector


def test_preset_overrides_and_unknown():
    assert preset("default", max_epochs=7).max_epochs == 7
    assert preset("default", max_epochs=None).max_epochs == PRESETS["default"].max_epochs
    with pytest.raises(DataError, match="Unknown model preset 'nope'"):
        preset("nope")


@pytest.mark.parametrize("name", list(PRESETS))
def test_prediction_does_not_depend_on_atom_order(name):
    model = build_model(PRESETS[name], seed=1).eval()
    mol = Chem.MolFromSmiles("OCC(=O)Nc1ccncc1")
    perm = list(np.random.default_rng(0).permutation(mol.GetNumAtoms()))
    shuffled = Chem.RenumberAtoms(mol, [int(i) for i in perm])
    a = predict_scaled(model, featurize_mols([mol]))
    b = predict_scaled(model, featurize_mols([shuffled]))
    assert a.shape == (1,)
    assert np.allclose(a, b, atol=1e-5)


def test_short_pretraining_beats_the_mean(pretrained):
    out, m = pretrained
    # a mean predictor has R² <= 0 on the validation molecules; 40 epochs on 240 molecules
    # must do clearly better
    assert m["r2_val"] > 0.5 and m["r2_train"] > 0.5
    assert m["mae_val"] < 0.7 * float(np.mean(np.abs(qm9.subset(300)[qm9.CV_COLUMN] - 31.6)))
    saved = json.loads((out / "metrics.json").read_text())
    assert {"r2_train", "r2_val", "mae_val"} <= set(saved)
    assert saved["r2_val"] == pytest.approx(m["r2_val"])
    assert (out / "parity.png").stat().st_size > 10_000
    assert (out / "history.csv").read_text().count("\n") == m["epochs_run"] + 1


def test_model_file_has_provenance(pretrained):
    out, m = pretrained
    raw = torch.load(out / "model.pt", weights_only=True)
    assert raw["featurizer"].startswith("dgllife-canonical")
    assert raw["config"]["preset"] == "paper"
    assert raw["target"]["name"] == qm9.CV_COLUMN and raw["target"]["unit"] == "cal/(mol K)"
    sp = qm9.split(**SMALL)
    assert raw["target"]["mean"] == pytest.approx(sp.train[qm9.CV_COLUMN].mean())
    data = raw["provenance"]["data"]
    assert (
        data["data_hash"] == sp.data_hash and data["split_seed"] == 0 and data["subset_seed"] == 0
    )
    assert data["domain"]["max_heavy_atoms"] <= 9 and set(data["domain"]["elements"]) <= {
        1,
        6,
        7,
        8,
        9,
    }


def test_reload_in_fresh_process_gives_identical_predictions(pretrained):
    out, _ = pretrained
    smiles = list(qm9.subset(25, seed=11).SMILES)
    here = GraphModel.load(out).predict(smiles)
    code = (
        "import json,sys; from mdxfer.learn.models import GraphModel, set_threads; set_threads(1);"
        "m = GraphModel.load(sys.argv[1]); s = json.loads(sys.argv[2]);"
        "print(json.dumps([float(v).hex() for v in m.predict(s)]))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(out), json.dumps(smiles)],
        capture_output=True,
        text=True,
        check=True,
    )
    there = np.array([float.fromhex(v) for v in json.loads(res.stdout)])
    assert np.array_equal(here, there)
    assert np.all(np.isfinite(here)) and np.std(here) > 0.5


def test_resume_continues_exactly(tmp_path):
    s = PretrainSettings(**SMALL, preset="default", max_epochs=3)
    pretrain(tmp_path / "a", s, progress=False, use_cache=False)
    assert (tmp_path / "a" / "checkpoint.pt").exists()
    s6 = PretrainSettings(**SMALL, preset="default", max_epochs=6)
    resumed = pretrain(tmp_path / "a", s6, progress=False, use_cache=False)
    pretrain(tmp_path / "b", s6, progress=False, use_cache=False)
    assert resumed["epochs_run"] == 6

    def rows(folder):  # all columns but the wall time
        return [
            ln.split(",")[:-1]
            for ln in (tmp_path / folder / "history.csv").read_text().splitlines()
        ]

    assert len(rows("a")) == 7 and rows("a") == rows("b")
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    pretrain(
        tmp_path,
        PretrainSettings(**SMALL, preset="paper", max_epochs=1),
        progress=False,
        use_cache=False,
    )
    with pytest.raises(DataError, match="different run"):
        pretrain(
            tmp_path,
            PretrainSettings(**SMALL, preset="paper", max_epochs=2, seed=1),
            progress=False,
            use_cache=False,
        )
    # --restart overwrites
    m = pretrain(
        tmp_path,
        PretrainSettings(**SMALL, preset="paper", max_epochs=2, seed=1),
        resume=False,
        progress=False,
        use_cache=False,
    )
    assert m["epochs_run"] == 2 and m["seed"] == 1


def test_unparsable_smiles_predict_nan(pretrained):
    out, _ = pretrained
    p = GraphModel.load(out).predict(["CCO", "xyz", "CC"])
    assert np.isfinite(p[0]) and np.isnan(p[1]) and np.isfinite(p[2])


def test_missing_model_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="No model"):
        GraphModel.load(tmp_path)


def test_featurize_then_predict_batches_consistently(pretrained):
    out, _ = pretrained
    m = GraphModel.load(out)
    smiles = list(qm9.subset(40, seed=12).SMILES)
    g = featurize_smiles(smiles).graphs
    whole = predict_scaled(m.model, g, batch_size=4096)
    pieces = predict_scaled(m.model, g, batch_size=7)
    assert np.allclose(whole, pieces, atol=1e-5)


def test_pretrain_on_the_users_own_table(tmp_path):
    """`pretrain --data TABLE.csv --target-col C`: the same outputs as QM9 pretraining, the
    rows it cannot use left out and counted, the table recorded in the model's provenance."""
    import json

    from typer.testing import CliRunner

    from mdxfer.cli.main import app
    from mdxfer.learn.data import qm9
    from mdxfer.learn.ensemble import load_ensemble, predict

    df = qm9.subset(400, seed=3)[[qm9.SMILES_COLUMN, "Polarizability_bohr3"]]
    rows = [f"{s},{y}" for s, y in zip(df[qm9.SMILES_COLUMN], df["Polarizability_bohr3"])]
    rows += ["C1CC(,12.0", "CCO,", "CCN,not-a-number"]  # 3 rows it cannot use
    table = tmp_path / "alpha.csv"
    table.write_text("smiles,alpha\n" + "\n".join(rows) + "\n")
    out = tmp_path / "own"
    r = CliRunner().invoke(
        app,
        [
            "pretrain",
            "--data",
            str(table),
            "--target-col",
            "alpha",
            "--unit",
            "bohr^3",
            "--out",
            str(out),
            "--epochs",
            "30",
            "--preset",
            "paper",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_train"] + m["n_val"] == 400 and m["n_val"] == 80  # all usable rows, a fifth
    assert m["skipped_rows"] == 3 and m["data_source"].startswith("table alpha.csv")
    assert m["target"] == "alpha" and m["unit"] == "bohr^3"
    assert m["r2_val"] > 0.3  # polarisability is easy for a graph network
    ens = load_ensemble(out)
    assert ens.base.provenance["data"]["source"] == m["data_source"]
    mean, _ = predict(ens, ["CCCCO"])
    assert np.isfinite(mean).all()
    # too few usable rows: a clear error naming the table
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("smiles,alpha\nCCO,1\nCCC,2\n")
    r = CliRunner().invoke(
        app,
        [
            "pretrain",
            "--data",
            str(tiny),
            "--target-col",
            "alpha",
            "--out",
            str(tmp_path / "t"),
            "--no-progress",
        ],
    )
    assert r.exit_code != 0 and "usable rows" in r.output


def test_a_model_from_another_featuriser_is_refused_by_every_reader(pretrained, tmp_path):
    """A model.pt saved by an mdxfer with another atom featuriser would silently predict
    garbage: `GraphModel.load`, `transfer`'s loader and `rank` refuse it, naming both
    versions and what to do."""
    from typer.testing import CliRunner

    from mdxfer.cli.main import app
    from mdxfer.learn.ensemble import load_ensemble
    from mdxfer.learn.models import read_torch_file, save_torch_atomic

    out, _ = pretrained
    d = read_torch_file(out / "model.pt")
    d["featurizer"] = "canonical-74/old"
    folder = tmp_path / "old"
    folder.mkdir()
    save_torch_atomic(d, folder / "model.pt")
    with pytest.raises(DataError, match="canonical-74/old.*Retrain"):
        GraphModel.load(folder / "model.pt")
    with pytest.raises(DataError, match="canonical-74/old"):
        load_ensemble(folder)
    (tmp_path / "c.smi").write_text("CCO\n")
    r = CliRunner().invoke(
        app,
        ["rank", str(tmp_path / "c.smi"), "--model", str(folder), "--out", str(tmp_path / "r.csv")],
    )
    assert r.exit_code != 0 and "canonical-74/old" in r.output and "Traceback" not in r.output
