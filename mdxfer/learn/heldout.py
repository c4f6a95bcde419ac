"""Benchmarks of the learning side on held-out molecules: extrapolation and small data
(``mdxfer benchmark``; not to be confused with the active-learning benchmark,
:mod:`mdxfer.al.benchmark`, or the timing scripts in ``benchmarks/``).

``extrapolation`` (a threshold split, the out-of-distribution protocol of the self-supervised
study; docs/glossary.md): a data set is split by a threshold of its target — train on the
molecules *below* it, test on those *above* — and each approach is scored on the test side:
MAE, R², and the fraction of test predictions that reach the threshold at all (a model that
never predicts beyond what it has seen scores 0 there).

``small_data`` (the small-data setting of shotgun transfer, Yamada et al. 2019): ``n_train``
molecules (24) of a target the library was not trained
on, the rest held out; repeated over seeds.

Approaches (each fitted on the training side only; every choice — mode, source model — is made
by cross-validation inside the training side):

``direct_fp_ridge``  ridge on Morgan counts, no transfer;
``direct_gnn``       a graph network (preset ``default``) trained from scratch;
``ssl_gnn``          the same network with its encoder started from a self-supervised model;
``ssl_ridge``        ridge on the frozen self-supervised embedding;
``single_source``    transfer from one source model (finetune or ridge, chosen by CV);
``shotgun``          shotgun transfer over a library (models of the target's own property excluded);
``shotgun_top3``     the same candidates, a committee of the best three (less selection noise).

The candidates of ``mdxfer transfer`` (each the ensemble of its cross-validation fold models,
as ``transfer`` saves it; ``--source`` gives the pretrained model; ``fp_gp`` needs none):

``fp_gp``         Gaussian process, Tanimoto/linear kernel on Morgan counts (no transfer);
``emb_ridge``     ridge on the frozen embedding;  ``emb_rf``: random forest on it;
``emb_fp_ridge``  ridge on embedding and Morgan counts together;
``emb_gp``        Gaussian process, RBF kernel on the embedding;
``finetune``      the reference study's fine-tuning of the pretrained head;
``auto``          ``transfer``'s default: all seven cross-validated on the training side, the
                  lowest CV MAE kept (its choice in ``chosen``).

For these, the rows also carry the held-out coverage of mean ± 1σ / ± 2σ with the raw spread
(``cov1_raw``, ``cov2_raw``) and with the spread calibrated on the training side's out-of-fold
predictions (``cov1_cal``, ``cov2_cal``; ``scale``: the factor).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from rdkit import Chem

from mdxfer.errors import DataError
from mdxfer.learn.data import qm9
from mdxfer.learn.data.targets import read_target_table
from mdxfer.learn.ensemble import GPMember, combine_moments, features_for
from mdxfer.learn.evaluation import regression_metrics
from mdxfer.learn.featurize import GraphSet, featurize_smiles, morgan_counts, parse_smiles_or_none
from mdxfer.learn.library import (
    LibrarySettings,
    load_library,
    model_path,
    read_manifest,
    resolve_property,
)
from mdxfer.learn.models import GraphModel, load_source
from mdxfer.learn.nn.graph import preset
from mdxfer.learn.shotgun import ShotgunSettings, choose, score_candidates, shotgun_cv
from mdxfer.learn.training import fit_graph_regressor
from mdxfer.learn.transfer import (
    MODES,
    TransferSettings,
    calibrate,
    cross_validate,
    fit_ridge,
    select_mode,
)

#: transfer candidates by benchmark name (``mdxfer transfer`` modes)
TX_APPROACHES = {
    "fp_gp": "fp_gp",
    "emb_ridge": "ridge",
    "emb_rf": "rf",
    "emb_fp_ridge": "emb_fp_ridge",
    "emb_gp": "emb_gp",
    "finetune": "finetune",
}
APPROACHES = (
    "direct_fp_ridge",
    "direct_gnn",
    "ssl_gnn",
    "ssl_ridge",
    "single_source",
    "shotgun",
    "shotgun_top3",
    *TX_APPROACHES,
    "auto",
)


# --------------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------------


@dataclass
class ThresholdSplit:
    """Rows of a table split at ``threshold``: ``train`` below it, ``test`` at or above it."""

    train: np.ndarray
    test: np.ndarray
    threshold: float
    dropped: np.ndarray  # test rows whose molecule also sits in the training side


def canonical(smiles: str) -> str | None:
    mol = parse_smiles_or_none(smiles)
    return Chem.MolToSmiles(mol) if mol is not None else None


def threshold_split(
    smiles: Sequence[str], y: np.ndarray, threshold: float | None = None, quantile: float = 0.8
) -> ThresholdSplit:
    """Train below the threshold (``y < t``), test at or above it. ``threshold`` defaults to
    the ``quantile`` of ``y``. A molecule (canonical SMILES) present on both sides — a
    duplicate with two values — is removed from the test side (no leakage)."""
    y = np.asarray(y, dtype=np.float64)
    if not np.isfinite(y).all():
        raise DataError("The target has missing or non-numeric values.")
    t = float(np.quantile(y, quantile)) if threshold is None else float(threshold)
    train, test = np.flatnonzero(y < t), np.flatnonzero(y >= t)
    if len(train) < 5 or len(test) < 1:
        raise DataError(
            f"Threshold {t:.4g} leaves {len(train)} training and {len(test)} test rows; "
            "choose a threshold inside the data."
        )
    seen = {canonical(smiles[i]) for i in train}
    leak = np.array([i for i in test if canonical(smiles[i]) in seen], dtype=np.int64)
    test = np.setdiff1d(test, leak)
    return ThresholdSplit(train, test, t, leak)


# --------------------------------------------------------------------------------------------
# approaches: fit on (smiles, y), predict new smiles
# --------------------------------------------------------------------------------------------


@dataclass
class Context:
    """What the approaches share: featurised molecules, optional library / SSL / source."""

    smiles: list[str]
    graphs: GraphSet
    FP: np.ndarray
    library: str | None = None
    exclude_properties: tuple[str, ...] = ()
    ssl: str | None = None
    source: str | None = None
    gnn_epochs: int = 150
    gnn_patience: int = 25
    gnn_time_limit_s: float | None = None
    cv_folds: int = 5
    cv_repeats: int = 1
    modes: tuple[str, ...] = ("finetune", "ridge")
    cache: dict = field(
        default_factory=dict, repr=False
    )  # scored candidates per (sources, seed, rows)
    tx: dict = field(
        default_factory=dict, repr=False
    )  # transfer candidates' CV on one training set
    extra: dict = field(default_factory=dict, repr=False)  # per-row figures of the last approach


def _ridge(X_tr: np.ndarray, y: np.ndarray, X_te: np.ndarray, standardize: bool) -> np.ndarray:
    return fit_ridge(X_tr, y, "x", standardize).predict(X_te)


def _gnn(
    ctx: Context, tr: np.ndarray, y: np.ndarray, te: np.ndarray, seed: int, init: str | None
) -> np.ndarray:
    cfg = GraphModel.load(init).config if init is not None else preset("default")
    cfg = replace(cfg, max_epochs=ctx.gnn_epochs, patience=ctx.gnn_patience)
    model, _ = fit_graph_regressor(
        ctx.graphs.subset(tr),
        y,
        cfg,
        seed=seed,
        init_encoder=init,
        time_limit_s=ctx.gnn_time_limit_s,
    )
    return model.predict_graphs(ctx.graphs.subset(te))


def _transfer(
    ctx: Context,
    which: str,
    sources: Callable[[], list],
    tr: np.ndarray,
    y: np.ndarray,
    te: np.ndarray,
    seed: int,
    include_direct: bool,
    top: int = 1,
) -> tuple[np.ndarray, str]:
    """Score (or reuse the scores of) every candidate on the training rows, keep the best
    ``top``, predict the test rows."""
    key = (which, seed, tr.tobytes())
    if key not in ctx.cache:
        s = ShotgunSettings(
            modes=ctx.modes,
            include_direct=include_direct,
            cv=shotgun_cv(folds=ctx.cv_folds, repeats=ctx.cv_repeats, seed=seed),
        )
        sm = [ctx.smiles[i] for i in tr]
        ctx.cache.clear()  # keep one training set's candidates (and their models) at a time
        ctx.cache[key] = score_candidates(sources(), sm, y, s, ctx.graphs.subset(tr), ctx.FP[tr])
    cands = ctx.cache[key]
    te_sm = [ctx.smiles[i] for i in te]
    ens = choose(cands, top, "target")
    pred = ens.member_predictions_graphs(ctx.graphs.subset(te), te_sm).mean(0)
    return pred, " + ".join(f"{c.name}/{c.mode}" for c in cands[:top])


def _tx_cv(ctx: Context, mode: str, tr: np.ndarray, y: np.ndarray, seed: int) -> dict:
    """``mdxfer transfer``'s cross-validation of ``mode`` on rows ``tr`` (cached per training set)."""
    key = (seed, tr.tobytes())
    if ctx.tx.get("key") != key:
        ctx.tx.update(key=key, results={})
    if "E" not in ctx.tx:
        if ctx.source:
            ctx.tx["base"] = load_source(ctx.source)
            ctx.tx["E"] = ctx.tx["base"].embed(ctx.graphs, ctx.smiles)
        else:
            ctx.tx["base"], ctx.tx["E"] = None, np.zeros((len(ctx.smiles), 1), np.float32)
    if mode not in ("fp_ridge", "fp_gp") and ctx.tx["base"] is None:
        raise DataError(f"transfer mode {mode} needs a source model (--source DIR).")
    res = ctx.tx["results"]
    if mode not in res:
        s = TransferSettings(folds=min(ctx.cv_folds, len(tr)), repeats=ctx.cv_repeats, seed=seed)
        res[mode] = cross_validate(ctx.tx["base"], ctx.tx["E"][tr], ctx.FP[tr], y, mode, s)
    return res[mode]


