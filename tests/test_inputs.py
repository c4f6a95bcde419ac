"""The one input layer (mdxfer.inputs): SMILES/CSV tables read by the same rules for every
command, the TOML helpers, the one file lock (mdxfer.fileio) and the SQLite base (mdxfer.db)."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from mdxfer.campaign.spec import read_candidates, spec_from_dict
from mdxfer.db import Database
from mdxfer.errors import CampaignError, InputError
from mdxfer.fileio import DatabaseLock, FileLock
from mdxfer.inputs import check_keys, read_molecules, read_toml, resolve_path


def rows(path, **kw):
    return [(r.line, r.smiles, r.name) for r in read_molecules(path, **kw)]


def test_smi_skips_header_comments_and_blank_lines(tmp_path):
    f = tmp_path / "c.smi"
    f.write_text(
        "smiles name\n# a comment\n\nCCO ethanol\n  CC(C)=O   acetone, the solvent \nCCCC\n"
    )
    assert rows(f) == [
        (4, "CCO", "ethanol"),
        (5, "CC(C)=O", "acetone, the solvent"),
        (6, "CCCC", ""),
    ]


def test_smiles_word_is_a_header_on_the_first_line_only(tmp_path):
    f = tmp_path / "c.smi"
    f.write_text("CCO\nSMILES x\n")
    assert rows(f) == [(1, "CCO", ""), (2, "SMILES", "x")]  # line 2 is data (RDKit decides)


def test_csv_with_smiles_and_name_columns(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text(
        'id,Name,SMILES,target\n1,ethanol,CCO,0.5\n\n2,,CCCC,\n3,"acetone, dry",CC(C)=O,1\n'
    )
    table = read_molecules(f)
    assert table.kind == "csv" and table.columns == ["id", "Name", "target"]
    recs = list(table)
    assert [(r.line, r.smiles, r.name) for r in recs] == [
        (2, "CCO", "ethanol"),
        (4, "CCCC", ""),
        (5, "CC(C)=O", "acetone, dry"),
    ]
    assert recs[0].values == ("1", "ethanol", "0.5")


def test_csv_header_in_a_file_with_another_suffix(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("name,smiles\nethanol,CCO\n")
    assert rows(f) == [(2, "CCO", "ethanol")]


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b\n1,2\n", "has no column 'smiles'"),
        ("", "it is empty"),
        ("smiles,name\nCCO,a,b\n", "line 2: 3 fields"),
    ],
)
def test_csv_errors_name_the_file_and_what_to_do(tmp_path, text, message):
    f = tmp_path / "c.csv"
    f.write_text(text)
    with pytest.raises(InputError, match=message):
        list(read_molecules(f))


def test_missing_smiles_column_ends_with_the_callers_hint(tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("mol,name\nCCO,a\n")
    with pytest.raises(
        InputError,
        match=r"columns are 'mol', 'name'\. Name the SMILES column "
        r"with --smiles-col\.$",
    ):
        read_molecules(f)
    with pytest.raises(CampaignError, match=r"'mol', 'name'\. Call it 'smiles'\.$"):
        read_molecules(f, error=CampaignError, hint="Call it 'smiles'.")


def test_missing_and_binary_files_raise_the_callers_error(tmp_path):
    with pytest.raises(CampaignError, match="Pool file .* does not exist"):
        read_molecules(tmp_path / "none.smi", what="Pool file", error=CampaignError)
    (tmp_path / "b.smi").write_bytes(b"CCO\0\1")
    with pytest.raises(InputError, match="is binary"):
        read_molecules(tmp_path / "b.smi")


def test_campaign_candidates_and_al_pool_read_the_same_rows(tmp_path):
    """A `smiles` header line is not a candidate (the campaign reader used to keep it), and a
    CSV candidate file is read by its columns (it used to become one odd SMILES per line)."""
    from mdxfer.al.oracles import read_pool

    smi = tmp_path / "c.smi"
    smi.write_text("smiles\nCCO ethanol\nCCCC\n")
    assert [(c.smiles, c.name) for c in read_candidates(smi)] == [("CCO", "ethanol"), ("CCCC", "")]
    keys, inputs, problems = read_pool(smi)
    assert inputs == ["CCO", "CCCC"] and problems == []
    csv = tmp_path / "c.csv"
    csv.write_text("name,smiles\nethanol,CCO\nbutane,CCCC\n")
    assert [(c.smiles, c.name) for c in read_candidates(csv)] == [
        ("CCO", "ethanol"),
        ("CCCC", "butane"),
    ]
    spec = spec_from_dict(
        {"candidates": {"file": "c.csv"}, "protocol": {"preset": "quick"}}, tmp_path
    )
    assert [c.smiles for c in spec.candidates] == ["CCO", "CCCC"]


def test_toml_helpers(tmp_path):
    with pytest.raises(InputError, match=r"Settings file .* does not exist \(write one\)"):
        read_toml(tmp_path / "x.toml", hint="write one")
    (tmp_path / "bad.toml").write_text("a = [")
    with pytest.raises(InputError, match="is not valid TOML"):
        read_toml(tmp_path / "bad.toml")
    (tmp_path / "ok.toml").write_text("[s]\nk = 1\n")
    path, data = read_toml(tmp_path / "ok.toml")
    assert path.is_absolute() and data == {"s": {"k": 1}}
    with pytest.raises(
        CampaignError, match=r"file f: unknown key\(s\) 'z' in \[s\]. Allowed: a, k."
    ):
        check_keys({"k": 1, "z": 2}, {"k", "a"}, "s", "file f", CampaignError)
    assert resolve_path(tmp_path / "sub", "../data/x.smi") == tmp_path / "data" / "x.smi"
    assert resolve_path(tmp_path, "/abs/x") == resolve_path("/elsewhere", "/abs/x")


def _try_lock(path, queue):
    try:
        with FileLock(path):
            queue.put("got it")
    except Exception as exc:  # noqa: BLE001 - the message goes back to the test
        queue.put(f"{type(exc).__name__}: {exc}")


def test_one_file_lock_refuses_a_second_process_and_frees_on_exit(tmp_path):
    path = tmp_path / "sub" / "x.lock"
    ctx = mp.get_context("fork")
    with FileLock(path):
        assert FileLock.is_held(path)
        q = ctx.Queue()
        p = ctx.Process(target=_try_lock, args=(path, q))
        p.start()
        p.join(30)
        answer = q.get(timeout=5)
        assert answer.startswith("MdxferError") and "is locked by pid" in answer
    assert not FileLock.is_held(path)
    q = ctx.Queue()
    p = ctx.Process(target=_try_lock, args=(path, q))
    p.start()
    p.join(30)
    assert q.get(timeout=5) == "got it"


def test_waiting_lock_and_database_locks(tmp_path):
    from mdxfer.al.state import LoopLock
    from mdxfer.campaign.runner import RunnerLock

    with FileLock(tmp_path / "task" / ".lock", wait=True):
        assert FileLock.is_held(tmp_path / "task" / ".lock")
    db = tmp_path / "c.db"
    assert (
        RunnerLock.lock_path(db).name == "c.db.lock"
        and LoopLock.lock_path(db).name == "c.db.al.lock"
    )
    assert issubclass(RunnerLock, DatabaseLock) and issubclass(LoopLock, DatabaseLock)


def test_sqlite_base_nests_transactions_and_rolls_back(tmp_path):
    db = Database(tmp_path / "x.db")
    with db.transaction() as c:
        c.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(RuntimeError):
        with db.transaction() as c:
            c.execute("INSERT INTO t VALUES (1)")
            with db.transaction() as inner:  # joins the outer transaction
                inner.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError
    assert db.query("SELECT COUNT(*) FROM t")[0][0] == 0 and db.has_table("t")
    db.close()
