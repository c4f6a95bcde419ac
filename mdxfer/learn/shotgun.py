"""Shotgun transfer learning (Yamada et al. 2019): transfer every model of a library, keep the
best by cross-validation.

For each source model of a library (:mod:`mdxfer.learn.library`) and each transfer mode
(``finetune``: the source's head retrained on the frozen embedding; ``ridge``: feature
extraction into ridge regression; ``rf`` on request) the target table is scored by repeated
k-fold cross-validated MAE — the same folds for every candidate, so the scores compare. The
direct baseline (``fp_ridge``, ridge on Morgan counts, no transfer) is scored alongside. The
best candidate (``top=1``) or the best few (``top=K``, a committee whose prediction is the mean
of its parts) is kept.

Choosing the best of many candidates on the same cross-validation is optimistic: the chosen
candidate's CV MAE is a biased estimate of its error on new molecules. ``mdxfer benchmark
small-data`` measures the real held-out error (docs/learning.md).

A kept candidate is an ordinary transfer ensemble (``ensemble.pt``), so ``mdxfer rank`` and the
active-learning loop take it unchanged; a committee is a folder of such ensembles with a
``committee.json`` (:class:`mdxfer.learn.ensemble.Committee`) that
:func:`mdxfer.learn.ensemble.load_ensemble` recognises.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from mdxfer.errors import DataError
from mdxfer.learn.data.targets import file_sha256, read_target_table
from mdxfer.learn.ensemble import Committee, Ensemble
from mdxfer.learn.evaluation import parity_plot, regression_metrics
from mdxfer.learn.featurize import GraphSet, featurize_smiles, morgan_counts
from mdxfer.learn.library import load_library
from mdxfer.learn.models import environment, set_threads
from mdxfer.learn.transfer import MODES, NO_TRANSFER, TransferSettings, check_folds, cross_validate
from mdxfer.progress import ProgressBar

DIRECT = "(direct)"


def shotgun_cv(
    folds: int = 5,
    repeats: int = 2,
    seed: int = 0,
    lr: float = 1e-3,
    max_epochs: int = 2000,
    patience: int = 100,
    val_fraction: float = 0.2,
) -> TransferSettings:
    """The cross-validation and fine-tuning settings every candidate of a shotgun shares: a
    :class:`~mdxfer.learn.transfer.TransferSettings` with the shotgun's defaults. Fine-tuning
    here uses a larger learning rate and a shorter patience than single-model transfer (1e-3 /
    100 epochs instead of 1e-4 / 500) to keep tens of candidates affordable: with the reference
    study's schedule every fit runs at least 500 epochs at a tenth of the step. The two
    schedules were not compared on the same table."""
    return TransferSettings(
        mode="auto",
        folds=folds,
        repeats=repeats,
        seed=seed,
        lr=lr,
        max_epochs=max_epochs,
        patience=patience,
        val_fraction=val_fraction,
    )


@dataclass
class ShotgunSettings:
    """Shotgun options: which modes to try on every source model, how many candidates to keep,
    and ``cv``, the cross-validation and fine-tuning settings (:func:`shotgun_cv`)."""

    modes: tuple[str, ...] = ("finetune", "ridge")
    top: int = 1
    include_direct: bool = True
    exclude_properties: tuple[str, ...] = ()
    cv: TransferSettings = field(default_factory=shotgun_cv)

    def record(self) -> dict[str, Any]:
        """The settings as one flat table (saved in the kept model's provenance)."""
        c = self.cv
        return {
            "modes": self.modes,
            "folds": c.folds,
            "repeats": c.repeats,
            "seed": c.seed,
            "top": self.top,
            "lr": c.lr,
            "max_epochs": c.max_epochs,
            "patience": c.patience,
            "val_fraction": c.val_fraction,
            "include_direct": self.include_direct,
            "exclude_properties": self.exclude_properties,
        }


@dataclass
class TransferCandidate:
    """One (source model, transfer mode) pair with its cross-validation."""

    name: str
    property: str
    kind: str
    mode: str
    metrics: dict[str, float]
    members: list
    oof: np.ndarray
    base: Any
    source_metrics: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        m = self.metrics
        return {
            "model": self.name,
            "property": self.property,
            "kind": self.kind,
            "mode": self.mode,
            "mae_val": m["mae_val"],
            "mae_val_sd": m["mae_val_sd"],
            "r2_val": m["r2_val"],
            "r2_val_sd": m["r2_val_sd"],
            "r2_train": m["r2_train"],
            "source_r2_val": self.source_metrics.get("r2_val"),
        }


def score_candidates(
    sources: Sequence[tuple[dict[str, Any], Any]],
    smiles: Sequence[str],
    y: np.ndarray,
    settings: ShotgunSettings,
    graphs: GraphSet | None = None,
    FP: np.ndarray | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[TransferCandidate]:
    """Cross-validate every (source, mode) pair and the direct baseline on ``(smiles, y)``;
    returns the candidates sorted by CV MAE (best first; ties by name, mode)."""
    bad_modes = [m for m in settings.modes if m not in MODES or m in NO_TRANSFER]
    if bad_modes:
        ok = ", ".join(m for m in MODES if m not in NO_TRANSFER)
        raise DataError(f"Unknown shotgun mode(s) {', '.join(bad_modes)}; choose from {ok}.")
    if settings.top < 1:
        raise DataError(f"--top must be at least 1, got {settings.top}.")
    smiles = list(smiles)
    y = np.asarray(y, dtype=np.float64)
    graphs = featurize_smiles(smiles).graphs if graphs is None else graphs
    FP = morgan_counts(smiles) if FP is None else FP
    ts = settings.cv
    cands: list[TransferCandidate] = []
    folds = min(ts.folds, len(y))
    total = (len(sources) * len(settings.modes) + int(settings.include_direct)) * ts.repeats * folds
    bar = ProgressBar(progress, total, "shotgun")
    try:
        for entry, base in sources:
            E = base.embed(graphs, smiles)
            for mode in settings.modes:
                bar.set(f"{entry['name']} {mode}")
                r = cross_validate(base, E, FP, y, mode, ts, bar.tick)
                cands.append(
                    TransferCandidate(
                        entry["name"],
                        entry["property"],
                        entry["kind"],
                        mode,
                        r["metrics"],
                        r["members"],
                        r["oof"],
                        base,
                        entry.get("metrics", {}),
                    )
                )
            if log:
                best = min(
                    (c for c in cands if c.name == entry["name"]),
                    key=lambda c: c.metrics["mae_val"],
                )
                log(
                    f"{entry['name']:<14} best mode {best.mode:<8} CV MAE {best.metrics['mae_val']:.4g}"
                )
        if settings.include_direct:
            bar.set("direct fp_ridge")
            r = cross_validate(
                sources[0][1], np.zeros((len(y), 1), np.float32), FP, y, "fp_ridge", ts, bar.tick
            )
            cands.append(
                TransferCandidate(
                    DIRECT,
                    "",
                    "morgan",
                    "fp_ridge",
                    r["metrics"],
                    r["members"],
                    r["oof"],
                    sources[0][1],
                )
            )
    finally:
        bar.close()
    cands.sort(key=lambda c: (c.metrics["mae_val"], c.name, c.mode))
    # a direct candidate carries no encoder of its own: give it the best transfer's base (for
    # embeddings downstream, e.g. active learning's diversity)
    best_transfer = next((c for c in cands if c.name != DIRECT), None)
    for c in cands:
        if c.name == DIRECT and best_transfer is not None:
            c.base = best_transfer.base
    return cands


def candidates_table(cands: Sequence[TransferCandidate], top: int = 1) -> pd.DataFrame:
    """All candidates, best first, with ``rank`` and ``chosen``."""
    df = pd.DataFrame([c.row() for c in cands])
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    df["chosen"] = df["rank"] <= top
    return df


def _ensemble_of(
    c: TransferCandidate, target_name: str, target_unit: str, provenance: dict[str, Any]
) -> Ensemble:
    domain = c.base.provenance.get("data", {}).get("domain", {})
    return Ensemble(
        c.base,
        c.members,
        c.mode,
        target_name,
        target_unit,
        domain,
        {**provenance, "source_model": c.name, "source_property": c.property, "cv": c.metrics},
    )


def choose(
    cands: Sequence[TransferCandidate],
    top: int,
    target_name: str,
    target_unit: str = "",
    provenance: dict[str, Any] | None = None,
) -> Ensemble:
    """The kept model: the best candidate's ensemble, or a committee of the best ``top``."""
    provenance = provenance or {}
    kept = [_ensemble_of(c, target_name, target_unit, provenance) for c in cands[:top]]
    return kept[0] if len(kept) == 1 else Committee(kept, provenance)


def committee_oof(cands: Sequence[TransferCandidate], top: int) -> np.ndarray:
    """Out-of-fold predictions (repeats x n) of the kept model (mean over the top candidates;
    every candidate used the same folds)."""
    return np.mean([c.oof for c in cands[:top]], axis=0)


def shotgun_transfer(
    library_dir: str | Path,
    data: str | Path,
    out_dir: str | Path,
    settings: ShotgunSettings | None = None,
    smiles_col: str = "smiles",
    target_col: str = "target",
    target_unit: str = "",
    threads: int = 1,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Transfer every model of ``library_dir`` to the table ``data``, keep the best; writes
    ``candidates.csv`` (every candidate's scores), the kept model (``ensemble.pt``, or
    ``committee.json`` + ``part-K/``), ``cv_predictions.csv``, ``metrics.json`` and
    ``parity.png`` into ``out_dir``; returns the metrics."""
    s = copy.copy(settings or ShotgunSettings())
    log = log or (lambda msg: None)
    set_threads(threads)
    t0 = time.perf_counter()
    sources = load_library(library_dir, s.exclude_properties)
    table = read_target_table(data, smiles_col, target_col, log=log)
    check_folds(s.cv.folds, len(table))
    smiles, y = list(table.smiles), table.target.to_numpy()
    f = featurize_smiles(smiles)
    log(
        f"{len(y)} target rows; {len(sources)} source models x {len(s.modes)} modes "
        f"+ {'1 direct baseline' if s.include_direct else 'no direct baseline'}"
    )
    cands = score_candidates(
        sources, smiles, y, s, f.graphs, morgan_counts(smiles), progress=progress, log=log
    )
    top = min(s.top, len(cands))
    df = candidates_table(cands, top)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "candidates.csv", index=False)

    oof = committee_oof(cands, top)
    per_rep = [regression_metrics(y, oof[r]) for r in range(oof.shape[0])]
    best_direct = next((c for c in cands if c.name == DIRECT), None)
    best_transfer = next((c for c in cands if c.name != DIRECT), None)
    metrics = {
        "chosen": [f"{c.name}/{c.mode}" for c in cands[:top]],
        "top": top,
        "mae_val": float(np.mean([p["mae"] for p in per_rep])),
        "r2_val": float(np.mean([p["r2"] for p in per_rep])),
        "best_transfer": f"{best_transfer.name}/{best_transfer.mode}" if best_transfer else None,
        "best_transfer_mae_val": best_transfer.metrics["mae_val"] if best_transfer else None,
        "direct_mae_val": best_direct.metrics["mae_val"] if best_direct else None,
        "transfer_beats_direct": (best_transfer.metrics["mae_val"] < best_direct.metrics["mae_val"])
        if best_transfer and best_direct
        else None,
        "n_candidates": len(cands),
        "n_sources": len(sources),
        "modes": list(s.modes),
        "n": len(y),
        "folds": min(s.cv.folds, len(y)),
        "repeats": s.cv.repeats,
        "mean_predictor_mae": float(np.mean(np.abs(y - y.mean()))),
        "selection_note": "the chosen candidate's CV score is optimistic (best of many on the same folds)",
        "target": target_col,
        "library": str(library_dir),
        "wall_s": None,
        "threads": threads,
    }
    provenance = {
        "data": {
            "file": str(data),
            "smiles_col": smiles_col,
            "target_col": target_col,
            "n": len(y),
            "sha256": file_sha256(data),
        },
        "shotgun": {**s.record(), "library": str(library_dir)},
        "environment": environment(),
    }
    model = choose(cands, top, target_col, target_unit, provenance)
    model.save(out)
    notes = model.applicability(f.graphs)
    pm = model.member_predictions_graphs(f.graphs, smiles)
    cvp = pd.DataFrame(
        {
            "smiles": smiles,
            "target": y,
            "cv_mean": oof.mean(0),
            "cv_std": oof.std(0),
            "fit_mean": pm.mean(0),
            "fit_std": pm.std(0, ddof=1) if len(pm) > 1 else 0.0,
            "in_domain": [not n for n in notes],
            "domain_note": notes,
        }
    )
    cvp.to_csv(out / "cv_predictions.csv", index=False)
    metrics["n_outside_domain"] = int(sum(bool(n) for n in notes))
    metrics["wall_s"] = round(time.perf_counter() - t0, 2)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    label = f"{target_col} [{target_unit}]" if target_unit else target_col
    parity_plot(
        out / "parity.png",
        [
            ("train (fit)", y, pm.mean(0), None),
            ("cross-validation", y, oof.mean(0), oof.std(0) if oof.shape[0] > 1 else None),
        ],
        label,
        title=f"shotgun: {', '.join(metrics['chosen'])}; CV MAE {metrics['mae_val']:.3g}",
        r2={"cross-validation": metrics["r2_val"]},
    )
    return metrics


__all__ = [
    "ShotgunSettings",
    "shotgun_cv",
    "TransferCandidate",
    "score_candidates",
    "candidates_table",
    "choose",
    "shotgun_transfer",
]