def _tx_predict(
    ctx: Context, name: str, tr: np.ndarray, y: np.ndarray, te: np.ndarray, seed: int
) -> tuple[np.ndarray, str]:
    """A transfer candidate (or ``auto``: the best of all by CV MAE) fitted on ``tr``, its
    fold models' mean on ``te``; held-out coverage before/after calibration in ``ctx.extra``."""
    if name == "auto":
        modes = MODES if ctx.source else ("fp_ridge", "fp_gp")
        mode = select_mode({m: _tx_cv(ctx, m, tr, y, seed) for m in modes})
    else:
        mode = TX_APPROACHES[name]
    r = _tx_cv(ctx, mode, tr, y, seed)
    E, FP = ctx.tx["E"][te], ctx.FP[te]
    means, var = np.empty((len(r["members"]), len(te))), np.zeros((len(r["members"]), len(te)))
    for k, m in enumerate(r["members"]):
        X = features_for(m.uses, E, FP)
        if isinstance(m, GPMember):
            means[k], var[k] = m.moments(X)
        else:
            means[k] = m.predict(X)
    mean, sd = combine_moments(means, var)
    cal = calibrate(y, r["oof"], r["oof_var"], seed)
    ctx.extra.update(sd=sd, scale=cal.get("scale") or 1.0)
    return mean, mode


