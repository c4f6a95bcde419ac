"""Oracles: what answers "what is the target value of these molecules?".

``CampaignOracle``  the real one: the picks become candidates of the MD campaign (the same
                    campaign file and database), the campaign runs them through Parsl/LAMMPS
                    (:class:`mdxfer.campaign.Campaign`), and the interaction energy ``E_int``
                    (kcal/mol) comes back with its standard error. Failed simulations are
                    reported as failed, never invented.
``TableOracle``     a ``smiles,target`` CSV that answers instantly: the loop can be tested and
                    benchmarked end to end through the same code path. A campaign export works
                    as it is (:func:`mdxfer.tables.read_targets`: rows not ``done`` or without
                    a target are skipped and counted in ``TableOracle.skipped``).

Molecules are keyed by canonical SMILES (:func:`canonical`); every oracle maps them back.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from mdxfer.campaign import Campaign
from mdxfer.errors import ALError
from mdxfer.inputs import read_molecules
from mdxfer.tables import read_targets

Log = Callable[[str], None]


def canonical(smiles: str) -> str:
    """The key of a molecule: RDKit canonical SMILES as the MD side writes it (raises
    :class:`mdxfer.errors.MoleculeError` for invalid input)."""
    from mdxfer.molecule import canonical_smiles

    return canonical_smiles(smiles)


@dataclass
class Measurement:
    """One oracle answer (``value``/``stderr`` in the target's unit)."""

    smiles: str  # canonical
    status: str  # "done" | "failed"
    value: float | None = None
    stderr: float | None = None
    error: str | None = None


class Oracle:
    """Interface: :meth:`measure` a batch; :meth:`known` lists what is measured already."""

    name = "oracle"
    target = "target"
    unit = ""

    def measure(
        self,
        smiles: Sequence[str],
        log: Log | None = None,
        on_result: Callable[[Measurement], None] | None = None,
    ) -> list[Measurement]:
        """Answers for ``smiles`` (canonical), in order. ``on_result`` is called with each
        answer as soon as it exists, so the loop records it before the batch is over."""
        raise NotImplementedError

    def known(self) -> list[Measurement]:
        """Measurements that exist before (or outside) the loop."""
        return []

    def run_pending(self, log: Log | None = None) -> int:
        """Finish work the oracle was given outside the loop (a campaign's own [candidates]);
        returns how many items were pending."""
        return 0


class TableOracle(Oracle):
    """Answers from a CSV (``smiles,target`` by default). Unknown molecules fail."""

    name = "table"

    def __init__(
        self,
        path: str | Path,
        smiles_col: str = "smiles",
        target_col: str = "target",
        unit: str = "",
        delay_s: float = 0.0,
    ):
        self.path = Path(path)
        rows = read_targets(self.path, smiles_col, target_col, what="Oracle table", error=ALError)
        #: what was left out (a campaign export's unfinished rows, empty targets), or None
        self.skipped = rows.skipped_text()
        values: dict[str, float] = {}
        stderr: dict[str, float] = {}
        bad = [(int(p.split()[1].rstrip(":")), p) for p in rows.problems]
        for rec, y, se in zip(rows.records, rows.targets, rows.stderr):
            try:
                key = canonical(rec.smiles)
            except Exception:  # noqa: BLE001 - reported below with the line number
                bad.append((rec.line, f"line {rec.line}: invalid SMILES {rec.smiles!r}"))
                continue
            if key not in values:
                values[key] = y
                if se is not None:
                    stderr[key] = se
        if bad:
            bad = [p for _, p in sorted(bad)]
            more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
            raise ALError(f"Oracle table {self.path}: " + "; ".join(bad[:5]) + more + ".")
        self.values = values
        #: each molecule's standard error, from a ``<target>_stderr`` column when the table has one
        #: (an mdxfer E_int table does; the same row as its value); the loop weights its fits by it
        self.stderr = stderr
        self.target, self.unit, self.delay_s = target_col, unit, delay_s

    def measure(
        self,
        smiles: Sequence[str],
        log: Log | None = None,
        on_result: Callable[[Measurement], None] | None = None,
    ) -> list[Measurement]:
        out = []
        for s in smiles:
            if self.delay_s:
                time.sleep(self.delay_s)
            if s in self.values:
                m = Measurement(s, "done", self.values[s], self.stderr.get(s))
            else:
                m = Measurement(
                    s, "failed", error=f"{s} is not in the oracle table {self.path.name}"
                )
            if on_result:
                on_result(m)
            out.append(m)
        return out


#: What the MD campaign measures that a loop can learn: the interaction energy (the
#: published target) or the direct candidate-partner energy E_cross (stationary and ~2 kcal/mol
#: precise with the production preset: docs/results.md).
CAMPAIGN_TARGETS = ("E_int", "E_cross")


class CampaignOracle(Oracle):
    """The MD campaign of a campaign spec: E_int (or E_cross) of (candidate, partner), kcal/mol."""

    name = "campaign"
    unit = "kcal/mol"

    def __init__(self, spec, target: str = "E_int"):
        if target not in CAMPAIGN_TARGETS:
            raise ALError(
                f"target_column {target!r}: the MD campaign measures "
                f"{' or '.join(CAMPAIGN_TARGETS)}."
            )
        self.spec, self.target = spec, target

    def _rows(self, camp) -> dict[str, dict]:
        out = {}
        for r in camp.results():
            key = r.get("canonical_smiles")
            if key is None:
                try:
                    key = canonical(r["smiles"])
                except Exception:  # noqa: BLE001 - an invalid candidate has no key
                    continue
            # a molecule listed twice (two spellings) has one task: either row will do
            out.setdefault(key, r)
        return out

    def _measurement(self, key: str, row: dict | None) -> Measurement | None:
        if row is None:
            return None
        if row["status"] == "done" and row.get(self.target) is not None:
            error = measured_error(row, self.target)
            return Measurement(key, "done", float(row[self.target]), error)
        if row["status"] == "failed":
            return Measurement(key, "failed", error=row.get("error") or "simulation failed")
        return None

    def known(self) -> list[Measurement]:
        if not Path(self.spec.database).exists():
            return []
        with Campaign.open(self.spec) as camp:
            rows = self._rows(camp)
        return [m for k, r in rows.items() if (m := self._measurement(k, r)) is not None]

    def run_pending(self, log: Log | None = None) -> int:
        """Run the campaign's own pending candidates (its [candidates] section), so that their
        results train the model from round 1 on."""
        with Campaign.open(self.spec) as camp:
            n = sum(r["status"] in ("pending", "running") for r in camp.results())
            if n:
                if log:
                    log(f"running the campaign's {n} pending candidate(s) first")
                camp.run(progress=log)
        return n

    def measure(
        self,
        smiles: Sequence[str],
        log: Log | None = None,
        on_result: Callable[[Measurement], None] | None = None,
    ) -> list[Measurement]:
        """Runs the campaign until every pick is finished. The campaign stores each result in
        its database as it arrives, so a killed loop loses no finished simulation; the loop
        records the answers when the run returns."""
        with Campaign.open(self.spec) as camp:
            camp.add_candidates(list(smiles))
            camp.run(progress=log)
            rows = self._rows(camp)
        out = []
        for s in smiles:
            m = self._measurement(s, rows.get(s))
            out.append(
                m or Measurement(s, "failed", error="the campaign finished without a result for it")
            )
        return out


def measured_error(row: dict, target: str = "E_int") -> float | None:
    """The error of a campaign's ``target`` (one of :data:`CAMPAIGN_TARGETS`, kcal/mol): its
    reported stderr of the mean (within-run plus the protocol's measured between-replica scatter), or the
    replicas' own spread SD/√N when that is larger (replicas measure what a run cannot see:
    packing, slow relaxation)."""
    se = row.get(f"{target}_stderr")
    sd, n = row.get(f"{target}_replica_sd"), row.get("n_replicas") or 1
    errs = [float(x) for x in (se, None if sd is None else sd / math.sqrt(n)) if x is not None]
    return max(errs) if errs else None


def read_pool(
    path: str | Path, smiles_col: str = "smiles"
) -> tuple[list[str], list[str], list[str]]:
    """Read a candidate pool with :func:`mdxfer.inputs.read_molecules`: a ``.smi`` file
    (``SMILES [name]`` per line) or a CSV with a ``smiles_col`` column (a campaign export too).
    Returns (canonical SMILES, input SMILES, problems), duplicates removed (first spelling
    kept); invalid molecules are listed in ``problems`` and skipped."""
    path = Path(path)
    items = [
        (r.line, r.smiles)
        for r in read_molecules(path, smiles_col, what="Pool file", error=ALError)
    ]
    keys, inputs, problems, seen = [], [], [], set()
    for line, s in items:
        try:
            key = canonical(s)
        except Exception as exc:  # noqa: BLE001 - MoleculeError and friends
            problems.append(f"{path.name}:{line}: {exc}")
            continue
        if key in seen:
            continue
        seen.add(key)
        keys.append(key)
        inputs.append(s)
    if not keys:
        raise ALError(f"Pool file {path} holds no valid molecule.")
    return keys, inputs, problems
