"""Transfer a pretrained network to a small target table, with honest cross-validation.

Modes (all use the pretrained *encoder* — graph convolutions + pooling — frozen):

``finetune``  the reference study's fine-tuning (docs/glossary.md): the fully connected layers
              and the output start from the pretrained weights and are retrained with Adam at
              1e-4 on the target data; early stopping on a validation split taken out of each
              training fold.
``ridge``     feature extraction (Yamada et al. 2019): the frozen pooled embedding, centred and
              scaled, feeds a ridge regression (penalty chosen by leave-one-out inside the fold).
``rf``        feature extraction into a random forest.
``emb_fp_ridge``  ridge on the embedding and the Morgan counts together (each block scaled to
              the same total variance).
``emb_gp``    a Gaussian process with an RBF kernel on the standardised embedding
              (:mod:`mdxfer.learn.gp`; hyperparameters by marginal likelihood).
``fp_ridge``  direct baseline, no transfer: ridge on Morgan count fingerprints (radius 2,
              2,048 bits). Always evaluated, so a user sees whether transfer helps.
``fp_gp``     no transfer: a Gaussian process on the Morgan counts, Tanimoto kernel mixed with a
              linear one (:mod:`mdxfer.learn.gp`).
``auto``      (default) the mode with the lowest cross-validated MAE among all of the above, so
              by construction never worse in CV than the fingerprint baselines. Picking the
              best of seven on the same folds is optimistic; the selection's own figure comes
              from nested cross-validation (outer folds: select inside, score outside).

Because the encoder is frozen and in evaluation mode, its pooled embedding of each molecule is
computed once and the heads are trained on it: the same computation as back-propagating
through a frozen encoder, a hundred times cheaper.

Scaling: every fine-tuned head standardises the *target* data with the mean and standard
deviation of its own training rows (never the source's Cv scaling: a new property would land
many standard deviations off).

Figures: repeated k-fold cross-validation (``repeats`` x ``folds``). ``r2_val``/``mae_val``
are computed on the out-of-fold predictions of each repeat and averaged over repeats (``_sd``:
spread over repeats); ``r2_train`` is the mean in-fold fit. The ``folds x repeats`` models of the
chosen mode form the saved ensemble: every prediction is their mean, with their standard
deviation as the spread (Gaussian-process members add their own predictive variance).

Calibration: the spread is multiplied by a scale factor fitted on the out-of-fold predictions so
that the squared z-scores average 1 (:func:`calibrate`); it is stored with the ensemble and used
by :func:`mdxfer.learn.ensemble.predict` and ``mdxfer rank``. Coverage of ±1σ/±2σ before and after is reported.

Applicability: a molecule with elements outside the source's (QM9: C, H, N, O, F) or more heavy
atoms than any source molecule (9) reaches input weights the source never trained; such
predictions are flagged (``in_domain = False``).

The fitted fold models are ensemble members (:mod:`mdxfer.learn.ensemble`), saved as an
:class:`~mdxfer.learn.ensemble.Ensemble`.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from mdxfer.errors import DataError
from mdxfer.learn.data.targets import file_sha256, read_target_table
from mdxfer.learn.ensemble import (
    Ensemble,
    ForestMember,
    GPMember,
    GPTable,
    HeadMember,
    LinearMember,
    combine_moments,
    features_for,
)
from mdxfer.learn.evaluation import calibration_plot, parity_plot, regression_metrics
from mdxfer.learn.featurize import (
    QM9_ELEMENTS,
    QM9_MAX_HEAVY_ATOMS,
    Featurized,
    applicability,
    featurize_smiles,
    morgan_counts,
)
from mdxfer.learn.gp import fit_gp, pair_terms
from mdxfer.learn.models import (
    SourceModel,
    TargetScaler,
    encoder_digest,
    environment,
    load_source,
    set_threads,
)
from mdxfer.progress import ProgressBar

MODES = ("finetune", "ridge", "rf", "emb_fp_ridge", "emb_gp", "fp_ridge", "fp_gp")
#: modes that do not use the pretrained model (the baselines a transfer must beat)
NO_TRANSFER = ("fp_ridge", "fp_gp")


# --------------------------------------------------------------------------------------------
# fitting one ensemble member
# --------------------------------------------------------------------------------------------


def fit_gp_member(table: GPTable, y: np.ndarray, idx: np.ndarray) -> GPMember:
    """A Gaussian process on rows ``idx`` of ``table`` (hyperparameters by marginal likelihood)."""
    X = table.X[idx]
    fit = fit_gp(table.kernel, pair_terms(table.kernel, X, X), y[idx])
    return GPMember(table, np.asarray(idx, dtype=np.int64), fit, dict(fit.info))


def _fit_ridge_both(E: np.ndarray, FP: np.ndarray, y: np.ndarray) -> LinearMember:
    """Ridge on ``[embedding, Morgan counts]``: each block centred and divided by the square
    root of its total variance, so both blocks weigh the same in the penalty."""
    from sklearn.linear_model import RidgeCV

    X = features_for("both", E, FP)
    mean = X.mean(0)
    scale = np.empty(X.shape[1])
    for block in (slice(0, E.shape[1]), slice(E.shape[1], X.shape[1])):
        tv = float(np.sqrt(((X[:, block] - mean[block]) ** 2).mean(0).sum()))
        scale[block] = tv if tv > 1e-12 else 1.0
    model = RidgeCV(alphas=np.logspace(-4, 3, 15)).fit((X - mean) / scale, y)
    return LinearMember(
        mean,
        scale,
        np.asarray(model.coef_, dtype=np.float64),
        float(model.intercept_),
        "both",
        {"alpha": float(model.alpha_)},
    )


def _fit_finetune(
    base: SourceModel, E: np.ndarray, y: np.ndarray, idx: np.ndarray, s: TransferSettings, seed: int
) -> HeadMember:
    """Retrain the pretrained head (FC layers + output) on rows ``idx`` of the embedding ``E``;
    early stopping on a random ``val_fraction`` of those rows."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(idx)
    n_val = int(round(s.val_fraction * len(idx)))
    n_val = min(max(n_val, 1), len(idx) - 2)
    tr, va = idx[n_val:], idx[:n_val]
    scaler = TargetScaler.fit(y[tr], base.scaler.name, base.scaler.unit)
    scaler.name, scaler.unit = s.target_name, s.target_unit
    xt, xv = torch.from_numpy(E[tr]), torch.from_numpy(E[va])
    yt = torch.tensor(scaler.transform(y[tr]), dtype=torch.float32)
    yv = torch.tensor(scaler.transform(y[va]), dtype=torch.float32)
    torch.manual_seed(seed)
    head = copy.deepcopy(base.model.head)
    head.train()
    opt = torch.optim.Adam(head.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    best, best_state, best_epoch, bad = np.inf, copy.deepcopy(head.state_dict()), 0, 0
    for epoch in range(1, s.max_epochs + 1):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(head(xt).squeeze(-1), yt)
        loss.backward()
        opt.step()
        with torch.no_grad():
            vl = float(torch.nn.functional.mse_loss(head(xv).squeeze(-1), yv))
        if vl < best - 1e-7:
            best, best_state, best_epoch, bad = vl, copy.deepcopy(head.state_dict()), epoch, 0
        else:
            bad += 1
            if bad >= s.patience:
                break
    head.load_state_dict(best_state)
    head.eval()
    return HeadMember(
        head,
        scaler,
        {
            "best_epoch": best_epoch,
            "epochs_run": epoch,
            "lr": s.lr,
            "n_train": len(tr),
            "n_earlystop": len(va),
            "seed": seed,
        },
    )


def fit_ridge(X: np.ndarray, y: np.ndarray, uses: str, standardize: bool) -> LinearMember:
    """RidgeCV (penalty by leave-one-out). With ``standardize`` the features are centred and
    divided by one global scale (the standard deviation of the whole matrix), not per column:
    embedding units that fire for a single training molecule have a near-zero column spread,
    and per-column scaling blew them up on held-out molecules (CV MAE x2-3 on the example)."""
    from sklearn.linear_model import RidgeCV

    X = X.astype(np.float64)
    mean = X.mean(0) if standardize else np.zeros(X.shape[1])
    scale = float((X - mean).std()) if standardize else 1.0
    scale = np.full(X.shape[1], scale if scale > 1e-12 else 1.0)
    model = RidgeCV(alphas=np.logspace(-3, 4, 15)).fit((X - mean) / scale, y)
    return LinearMember(
        mean,
        scale,
        np.asarray(model.coef_, dtype=np.float64),
        float(model.intercept_),
        uses,
        {"alpha": float(model.alpha_)},
    )


def _fit_forest(X: np.ndarray, y: np.ndarray, seed: int) -> ForestMember:
    from sklearn.ensemble import RandomForestRegressor

    rf = RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1).fit(
        X.astype(np.float64), y
    )
    return ForestMember(rf, "embedding", {"n_estimators": 200, "seed": seed})


