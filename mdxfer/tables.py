"""Target tables: CSVs of molecules with a numeric column — MD results, a campaign export, a
table to pretrain on or to build a model library from. Read by ``mdxfer transfer``, the shotgun,
``mdxfer library build --data`` and the active-learning table oracle.

The molecules are read by :func:`mdxfer.inputs.read_molecules` (the one reader of ``.smi`` and
``.csv`` tables, same rules everywhere); :func:`read_targets` adds the numbers. It takes a CSV
with a ``smiles_col`` and a numeric ``target_col``. A campaign export (``mdxfer campaign
export``) is taken as it is: when the table has a ``status`` column, rows whose status is not
``done`` are skipped, and rows whose target cell is empty or NaN are skipped in any table; both
are counted (:meth:`TargetRows.skipped_text`), never an error. A target that is text (``abc``)
or infinite is an error naming its line.

Line numbers are the file's (the header of a CSV is line 1). Whether a SMILES is valid is left
to the caller (RDKit parsing, the read-whole check of
:func:`mdxfer.learn.featurize.parse_smiles_or_none`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from mdxfer.errors import InputError
from mdxfer.inputs import ErrorType, MolRecord, read_molecules

#: the column of a campaign export that says whether a row has a result
STATUS_COLUMN = "status"
#: values of a target cell that mean "no value" (skipped, not an error)
MISSING = ("", "nan", "na", "n/a", "none", "null")


@dataclass
class TargetRows:
    """The usable rows of a target table, and what was left out."""

    records: list[MolRecord]
    targets: list[float]
    skipped_status: int = 0  # status column present and not "done"
    skipped_missing: int = 0  # empty / NaN target
    problems: list[str] = field(default_factory=list)  # "line N: target 'x' is not a number"
    #: each kept row's standard error from a ``<target>_stderr`` column (None: no column, or
    #: no finite non-negative value in that row)
    stderr: list[float | None] = field(default_factory=list)

    def skipped_text(self) -> str | None:
        """``"skipped 3 row(s) whose status is not done, 1 without a target value"`` or None."""
        parts = []
        if self.skipped_status:
            parts.append(f"{self.skipped_status} row(s) whose status is not done")
        if self.skipped_missing:
            parts.append(f"{self.skipped_missing} row(s) without a target value")
        return "skipped " + " and ".join(parts) if parts else None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_targets(
    path: str | Path,
    smiles_col: str = "smiles",
    target_col: str = "target",
    *,
    what: str = "Target table",
    error: ErrorType = InputError,
) -> TargetRows:
    """Rows of a CSV with a SMILES and a numeric target column; a campaign export's rows that are
    not ``done`` and rows without a target value are skipped and counted."""
    table = read_molecules(path, smiles_col, what=what, error=error)
    if table.kind != "csv":
        raise error(
            f"{what} {path} is not a CSV; it must have a header line with the columns "
            f"{smiles_col!r} and {target_col!r}."
        )
    if target_col.strip().lower() == table.smiles_col.strip().lower():
        raise error(
            f"{what} {path}: the target column {target_col!r} is the SMILES column; name "
            "the column of numbers with --target-col (and the SMILES with --smiles-col)."
        )
    i_y = table.column(target_col)
    if i_y is None:
        raise error(
            f"{path} has no column {target_col!r}; its columns are {', '.join(map(repr, table.header))}. "
            "Name them with --smiles-col/--target-col."
        )
    i_status = table.column(STATUS_COLUMN) if target_col != STATUS_COLUMN else None
    i_se = table.column(f"{target_col}_stderr")
    out = TargetRows([], [])
    for rec in table:
        if i_status is not None and rec.values[i_status].strip().lower() != "done":
            out.skipped_status += 1
            continue
        raw = rec.values[i_y].strip()
        if raw.lower() in MISSING:
            out.skipped_missing += 1
            continue
        y = _number(raw)
        if y is None or not math.isfinite(y):
            out.problems.append(f"line {rec.line}: target {raw!r} is not a number")
            continue
        out.records.append(rec)
        out.targets.append(y)
        se = _number(rec.values[i_se].strip()) if i_se is not None else None
        out.stderr.append(se if se is not None and math.isfinite(se) and se >= 0 else None)
    return out
