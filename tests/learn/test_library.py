"""Model library, fingerprint source models, shotgun transfer and the held-out benchmarks.

A tiny real library (two QM9 properties, one graph and one fingerprint network each, a few
epochs on 400 molecules) is built once per module."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mdxfer.errors import DataError
from mdxfer.learn.data import qm9
from mdxfer.learn.ensemble import Committee, load_ensemble, predict
from mdxfer.learn.heldout import (
    APPROACHES,
    benchmark_data,
    default_approaches,
    extrapolation,
    qm9_sample,
    run_benchmark,
    small_data,
    summarize,
    threshold_split,
)
from mdxfer.learn.library import (
    LibrarySettings,
    build_library,
    check_table_columns,
    load_library,
    manifest_table,
    plan,
    random_fp_config,
    random_gnn_config,
    read_manifest,
)
from mdxfer.learn.models import FingerprintModel, load_source
from mdxfer.learn.shotgun import ShotgunSettings, score_candidates, shotgun_cv, shotgun_transfer

TINY = LibrarySettings(
    properties=("alpha", "mu"),
    gnn_per_property=1,
    fp_per_property=1,
    n=400,
    n_val=100,
    gnn_epochs=15,
    gnn_patience=15,
    fp_epochs=40,
    fp_patience=10,
    model_time_limit_s=60,
)
FAST = dict(cv=shotgun_cv(folds=3, repeats=1, max_epochs=400, patience=50))


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    out = tmp_path_factory.mktemp("library")
    build_library(out, TINY, jobs=1, progress=False)
    return out


@pytest.fixture(scope="module")
def held_out():
    """40 QM9 molecules outside the library's subset."""
    return _outside(40)


def _outside(n: int) -> pd.DataFrame:
    df = qm9.load_qm9()
    used = set(qm9.subset(TINY.n, TINY.seed, df)[qm9.SMILES_COLUMN])
    pool = df[~df[qm9.SMILES_COLUMN].isin(used)].sample(n, random_state=11)
    return pd.DataFrame(
        {
            "smiles": pool[qm9.SMILES_COLUMN].astype(str).to_numpy(),
            "alpha": pool["Polarizability_bohr3"].to_numpy(),
        }
    )


# ---------------------------------------------------------------------------------------------
# library
# ---------------------------------------------------------------------------------------------


def test_random_architectures_are_seeded_pyramids():
    a = random_gnn_config(np.random.default_rng(4))
    b = random_gnn_config(np.random.default_rng(4))
    assert a == b
    widths = [random_fp_config(np.random.default_rng(s)).widths for s in range(20)]
    assert len(set(widths)) > 10  # really random across seeds
    for w in widths + [random_gnn_config(np.random.default_rng(s)).fc for s in range(20)]:
        assert list(w) == sorted(w, reverse=True)  # pyramid: widths never grow
    names = [j["name"] for j in plan(TINY)]
    assert names == ["alpha-gnn-0", "alpha-fpmlp-0", "mu-gnn-0", "mu-fpmlp-0"]
    assert plan(TINY) == plan(TINY)
    twice = LibrarySettings(
        properties=("alpha", "Polarizability_bohr3"), gnn_per_property=1, fp_per_property=0
    )
    assert [j["name"] for j in plan(twice)] == [
        "alpha-gnn-0"
    ]  # a property named twice is built once


def test_manifest_round_trip(lib):
    m = read_manifest(lib)
    assert m["format"] == "mdxfer-library"
    assert [e["name"] for e in m["models"]] == [j["name"] for j in plan(TINY)]
    for e in m["models"]:
        assert e["kind"] in ("gnn", "fp_mlp")
        assert e["property"] in ("Polarizability_bohr3", "Dipole_debye")
        assert np.isfinite(e["metrics"]["r2_val"]) and e["metrics"]["mae_val"] > 0
        src = load_source(lib / e["path"])
        assert src.kind == e["kind"]
        assert src.scaler.name == e["property"]
    # shaped as documented: {"models": [{"name", "property", "kind", "metrics"}, ...]}
    raw = json.loads((lib / "manifest.json").read_text())
    assert {"name", "property", "kind", "metrics"} <= set(raw["models"][0])
    table = manifest_table(m)
    assert list(table.name) == [e["name"] for e in m["models"]]
    # CLI list
    from mdxfer.cli.main import app

    r = CliRunner().invoke(app, ["library", "list", str(lib)])
    assert r.exit_code == 0, r.output
    assert "alpha-fpmlp-0" in r.output and "mu-gnn-0" in r.output