def coverage(
    y_true: np.ndarray, mean: np.ndarray, sd: np.ndarray, scale: float
) -> dict[str, float]:
    """Fraction of held-out targets inside mean ± 1σ and ± 2σ, raw and calibrated spread."""
    err = np.abs(np.asarray(y_true) - mean)
    return {
        "scale": float(scale),
        "cov1_raw": float(np.mean(err <= sd)),
        "cov2_raw": float(np.mean(err <= 2 * sd)),
        "cov1_cal": float(np.mean(err <= scale * sd)),
        "cov2_cal": float(np.mean(err <= 2 * scale * sd)),
    }


def run_approach(
    name: str, ctx: Context, tr: np.ndarray, y: np.ndarray, te: np.ndarray, seed: int
) -> tuple[np.ndarray, str]:
    """Fit approach ``name`` on rows ``tr`` (targets ``y``), predict rows ``te``; returns the
    predictions and a note (what was chosen)."""
    ctx.extra.clear()
    if name in TX_APPROACHES or name == "auto":
        return _tx_predict(ctx, name, tr, y, te, seed)
    if name == "direct_fp_ridge":
        return _ridge(ctx.FP[tr], y, ctx.FP[te], standardize=False), ""
    if name == "direct_gnn":
        return _gnn(ctx, tr, y, te, seed, None), "preset default"
    if name in ("ssl_gnn", "ssl_ridge"):
        if not ctx.ssl:
            raise DataError(
                f"{name} needs a self-supervised model (--ssl DIR from `mdxfer selfsup`)."
            )
        if name == "ssl_gnn":
            return _gnn(ctx, tr, y, te, seed, ctx.ssl), "encoder from " + Path(ctx.ssl).name
        base = load_source(ctx.ssl)
        E = base.embed(ctx.graphs, ctx.smiles)
        return _ridge(E[tr], y, E[te], standardize=True), ""
    if name == "single_source":
        if not ctx.source:
            raise DataError("single_source needs a source model (--source DIR).")
        entry = {"name": Path(ctx.source).name, "property": "", "kind": "", "metrics": {}}
        return _transfer(
            ctx,
            "single",
            lambda: [(entry, load_source(ctx.source))],
            tr,
            y,
            te,
            seed,
            include_direct=False,
        )
    if name in ("shotgun", "shotgun_top3"):
        if not ctx.library:
            raise DataError(f"{name} needs a model library (--library DIR).")
        return _transfer(
            ctx,
            "library",
            lambda: load_library(ctx.library, ctx.exclude_properties),
            tr,
            y,
            te,
            seed,
            include_direct=True,
            top=1 if name == "shotgun" else 3,
        )
    raise DataError(f"Unknown approach {name!r}; choose from {', '.join(APPROACHES)}.")


