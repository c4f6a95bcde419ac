"""What goes in: one reader for tables of molecules (``.smi`` and ``.csv``, chemprop-style) and
one set of helpers for TOML settings files — the same rules for every command.

Tables of molecules (:func:`read_molecules`) — campaign candidates, active-learning pools, the
molecules to rank, target tables:

``.smi``  one molecule per line: the SMILES, then an optional name (the rest of the line),
          separated by whitespace; blank lines and ``#`` lines are skipped, and so is a first
          line whose first word is ``smiles`` (a header). Its one extra column is ``name``.
``.csv``  a header line, then one row per molecule; the SMILES sit in ``smiles_col``
          (default ``smiles``; an exact match first, else the one column of that name in
          another case); a column ``name`` (any case) gives the name. Blank rows are skipped.
          Every other column is kept, in order, as text (``MolRecord.values``). A file with
          another suffix whose first line is a CSV header naming ``smiles_col`` is read as CSV.

Line numbers are the file's (the header of a CSV is line 1). Whether a SMILES is valid is left
to the caller (RDKit parsing).

TOML settings (:func:`read_toml`, :func:`check_keys`, :func:`resolve_path`): a file that does
not exist or is not TOML is an error naming it; unknown keys are errors naming the file, the
section and the allowed keys; relative paths are taken from the file's folder, never the
working directory.
"""

from __future__ import annotations

import csv
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mdxfer.errors import InputError, MdxferError

ErrorType = type[MdxferError]

#: what to do when a CSV has no SMILES column (commands with a ``--smiles-col`` option)
SMILES_COL_HINT = "Name the SMILES column with --smiles-col."


@dataclass
class MolRecord:
    """One molecule of a table: its line in the file, SMILES, name and other columns (text)."""

    line: int
    smiles: str
    name: str = ""
    values: tuple[str, ...] | None = None  # None: ``(name,)``, a ``.smi`` file's one column

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
    SMILES column; rows are read lazily, so large files stream. ``hint`` ends the message when
    a CSV has no SMILES column (what the user should do)."""

    def __init__(
        self,
        path: str | Path,
        smiles_col: str = "smiles",
        *,
        what: str = "Candidate file",
        error: ErrorType = InputError,
        hint: str = SMILES_COL_HINT,
    ):
        self.path, self.what, self.error, self.hint = Path(path), what, error, hint
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
                raise self.error(
                    f"{self.what} {p} is binary and cannot be read as {kind}; give a text file."
                )

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
            raise self.error(
                f"{self.what} {self.path} cannot be read as CSV: it is empty; it must "
                f"be a text table with a header line naming a {smiles_col!r} column."
            )
        self.header = [h.strip() for h in header]
        col = smiles_col if smiles_col in self.header else None
        if col is None:
            same = [h for h in self.header if h.lower() == smiles_col.lower()]
            col = same[0] if len(same) == 1 else None
        if col is None:
            raise self.error(
                f"{self.what} {self.path} has no column {smiles_col!r}; its columns "
                f"are {', '.join(map(repr, self.header))}. {self.hint}"
            )
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
                    raise self.error(
                        f"{self.what} {self.path}, line {reader.line_num}: "
                        f"{len(row)} fields, the header has {width}; quote values "
                        "that hold commas."
                    )
                row = row + [""] * (width - len(row))
                yield MolRecord(
                    reader.line_num,
                    row[i_smi].strip(),
                    row[i_name].strip() if i_name is not None else "",
                    tuple(row[i] for i in others),
                )

    def column(self, name: str) -> int | None:
        """Index of column ``name`` in :attr:`columns` / ``MolRecord.values`` (None: absent)."""
        return self.columns.index(name) if name in self.columns else None


def read_molecules(
    path: str | Path,
    smiles_col: str = "smiles",
    *,
    what: str = "Candidate file",
    error: ErrorType = InputError,
    hint: str = SMILES_COL_HINT,
) -> MoleculeTable:
    """Open a ``.smi`` or ``.csv`` table of molecules (see the module docstring); iterate the
    result for :class:`MolRecord` rows."""
    return MoleculeTable(path, smiles_col, what=what, error=error, hint=hint)


# ------------------------------------------------------------------------------ TOML settings


def read_toml(
    path: str | Path, what: str = "Settings file", *, error: ErrorType = InputError, hint: str = ""
) -> tuple[Path, dict[str, Any]]:
    """(absolute path, parsed content) of a TOML file; ``hint`` is added to the message when
    the file does not exist (e.g. how to write one)."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise error(f"{what} {path} does not exist{f' ({hint})' if hint else ''}.")
    try:
        return path, tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path} is not valid TOML: {exc}.") from None


def check_keys(
    table: dict, allowed: set[str], section: str, where: str, error: ErrorType = InputError
) -> None:
    """Refuse keys of ``table`` (section ``[section]`` of ``where``, e.g. ``campaign file X``)
    that are not in ``allowed``, naming them and the allowed ones."""
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise error(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))} in [{section}]. "
            f"Allowed: {', '.join(sorted(allowed))}."
        )


def resolve_path(base: str | Path, value: str | Path) -> Path:
    """``value`` as an absolute, normalised path; a relative one is taken from ``base`` (the
    folder of the settings file), ``~`` is expanded."""
    p = Path(value).expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else Path(base) / p))