def fit_member(
    mode: str,
    base: SourceModel,
    E: np.ndarray,
    FP: np.ndarray,
    y: np.ndarray,
    idx: np.ndarray,
    s: TransferSettings,
    seed: int,
    tables: dict[str, GPTable] | None = None,
):
    """Train one member of ``mode`` on rows ``idx``. ``tables``: the Gaussian-process feature
    tables of this ``(E, FP)`` by mode, built on first use (pass the same dict for every fold)."""
    if mode == "finetune":
        return _fit_finetune(base, E, y, idx, s, seed)
    if mode == "ridge":
        return fit_ridge(E[idx], y[idx], "embedding", standardize=True)
    if mode == "rf":
        return _fit_forest(E[idx], y[idx], seed)
    if mode == "fp_ridge":
        return fit_ridge(FP[idx], y[idx], "fingerprint", standardize=False)
    if mode == "emb_fp_ridge":
        return _fit_ridge_both(E[idx], FP[idx], y[idx])
    if mode in ("fp_gp", "emb_gp"):
        tables = {} if tables is None else tables
        if mode not in tables:
            tables[mode] = (
                GPTable.build("tanimoto", "fingerprint", FP)
                if mode == "fp_gp"
                else GPTable.build("rbf", "embedding", E)
            )
        return fit_gp_member(tables[mode], y, idx)
    raise DataError(f"Unknown transfer mode {mode!r}; choose one of {', '.join(MODES)} or auto.")