def test_build_resumes_and_refuses_other_settings(lib):
    before = (lib / "alpha-gnn-0" / "model.pt").stat().st_mtime_ns
    m = build_library(lib, TINY, jobs=1, progress=False)  # nothing left to train
    assert len(m["models"]) == 4
    assert (lib / "alpha-gnn-0" / "model.pt").stat().st_mtime_ns == before
    with pytest.raises(DataError, match="other settings"):
        build_library(lib, LibrarySettings(properties=("cv",)), jobs=1, progress=False)


def test_bad_manifests_are_refused(tmp_path):
    with pytest.raises(DataError, match="no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(
        json.dumps({"models": [{"name": "../evil", "property": "x", "kind": "gnn", "metrics": {}}]})
    )
    with pytest.raises(DataError, match="plain folder name"):
        read_manifest(tmp_path)


def test_fingerprint_model_round_trip(lib, tmp_path):
    src = load_source(lib / "alpha-fpmlp-0")
    assert isinstance(src, FingerprintModel)
    smi = ["CCO", "c1ccccc1O", "CC(=O)N"]
    p = src.predict(smi)
    src.save(tmp_path / "model.pt")
    again = load_source(tmp_path)
    assert np.allclose(again.predict(smi), p)
    e = again.embed(None, smi)
    assert e.shape == (3, src.model.encoder.out_dim) and np.isfinite(e).all()


# ---------------------------------------------------------------------------------------------
# shotgun
# ---------------------------------------------------------------------------------------------


def test_shotgun_picks_the_source_that_is_right(lib, held_out):
    """The target is exactly what one library model predicts (an affine map of it): that model
    is the known right source and must come out on top."""
    right = load_source(lib / "mu-gnn-0")
    smiles = list(held_out.smiles)
    y = 3.0 * right.predict(smiles) + 1.0
    sources = load_library(lib)
    cands = score_candidates(sources, smiles, y, ShotgunSettings(**FAST))
    assert cands[0].name == "mu-gnn-0", [
        (c.name, c.mode, round(c.metrics["mae_val"], 4)) for c in cands
    ]
    # both of its modes come before any other model, and clearly ahead of the best other one
    assert {c.name for c in cands[:2]} == {"mu-gnn-0"}
    other = next(c for c in cands if c.name != "mu-gnn-0")
    assert cands[0].metrics["mae_val"] < 0.8 * other.metrics["mae_val"]
    # the ranking is by CV MAE
    maes = [c.metrics["mae_val"] for c in cands]
    assert maes == sorted(maes)
    assert len(cands) == 4 * 2 + 1


def test_shotgun_transfer_files_rank_and_committee(lib, held_out, tmp_path):
    data = tmp_path / "t.csv"
    held_out.rename(columns={"alpha": "target"}).to_csv(data, index=False)
    m = shotgun_transfer(lib, data, tmp_path / "one", ShotgunSettings(**FAST), progress=False)
    df = pd.read_csv(tmp_path / "one" / "candidates.csv")
    assert len(df) == m["n_candidates"] == 9
    assert df.chosen.sum() == 1 and df.loc[0, "chosen"]
    assert m["chosen"] == [f"{df.loc[0, 'model']}/{df.loc[0, 'mode']}"]
    ens = load_ensemble(tmp_path / "one")  # plugs into rank unchanged
    mean, std = predict(ens, ["CCO", "CCCCCC"])
    assert np.isfinite(mean).all() and mean[1] > mean[0]  # hexane is more polarisable
    # excluding the target's own property leaves only dipole models
    m2 = shotgun_transfer(
        lib,
        data,
        tmp_path / "excl",
        ShotgunSettings(exclude_properties=("alpha",), **FAST),
        progress=False,
    )
    assert all(c.startswith("mu-") or c.startswith("(direct)") for c in m2["chosen"])
    # a committee of the best three
    m3 = shotgun_transfer(
        lib, data, tmp_path / "three", ShotgunSettings(top=3, **FAST), progress=False
    )
    com = load_ensemble(tmp_path / "three")
    assert isinstance(com, Committee) and len(com.parts) == 3
    mean3, std3 = predict(com, ["CCO", "CCCCCC"])
    assert np.isfinite(mean3).all() and (std3 > 0).all()
    assert len(m3["chosen"]) == 3
    from mdxfer.learn.rank import rank_smiles

    ranked = rank_smiles(com, ["CCO", "CCCCCC", "not a smiles"])
    assert ranked.smiles == ["CCO", "CCCCCC"] and ranked.bad_lines == [(3, "not a smiles")]
    assert np.allclose(ranked.mean, mean3)
    # ... and into the active-learning loop's features (the kept source's frozen encoder)
    from mdxfer.al.surrogate import SurrogateSettings, compute_features

    for folder in ("one", "three"):
        ft = compute_features(
            ["CCO", "CCCCCC", "c1ccccc1"], SurrogateSettings(model_dir=str(tmp_path / folder))
        )
        assert ft.embedding.shape[0] == 3 and np.isfinite(ft.X).all()


