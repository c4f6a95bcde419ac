"""Ranking ``.smi`` files: format, ordering, bad lines, CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mdxfer.errors import DataError
from mdxfer.learn.data import qm9
from mdxfer.learn.ensemble import load_ensemble, predict
from mdxfer.learn.pretrain import PretrainSettings, pretrain
from mdxfer.learn.rank import rank_file, rank_smiles, read_smi
from mdxfer.learn.transfer import TransferSettings, transfer

MDXFER = str(Path(sys.executable).parent / "mdxfer")
COLUMNS = [
    "rank",
    "smiles",
    "name",
    "mean",
    "std",
    "in_domain",
    "domain_note",
    "md_supported",
    "md_note",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    pretrain(
        root / "base",
        PretrainSettings(n=300, n_val=60, preset="paper", max_epochs=25),
        progress=False,
        use_cache=False,
    )
    df = qm9.load_qm9()
    rows = df[~df.qm9_index.isin(set(qm9.subset(300).qm9_index))].sample(20, random_state=8)
    table = root / "t.csv"
    rows[["SMILES", "Polarizability_bohr3"]].set_axis(["smiles", "target"], axis=1).to_csv(
        table, index=False
    )
    transfer(
        root / "base",
        table,
        root / "ens",
        TransferSettings(mode="ridge", compare=("ridge",), folds=4, repeats=1),
        progress=False,
    )
    return root


@pytest.fixture(scope="module")
def smi_file(tmp_path_factory):
    sub = qm9.subset(60, seed=21)
    lines = ["smiles name", "# a comment line", ""]
    for k, (s, i) in enumerate(zip(sub.SMILES, sub.qm9_index)):
        lines.append(f"{s}\tqm9 {i}" if k % 2 else f"{s} qm9_{i}")
        if k == 10:
            lines.append("C1CC unclosed_ring")  # line 15
        if k == 20:
            lines.append("this_is_not_smiles")  # line 26
    lines.append("ClCCl  dichloromethane")
    lines.append("CCCC")  # no name
    path = tmp_path_factory.mktemp("smi") / "cands.smi"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_smi_format(smi_file):
    recs = list(read_smi(smi_file))
    assert len(recs) == 64  # 60 + 2 bad + 2 extra; header, comment and blank skipped
    assert recs[0].line == 4 and recs[0].name.startswith("qm9_")
    assert recs[1].name.startswith("qm9 ")  # a name may contain spaces (tab-separated)
    assert recs[-2].name == "dichloromethane" and recs[-1].name == ""
    assert [r.line for r in recs if r.smiles == "C1CC"] == [15]
    assert [r.line for r in recs if r.smiles == "this_is_not_smiles"] == [26]


def test_rank_file_orders_and_reports_bad_lines(models, smi_file, tmp_path):
    bad = []
    out = tmp_path / "ranked.csv"
    r = rank_file(
        smi_file, models / "ens", out, progress=False, on_bad=lambda ln, s: bad.append((ln, s))
    )
    assert bad == [(15, "C1CC"), (26, "this_is_not_smiles")]
    assert r["ranked"] == 62 and r["written"] == 62 and r["bad_lines"] == 2
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns) == COLUMNS
    assert df["rank"].tolist() == list(range(1, 63))
    assert np.all(np.diff(df["mean"].to_numpy()) <= 0)  # best (highest) first
    assert (df["std"] > 0).all()  # a 4-member ensemble disagrees a little
    dcm = df[df.name == "dichloromethane"].iloc[0]
    assert not dcm.in_domain and dcm.domain_note == "elements Cl"
    assert df[df.name != "dichloromethane"].in_domain.all()
    # same numbers as the library's predict()
    ens = load_ensemble(models / "ens")
    mean, std = predict(ens, df.smiles.tolist())
    assert np.allclose(mean, df["mean"], rtol=1e-5) and np.allclose(std, df["std"], rtol=1e-3)


def test_minimize_and_top(models, smi_file, tmp_path):
    out = tmp_path / "low.csv"
    rank_file(
        smi_file, models / "ens", out, maximize=False, top=5, progress=False, on_bad=lambda *a: None
    )
    df = pd.read_csv(out)
    assert len(df) == 5 and np.all(np.diff(df["mean"]) >= 0)
    full = tmp_path / "all.csv"
    rank_file(smi_file, models / "ens", full, progress=False, on_bad=lambda *a: None)
    everything = pd.read_csv(full)
    assert df["mean"].iloc[0] == pytest.approx(everything["mean"].min())


def test_pretraining_folder_ranks_by_source_property(models):
    ens = load_ensemble(models / "base")
    assert ens.mode == "pretrained" and len(ens.members) == 1
    r = rank_smiles(ens, ["C", "CCCCCCO", "CC(C)(C)C(C)(C)C"], ["methane", "hexanol", "octane_iso"])
    order = [r.names[i] for i in r.order(maximize=True)]
    assert order[-1] == "methane"  # the smallest heat capacity, cal/(mol K)
    assert np.all(r.std == 0)


def test_cli_rank(models, smi_file, tmp_path):
    out = tmp_path / "cli.csv"
    res = subprocess.run(
        [
            MDXFER,
            "rank",
            str(smi_file),
            "--model",
            str(models / "ens"),
            "--out",
            str(out),
            "--top",
            "3",
            "--minimize",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert f"{smi_file}:15: cannot parse SMILES 'C1CC'" in res.stderr.replace("\n", "")
    assert ":26:" in res.stderr and "Traceback" not in res.stderr
    df = pd.read_csv(out)
    assert list(df.columns) == COLUMNS and len(df) == 3 and np.all(np.diff(df["mean"]) >= 0)


def test_cli_errors_are_one_paragraph(models, tmp_path):
    res = subprocess.run(
        [MDXFER, "rank", str(tmp_path / "none.smi"), "--model", str(models / "ens")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1 and "does not exist" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "one.smi").write_text("CCO\n")  # an existing file: the model folder is the error
    res = subprocess.run(
        [MDXFER, "rank", str(tmp_path / "one.smi"), "--model", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1 and "neither" in res.stderr and "Traceback" not in res.stderr
    bad_table = tmp_path / "bad.csv"
    bad_table.write_text("SMILES,y\nCCO,1\n")
    res = subprocess.run(
        [
            MDXFER,
            "transfer",
            "--base",
            str(models / "base"),
            "--data",
            str(bad_table),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1 and "--smiles-col" in res.stderr and "Traceback" not in res.stderr


def test_missing_candidates_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"nope\.smi does not exist"):
        list(read_smi(tmp_path / "nope.smi"))


def _cli(*args):
    from typer.testing import CliRunner

    from mdxfer.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_what_md_refuses_is_flagged_or_skipped(models, tmp_path):
    smi = tmp_path / "c.smi"
    smi.write_text(
        "CCO ethanol\nCCO.O wet\n[CH3] methyl\n[Na+].[Cl-] salt\nCC(=O)[O-] acetate\n"
        "CCÖ umlaut\nCCCC\nC[SiH3] silane\n"
    )
    out = tmp_path / "flag.csv"
    r = _cli("rank", smi, "--model", models / "ens", "--out", out, "--no-progress")
    assert r.exit_code == 0, (r.stderr, r.exception)
    err = " ".join(r.stderr.split())
    assert f"{smi}:6: cannot parse SMILES 'CCÖ'" in err  # not ranked as ethane
    assert "5 flagged md_supported = False" in r.stdout
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns) == COLUMNS and len(df) == 7
    df = df.set_index("smiles")
    assert df.loc["CCO", "md_supported"] and df.loc["CCO", "md_note"] == ""
    assert df.loc["CCCC", "md_supported"]
    for s, why in {
        "CCO.O": "several fragments",
        "[CH3]": "radical",
        "[Na+].[Cl-]": "Na",
        "CC(=O)[O-]": "net charge -1",
        "C[SiH3]": "Si",
    }.items():
        assert not df.loc[s, "md_supported"] and why in df.loc[s, "md_note"], (s, df.loc[s])
    out = tmp_path / "skip.csv"
    r = _cli(
        "rank",
        smi,
        "--model",
        models / "ens",
        "--out",
        out,
        "--unsupported",
        "skip",
        "--no-progress",
    )
    assert r.exit_code == 0, (r.stderr, r.exception)
    assert f"{smi}:2: 'CCO.O' cannot be simulated (several fragments); skipped" in " ".join(
        r.stderr.split()
    )
    assert "5 skipped as unsupported by MD" in r.stdout
    df = pd.read_csv(out, keep_default_na=False)
    assert set(df.smiles) == {"CCO", "CCCC"} and df.md_supported.all()


def test_nothing_to_rank_is_an_error(models, tmp_path):
    ens = models / "ens"
    cases = {
        "empty.smi": b"",
        "comments.smi": b"# only a comment\n\n",
        "binary.smi": bytes(range(256)) * 8,
        "table.csv": b"smiles,target\nXX,1\nC1CC,2\n",
        "latin1.smi": "CCÖ\nCCé\n".encode("latin-1"),
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        out = tmp_path / f"{name}.out.csv"
        r = _cli("rank", path, "--model", ens, "--out", out, "--no-progress")
        text = " ".join((r.stdout + r.stderr).split())
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (name, text, r.exception)
        assert ("Nothing to rank" in text or "binary" in text) and str(path) in text, (name, text)
        assert not out.exists(), name
    with pytest.raises(DataError, match="Nothing to rank"):
        rank_file(tmp_path / "empty.smi", ens, tmp_path / "x.csv", progress=False)


def test_top_must_be_at_least_one(models, smi_file, tmp_path):
    for top in ("0", "-1"):
        r = _cli(
            "rank", smi_file, "--model", models / "ens", "--out", tmp_path / "t.csv", "--top", top
        )
        assert r.exit_code == 2 and "--top" in r.stderr, r.stderr
    with pytest.raises(DataError, match="top must be a positive integer"):
        rank_file(smi_file, models / "ens", tmp_path / "t.csv", top=0, progress=False)
    assert not (tmp_path / "t.csv").exists()


# ------------------------------------------------------------------------------ CSV input


def test_csv_rank_keeps_its_columns(models, tmp_path):
    """A chemprop-style CSV: SMILES column named by --smiles-col, every other column written
    back (in order, quoted commas intact) before the prediction columns."""
    sub = qm9.subset(12, seed=5)
    rows = ["id,SMILES,name,mean,note"]  # 'mean' collides with a prediction column
    for k, (s, i) in enumerate(zip(sub.SMILES, sub.qm9_index)):
        rows.append(f'{k},{s},qm9_{i},{k * 0.5},"note, with comma {k}"')
    rows.append("99,C1CC,broken,0,bad")  # line 14: unparsable, reported and skipped
    path = tmp_path / "cands.csv"
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "ranked.csv"
    r = _cli(
        "rank",
        path,
        "--model",
        models / "ens",
        "--out",
        out,
        "--smiles-col",
        "SMILES",
        "--no-progress",
    )
    assert r.exit_code == 0, (r.stderr, r.exception)
    assert f"{path}:14: cannot parse SMILES 'C1CC'" in " ".join(r.stderr.split())
    assert "ranked 12 molecules (1 unparsable" in r.stdout
    df = pd.read_csv(out, keep_default_na=False, dtype=str)
    assert list(df.columns) == ["rank", "smiles", "id", "name", "input_mean", "note", *COLUMNS[3:]]
    assert len(df) == 12 and sorted(df.id, key=int) == [str(k) for k in range(12)]
    for _, row in df.iterrows():
        k = int(row.id)
        assert row.smiles == sub.SMILES.iloc[k] and row["name"] == f"qm9_{sub.qm9_index.iloc[k]}"
        assert row.input_mean == str(k * 0.5) and row.note == f"note, with comma {k}"
    # the same molecules ranked from a .smi give the same predictions
    smi = tmp_path / "same.smi"
    smi.write_text("".join(f"{s} x{k}\n" for k, s in enumerate(sub.SMILES)))
    rank_file(smi, models / "ens", tmp_path / "smi.csv", progress=False)
    a = pd.read_csv(out).set_index("smiles")["mean"]
    b = pd.read_csv(tmp_path / "smi.csv").set_index("smiles")["mean"]
    assert np.allclose(a.sort_index(), b.sort_index())


def test_csv_without_the_smiles_column_says_which_option(models, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("mol,name\nCCO,ethanol\n")
    r = _cli("rank", path, "--model", models / "ens", "--out", tmp_path / "r.csv", "--no-progress")
    text = " ".join((r.stdout + r.stderr).split())
    assert r.exit_code == 1 and "no column 'smiles'" in text and "'mol', 'name'" in text
    assert "--smiles-col" in text and "Traceback" not in text
    # a .smi-named file holding a CSV with the header is read as CSV (not 'smiles,name' as a SMILES)
    odd = tmp_path / "c.smi"
    odd.write_text("smiles,name\nCCO,ethanol\nCCCO,propanol\n")
    assert [(r.line, r.smiles, r.name) for r in read_smi(odd)] == [
        (2, "CCO", "ethanol"),
        (3, "CCCO", "propanol"),
    ]