def default_source(library: str | Path, prop: str = qm9.CV_COLUMN) -> str:
    """The library's best graph model of ``prop`` (by validation R²): the single source."""
    ms = [
        m for m in read_manifest(library)["models"] if m["property"] == prop and m["kind"] == "gnn"
    ]
    if not ms:
        raise DataError(f"{library} has no graph model of {prop}; give --source DIR.")
    return str(model_path(library, max(ms, key=lambda m: m["metrics"].get("r2_val") or -1e9)))


# --------------------------------------------------------------------------------------------
# the two benchmarks
# --------------------------------------------------------------------------------------------


def _score(y_true: np.ndarray, pred: np.ndarray, threshold: float | None) -> dict[str, float]:
    m = regression_metrics(y_true, pred)
    out = {"mae": m["mae"], "r2": m["r2"], "rmse": m["rmse"]}
    if threshold is not None:
        out["frac_above_threshold"] = float(np.mean(pred >= threshold))
    return out


def qm9_sample(
    n: int, seed: int, target: str, exclude_library: str | Path | None = None
) -> pd.DataFrame:
    """``n`` seeded QM9 molecules with ``target``, none from the library's training subset."""
    df = qm9.load_qm9()
    if exclude_library:
        ls = LibrarySettings.from_dict(read_manifest(exclude_library).get("settings", {}))
        used = set(qm9.subset(ls.n, ls.seed, df)[qm9.SMILES_COLUMN])
        df = df[~df[qm9.SMILES_COLUMN].isin(used)].reset_index(drop=True)
    rng = np.random.default_rng(seed + 7_919)
    idx = np.sort(rng.choice(len(df), size=min(n, len(df)), replace=False))
    sub = df.iloc[idx].reset_index(drop=True)
    return pd.DataFrame(
        {"smiles": sub[qm9.SMILES_COLUMN].astype(str), "target": sub[target].astype(float)}
    )