def test_transfer_cli_library_and_argument_errors(lib, held_out, tmp_path):
    from mdxfer.cli.main import app

    data = tmp_path / "t.csv"
    held_out.rename(columns={"alpha": "target"}).to_csv(data, index=False)
    r = CliRunner().invoke(
        app,
        [
            "transfer",
            "--library",
            str(lib),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
            "--folds",
            "3",
            "--repeats",
            "1",
            "--modes",
            "ridge",
            "--top",
            "2",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "kept" in r.output and (tmp_path / "o" / "committee.json").exists()
    cands = pd.read_csv(tmp_path / "o" / "candidates.csv")
    assert set(cands["mode"]) == {"ridge", "fp_ridge"}  # --modes reached it (+ direct baseline)
    assert int(cands["chosen"].sum()) == 2  # and --top
    r = CliRunner().invoke(app, ["transfer", "--data", str(data), "--out", str(tmp_path / "p")])
    assert r.exit_code != 0 and "exactly one of --base" in r.output
    r = CliRunner().invoke(
        app,
        [
            "transfer",
            "--library",
            str(tmp_path),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "q"),
            "--no-progress",
        ],
    )
    assert r.exit_code == 1 and "not a model library" in r.output


# ---------------------------------------------------------------------------------------------
# benchmarks
# ---------------------------------------------------------------------------------------------


def test_threshold_split_has_no_leakage():
    smiles = ["CCO", "CCC", "CCCC", "c1ccccc1", "CCN", "CO", "OCC", "CCCl", "CC=O", "C#N"]
    y = np.array([1.0, 2.0, 3.0, 9.0, 4.0, 5.0, 8.5, 6.0, 7.0, 0.5])
    sp = threshold_split(smiles, y, threshold=8.0)
    assert sp.threshold == 8.0
    assert (y[sp.train] < 8.0).all() and (y[sp.test] >= 8.0).all()
    assert not set(sp.train) & set(sp.test)
    # "OCC" (8.5) is ethanol, already in training as "CCO": removed from the test side
    assert list(sp.dropped) == [6] and list(sp.test) == [3]
    q = threshold_split(smiles, y, quantile=0.5)
    assert len(q.train) == 5 and np.isclose(q.threshold, np.quantile(y, 0.5))
    with pytest.raises(DataError, match="choose a threshold"):
        threshold_split(smiles, y, threshold=100.0)


def test_extrapolation_and_small_data_run_on_real_molecules(lib):
    table = qm9_sample(150, seed=0, target="HOMO_LUMO_gap_au", exclude_library=lib)
    used = set(qm9.subset(TINY.n, TINY.seed)[qm9.SMILES_COLUMN])
    assert not set(table.smiles) & used  # outside the library's molecules
    df = extrapolation(
        table,
        ["direct_fp_ridge", "direct_gnn", "shotgun", "shotgun_top3"],
        quantile=0.8,
        library=str(lib),
        cv_folds=3,
        gnn_epochs=3,
    )
    assert list(df.approach) == ["direct_fp_ridge", "direct_gnn", "shotgun", "shotgun_top3"]
    assert df.chosen.iloc[3].count("+") == 2  # a committee of three candidates
    assert (df.n_train + df.n_test == 150).all()
    assert df.frac_above_threshold.between(0, 1).all() and np.isfinite(df.mae).all()
    sd = small_data(
        table,
        ["direct_fp_ridge", "single_source"],
        n_train=24,
        seeds=[0, 1],
        source=str(lib / "alpha-gnn-0"),
        cv_folds=3,
    )
    assert len(sd) == 4 and (sd.n_test == 150 - 24).all()
    s = summarize(sd)
    assert list(s.approach) == ["direct_fp_ridge", "single_source"] and (s.seeds == 2).all()


def test_benchmark_defaults_follow_the_inputs_given(tmp_path):
    """`mdxfer benchmark`'s defaults, in the library: the approaches whose inputs exist, the
    target's own property excluded, the user's table read as a target table."""
    assert default_approaches() == ["direct_fp_ridge", "direct_gnn", "fp_gp"]
    assert default_approaches(ssl="s") == [
        "direct_fp_ridge",
        "direct_gnn",
        "ssl_gnn",
        "ssl_ridge",
        "fp_gp",
    ]
    assert default_approaches(library="lib", ssl="s") == list(APPROACHES)
    assert "shotgun" not in default_approaches(source="src") and "auto" in default_approaches(
        source="src"
    )
    df = qm9.subset(40, seed=3)
    data = tmp_path / "t.csv"
    pd.DataFrame({"SMILES": df[qm9.SMILES_COLUMN], "y": df["HOMO_au"]}).to_csv(data, index=False)
    table, prop = benchmark_data(data, "gap", 0, 0, smiles_col="SMILES", target_col="y")
    assert prop is None and list(table.columns) == ["smiles", "target"] and len(table) == 40
    with pytest.raises(DataError, match="no column 'nope'"):
        benchmark_data(data, "gap", 0, 0, smiles_col="SMILES", target_col="nope")
    heard = []
    out = run_benchmark(
        "small-data",
        table,
        ["direct_fp_ridge"],
        [0, 1],
        prop="HOMO_au",
        log=heard.append,
        n_train=10,
    )
    assert list(out.seed) == [0, 1] and (out.n_test == 30).all()
    assert heard[0] == (
        "small-data: 40 molecules, target HOMO_au; approaches direct_fp_ridge; "
        "library models of HOMO_au excluded"
    )


def test_library_on_the_users_own_table(tmp_path):
    """`library build --data TABLE.csv --properties col1,col2`: the same library, sources from
    the user's columns (both kinds of model), recorded as such, usable by the shotgun."""
    from mdxfer.cli.main import app

    df = qm9.subset(300, seed=5)
    table = tmp_path / "mine.csv"
    pd.DataFrame(
        {
            "smiles": df[qm9.SMILES_COLUMN],
            "my alpha": df["Polarizability_bohr3"],
            "mygap": df["HOMO_LUMO_gap_au"],
        }
    ).to_csv(table, index=False)
    with open(table, "a") as fh:
        fh.write("C1CC(,1.0,2.0\n")  # one row RDKit cannot parse
    out = tmp_path / "lib"
    r = CliRunner().invoke(
        app,
        [
            "library",
            "build",
            "--out",
            str(out),
            "--data",
            str(table),
            "--properties",
            "my alpha,mygap",
            "--gnn",
            "1",
            "--fp",
            "1",
            "--gnn-epochs",
            "10",
            "--fp-epochs",
            "30",
            "--jobs",
            "1",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    m = read_manifest(out)
    assert sorted(x["property"] for x in m["models"]) == ["my alpha", "my alpha", "mygap", "mygap"]
    assert {x["name"] for x in m["models"]} >= {"my_alpha-gnn-0", "mygap-fpmlp-0"}
    for x in m["models"]:
        assert x["metrics"]["n_train"] + x["metrics"]["n_val"] == 300  # the bad row left out
    src = load_source(out / "mygap-fpmlp-0" / "model.pt")
    assert src.provenance["data"]["source"].startswith("table mine.csv")
    assert len(load_library(out)) == 4
    assert {m["property"] for m, _ in load_library(out, ("mygap",))} == {"my alpha"}
    # a column that is not there: a clear error before anything is trained
    r = CliRunner().invoke(
        app,
        [
            "library",
            "build",
            "--out",
            str(tmp_path / "x"),
            "--data",
            str(table),
            "--properties",
            "nope",
            "--no-progress",
        ],
    )
    assert (
        r.exit_code != 0 and "nope" in r.output and not (tmp_path / "x" / "manifest.json").exists()
    )
    with pytest.raises(DataError, match=r"mine\.csv has no column 'nope'"):
        check_table_columns(table, "smiles", ["my alpha", "nope"])


def test_benchmark_commands_pass_every_option_through(tmp_path):
    """`mdxfer benchmark small-data|extrapolation` from the command line: the options reach
    the benchmark (the seeds, the held-out size, the threshold split) and the CSV is written."""
    from typer.testing import CliRunner

    from mdxfer.cli.main import app

    runner = CliRunner()
    common = ["--approaches", "direct_fp_ridge", "--seed", "5"]
    out = tmp_path / "sd.csv"
    r = runner.invoke(
        app,
        ["benchmark", "small-data", "--n", "40", "--n-train", "10", "--seeds", "2"]
        + common
        + ["--out", str(out)],
    )
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out)
    assert list(df.seed) == [5, 6] and (df.n_test == 30).all()
    out = tmp_path / "ex.csv"
    r = runner.invoke(
        app,
        ["benchmark", "extrapolation", "--n", "60", "--quantile", "0.75"]
        + common
        + ["--out", str(out)],
    )
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out)
    assert list(df.seed) == [5] and df.n_test.iloc[0] == 15  # the top quarter of 60
