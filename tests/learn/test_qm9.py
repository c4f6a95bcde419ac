"""QM9 source data read from qm9pack's CSV files."""

from __future__ import annotations

import numpy as np
import pytest

from mdxfer.errors import DataError
from mdxfer.learn.data import qm9
from mdxfer.learn.featurize import parse_smiles_or_none


def test_files_found_without_importing_qm9pack():
    import sys

    files = qm9.data_files()
    assert [f.name for f in files] == ["qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv"]
    assert "qm9pack.qm9pack_getdata" not in sys.modules


def test_table_contents():
    df = qm9.load_qm9()
    assert len(df) == 130_831
    assert {"SMILES", qm9.CV_COLUMN, "Polarizability_bohr3", "qm9_index"} <= set(df.columns)
    assert df.qm9_index.is_unique
    methane = df[df.qm9_index == 1].iloc[0]
    assert methane.SMILES == "C" and methane[qm9.CV_COLUMN] == pytest.approx(6.469)
    cv = df[qm9.CV_COLUMN]
    assert cv.notna().all() and cv.min() > 5 and cv.max() < 50  # cal/(mol K) for <= 9 heavy atoms


def test_subset_is_seeded():
    a, b, c = qm9.subset(300, seed=1), qm9.subset(300, seed=1), qm9.subset(300, seed=2)
    assert a.qm9_index.tolist() == b.qm9_index.tolist()
    assert a.qm9_index.tolist() != c.qm9_index.tolist()
    assert a.qm9_index.is_unique


def test_seed_split_sizes_disjoint_and_hashed():
    sp = qm9.split()  # the reference study's 5,000 -> 4,000 / 1,000
    assert len(sp.train) == 4000 and len(sp.val) == 1000
    assert not set(sp.train.qm9_index) & set(sp.val.qm9_index)
    again = qm9.split()
    assert sp.data_hash == again.data_hash and len(sp.data_hash) == 64
    other = qm9.split(split_seed=5)
    assert set(other.train.qm9_index) | set(other.val.qm9_index) == set(sp.train.qm9_index) | set(
        sp.val.qm9_index
    )
    assert other.data_hash != sp.data_hash


def test_subset_parses_and_stays_in_qm9_domain():
    sub = qm9.subset(300, seed=3)
    for s in sub.SMILES:
        mol = parse_smiles_or_none(s)
        assert mol is not None
        assert mol.GetNumHeavyAtoms() <= 9
        assert {a.GetSymbol() for a in mol.GetAtoms()} <= {"C", "N", "O", "F"}


def test_bad_requests_raise_data_error():
    with pytest.raises(DataError, match="Unknown QM9 property"):
        qm9.split(n=100, n_val=10, target="no_such_column")
    with pytest.raises(DataError, match="validation size"):
        qm9.split(n=100, n_val=100)
    with pytest.raises(DataError, match="subset size"):
        qm9.subset(0)


def test_table_hash_sensitive_to_targets():
    sub = qm9.subset(20, seed=4)
    h = qm9.table_hash(sub, "SMILES", qm9.CV_COLUMN)
    sub2 = sub.copy()
    sub2.loc[0, qm9.CV_COLUMN] = np.nextafter(sub2.loc[0, qm9.CV_COLUMN], 100)
    assert qm9.table_hash(sub2, "SMILES", qm9.CV_COLUMN) != h
