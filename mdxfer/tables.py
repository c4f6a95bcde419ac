"""One reader for every table of molecules that goes in: ``.smi`` and ``.csv``, chemprop-style.

Used by ``mdxfer rank`` (candidates), ``mdxfer transfer`` and the shotgun (target tables), and
active learning (the pool and the table oracle), so all of them accept the same files:

``.smi``  one molecule per line: the SMILES, then an optional name (the rest of the line),
          separated by whitespace; blank lines and ``#`` lines are skipped, and so is a first
          line whose first word is ``smiles`` (a header). Its one extra column is ``name``.
``.csv``  a header line, then one row per molecule; the SMILES sit in ``smiles_col``
          (default ``smiles``; an exact match first, else the one column of that name in
          another case). Every other column is kept, in order, as text (``MolRecord.values``),
          so ``rank`` writes them back. A file with another suffix whose first line is a CSV
          header naming ``smiles_col`` is read as CSV too.

Target tables (:func:`read_targets`) are CSVs with a numeric ``target_col``. A campaign export
(``mdxfer campaign export``) is taken as it is: when the table has a ``status`` column, rows
whose status is not ``done`` are skipped, and rows whose target cell is empty or NaN are
skipped in any table; both are counted (:meth:`TargetRows.skipped_text`), never an error. A
target that is text (``abc``) or infinite is an error naming its line.

Line numbers are the file's (the header of a CSV is line 1). Whether a SMILES is valid is left
to the caller (RDKit parsing, the read-whole check of :func:`mdxfer.learn.featurize.parse_smiles_or_none`).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from mdxfer.errors import MdxferError
from mdxfer.learn.featurize import DataError

ErrorType = type[MdxferError]

#: the column of a campaign export that says whether a row has a result
STATUS_COLUMN = "status"
#: values of a target cell that mean "no value" (skipped, not an error)
MISSING = ("", "nan", "na", "n/a", "none", "null")


@dataclass
class MolRecord:
    """One molecule of a table: its line in the file, SMILES, name and other columns (text)."""

    line: int
    smiles: str
    name: str = ""
    values: tuple[str, ...] | None = None   # None: ``(name,)``, a ``.smi`` file's one column

    def __post_init__(self) -> None:
        if self.values is None:
            self.values = (self.name,)


def _is_csv_header(first_line: str, smiles_col: str) -> bool:
    cells = [c.strip().lower() for c in next(csv.reader([first_line]), [])]
    return len(cells) >= 2 and smiles_col.lower() in cells


class MoleculeTable:
    """A ``.smi`` or ``.csv`` file of molecules; iterate it for :class:`MolRecord` rows.

    ``what`` names the file in errors (``"Candidate file"``, ``"Pool file"``), ``error`` is the
    caller's error class. Opening checks that the file exists, is text, and (CSV) has the
    SMILES column; rows are read lazily, so large files stream."""

    def __init__(self, path: str | Path, smiles_col: str = "smiles", *, what: str = "Candidate file",
                 error: ErrorType = DataError):
        self.path, self.what, self.error = Path(path), what, error
        self._check_file()
        self.kind = "csv" if self._looks_csv(smiles_col) else "smi"
        self.header: list[str] = []
        self.smiles_col = smiles_col
        self.columns: list[str] = ["name"]
        if self.kind == "csv":
            self._read_header(smiles_col)

    # ------------------------------------------------------------------ opening
    def _check_file(self) -> None:
        p = self.path
        if not p.exists():
            raise self.error(f"{self.what} {p} does not exist.")
        if not p.is_file():
            raise self.error(f"{self.what} {p} is not a file.")
        with open(p, "rb") as fh:
            if b"\0" in fh.read(1 << 16):
                kind = "CSV" if p.suffix.lower() == ".csv" else ".smi text (SMILES [name] per line)"
                raise self.error(f"{self.what} {p} is binary and cannot be read as {kind}; give a text file.")

    def _open(self):
        return open(self.path, encoding="utf-8-sig", errors="replace", newline="")

    def _looks_csv(self, smiles_col: str) -> bool:
        if self.path.suffix.lower() == ".csv":
            return True
        with self._open() as fh:
            first = fh.readline()
        return "," in first and _is_csv_header(first, smiles_col)

    def _read_header(self, smiles_col: str) -> None:
        with self._open() as fh:
            header = next(csv.reader(fh), None)
        if not header or not any(h.strip() for h in header):
            raise self.error(f"{self.what} {self.path} cannot be read as CSV: it is empty; it must be a "
                             f"text table with a header line naming a {smiles_col!r} column.")
        self.header = [h.strip() for h in header]
        col = smiles_col if smiles_col in self.header else None
        if col is None:
            same = [h for h in self.header if h.lower() == smiles_col.lower()]
            col = same[0] if len(same) == 1 else None
        if col is None:
            raise self.error(f"{self.what} {self.path} has no column {smiles_col!r}; its columns are "
                             f"{', '.join(map(repr, self.header))}. Name the SMILES column with --smiles-col.")
        self.smiles_col = col
        self.columns = [h for h in self.header if h != col]

    # ------------------------------------------------------------------ reading
    def __iter__(self) -> Iterator[MolRecord]:
        return self._iter_csv() if self.kind == "csv" else self._iter_smi()

    def _iter_smi(self) -> Iterator[MolRecord]:
        with self._open() as fh:
            for n, raw in enumerate(fh, start=1):
                text = raw.strip()
                if not text or text.startswith("#"):
                    continue
                parts = text.split(None, 1)
                if n == 1 and parts[0].lower() == "smiles":
                    continue
                name = parts[1].strip() if len(parts) > 1 else ""
                yield MolRecord(n, parts[0], name)

    def _iter_csv(self) -> Iterator[MolRecord]:
        i_smi = self.header.index(self.smiles_col)
        others = [i for i in range(len(self.header)) if i != i_smi]
        i_name = next((i for i in others if self.header[i].lower() == "name"), None)
        width = len(self.header)
        with self._open() as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for row in reader:
                if not row or not any(c.strip() for c in row):
                    continue
                if len(row) > width:
                    raise self.error(f"{self.what} {self.path}, line {reader.line_num}: {len(row)} fields, "
                                     f"the header has {width}; quote values that hold commas.")
                row = row + [""] * (width - len(row))
                yield MolRecord(reader.line_num, row[i_smi].strip(),
                                row[i_name].strip() if i_name is not None else "",
                                tuple(row[i] for i in others))

    def column(self, name: str) -> int | None:
        """Index of column ``name`` in :attr:`columns` / ``MolRecord.values`` (None: absent)."""
        return self.columns.index(name) if name in self.columns else None


def read_molecules(path: str | Path, smiles_col: str = "smiles", *, what: str = "Candidate file",
                   error: ErrorType = DataError) -> MoleculeTable:
    """Open a ``.smi`` or ``.csv`` table of molecules (see the module docstring)."""
    return MoleculeTable(path, smiles_col, what=what, error=error)


# ------------------------------------------------------------------------------ target tables

@dataclass
class TargetRows:
    """The usable rows of a target table, and what was left out."""

    records: list[MolRecord]
    targets: list[float]
    skipped_status: int = 0          # status column present and not "done"
    skipped_missing: int = 0         # empty / NaN target
    problems: list[str] = field(default_factory=list)   # "line N: target 'x' is not a number"

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


def read_targets(path: str | Path, smiles_col: str = "smiles", target_col: str = "target", *,
                 what: str = "Target table", error: ErrorType = DataError) -> TargetRows:
    """Rows of a CSV with a SMILES and a numeric target column; a campaign export's rows that are
    not ``done`` and rows without a target value are skipped and counted."""
    table = MoleculeTable(path, smiles_col, what=what, error=error)
    if table.kind != "csv":
        raise error(f"{what} {path} is not a CSV; it must have a header line with the columns "
                    f"{smiles_col!r} and {target_col!r}.")
    if target_col.strip().lower() == table.smiles_col.strip().lower():
        raise error(f"{what} {path}: the target column {target_col!r} is the SMILES column; name "
                    "the column of numbers with --target-col (and the SMILES with --smiles-col).")
    i_y = table.column(target_col)
    if i_y is None:
        raise error(f"{path} has no column {target_col!r}; its columns are {', '.join(map(repr, table.header))}. "
                    "Name them with --smiles-col/--target-col.")
    i_status = table.column(STATUS_COLUMN) if target_col != STATUS_COLUMN else None
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
    return out
