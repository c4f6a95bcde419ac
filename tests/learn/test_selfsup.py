"""Self-supervised pretraining (masked atoms, motifs): element weights, masking, motif labels, a short real
run on QM9 molecules whose encoder seeds a supervised model, and the SMILES-file input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mdxfer.errors import DataError
from mdxfer.learn.featurize import ATOM_TYPES, featurize_smiles
from mdxfer.learn.models import GraphModel
from mdxfer.learn.nn.graph import build_model, preset
from mdxfer.learn.selfsup import (
    ELEMENT_CLASSES,
    OTHER,
    SelfSupSettings,
    element_classes,
    element_counts,
    element_weights,
    mask_atoms,
    masked_batch,
    motif_labels,
    read_smiles_file,
    selfsup,
)
from mdxfer.learn.training import load_encoder_weights

torch.set_num_threads(1)


# ---------------------------------------------------------------- element weights


def test_inverse_weights_follow_counts():
    counts = np.array([700, 100, 150, 0, 50])
    w = element_weights(counts, "inverse")
    assert w[0] / w[1] == pytest.approx(counts[1] / counts[0])
    assert w[2] / w[4] == pytest.approx(counts[4] / counts[2])
    assert w[3] == 0.0
    assert np.sum(counts * w) == pytest.approx(counts.sum())  # count-weighted mean 1
    # each present class then carries the same total weight
    assert np.allclose((counts * w)[counts > 0], counts.sum() / 4)


def test_sqrt_and_none_weights():
    counts = np.array([400, 100, 0, 25])
    w = element_weights(counts, "sqrt")
    assert w[0] / w[1] == pytest.approx(np.sqrt(100 / 400))
    assert w[1] / w[3] == pytest.approx(np.sqrt(25 / 100))
    assert w[2] == 0.0 and np.sum(counts * w) == pytest.approx(counts.sum())
    assert element_weights(counts, "none").tolist() == [1.0, 1.0, 0.0, 1.0]
    assert element_weights(np.zeros(3), "inverse").tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(DataError, match="Unknown balance 'median'"):
        element_weights(counts, "median")


def test_element_classes_and_counts():
    f = featurize_smiles(["CCO", "C[Se]C", "[Ar]"])  # Ar is outside DGL's list -> "other"
    cls = element_classes(f.graphs.x)
    assert [ELEMENT_CLASSES[c] for c in cls] == ["C", "C", "O", "C", "Se", "C", "other"]
    counts = element_counts(f.graphs)
    assert len(counts) == len(ATOM_TYPES) + 1 and counts[OTHER] == 1
    assert counts[ATOM_TYPES.index("C")] == 4 and counts.sum() == 7


# ---------------------------------------------------------------- masking


def test_mask_picks_at_least_one_atom_per_graph_and_zeros_rows():
    smiles = ["C", "CC", "CCO", "c1ccccc1", "CC(=O)Nc1ccccc1", "O"] * 20
    g = featurize_smiles(smiles).graphs
    rng = np.random.default_rng(3)
    mask = mask_atoms(g.node_ptr, 0.15, rng)
    per_graph = np.add.reduceat(mask.astype(int), g.node_ptr[:-1])
    assert (per_graph >= 1).all()
    assert mask.sum() < 0.5 * len(mask)  # mostly a sparse mask, not everything
    big = mask_atoms(np.array([0, 100_000]), 0.15, np.random.default_rng(0))
    assert big.mean() == pytest.approx(0.15, abs=0.01)
    b = g.to_batch()
    before = b.x.clone()
    mb = masked_batch(b, mask)
    assert torch.all(mb.x[torch.from_numpy(mask)] == 0)
    assert torch.equal(mb.x[torch.from_numpy(~mask)], before[torch.from_numpy(~mask)])
    assert torch.equal(b.x, before)  # the original batch is untouched
    # seeded: the same generator state gives the same mask
    assert np.array_equal(mask_atoms(g.node_ptr, 0.15, np.random.default_rng(3)), mask)


# ---------------------------------------------------------------- motif labels


def test_motif_labels_of_known_molecules():
    y, names = motif_labels(["CC(=O)O", "c1ccccc1", "C1CC1C#N"], use_cache=False)
    have = [{names[j] for j in np.nonzero(row)[0]} for row in y]
    acid, benzene, nitrile = have
    assert {"fr_COO", "fr_C_O", "bond_double", "pair_C=O", "pair_C-O"} <= acid
    assert not any(n.startswith("ring") for n in acid) and "fr_benzene" not in acid
    assert {"fr_benzene", "ring6", "bond_aromatic", "pair_C:C"} <= benzene
    assert "fr_COO" not in benzene and "bond_double" not in benzene
    assert {"fr_nitrile", "ring3", "bond_triple", "pair_C#N"} <= nitrile and "ring6" not in nitrile


# ---------------------------------------------------------------- a short real run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("selfsup")
    m = selfsup(out, SelfSupSettings(n=1500, epochs=4, seed=1), progress=False, use_cache=False)
    return out, m


def test_run_writes_a_loadable_model(run):
    out, m = run
    tm = GraphModel.load(out)
    assert tm.scaler.name == "self-supervised" and tm.scaler.mean == 0.0 and tm.scaler.std == 1.0
    ss = tm.provenance["selfsup"]
    assert (
        ss["tasks"] == ["atom", "motif"]
        and ss["balance"] == "inverse"
        and ss["n_molecules"] == 1500
    )
    assert set(ss["element_counts"]) == {"C", "N", "O", "F"}  # QM9's heavy atoms
    assert ss["motif_names"] and len(ss["motif_names"]) == m["n_motifs"]
    assert len(ss["data_hash"]) == 64
    saved = json.loads((out / "metrics.json").read_text())
    for k in (
        "val_atom_acc",
        "val_atom_balanced_acc",
        "val_atom_per_class_acc",
        "val_motif_auc",
        "val_loss",
        "train_wall_s",
        "n_molecules",
    ):
        assert k in saved
    assert (out / "history.csv").read_text().count("\n") == 5
    # the encoder moved away from its initialisation
    fresh = build_model(preset("default"), seed=1)
    diffs = [
        float((a - b).abs().max())
        for (k, a), b in zip(
            tm.model.encoder.state_dict().items(), fresh.encoder.state_dict().values()
        )
        if a.dtype.is_floating_point
    ]
    assert max(diffs) > 1e-2


def test_encoder_seeds_a_supervised_model(run):
    out, _ = run
    sup = build_model(preset("default"), seed=7)
    digest = load_encoder_weights(sup, out)
    src = GraphModel.load(out).model.encoder.state_dict()
    assert len(digest) == 64
    assert all(torch.equal(v, sup.encoder.state_dict()[k]) for k, v in src.items())
    with pytest.raises(DataError, match="does not match this network"):
        load_encoder_weights(build_model(preset("paper")), out)


def test_weighted_masked_atom_training_learns(run):
    out, m = run
    # chance for balanced accuracy with always-carbon is 1 / (number of classes present)
    assert m["val_atom_balanced_acc"] > m["val_atom_majority_balanced_acc"] + 0.15
    assert m["val_motif_auc"] > 0.6
    rows = (out / "history.csv").read_text().splitlines()
    head = rows[0].split(",")
    first, last = (dict(zip(head, map(float, r.split(",")))) for r in (rows[1], rows[-1]))
    assert last["train_atom_loss"] < first["train_atom_loss"]
    assert last["train_motif_loss"] < first["train_motif_loss"]


def test_same_command_resumes_and_other_settings_refuse(run):
    out, m = run
    again = selfsup(out, SelfSupSettings(n=1500, epochs=4, seed=1), progress=False, use_cache=False)
    assert again["epochs_run"] == 4 and again["val_loss"] == pytest.approx(m["val_loss"])
    with pytest.raises(DataError, match="different run"):
        selfsup(
            out,
            SelfSupSettings(n=1500, epochs=4, seed=1, balance="none"),
            progress=False,
            use_cache=False,
        )


def test_bad_settings_are_data_errors(tmp_path):
    for s, why in (
        (SelfSupSettings(n=50, tasks=("atom", "charge")), "Unknown task"),
        (SelfSupSettings(n=50, balance="log"), "Unknown balance 'log'"),
        (SelfSupSettings(n=0), "No molecules"),
    ):
        with pytest.raises(DataError, match=why):
            selfsup(tmp_path, s, progress=False, use_cache=False)


# ---------------------------------------------------------------- SMILES files


def test_read_smiles_file_reports_bad_lines(tmp_path):
    smi = tmp_path / "mols.smi"
    smi.write_text("smiles name\nCCO ethanol\n# comment\nC1CC not_closed\n\nc1ccccc1\n")
    heard = []
    good, bad = read_smiles_file(smi, on_bad=lambda line, s: heard.append(line))
    assert good == ["CCO", "c1ccccc1"] and bad == [(4, "C1CC")] and heard == [4]
    csv = tmp_path / "mols.csv"
    csv.write_text("name,SMILES\na,CCN\nb,xyz\nc,CC=O\n")
    good, bad = read_smiles_file(csv)
    assert good == ["CCN", "CC=O"] and bad == [(3, "xyz")]
    nothing = tmp_path / "bad.smi"
    nothing.write_text("xx\nC1CC\n")
    with pytest.raises(DataError, match="no SMILES"):
        read_smiles_file(nothing)
    # a CSV without a 'smiles' column is an error saying what to do (no silent first column)
    other = tmp_path / "other.csv"
    other.write_text("mol,name\nCCO,a\nCCN,b\n")
    with pytest.raises(
        DataError,
        match=r"other\.csv has no column 'smiles'.*'mol', 'name'.*"
        r"Call the SMILES column 'smiles'",
    ):
        read_smiles_file(other)


def test_cli_reports_the_bad_line_and_trains_on_the_rest(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mdxfer.cli.main import app

    monkeypatch.setenv("MDXFER_CACHE_DIR", str(tmp_path / "cache"))
    smi = tmp_path / "extra.smi"
    mols = [
        "CCO",
        "CCN",
        "CC(=O)O",
        "c1ccccc1",
        "CCCl",
        "CCS",
        "C1CC1",
        "CC#N",
        "OCCO",
        "CNC",
        "c1ccncc1",
        "CC(C)O",
        "FC(F)F",
        "CCOC",
    ]
    smi.write_text("\n".join(mols[:3] + ["not_a_smiles"] + mols[3:]) + "\n")
    out = tmp_path / "ssl"
    res = CliRunner().invoke(
        app,
        [
            "selfsup",
            "--out",
            str(out),
            "--n",
            "0",
            "--smiles",
            str(smi),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"{smi}:4:" in res.output and "not_a_smiles" in res.output
    prov = GraphModel.load(out).provenance["selfsup"]
    assert prov["n_molecules"] == len(mols) and {"Cl", "S"} <= set(prov["element_counts"])
    res = CliRunner().invoke(
        app,
        [
            "selfsup",
            "--out",
            str(tmp_path / "x"),
            "--n",
            "0",
            "--smiles",
            str(tmp_path / "missing.smi"),
        ],
    )
    assert res.exit_code == 1 and "does not exist" in res.output