def _context(smiles: list[str], **kw) -> Context:
    f = featurize_smiles(smiles)
    if f.failed:
        raise DataError(f"RDKit cannot parse {len(f.failed)} SMILES, e.g. {smiles[f.failed[0]]!r}.")
    return Context(smiles, f.graphs, morgan_counts(smiles), **kw)


def extrapolation(
    table: pd.DataFrame,
    approaches: Sequence[str],
    threshold: float | None = None,
    quantile: float = 0.8,
    seeds: Sequence[int] = (0,),
    log: Callable[[str], None] | None = None,
    **ctx_kw,
) -> pd.DataFrame:
    """Threshold-split benchmark on ``table`` (columns ``smiles``, ``target``); one row per
    (seed, approach): MAE, R², fraction of test predictions ≥ threshold, wall time."""
    log = log or (lambda m: None)
    smiles, y = list(table.smiles), table.target.to_numpy(dtype=float)
    sp = threshold_split(smiles, y, threshold, quantile)
    ctx = _context(smiles, **ctx_kw)
    log(
        f"threshold {sp.threshold:.4g}: {len(sp.train)} train (below), {len(sp.test)} test (above), "
        f"{len(sp.dropped)} duplicates removed from test"
    )
    rows = []
    for seed in seeds:
        for a in approaches:
            t0 = time.perf_counter()
            pred, note = run_approach(a, ctx, sp.train, y[sp.train], sp.test, seed)
            sc = _score(y[sp.test], pred, sp.threshold)
            rows.append(
                {
                    "seed": seed,
                    "approach": a,
                    **sc,
                    "n_train": len(sp.train),
                    "n_test": len(sp.test),
                    "threshold": sp.threshold,
                    "chosen": note,
                    "wall_s": round(time.perf_counter() - t0, 1),
                }
            )
            log(
                f"seed {seed} {a:<16} MAE {sc['mae']:.4g}  R² {sc['r2']:.3f}  above {sc['frac_above_threshold']:.2f}"
                f"  {note}  ({rows[-1]['wall_s']:.0f} s)"
            )
    return pd.DataFrame(rows)


