"""Checks of what users type: numbers, one-line strings, seeds, output paths and SMILES text.

One place for the rules, shared by the CLI, protocol files, campaign files and the
``[active_learning]`` section. Every check names the field (``where`` adds the file and
section) and the allowed range, and raises the caller's error class (an :class:`MdxferError`),
so the CLI prints one paragraph and exits non-zero.

Rules: numbers are finite (NaN and inf are refused everywhere), integers are integers (not
floats, strings or booleans), seeds lie in [0, 2**32), one-line strings hold no control
characters (newlines included), and SMILES are printable ASCII without whitespace whose every
atom RDKit read (:func:`smiles_text_problem`, :func:`smiles_heavy_atoms`).
"""

from __future__ import annotations

import math
import numbers
import re
from pathlib import Path
from typing import Any, Callable, Optional

from mdxfer.errors import InputError, MdxferError

#: Seeds of numpy, torch and scikit-learn: 0 <= seed < SEED_LIMIT.
SEED_LIMIT = 2**32

ErrorType = type[MdxferError]


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _range_text(
    lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False
) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {_num(lo)}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {_num(hi)}"
    return ""


def _outside(x: float, lo, hi, lo_open: bool, hi_open: bool) -> bool:
    return (lo is not None and (x <= lo if lo_open else x < lo)) or (
        hi is not None and (x >= hi if hi_open else x > hi)
    )


def int_problem(value: Any, lo: int | None = None, hi: int | None = None) -> str | None:
    """Why ``value`` is not an integer in [lo, hi] (``None``: it is)."""
    want = f"must be an integer{_range_text(lo, hi)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return f"{want}, got {value!r}"
    if _outside(int(value), lo, hi, False, False):
        return f"{want}, got {value!r}"
    return None


def number_problem(
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> str | None:
    """Why ``value`` is not a finite number in the range (``None``: it is)."""
    want = f"must be a finite number{_range_text(lo, hi, lo_open, hi_open)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"{want}, got {value!r}"
    if not math.isfinite(float(value)) or _outside(float(value), lo, hi, lo_open, hi_open):
        return f"{want}, got {value!r}"
    return None


def check_int(
    value: Any,
    name: str,
    lo: int | None = None,
    hi: int | None = None,
    *,
    where: str = "",
    error: ErrorType = InputError,
) -> int:
    """``value`` as an int, or ``error`` naming ``where`` + ``name`` and the range."""
    problem = int_problem(value, lo, hi)
    if problem:
        raise error(f"{where}{name} {problem}.")
    return int(value)


def check_number(
    value: Any,
    name: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    where: str = "",
    error: ErrorType = InputError,
) -> float:
    """``value`` as a finite float, or ``error`` naming ``where`` + ``name`` and the range."""
    problem = number_problem(value, lo, hi, lo_open, hi_open)
    if problem:
        raise error(f"{where}{name} {problem}.")
    return float(value)


def check_seed(
    value: Any, name: str = "seed", *, where: str = "", error: ErrorType = InputError
) -> int:
    """A seed: an integer in [0, 2**32)."""
    return check_int(value, name, 0, SEED_LIMIT - 1, where=where, error=error)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_line(
    value: Any,
    name: str,
    *,
    where: str = "",
    error: ErrorType = InputError,
    allow_empty: bool = True,
) -> str:
    """A one-line string: no newline or other control character (tab included)."""
    if not isinstance(value, str):
        raise error(f"{where}{name} must be a string, got {value!r}.")
    if _CONTROL.search(value):
        raise error(
            f"{where}{name} = {value!r} holds a newline or another control character; "
            "it must be one line."
        )
    if not allow_empty and not value.strip():
        raise error(f"{where}{name} must not be empty.")
    return value


# ------------------------------------------------------------------------------- output paths


def _first_existing(path: Path) -> Path | None:
    for p in (path, *path.parents):
        if p.exists():
            return p
    return None


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """``path`` can be a folder to write into: it is a folder or does not exist, and the
    nearest existing path above it is a folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is a file, not a folder; give a new or existing folder.")
    above = _first_existing(path.parent)
    if above is not None and not above.is_dir():
        raise InputError(f"{option} {path}: {above} is a file, so no folder can be made under it.")
    return path


def check_output_file(path: str | Path, option: str = "--out") -> Path:
    """``path`` can be a file to (over)write: not a folder, and under a folder."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder; give the name of a file to write.")
    above = _first_existing(path.parent)
    if above is not None and not above.is_dir():
        raise InputError(f"{option} {path}: {above} is a file, so nothing can be written under it.")
    return path


# ------------------------------------------------------------------------------- SMILES text

#: Every character a SMILES string can hold (OpenSMILES, with RDKit's atom maps and '*').
#: RDKit stops reading at whitespace, control and non-ASCII characters and returns what it
#: read so far ('CCÖ' is ethane to it), so those are refused before RDKit sees the string.
_SMILES_CHARS = re.compile(r"[A-Za-z0-9()\[\]=#$:/\\.+\-@%*]*")
_BRACKET_ATOM = re.compile(r"\[(\d*)([A-Z][a-z]?|[a-z][a-z]?|\*)[^\]]*\]")
_ORGANIC_ATOM = re.compile(r"Cl|Br|[BCNOPSFI]|[bcnops]|\*")


def smiles_text_problem(text: str) -> str | None:
    """Why ``text`` (stripped) cannot be a SMILES string as written, before any parsing:
    empty, whitespace inside, or a character no SMILES holds (named with its position)."""
    if not text:
        return "the SMILES string is empty"
    m = _SMILES_CHARS.match(text)
    if m.end() != len(text):
        c = text[m.end()]
        kind = (
            "whitespace"
            if c.isspace()
            else ("a control character" if _CONTROL.match(c) else "a character no SMILES holds")
        )
        return (
            f"{kind} {c!r} at position {m.end() + 1}; a SMILES is one word of ASCII "
            "letters, digits and ()[]=#$:/\\.+-@%*"
        )
    return None


def smiles_heavy_atoms(text: str) -> int:
    """Heavy atoms (not H, not '*') written in ``text``, counted from the string itself."""
    n = 0
    for m in _BRACKET_ATOM.finditer(text):
        n += m.group(2) not in ("H", "*")
    rest = _BRACKET_ATOM.sub(" ", text)
    n += sum(tok != "*" for tok in _ORGANIC_ATOM.findall(rest))
    return n


def smiles_consumed_problem(text: str, mol: Any) -> str | None:
    """Why the RDKit molecule ``mol`` parsed from ``text`` is not all of ``text``: RDKit read
    fewer (or more) heavy atoms than the string writes."""
    written, read = smiles_heavy_atoms(text), mol.GetNumHeavyAtoms()
    if written != read:
        return (
            f"RDKit read {read} heavy atom(s) of the {written} the string writes "
            "(part of it was dropped)"
        )
    return None


# ------------------------------------------------------------------------------- CLI callbacks


def cli_number(
    lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False
) -> Callable[[Any], Any]:
    """A typer callback refusing NaN, inf and numbers outside the range (click's FloatRange
    lets NaN through). Works for optional and repeated options."""

    def callback(value: Optional[Any]):
        import typer

        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is None:
                continue
            problem = number_problem(v, lo, hi, lo_open, hi_open)
            if problem:
                raise typer.BadParameter(problem)
        return value

    return callback
