"""The shipped E_int table: a campaign's finished results, one row per molecule, sorted by name.

``mdxfer campaign table SOURCE --out data/eint_isoprene.csv`` where SOURCE is a campaign TOML
file (its database is read, never written) or a CSV written by ``mdxfer campaign export``; both
give the same file. Only ``done`` candidates are kept; a molecule entered twice (same pair task)
appears once, under the name it was first added with. Every row keeps ``task_key``, the
campaign store's key of its pair task (``results.task_key``, ``tasks.key``), and the protocol
digest, so each value can be traced to its store entry and task directory. docs/eint_table.md.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable

from mdxfer.campaign.runner import Campaign
from mdxfer.errors import CampaignError
from mdxfer.fileio import write_csv

#: columns of the shipped table, in order (meanings: docs/eint_table.md)
TABLE_COLUMNS = [
    "smiles",
    "name",
    "E_int",
    "E_int_stderr",
    "E_cross",
    "E_cross_stderr",
    "n_replicas",
    "E_int_replica_sd",
    "E_int_stderr_with_partner",
    "estimator",
    "canonical_smiles",
    "inchikey",
    "partner",
    "protocol",
    "protocol_digest",
    "forcefield",
    "mdxfer_version",
    "lammps_version",
    "task_key",
]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def eint_table(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table rows from campaign result rows (:meth:`Campaign.results` or an export CSV):
    ``done`` rows only, one per ``task_key``, sorted by name (then canonical SMILES), with the
    columns of :data:`TABLE_COLUMNS`. An empty ``n_replicas`` (a result stored before replicas
    existed) is written as 1."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("status") != "done" or _blank(r.get("E_int")):
            continue
        missing = [c for c in TABLE_COLUMNS if c not in r]
        if missing:
            raise CampaignError(
                f"campaign results lack column(s) {', '.join(missing)}; "
                "export them with this mdxfer (`mdxfer campaign export`)."
            )
        if r["task_key"] in out:
            continue
        row = {c: r[c] for c in TABLE_COLUMNS}
        if _blank(row["n_replicas"]):
            row["n_replicas"] = 1
        out[r["task_key"]] = row
    return sorted(out.values(), key=lambda r: (str(r["name"] or ""), str(r["canonical_smiles"])))


def read_export(path: str | Path) -> list[dict[str, str]]:
    """The rows of a ``mdxfer campaign export`` CSV, as text (values are copied, not reparsed)."""
    path = Path(path)
    if not path.is_file():
        raise CampaignError(f"Export file {path} does not exist.")
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            columns = set(reader.fieldnames or ())  # read inside: an empty file has none
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CampaignError(
            f"{path} is not a `mdxfer campaign export` CSV (not CSV text: {type(exc).__name__})."
        ) from None
    if not {"smiles", "status"} <= columns:
        raise CampaignError(
            f"{path} is not a `mdxfer campaign export` CSV (empty, or no 'smiles' "
            "and 'status' columns); write one with `mdxfer campaign export`."
        )
    return rows


def campaign_rows(source: str | Path) -> list[dict[str, Any]]:
    """Result rows of ``source``: a campaign TOML file (its database, read-only) or an export
    CSV (``.csv``)."""
    source = Path(source)
    if source.suffix.lower() == ".csv":
        return read_export(source)
    with Campaign.open(source, readonly=True) as camp:
        return camp.results()


def write_table(rows: list[dict[str, Any]], path: str | Path) -> int:
    """Write table rows as CSV (atomic rename); returns the number of rows."""
    return write_csv(path, rows, TABLE_COLUMNS)


def noise_ceiling(values: list[float], stderrs: list[float]) -> float | None:
    """The best R² any model can reach on measurements with these standard errors:
    1 − ⟨se²⟩ / Var(y) (a perfect model of the true values still misses the noise). None for
    fewer than three rows or no spread."""
    import numpy as np

    y = np.asarray(values, dtype=float)
    se = np.asarray(stderrs, dtype=float)
    keep = np.isfinite(y) & np.isfinite(se)
    y, se = y[keep], se[keep]
    if len(y) < 3 or y.var(ddof=1) <= 0:
        return None
    return float(1.0 - np.mean(se**2) / y.var(ddof=1))


def ceiling_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per target (E_int, E_cross): rows, spread, mean stderr and noise ceiling."""
    out = []
    for col in ("E_int", "E_cross"):
        vals, ses = [], []
        for r in rows:
            try:
                vals.append(float(r[col]))
                ses.append(float(r[f"{col}_stderr"]))
            except (TypeError, ValueError, KeyError):
                continue
        ceiling = noise_ceiling(vals, ses)
        if ceiling is not None:
            import numpy as np

            out.append(
                f"{col}: {len(vals)} rows, SD across rows {np.std(vals, ddof=1):.1f}, "
                f"mean stderr {np.sqrt(np.mean(np.square(ses))):.1f} kcal/mol: "
                f"noise ceiling R² ≤ {ceiling:.2f}"
            )
    return out


def make_table(source: str | Path, out: str | Path) -> tuple[int, int, list[str]]:
    """Write the table of ``source`` (campaign TOML or export CSV) to ``out``; returns
    (rows written, candidates in the campaign, noise-ceiling lines)."""
    rows = campaign_rows(source)
    table = eint_table(rows)
    return write_table(table, out), len(rows), ceiling_lines(table)