def small_data(
    table: pd.DataFrame,
    approaches: Sequence[str],
    n_train: int = 24,
    seeds: Sequence[int] = (0, 1, 2),
    log: Callable[[str], None] | None = None,
    **ctx_kw,
) -> pd.DataFrame:
    """``n_train`` random training molecules per seed, the rest held out; one row per
    (seed, approach)."""
    log = log or (lambda m: None)
    smiles, y = list(table.smiles), table.target.to_numpy(dtype=float)
    if not 5 <= n_train < len(y):
        raise DataError(f"n_train must be between 5 and {len(y) - 1}, got {n_train}.")
    ctx = _context(smiles, **ctx_kw)
    rows = []
    for seed in seeds:
        perm = np.random.default_rng(seed).permutation(len(y))
        tr, te = np.sort(perm[:n_train]), np.sort(perm[n_train:])
        for a in approaches:
            t0 = time.perf_counter()
            pred, note = run_approach(a, ctx, tr, y[tr], te, seed)
            sc = _score(y[te], pred, None)
            if "sd" in ctx.extra:
                sc.update(coverage(y[te], pred, ctx.extra["sd"], ctx.extra["scale"]))
            rows.append(
                {
                    "seed": seed,
                    "approach": a,
                    **sc,
                    "n_train": len(tr),
                    "n_test": len(te),
                    "chosen": note,
                    "wall_s": round(time.perf_counter() - t0, 1),
                }
            )
            log(
                f"seed {seed} {a:<16} MAE {sc['mae']:.4g}  R² {sc['r2']:.3f}  {note}  ({rows[-1]['wall_s']:.0f} s)"
            )
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd over seeds per approach (in the order first seen)."""
    cols = [
        c
        for c in (
            "mae",
            "r2",
            "frac_above_threshold",
            "scale",
            "cov1_raw",
            "cov2_raw",
            "cov1_cal",
            "cov2_cal",
            "wall_s",
        )
        if c in df.columns
    ]
    g = df.groupby("approach", sort=False)[cols]
    out = g.mean().add_suffix("_mean").join(g.std(ddof=0).add_suffix("_sd"))
    out["seeds"] = df.groupby("approach", sort=False).size()
    return out.reset_index()


# --------------------------------------------------------------------------------------------
# one benchmark run (``mdxfer benchmark extrapolation|small-data``)
# --------------------------------------------------------------------------------------------


def benchmark_data(
    data: str | Path | None,
    target: str,
    n: int,
    seed: int,
    library: str | Path | None = None,
    smiles_col: str = "smiles",
    target_col: str = "target",
) -> tuple[pd.DataFrame, str | None]:
    """The benchmark's table (columns ``smiles``, ``target``) and its QM9 property: the user's
    CSV ``data`` (property None), or ``n`` seeded QM9 molecules of property ``target`` (short or
    column name) outside the library's training subset."""
    if data is not None:
        t = read_target_table(data, smiles_col, target_col)
        return t[["smiles", "target"]], None
    prop = resolve_property(target)
    return qm9_sample(n, seed, prop, library), prop


def default_approaches(
    library: str | Path | None = None,
    ssl: str | Path | None = None,
    source: str | Path | None = None,
) -> list[str]:
    """Every approach whose inputs are given (in the order of :data:`APPROACHES`): ``ssl_*``
    need ``ssl``, shotgun a library, the single-source and embedding ones a source or a
    library."""
    have = {
        "ssl_gnn": ssl,
        "ssl_ridge": ssl,
        "single_source": source or library,
        "shotgun": library,
        "shotgun_top3": library,
        "auto": source or library,
        **{a: source or library for a in TX_APPROACHES if a != "fp_gp"},
    }
    return [a for a in APPROACHES if have.get(a, True)]


def run_benchmark(
    kind: str,
    table: pd.DataFrame,
    approaches: Sequence[str],
    seeds: Sequence[int],
    prop: str | None = None,
    target_name: str = "target",
    library: str | Path | None = None,
    ssl: str | Path | None = None,
    source: str | Path | None = None,
    exclude_properties: Sequence[str] | None = None,
    gnn_epochs: int = 150,
    cv_repeats: int = 2,
    log: Callable[[str], None] | None = None,
    **split,
) -> pd.DataFrame:
    """Run :func:`extrapolation` (``kind="extrapolation"``, ``split``: threshold, quantile) or
    :func:`small_data` (``kind="small-data"``, ``split``: n_train) on ``table``. Defaults: the
    library models of the target's own property ``prop`` are excluded, and the single source
    is the library's best Cv graph model (:func:`default_source`)."""
    log = log or (lambda m: None)
    excl = (
        tuple(exclude_properties) if exclude_properties is not None else ((prop,) if prop else ())
    )
    src = str(source) if source else (default_source(library) if library else None)
    kw = dict(
        library=str(library) if library else None,
        exclude_properties=excl,
        ssl=str(ssl) if ssl else None,
        source=src,
        gnn_epochs=gnn_epochs,
        cv_repeats=cv_repeats,
    )
    log(
        f"{kind}: {len(table)} molecules, target {prop or target_name}; approaches "
        f"{', '.join(approaches)}; library models of {', '.join(excl) or 'no property'} excluded"
    )
    run = extrapolation if kind == "extrapolation" else small_data
    return run(table, list(approaches), seeds=list(seeds), log=log, **split, **kw)
