"""Rank candidate molecules with a transferred ensemble (or a pretrained model).

Input (:func:`mdxfer.inputs.read_molecules`, the reader campaigns, ``transfer`` and active
learning use too): a ``.smi`` file — one molecule per line, the SMILES first, then an optional
name (the rest of the line), separated by whitespace; blank lines and lines starting with ``#``
are skipped, and so is a first line whose first word is ``smiles`` (a header) — or a ``.csv``
with a header line and a SMILES column (``smiles_col``, default ``smiles``). Unparsable rows
(including SMILES RDKit would read only in part, such as ``CCÖ``) are reported with their line
numbers and skipped; a file with no rankable molecule at all (empty, binary, no valid SMILES) is
an error.

Output: CSV with ``rank, smiles``, then the input's other columns (``name`` for a ``.smi``;
every other column of a CSV, in order, as written — one whose name the output uses itself
is written as ``input_<name>``), then ``mean, std, in_domain, domain_note, md_supported,
md_note``, best first (highest mean with ``maximize=True``). ``mean``/``std`` are the
ensemble's mean and spread in the target's unit (the spread calibrated on the transfer's
out-of-fold predictions when the model carries a calibration factor); ``in_domain`` is False for molecules outside
the source data's elements or size (their predictions extrapolate). ``md_supported`` is False
for molecules ``mdxfer interaction`` and campaigns refuse
(:func:`mdxfer.molecule.md_support_problem`: several fragments, a net charge, a radical, an
element outside the force field); ``md_note`` says why. ``unsupported="flag"`` (default) keeps
them, flagged; ``"skip"`` leaves them out like unparsable lines.

Loading a model folder and predicting for a list of SMILES (:func:`load_ensemble`,
:func:`predict`, :func:`predict_members`, :func:`encoder_embeddings`) live in
:mod:`mdxfer.learn.ensemble`.
"""

from __future__ import annotations

import csv
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from rdkit import Chem

from mdxfer.errors import DataError
from mdxfer.inputs import MolRecord, read_molecules
from mdxfer.learn.ensemble import Ensemble, load_ensemble
from mdxfer.learn.featurize import (
    GraphSet,
    featurize_mols,
    morgan_counts_mols,
    parse_smiles_or_none,
)
from mdxfer.learn.models import set_threads
from mdxfer.molecule import md_elements, md_support_problem
from mdxfer.progress import ProgressBar

__all__ = [
    "SmiRecord",
    "MolRecord",
    "read_smi",
    "rank_smiles",
    "rank_records",
    "rank_file",
    "write_ranked",
]


#: one input row (line, smiles, name, other columns); the name predates CSV input
SmiRecord = MolRecord

#: prediction columns of the output, after ``rank``, ``smiles`` and the input's own columns
PREDICTION_COLUMNS = ["mean", "std", "in_domain", "domain_note", "md_supported", "md_note"]


def read_smi(path: str | Path, smiles_col: str = "smiles") -> Iterator[MolRecord]:
    """Yield the molecules of a ``.smi`` or ``.csv`` file (line numbers start at 1)."""
    return iter(read_molecules(path, smiles_col, error=DataError))


def _chunks(records: Iterator[SmiRecord], size: int) -> Iterator[list[SmiRecord]]:
    buf: list[SmiRecord] = []
    for r in records:
        buf.append(r)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def _featurize_records(chunk: list[SmiRecord], with_fps: bool = False):
    """Parse and featurise one chunk (in a worker process with ``jobs > 1``); Morgan counts
    from the same RDKit molecules when the ensemble reads fingerprints."""
    mols, ok, bad = [], [], []
    for i, r in enumerate(chunk):
        mol = parse_smiles_or_none(r.smiles)
        if mol is None:
            bad.append(i)
        else:
            ok.append(i)
            mols.append(mol)
    gs = featurize_mols(mols)
    return chunk, gs, ok, bad, md_problems(mols, gs), morgan_counts_mols(mols) if with_fps else None