# --------------------------------------------------------------------------------------------
# cross-validated transfer
# --------------------------------------------------------------------------------------------


@dataclass
class TransferSettings:
    """Transfer options. ``lr``/``max_epochs``/``patience``/``val_fraction`` concern fine-tuning;
    ``nested``/``nested_repeats``: with ``mode="auto"``, score the selection by nested CV
    (outer ``folds``-fold, inner ``folds``-fold CV repeated ``nested_repeats`` times)."""

    mode: str = "auto"
    folds: int = 5
    repeats: int = 3
    seed: int = 0
    lr: float = 1e-4
    max_epochs: int = 10000
    patience: int = 500
    val_fraction: float = 0.2
    weight_decay: float = 0.0
    compare: tuple[str, ...] = MODES
    target_name: str = "target"
    target_unit: str = ""
    nested: bool = True
    nested_repeats: int = 1


def check_folds(folds: int, n: int) -> None:
    """k-fold cross-validation needs 2 <= k <= n rows."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise DataError(
            f"folds must be an integer >= 2 for k-fold cross-validation, got {folds!r}."
        )
    if folds > n:
        raise DataError(
            f"{folds}-fold cross-validation needs at least {folds} rows; the table has {n}. "
            f"Use --folds {n} or fewer, or add rows."
        )


def cross_validate(
    base: SourceModel,
    E: np.ndarray,
    FP: np.ndarray,
    y: np.ndarray,
    mode: str,
    s: TransferSettings,
    tick: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Repeated k-fold CV of one mode. Returns metrics, out-of-fold predictions (repeats x n)
    and the fold models (the ensemble)."""
    from sklearn.model_selection import RepeatedKFold

    n = len(y)
    check_folds(s.folds, n)
    folds = s.folds
    rkf = RepeatedKFold(n_splits=folds, n_repeats=s.repeats, random_state=s.seed)
    oof = np.full((s.repeats, n), np.nan)
    oof_var = np.zeros((s.repeats, n))  # members' own predictive variance (Gaussian processes)
    fit_r2, fit_mae, members = [], [], []
    tables: dict[str, GPTable] = {}
    for k, (tr, te) in enumerate(rkf.split(np.arange(n))):
        r, f = divmod(k, folds)
        seed = (s.seed * 10_007 + k) % 2**32  # scikit-learn seeds must be < 2**32
        m = fit_member(mode, base, E, FP, y, tr, s, seed, tables)
        m.info.update({"repeat": r, "fold": f})
        X = features_for(m.uses, E, FP)
        if isinstance(m, GPMember):
            oof[r, te], oof_var[r, te] = m.moments(X[te])
        else:
            oof[r, te] = m.predict(X[te])
        pm = regression_metrics(y[tr], m.predict(X[tr]))
        fit_r2.append(pm["r2"])
        fit_mae.append(pm["mae"])
        members.append(m)
        if tick:
            tick()
    per_rep = [regression_metrics(y, oof[r]) for r in range(s.repeats)]
    r2s, maes = np.array([p["r2"] for p in per_rep]), np.array([p["mae"] for p in per_rep])
    metrics = {
        "r2_val": float(r2s.mean()),
        "r2_val_sd": float(r2s.std()),
        "mae_val": float(maes.mean()),
        "mae_val_sd": float(maes.std()),
        "rmse_val": float(np.mean([p["rmse"] for p in per_rep])),
        "r2_train": float(np.mean(fit_r2)),
        "mae_train": float(np.mean(fit_mae)),
    }
    return {"metrics": metrics, "oof": oof, "oof_var": oof_var, "members": members}


