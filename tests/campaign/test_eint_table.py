"""Issue 12 without MD: the shipped E_int table from a campaign store, the QM9 draw, the
committed campaign file and the rubber-modifier candidate list.

The store test writes result records through the store's own API (``record_result``) with
placeholder numbers: they test the plumbing from the store to the table, they are not results.
No LAMMPS runs here.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mdxfer.campaign import Campaign, spec_from_dict
from mdxfer.campaign.table import TABLE_COLUMNS, eint_table, make_table
from mdxfer.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _placeholder_result(
    camp: Campaign, smiles: str, e_int: float, n_replicas: int | None, replicas: list[float] | None
) -> dict:
    """A record with the fields ``record_result`` stores (placeholder numbers, not MD)."""
    from mdxfer.molecule import canonical_smiles

    return {
        "smiles": canonical_smiles(smiles),
        "partner": camp.partner,
        "protocol_digest": camp.digest,
        "forcefield": camp.forcefield,
        "protocol": camp.protocol.name,
        "E_int": e_int,
        "E_int_stderr": 0.5,
        "E_cross": 2 * e_int,
        "E_cross_stderr": 0.25,
        "E_int_stderr_with_partner": 0.75,
        "n_replicas": n_replicas,
        "replicas": replicas,
        "E_int_replica_sd": 0.1 if replicas and len(replicas) > 1 else None,
        "estimator": "pe_nh",
        "mdxfer_version": "test",
        "lammps_version": "test",
        "seed": 1,
        "warnings": [],
    }


@pytest.fixture
def store_campaign(tmp_path):
    data = {
        "campaign": {"name": "t"},
        "candidates": {
            "smiles": [
                {"smiles": "CCCO", "name": "propanol"},
                {"smiles": "CC(C)=O", "name": "acetone"},
                {"smiles": "CCN", "name": "ethylamine"},
                {"smiles": "OCC", "name": "ethanol"},
                {"smiles": "C1CC", "name": "broken"},
                {"smiles": "CCO", "name": "ethanol_again"},
            ]
        },
        "protocol": {"preset": "quick"},
    }
    spec = spec_from_dict(data, tmp_path, tmp_path / "t.toml")
    with Campaign.open(spec) as camp:  # creates the store and registers the candidates
        keys = {r["name"]: r["task_key"] for r in camp.results()}
        camp.store.record_result(
            keys["propanol"],
            _placeholder_result(camp, "CCCO", -3.0, 2, [-3.1, -2.9]),
            camp.protocol.to_dict(),
        )
        camp.store.record_result(
            keys["ethanol"],
            _placeholder_result(camp, "OCC", -2.0, None, None),
            camp.protocol.to_dict(),
        )
        camp.store.set_failed(keys["ethylamine"], "nvt", "LAMMPS blew up", "lammps")
        export = tmp_path / "export.csv"
        camp.export(export)
        rows = camp.results()
    return spec, rows, export, keys


def test_table_keeps_done_rows_once_sorted_by_name_with_their_store_keys(store_campaign):
    spec, rows, _, keys = store_campaign
    assert {r["status"] for r in rows} == {"done", "pending", "failed"}
    table = eint_table(rows)
    assert [r["name"] for r in table] == ["ethanol", "propanol"]  # not ethanol_again
    assert all(list(r) == TABLE_COLUMNS for r in table)
    eth, prop = table
    assert eth["task_key"] == keys["ethanol"] == keys["ethanol_again"]
    assert eth["n_replicas"] == 1 and eth["E_int_replica_sd"] is None  # empty means one run
    assert prop["n_replicas"] == 2 and prop["E_int_replica_sd"] == 0.1
    assert (prop["E_int"], prop["E_cross"], prop["E_cross_stderr"]) == (-3.0, -6.0, 0.25)
    assert prop["protocol_digest"] == spec.protocol.digest() and prop["protocol"] == "quick"
    assert prop["canonical_smiles"] == "CCCO" and prop["smiles"] == "CCCO"


def test_table_from_the_campaign_file_and_from_its_export_are_the_same_file(
    store_campaign, tmp_path
):
    spec, _, export, _ = store_campaign
    toml = tmp_path / "t.toml"
    toml.write_text('[campaign]\nname = "t"\n[protocol]\npreset = "quick"\n')
    assert load_db(toml) == spec.database
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert make_table(toml, a)[:2] == (2, 6)
    assert make_table(export, b)[:2] == (2, 6)
    assert a.read_text() == b.read_text()
    df = pd.read_csv(a)
    assert list(df.columns) == TABLE_COLUMNS and list(df.name) == ["ethanol", "propanol"]
    assert list(df.E_int) == [-2.0, -3.0] and list(df.n_replicas) == [1, 2]
    result = CliRunner().invoke(
        app, ["campaign", "table", str(toml), "--out", str(tmp_path / "c.csv")]
    )
    assert result.exit_code == 0, result.output
    assert "2 finished of 6" in result.output
    assert (tmp_path / "c.csv").read_text() == a.read_text()
    bad = CliRunner().invoke(
        app, ["campaign", "table", str(tmp_path / "none.csv"), "--out", str(tmp_path / "d.csv")]
    )
    assert bad.exit_code == 1 and "does not exist" in bad.output


def load_db(toml: Path) -> Path:
    from mdxfer.campaign.spec import load_spec

    return load_spec(toml).database


# ------------------------------------------------------------------ the QM9 draw


def test_simulation_problem_uses_mdxfer_checks():
    draw = _load_script("draw_qm9")
    assert draw.simulation_problem("CCCO") is None
    assert draw.simulation_problem("CO").startswith("too small")
    assert draw.simulation_problem("CC[O-]").startswith("net charge -1")
    assert draw.simulation_problem("C[Si](C)(C)O").startswith("forcefield")
    assert draw.simulation_problem("C1CC").startswith("molecule")
    assert draw.formal_charges("[NH3+]CC([O-])=O") == "N+1 O-1"


def test_draw_is_seeded_and_replaces_what_cannot_be_simulated():
    draw = _load_script("draw_qm9")
    df = pd.DataFrame(
        {
            "qm9_index": range(1, 21),
            "SMILES": ["C" * (k % 5 + 1) for k in range(20)],
            "Heatcapacity_Cv_cal_mol_K": [float(k) for k in range(20)],
        }
    )
    too_small = lambda s: "too small" if len(s) < 3 else None  # noqa: E731
    kept, skipped = draw.draw(df, 5, seed=3, problem=too_small, pretrain={1, 2, 3})
    again, _ = draw.draw(df, 5, seed=3, problem=too_small)
    assert list(kept.qm9_index) == list(again.qm9_index) and len(kept) == 5
    assert all(len(s) >= 3 for s in kept.smiles) and set(skipped.reason) == {"too small"}
    assert len(kept) + len(skipped) == kept.draw_position.max() + 1  # no gaps in the order
    assert list(kept.name) == [f"qm9_{i}" for i in kept.qm9_index]
    with pytest.raises(ValueError, match="only"):
        draw.draw(df, 19, seed=3, problem=too_small)


def test_the_committed_campaign_file_and_draw_agree():
    from mdxfer.campaign.spec import load_spec

    spec = load_spec(ROOT / "examples" / "qm9_isoprene_campaign.toml")
    assert spec.protocol.name == "production" and spec.protocol.replicas == 1
    assert spec.profile_name == "local"
    drawn = pd.read_csv(ROOT / "data" / "qm9_draw.csv")
    skipped = pd.read_csv(ROOT / "data" / "qm9_draw_skipped.csv")
    assert len(drawn) == 32 and drawn.qm9_index.is_unique
    assert not set(drawn.qm9_index) & set(skipped.qm9_index)
    names = [c.name for c in spec.candidates]
    assert names[:7] == [
        "methanol",
        "benzene",
        "hexane",
        "acetonitrile",
        "acetic_acid",
        "pyridine",
        "dichloromethane",
    ]
    assert [(c.smiles, c.name) for c in spec.candidates[7:]] == list(zip(drawn.smiles, drawn.name))


def test_the_committed_draw_is_reproduced():
    """scripts/draw_qm9.py --check: the same seed gives the same kept and skipped molecules
    (reads QM9, ~4 s, and parametrises the ~34 molecules drawn)."""
    if importlib.util.find_spec("qm9pack") is None:
        pytest.skip("qm9pack (QM9 as CSV) is not installed")
    assert _load_script("draw_qm9").main(["--check"]) == 0


# ------------------------------------------------------------------ rubber modifiers


def test_rubber_modifier_list_is_clean():
    from rdkit import Chem

    from mdxfer.molecule import canonical_smiles, parse_smiles

    with open(ROOT / "examples" / "rubber_modifiers.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert 90 <= len(rows) <= 130
    assert {"smiles", "name", "source", "class", "heavy_atoms"} <= set(rows[0])
    canon = [canonical_smiles(r["smiles"]) for r in rows]
    assert len(set(canon)) == len(canon), "duplicate molecules"
    assert len({r["name"] for r in rows}) == len(rows), "duplicate names"
    for r in rows:
        mol = parse_smiles(r["smiles"])
        assert {a.GetSymbol() for a in mol.GetAtoms()} <= {"C", "N", "O", "F", "S", "Cl", "Br"}, r
        assert Chem.GetFormalCharge(mol) == 0 and r["source"] and r["class"], r
        assert int(r["heavy_atoms"]) == mol.GetNumHeavyAtoms() <= 32, r


def test_noise_ceiling_is_one_minus_noise_over_spread():
    from mdxfer.campaign.table import ceiling_lines, noise_ceiling

    # spread: values 0, 10, 20 -> sample variance 100; stderr 5 everywhere -> 1 - 25/100
    assert noise_ceiling([0.0, 10.0, 20.0], [5.0, 5.0, 5.0]) == pytest.approx(0.75)
    # noise larger than the spread: the ceiling is negative (no model can explain anything)
    assert noise_ceiling([0.0, 1.0, 2.0], [5.0, 5.0, 5.0]) < 0
    assert noise_ceiling([1.0, 2.0], [0.1, 0.1]) is None
    rows = [
        {"E_int": v, "E_int_stderr": 5.0, "E_cross": -10 * v, "E_cross_stderr": 1.0}
        for v in (0.0, 10.0, 20.0)
    ]
    lines = ceiling_lines(rows)
    assert lines[0].startswith("E_int: 3 rows") and lines[0].endswith("R² ≤ 0.75")
    assert lines[1].startswith("E_cross: 3 rows")


def test_the_al_file_on_the_table_loads(tmp_path):
    """examples/al_qm9_isoprene.toml: the loop starts from the shipped table (E_cross with its
    stderr as each molecule's noise), no random round, the table campaign's work directory."""
    from mdxfer.al.loop import load_al_config
    from mdxfer.campaign.spec import load_spec

    # the file as committed, its run folders (the pretrained model made by `mdxfer pretrain`)
    # moved under tmp_path: a fresh clone has no runs/
    text = (ROOT / "examples" / "al_qm9_isoprene.toml").read_text()
    (tmp_path / "runs" / "cv-paper").mkdir(parents=True)
    (tmp_path / "examples").mkdir()
    text = text.replace('"../data/', f'"{ROOT / "data"}/')
    text = text.replace(
        'workdir = "../runs/qm9-isoprene"', f'workdir = "{ROOT / "runs" / "qm9-isoprene"}"'
    )
    (tmp_path / "examples" / "al.toml").write_text(text)
    cfg = load_al_config(tmp_path / "examples" / "al.toml")
    assert Path(cfg.settings.surrogate.model_dir) == tmp_path / "runs" / "cv-paper"
    assert cfg.settings.n_initial == 0 and not cfg.settings.acquisition.maximize
    table = pd.read_csv(ROOT / "data" / "eint_isoprene.csv")
    known = cfg.read_initial()
    assert len(known) == len(table) >= 8
    assert all(m.stderr is not None and m.stderr > 0 for m in known)
    assert sorted(m.value for m in known) == pytest.approx(sorted(table.E_cross))
    campaign = load_spec(ROOT / "examples" / "qm9_isoprene_campaign.toml")
    assert cfg.spec.workdir == campaign.workdir and cfg.spec.protocol.name == "production"


def test_rubber_checks_pick_and_compare(tmp_path):
    """scripts/rubber_checks.py: the top/bottom of a ranking that MD can simulate become a
    campaign file the campaign loader accepts; predictions join the export by molecule."""
    from mdxfer.campaign.spec import load_spec

    mod = _load_script("rubber_checks")
    ranked = pd.DataFrame(
        {
            "rank": [1, 2, 3, 4, 5, 6],
            "smiles": ["CCO", "OCC(O)CO", "c1ccccc1", "CC[Si](C)C", "CCCCCC", "CC(=O)O"],
            "name": ["ethanol", "glycerol", "benzene", "silane", "hexane", "acetic acid"],
            "mean": [-200.0, -190.0, -180.0, -170.0, -160.0, -150.0],
            "std": [5.0, 5.0, 5.0, 5.0, 5.0, 5.0],
            "in_domain": [True] * 6,
            "md_supported": [True, True, True, False, True, True],
        }
    )
    picked = mod.pick(ranked, top=2, bottom=2)
    assert list(picked.name) == ["ethanol", "glycerol", "hexane", "acetic acid"]
    assert list(picked.role) == ["top", "top", "bottom", "bottom"]
    out = tmp_path / "checks.toml"  # anywhere: the paths point at the repository's runs/
    mod.write_campaign(picked, out, tmp_path / "ranked.csv", "E_cross")
    spec = load_spec(out)
    assert [c.name for c in spec.candidates] == list(picked.name)
    assert spec.protocol.name == "production"
    assert spec.workdir.resolve() == (ROOT / "runs" / "qm9-isoprene").resolve()
    export = pd.DataFrame(
        {
            "smiles": ["OCC", "CC(O)=O", "OCC(O)CO"],
            "name": ["ethanol", "acetic acid", "glycerol"],
            "status": ["done", "done", "failed"],
            "E_cross": [-203.0, -120.0, None],
            "E_cross_stderr": [1.0, 1.5, None],
        }
    )
    table = mod.compare(ranked, export, "E_cross")
    assert list(table.name) == ["ethanol", "acetic acid"]  # by canonical SMILES, done only
    assert list(table.within_2_sigma) == [True, False]
    # 2 σ counts the simulation's stderr too: 5 of spread and 12 of stderr make 13
    export.loc[1, ["E_cross", "E_cross_stderr"]] = [-175.0, 12.0]  # 25 from -150
    assert list(mod.compare(ranked, export, "E_cross").within_2_sigma) == [True, True]
    assert list(table.simulated) == [-203.0, -120.0]


def test_a_molecule_the_campaign_failed_on_is_passed_over(tmp_path):
    """data/qm9_md_failed.csv: the draw skips a molecule the campaign could not simulate, with
    the campaign's reason, and takes the next one."""
    draw = _load_script("draw_qm9")
    failed_csv = tmp_path / "failed.csv"
    pd.DataFrame({"qm9_index": [7], "smiles": ["CCO"], "reason": ["LAMMPS blew up"]}).to_csv(
        failed_csv, index=False
    )
    failed = draw.md_failures(failed_csv)
    assert failed == {"CCO": "MD: LAMMPS blew up"}
    problem = draw.with_md_failures(failed, lambda s: None)
    assert problem("CCO") == "MD: LAMMPS blew up" and problem("CCC") is None
    committed = draw.md_failures()
    skipped = pd.read_csv(ROOT / "data" / "qm9_draw_skipped.csv")
    for smi, reason in committed.items():  # every committed MD failure is in the skipped list
        assert reason in set(skipped.reason) and smi in set(skipped.smiles)