def md_problems(mols: list, gs: GraphSet) -> list[str]:
    """:func:`mdxfer.molecule.md_support_problem` of every molecule, screened on the packed
    graphs: only a molecule with a charged or radical atom, an element outside the force
    field, or more than one fragment is passed to it (the rest pass it by the same rule), so
    the strings are the same at a fraction of the per-atom RDKit calls."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(gs)
    if n == 0:
        return []
    table = Chem.GetPeriodicTable()
    allowed = np.array([table.GetAtomicNumber(e) for e in md_elements()])
    mol_of = np.repeat(np.arange(n), gs.n_atoms)
    odd = ~np.isin(gs.z, allowed) | (gs.x[:, CHARGE_COL] != 0) | (gs.x[:, RADICAL_COL] != 0)
    flag = np.zeros(n, dtype=bool)
    flag[mol_of[odd]] = True
    atoms = len(gs.z)
    adj = coo_matrix(
        (np.ones(gs.edge_index.shape[1]), (gs.edge_index[0], gs.edge_index[1])),
        shape=(atoms, atoms),
    )
    _, label = connected_components(adj, directed=False)
    _, first = np.unique(label, return_index=True)  # one atom per fragment
    flag |= np.bincount(mol_of[first], minlength=n) > 1
    return [md_support_problem(m) if f else "" for m, f in zip(mols, flag)]


#: columns of the 74 atom features: formal charge and radical electrons (integers)
CHARGE_COL, RADICAL_COL = 61, 62


UNSUPPORTED = ("flag", "skip")


@dataclass
class Ranked:
    """Ranking result, in input order (sort with :meth:`order`)."""

    smiles: list[str]
    names: list[str]
    mean: np.ndarray
    std: np.ndarray
    notes: list[str]
    bad_lines: list[tuple[int, str]]
    md_notes: list[str]
    skipped: list[tuple[int, str, str]]  # (line, smiles, why MD refuses it), unsupported="skip"
    columns: list[str] = field(default_factory=lambda: ["name"])  # the input's other columns
    values: list[tuple[str, ...]] = field(default_factory=list)  # their values, per molecule

    def order(self, maximize: bool = True) -> np.ndarray:
        """Indices best first; ties keep the input order."""
        key = -self.mean if maximize else self.mean
        return np.argsort(key, kind="stable")


def rank_records(
    ensemble: Ensemble,
    records: Iterator[MolRecord],
    chunk_size: int = 4096,
    jobs: int = 1,
    on_bad: Callable[[int, str], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    unsupported: str = "flag",
    on_skip: Callable[[int, str, str], None] | None = None,
    columns: list[str] | None = None,
) -> Ranked:
    """Featurise and predict ``records`` chunk by chunk; ``jobs > 1`` featurises in worker
    processes while the main process predicts. ``on_progress`` gets the last line number done.
    ``unsupported``: ``"flag"`` ranks molecules the MD side refuses with ``md_supported`` False,
    ``"skip"`` leaves them out (``on_skip(line, smiles, reason)``). ``columns`` names the
    records' ``values`` (default ``["name"]``, a ``.smi`` file's)."""
    columns = list(columns) if columns is not None else ["name"]
    if unsupported not in UNSUPPORTED:
        raise DataError(
            f"unsupported must be one of {', '.join(UNSUPPORTED)}, got {unsupported!r}."
        )
    smiles, names, means, stds, notes, bad_lines, md_notes, skipped = [], [], [], [], [], [], [], []
    values: list[tuple[str, ...]] = []
    chunks = _chunks(records, chunk_size)
    pool = None
    work = functools.partial(_featurize_records, with_fps=ensemble.needs_fingerprints)
    if jobs > 1:
        import multiprocessing as mp

        pool = mp.get_context("fork").Pool(jobs)
        results = pool.imap(work, chunks)
    else:
        results = map(work, chunks)
    try:
        for chunk, gs, ok, bad, md, fps in results:
            for i in bad:
                bad_lines.append((chunk[i].line, chunk[i].smiles))
                if on_bad:
                    on_bad(chunk[i].line, chunk[i].smiles)
            if unsupported == "skip" and any(md):
                for i, why in zip(ok, md):
                    if why:
                        skipped.append((chunk[i].line, chunk[i].smiles, why))
                        if on_skip:
                            on_skip(chunk[i].line, chunk[i].smiles, why)
                keep = [k for k, why in enumerate(md) if not why]
                gs = gs.subset(keep) if keep else None
                fps = fps[keep] if fps is not None else None
                ok, md = [ok[k] for k in keep], [md[k] for k in keep]
            if ok:
                good = [chunk[i] for i in ok]
                mean, std = ensemble.mean_std_graphs(gs, [r.smiles for r in good], fps=fps)
                means.append(mean)
                stds.append(std)
                notes.extend(ensemble.applicability(gs))
                md_notes.extend(md)
                smiles.extend(r.smiles for r in good)
                names.extend(r.name for r in good)
                values.extend(r.values for r in good)
            if on_progress:
                on_progress(chunk[-1].line)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)
    return Ranked(
        smiles, names, cat(means), cat(stds), notes, bad_lines, md_notes, skipped, columns, values
    )


def rank_smiles(
    ensemble: Ensemble, smiles: list[str], names: list[str] | None = None, unsupported: str = "flag"
) -> Ranked:
    """Rank an in-memory list (unparsable entries end up in ``bad_lines`` by 1-based position)."""
    names = names or [""] * len(smiles)
    recs = (MolRecord(i + 1, s, n) for i, (s, n) in enumerate(zip(smiles, names)))
    return rank_records(ensemble, recs, unsupported=unsupported)


def write_ranked(
    ranked: Ranked, out: str | Path, maximize: bool = True, top: int | None = None
) -> int:
    """Write the ranking CSV; returns the number of rows written."""
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise DataError(f"top must be a positive integer (the best K rows), got {top!r}.")
    order = ranked.order(maximize)
    if top is not None:
        order = order[:top]
    out = Path(out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    cols = output_columns(ranked.columns)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["rank", "smiles", *cols, *PREDICTION_COLUMNS])
        for r, i in enumerate(order, start=1):
            w.writerow(
                [
                    r,
                    ranked.smiles[i],
                    *ranked.values[i],
                    f"{ranked.mean[i]:.6g}",
                    f"{ranked.std[i]:.4g}",
                    not ranked.notes[i],
                    ranked.notes[i],
                    not ranked.md_notes[i],
                    ranked.md_notes[i],
                ]
            )
    return len(order)


def output_columns(columns: list[str]) -> list[str]:
    """The input's own columns as written to the output: a name the output uses itself
    (``rank``, ``smiles``, ``mean`` ...) becomes ``input_<name>``."""
    taken = {"rank", "smiles", *PREDICTION_COLUMNS}
    return [f"input_{c}" if c.lower() in taken else c for c in columns]


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 20), b""))


def rank_file(
    candidates: str | Path,
    model_dir: str | Path,
    out: str | Path,
    maximize: bool = True,
    top: int | None = None,
    jobs: int = 1,
    threads: int = 1,
    progress: bool = True,
    on_bad: Callable[[int, str], None] | None = None,
    unsupported: str = "flag",
    on_skip: Callable[[int, str, str], None] | None = None,
    smiles_col: str = "smiles",
) -> dict:
    """Rank a ``.smi`` or ``.csv`` file (SMILES in ``smiles_col``) with the model in
    ``model_dir`` and write ``out``. Returns counts and throughput (molecules/s, including
    reading, featurising and predicting)."""
    set_threads(threads)
    t0 = time.perf_counter()
    path = Path(candidates)
    table = read_molecules(path, smiles_col, error=DataError)
    ens = load_ensemble(model_dir)
    bar = ProgressBar(
        progress,
        (_count_lines(path) if path.exists() else None) if progress else None,
        "ranking (lines)",
        stderr=True,
        transient=True,
    )
    try:
        ranked = rank_records(
            ens,
            iter(table),
            jobs=jobs,
            columns=table.columns,
            on_bad=on_bad,
            on_progress=bar.update if progress else None,
            unsupported=unsupported,
            on_skip=on_skip,
        )
    finally:
        bar.close()
    if not ranked.smiles:
        what = (
            f"all {len(ranked.bad_lines)} molecule line(s) are unparsable"
            if ranked.bad_lines
            else "it holds no molecule line"
        )
        if ranked.skipped:
            what += f", {len(ranked.skipped)} molecule(s) skipped as unsupported by MD"
        raise DataError(
            f"Nothing to rank in {path}: {what}. It must be a .smi text file (one SMILES per "
            "line, optionally a name after whitespace) or a .csv with a header line and a "
            f"{table.smiles_col!r} column (--smiles-col)."
        )
    n_written = write_ranked(ranked, out, maximize, top)
    wall = time.perf_counter() - t0
    return {
        "ranked": len(ranked.smiles),
        "written": n_written,
        "bad_lines": len(ranked.bad_lines),
        "outside_domain": sum(bool(x) for x in ranked.notes),
        "wall_s": wall,
        "md_unsupported": sum(bool(x) for x in ranked.md_notes),
        "skipped": len(ranked.skipped),
        "molecules_per_s": (len(ranked.smiles) + len(ranked.bad_lines)) / wall
        if wall > 0
        else float("nan"),
        "target": ens.target_name,
        "unit": ens.target_unit,
        "members": len(ens.members),
        "mode": ens.mode,
    }