def select_mode(results: dict[str, dict[str, Any]]) -> str:
    """The mode of lowest cross-validated MAE (ties: the first in ``results``' order)."""
    return min(results, key=lambda m: results[m]["metrics"]["mae_val"])


def nested_cv(
    base: SourceModel,
    E: np.ndarray,
    FP: np.ndarray,
    y: np.ndarray,
    modes: Sequence[str],
    s: TransferSettings,
    tick: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """The selection's own estimate: outer ``s.folds``-fold CV; inside every outer training
    side, every mode is cross-validated (``s.nested_repeats`` repeats), the best is selected
    and its fold models predict the outer test rows. Also scores, on the same outer folds,
    the best no-transfer mode chosen the same way (the baseline a user would otherwise fit)."""
    from sklearn.model_selection import KFold

    n = len(y)
    pred, base_pred = np.full(n, np.nan), np.full(n, np.nan)
    picks: list[str] = []
    outer = KFold(n_splits=s.folds, shuffle=True, random_state=(s.seed * 7_919 + 1) % 2**32)
    for tr, te in outer.split(np.arange(n)):
        inner = copy.copy(s)
        inner.folds, inner.repeats = min(s.folds, len(tr)), s.nested_repeats
        Etr, Ete = (None, None) if E is None else (E[tr], E[te])
        res = {m: cross_validate(base, Etr, FP[tr], y[tr], m, inner, tick) for m in modes}
        best = select_mode(res)
        picks.append(best)
        pred[te] = _members_mean(res[best]["members"], Ete, FP[te])
        baselines = {m: res[m] for m in modes if m in NO_TRANSFER}
        if baselines:
            base_pred[te] = _members_mean(res[select_mode(baselines)]["members"], Ete, FP[te])
    m = regression_metrics(y, pred)
    out = {
        "r2": m["r2"],
        "mae": m["mae"],
        "picks": picks,
        "outer_folds": s.folds,
        "inner": f"{s.nested_repeats}x{min(s.folds, n - n // s.folds)}-fold",
    }
    if np.isfinite(base_pred).all():
        b = regression_metrics(y, base_pred)
        out.update({"baseline_r2": b["r2"], "baseline_mae": b["mae"]})
    return out


def _members_mean(members: Sequence[Any], E: np.ndarray | None, FP: np.ndarray) -> np.ndarray:
    return np.mean([m.predict(features_for(m.uses, E, FP)) for m in members], axis=0)


def calibrate(y: np.ndarray, oof: np.ndarray, oof_var: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Scale factor of the spread from out-of-fold predictions (repeats x n; ``oof_var``: the
    members' own variances): ``scale² = Σ (y - m)² / Σ s²`` with ``m`` the molecule's mean
    out-of-fold prediction over repeats and ``s²`` its spread (variance over repeats, ddof 1,
    plus the mean own variance), so that the squared z-scores average 1. Coverage of the ±1σ
    and ±2σ intervals before and after (the "after" figures use a scale fitted on the same
    molecules; ``*_crossfit``: each half of the molecules scaled by the other half's factor)."""
    y = np.asarray(y, dtype=np.float64)
    m = oof.mean(0)
    s2 = (oof.var(0, ddof=1) if oof.shape[0] > 1 else np.zeros(len(y))) + oof_var.mean(0)
    err2 = (y - m) ** 2
    out: dict[str, Any] = {
        "method": "scale² = Σ(y - oof mean)² / Σ oof spread² (z-scores of unit variance)",
        "n": len(y),
    }
    if s2.sum() <= 0:
        return {
            **out,
            "scale": None,
            "note": "no out-of-fold spread (one repeat of a mode without its own "
            "variance): the spread is not calibrated",
        }
    scale = float(np.sqrt(err2.sum() / s2.sum()))
    sd = np.sqrt(s2)
    half = np.random.default_rng(seed).permutation(len(y)) % 2 == 0
    cross = np.empty(len(y))
    for part in (half, ~half):
        other = ~part
        cross[part] = np.sqrt(err2[other].sum() / s2[other].sum()) if s2[other].sum() > 0 else scale

    def cover(k: float, factor: np.ndarray | float) -> float:
        return float(np.mean(np.abs(y - m) <= k * factor * sd))

    return {
        **out,
        "scale": scale,
        "z_var_before": float(np.mean(err2[s2 > 0] / s2[s2 > 0])),
        "coverage_1sd_before": cover(1, 1.0),
        "coverage_2sd_before": cover(2, 1.0),
        "coverage_1sd_after": cover(1, scale),
        "coverage_2sd_after": cover(2, scale),
        "coverage_1sd_after_crossfit": cover(1, cross),
        "coverage_2sd_after_crossfit": cover(2, cross),
        "gaussian_1sd": 0.683,
        "gaussian_2sd": 0.954,
    }


def transfer(
    base_dir: str | Path,
    data: str | Path,
    out_dir: str | Path,
    settings: TransferSettings | None = None,
    smiles_col: str = "smiles",
    target_col: str = "target",
    threads: int = 1,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Cross-validated transfer of the model in ``base_dir`` to the table ``data``; writes
    ``ensemble.pt``, ``metrics.json``, ``cv_predictions.csv`` and ``parity.png`` into
    ``out_dir`` and returns the metrics."""
    s = copy.copy(settings or TransferSettings())
    log = log or (lambda msg: None)
    set_threads(threads)
    t0 = time.perf_counter()
    base = load_source(base_dir)
    digest = encoder_digest(base.model.encoder)
    table = read_target_table(data, smiles_col, target_col, log=log)
    check_folds(s.folds, len(table))
    s.target_name = target_col
    smiles, y = list(table.smiles), table.target.to_numpy()
    f = featurize_smiles(smiles)
    E = base.embed(f.graphs, smiles)
    FP = morgan_counts(smiles)
    domain = base.provenance.get("data", {}).get("domain", {})
    notes = applicability(
        f.graphs,
        domain.get("elements", QM9_ELEMENTS),
        domain.get("max_heavy_atoms", QM9_MAX_HEAVY_ATOMS),
    )
    n_out = sum(bool(x) for x in notes)
    log(f"{len(y)} target rows; {n_out} outside the source's domain")

    if s.mode not in MODES and s.mode != "auto":
        raise DataError(
            f"Unknown transfer mode {s.mode!r}; choose one of {', '.join(MODES)} or auto."
        )
    modes = list(
        dict.fromkeys([m for m in s.compare if m in MODES] + ([s.mode] if s.mode in MODES else []))
    )
    if not modes:
        raise DataError(f"No transfer mode to compare; choose from {', '.join(MODES)}.")
    nest = s.mode == "auto" and s.nested and len(modes) > 1
    folds = min(s.folds, len(y))
    inner = min(s.folds, len(y) - -(-len(y) // s.folds)) if nest else 0
    total = len(modes) * folds * (s.repeats + (s.nested_repeats * inner if nest else 0))
    results: dict[str, dict[str, Any]] = {}
    nested = None
    bar = ProgressBar(progress, total, "cross-validation")
    try:
        for mode in modes:
            bar.set(f"cross-validation: {mode}")
            results[mode] = cross_validate(base, E, FP, y, mode, s, bar.tick)
        if nest:
            bar.set("nested cross-validation of the selection")
            nested = nested_cv(base, E, FP, y, modes, s, bar.tick)
    finally:
        bar.close()
    if encoder_digest(base.model.encoder) != digest:  # pragma: no cover - a guard, never expected
        raise RuntimeError("the frozen encoder changed during transfer")

    chosen = s.mode if s.mode != "auto" else select_mode(results)
    res = results[chosen]
    calibration = calibrate(y, res["oof"], res["oof_var"], s.seed)
    selection = selection_summary(results, chosen, nested, auto=s.mode == "auto")
    transfer_modes = [m for m in modes if m not in NO_TRANSFER]
    best_transfer = (
        min(transfer_modes, key=lambda m: results[m]["metrics"]["mae_val"])
        if transfer_modes
        else None
    )
    baseline_mae = float(np.mean(np.abs(y - y.mean())))  # predicting the mean (in-sample)
    metrics = {
        **{k: res["metrics"][k] for k in ("r2_train", "r2_val", "mae_val")},
        "mode": chosen,
        "r2_val_sd": res["metrics"]["r2_val_sd"],
        "mae_val_sd": res["metrics"]["mae_val_sd"],
        "target": target_col,
        "n": len(y),
        "folds": folds,
        "repeats": s.repeats,
        "ensemble_size": len(res["members"]),
        "n_outside_domain": n_out,
        "rows_skipped": table.attrs.get("skipped", {}),
        "methods": {m: results[m]["metrics"] for m in modes},
        "selection": selection,
        "summary": selection["line"],
        "calibration": calibration,
        "fingerprint_baseline_mae": results["fp_ridge"]["metrics"]["mae_val"]
        if "fp_ridge" in results
        else None,
        "transfer_beats_baseline": (
            results[best_transfer]["metrics"]["mae_val"] < results["fp_ridge"]["metrics"]["mae_val"]
        )
        if best_transfer and "fp_ridge" in results
        else None,
        "mean_predictor_mae": baseline_mae,
        "wall_s": round(time.perf_counter() - t0, 2),
        "threads": threads,
        "base_model": str(Path(base_dir)),
        "base_data_hash": base.provenance.get("data", {}).get("data_hash"),
    }
    ens = Ensemble(
        base,
        res["members"],
        chosen,
        target_col,
        s.target_unit,
        domain,
        {
            "data": {
                "file": str(data),
                "smiles_col": smiles_col,
                "target_col": target_col,
                "n": len(y),
                "sha256": file_sha256(data),
            },
            "settings": {
                k: v for k, v in asdict(s).items() if k not in ("target_name", "target_unit")
            },
            "base_provenance": base.provenance,
            "cv": metrics,
            "environment": environment(),
        },
        {"scale": calibration.get("scale"), "method": calibration["method"]},
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ens.save(out)
    _write_reports(out, ens, f, smiles, y, modes, results, res, notes, metrics, s, target_col)
    return metrics


def selection_summary(
    results: dict[str, dict[str, Any]],
    chosen: str,
    nested: dict[str, Any] | None,
    auto: bool = True,
) -> dict[str, Any]:
    """Whether transfer helped on this table and by how much, with the selection's nested-CV
    figure; ``line``: the same in one sentence. ``auto``: ``chosen`` was selected by CV (else
    the user asked for it)."""

    def best_of(names: Sequence[str]) -> str | None:
        names = [m for m in names if m in results]
        return min(names, key=lambda m: results[m]["metrics"]["mae_val"]) if names else None

    bt, bb = best_of([m for m in results if m not in NO_TRANSFER]), best_of(NO_TRANSFER)
    r = {m: results[m]["metrics"] for m in results}
    out: dict[str, Any] = {
        "selected": chosen,
        "selected_by": "cross-validation" if auto else "--mode",
        "selected_cv_r2": r[chosen]["r2_val"],
        "selected_cv_mae": r[chosen]["mae_val"],
        "best_transfer": bt,
        "best_baseline": bb,
        "criterion": "lowest cross-validated MAE",
    }
    parts = []
    if bt and bb:
        helped = r[bt]["mae_val"] < r[bb]["mae_val"]
        out.update(
            {
                "transfer_helped": helped,
                "best_transfer_cv_r2": r[bt]["r2_val"],
                "best_baseline_cv_r2": r[bb]["r2_val"],
                "margin_cv_mae_over_best_baseline": r[bb]["mae_val"] - r[chosen]["mae_val"],
                "margin_cv_r2_over_best_baseline": r[chosen]["r2_val"] - r[bb]["r2_val"],
            }
        )
        parts.append(
            f"transfer {'helped' if helped else 'did not help'} on this table: best transfer mode {bt} "
            f"R² {r[bt]['r2_val']:.3f} vs fingerprint baseline {bb} R² {r[bb]['r2_val']:.3f} (CV)"
        )
    if auto:
        parts.append(
            f"selected {chosen} (CV R² {r[chosen]['r2_val']:.3f}, optimistic: best of {len(results)})"
        )
    else:
        best = select_mode(results)
        parts.append(
            f"kept {chosen} as asked (--mode {chosen}, CV R² {r[chosen]['r2_val']:.3f})"
            + (
                f"; the CV-best mode was {best} (R² {r[best]['r2_val']:.3f})"
                if best != chosen
                else ""
            )
        )
    if nested:
        out["nested_cv"] = nested
        txt = f"nested-CV R² of the selection {nested['r2']:.3f}"
        if "baseline_r2" in nested:
            txt += f" (fingerprint baseline on the same outer folds {nested['baseline_r2']:.3f})"
        parts.append(txt)
    out["line"] = "; ".join(parts)
    return out


def _write_reports(
    out: Path,
    ens: Ensemble,
    f: Featurized,
    smiles: list[str],
    y: np.ndarray,
    modes: list[str],
    results: dict[str, dict[str, Any]],
    res: dict[str, Any],
    notes: list[str],
    metrics: dict[str, Any],
    s: TransferSettings,
    target_col: str,
) -> None:
    """``cv_predictions.csv``, ``metrics.json``, ``parity.png`` and ``calibration.png``."""
    pm, pv = ens.member_moments_graphs(f.graphs, smiles)
    fit_mean, fit_std = combine_moments(pm, pv, ens.spread_scale)
    cvp = pd.DataFrame({"smiles": smiles, "target": y})
    for m in modes:
        cvp[f"{m}_cv_mean"] = results[m]["oof"].mean(0)
        cvp[f"{m}_cv_std"] = results[m]["oof"].std(0)
    oof_mean, oof_std = combine_moments(res["oof"], res["oof_var"], 1.0)
    cvp["selected_cv_mean"], cvp["selected_cv_std_calibrated"] = (
        oof_mean,
        oof_std * ens.spread_scale,
    )
    cvp["ensemble_fit_mean"], cvp["ensemble_fit_std"] = fit_mean, fit_std
    cvp["in_domain"] = [not x for x in notes]
    cvp["domain_note"] = notes
    cvp.to_csv(out / "cv_predictions.csv", index=False)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    oof = res["oof"]
    cv_name = (
        f"cross-validation, mean ± sd of {s.repeats} repeats"
        if s.repeats > 1
        else "cross-validation"
    )
    parity_plot(
        out / "parity.png",
        [
            ("train (ensemble fit)", y, fit_mean, None),
            (cv_name, y, oof.mean(0), oof.std(0) if s.repeats > 1 else None),
        ],
        f"{target_col} {('[' + s.target_unit + ']') if s.target_unit else ''}".strip(),
        title=f"transfer mode {metrics['mode']}, {s.repeats}x{metrics['folds']}-fold CV: "
        f"R² {metrics['r2_val']:.3f}, MAE {metrics['mae_val']:.3g}",
        r2={cv_name: metrics["r2_val"]},
    )
    if metrics["calibration"].get("scale"):
        calibration_plot(
            out / "calibration.png",
            y,
            oof_mean,
            oof_std,
            ens.spread_scale,
            f"{metrics['mode']}, out-of-fold, n = {len(y)}",
        )
