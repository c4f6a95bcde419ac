"""The user's tables of molecules and numbers: a target table to transfer to (MD results, a
campaign export) and a table to pretrain on instead of QM9. Both are read by
:func:`mdxfer.tables.read_targets`; this module adds what learning needs on top (parsable,
unique molecules; enough rows; a split like QM9's)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from rdkit import Chem, RDLogger

from mdxfer.errors import DataError
from mdxfer.learn.data import qm9
from mdxfer.learn.featurize import parse_smiles_or_none
from mdxfer.tables import read_targets
from mdxfer.validate import smiles_text_problem


def read_target_table(
    path: str | Path,
    smiles_col: str = "smiles",
    target_col: str = "target",
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Read a CSV of SMILES and target values (:func:`mdxfer.tables.read_targets`: a campaign
    export is taken as it is, rows not ``done`` or without a target are skipped and counted in
    ``log`` and ``df.attrs["skipped"]``); returns columns ``smiles``, ``target``, ``line`` (line
    number in the file) and ``stderr`` (the row's ``<target>_stderr``, NaN where there is
    none). Raises :class:`DataError` naming the bad lines."""
    path = Path(path)
    rows = read_targets(path, smiles_col, target_col, error=DataError)
    skipped = rows.skipped_text()
    if skipped and log:
        log(f"{path}: {skipped}")
    out = pd.DataFrame(
        {
            "smiles": [r.smiles for r in rows.records],
            "target": rows.targets,
            "line": [r.line for r in rows.records],
            "stderr": [np.nan if se is None else se for se in rows.stderr],
        }
    )
    problems = list(rows.problems)
    first_line: dict[str, int] = {}  # canonical SMILES -> first line that holds it
    for s, line in zip(out.smiles, out.line):
        mol = parse_smiles_or_none(s) if s else None
        if not s:
            problems.append(f"line {line}: empty SMILES")
        elif mol is None:
            why = smiles_text_problem(s)
            problems.append(
                f"line {line}: RDKit cannot parse SMILES {s!r}" + (f" ({why})" if why else "")
            )
        else:
            canon = Chem.MolToSmiles(mol)
            if canon in first_line:
                problems.append(
                    f"line {line}: {s!r} is the molecule of line {first_line[canon]} again"
                )
            first_line.setdefault(canon, line)
    problems.sort(key=lambda p: int(p.split(":")[0].split()[1]))
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        dup = (
            " Keep one row per molecule (average repeated measurements): a molecule in both the "
            "training and the validation folds makes the cross-validation optimistic."
            if any("again" in p for p in problems)
            else ""
        )
        raise DataError(
            f"{path}: " + "; ".join(problems[:10]) + more + f". Fix or remove these rows.{dup}"
        )
    if len(out) < 5:
        left = f" ({skipped})" if skipped else ""
        raise DataError(
            f"{path} has {len(out)} usable rows{left}; cross-validated transfer needs at least 5."
        )
    y = out["target"].to_numpy(dtype=float)
    if np.ptp(y) <= 1e-12 * max(1.0, float(np.abs(y).max())):
        raise DataError(
            f"{path}: every target value is {y[0]:g}; a constant target has nothing to "
            "learn (R² is undefined). Check the --target-col column."
        )
    out["smiles"] = out["smiles"].astype(str)
    out["target"] = out["target"].astype(float)
    out.attrs["skipped"] = {"status": rows.skipped_status, "missing_target": rows.skipped_missing}
    return out


def table_split(
    path: str | Path,
    target: str,
    smiles_col: str = "smiles",
    n: int | None = None,
    n_val: int | None = None,
    seed: int = 0,
    split_seed: int | None = None,
) -> tuple[qm9.Split, str, int, list[str]]:
    """A user's own pretraining table split like QM9 (:func:`mdxfer.learn.data.qm9.split_frame`):
    (split, source description, rows left out, notes saying which). Rows without a number and SMILES RDKit
    cannot parse are left out and counted, never fatal unless fewer than 10 remain. ``n``
    (default: every usable row) rows are drawn with ``seed``; ``n_val`` (default: a fifth) of
    them validate. The source names the file with the first 12 hex digits of its SHA-256."""
    rows = read_targets(path, smiles_col, target, what="Pretraining table", error=DataError)
    RDLogger.DisableLog("rdApp.*")
    try:
        ok = [Chem.MolFromSmiles(r.smiles) is not None for r in rows.records]
    finally:
        RDLogger.EnableLog("rdApp.*")
    bad = [r for r, good in zip(rows.records, ok) if not good]
    skipped = len(bad) + len(rows.problems) + rows.skipped_missing + rows.skipped_status
    notes = [t for t in (rows.skipped_text(),) if t] + rows.problems[:3]
    if bad:
        notes.append(
            f"{len(bad)} SMILES RDKit cannot parse (e.g. line {bad[0].line}: {bad[0].smiles!r})"
        )
    df = pd.DataFrame(
        {
            qm9.SMILES_COLUMN: [r.smiles for r, good in zip(rows.records, ok) if good],
            target: [y for y, good in zip(rows.targets, ok) if good],
        }
    )
    if len(df) < 10:
        raise DataError(
            f"Pretraining table {path} has {len(df)} usable rows; at least 10 are "
            "needed (a SMILES and a number in each)."
        )
    n = len(df) if n is None else n
    if n > len(df):
        raise DataError(f"--n {n} is more than the {len(df)} usable rows of {path}.")
    n_val = max(1, n // 5) if n_val is None else n_val
    sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    source = f"table {Path(path).name} (sha256 {sha}, {len(df)} usable rows)"
    return qm9.split_frame(df, n, n_val, seed, split_seed, target), source, skipped, notes


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (provenance of a target table)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
