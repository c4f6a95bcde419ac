"""The loop's model: a transferred GCN as an ensemble, cheap enough to retrain every round.

Transfer by **feature extraction** (Yamada et al., ACS Cent. Sci. 5, 1717, 2019): the pretrained QM9 network's frozen encoder
(graph convolutions + pooling) turns every molecule into its pooled embedding. That is
computed **once** for the whole pool (the encoder never changes), optionally concatenated with
Morgan count fingerprints; each round only the small models on top are refitted:

``ridge``     (default) ``members`` ridge regressions, each on a bootstrap resample of the
              known molecules (penalty chosen by generalised cross-validation); the spread of
              their predictions is the uncertainty, each one is a Thompson draw.
``rf``        a random forest; its trees are the members.
``finetune``  fine-tuning of the pretrained fully connected head (the reference study's procedure)
              (:func:`mdxfer.learn.transfer.fit_member`), one head per bootstrap resample — the
              expensive option (seconds to minutes per member).

**Measurement noise.** A measurement's standard error (the MD campaign's ``E_int_stderr``)
is its noise: ``ridge`` members and the ``rf`` forest are fitted with sample weights
``1/(se² + s0²)`` (:func:`noise_weights`; normalised to mean 1), where the floor ``s0`` is the
median of the known stderrs, so that no point gets an unbounded weight and a measurement
without a stderr (a table or ``initial`` file without a ``<target>_stderr`` column) counts as
one of median noise. When no
measurement has a stderr the fits are unweighted, exactly as without this rule.
``finetune`` ignores the stderrs.

**Calibrated spread.** When a round is cross-validated (the default), the members are spread
about their mean by the factor ``spread_scale`` fitted on that round's out-of-fold predictions
(:func:`spread_scale`: pooled z-scores of unit variance), so the acquisition's spread and its
Thompson draws carry the calibrated uncertainty; coverage of ±1σ/±2σ before and after is in
the round's cross-validation record.

Features (``features``): ``embedding`` (the frozen GCN vector), ``embedding+morgan``
(default: both blocks, each block scaled to the same total variance) or ``morgan`` (no
transfer: the direct baseline). Columns are standardised over all molecules the loop knows
of (pool + measured), which is legitimate because no target value is used.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from mdxfer.al.diversity import morgan_bits
from mdxfer.errors import ALError
from mdxfer.learn.evaluation import regression_metrics

SURROGATES = ("ridge", "rf", "finetune")
FEATURE_SETS = ("embedding+morgan", "embedding", "morgan")


@dataclass(frozen=True)
class SurrogateSettings:
    """The model refitted every round. ``model_dir``: a pretraining folder (``mdxfer
    pretrain --out DIR``) whose encoder is frozen; not needed for ``features = "morgan"``."""

    model: str = "ridge"
    features: str = "embedding+morgan"
    members: int = 16
    model_dir: str | None = None
    cv_folds: int = 5
    finetune_epochs: int = 2000
    finetune_patience: int = 200

    def __post_init__(self) -> None:
        if self.model not in SURROGATES:
            raise ALError(
                f"Unknown surrogate model {self.model!r}; choose one of {', '.join(SURROGATES)}."
            )
        if self.features not in FEATURE_SETS:
            raise ALError(
                f"Unknown feature set {self.features!r}; choose one of {', '.join(FEATURE_SETS)}."
            )
        if self.members < 2:
            raise ALError(f"An ensemble needs at least 2 members for a spread, got {self.members}.")
        if self.model == "finetune" and self.features != "embedding":
            raise ALError(
                "Fine-tuning retrains the pretrained head, which reads the embedding "
                'only: use features = "embedding" with model = "finetune".'
            )
        if self.uses_embedding and not self.model_dir:
            raise ALError(
                f"Features {self.features!r} need a pretrained model: set model_dir "
                "(a folder written by `mdxfer pretrain --out DIR`), or use "
                'features = "morgan" (no transfer).'
            )

    @property
    def uses_embedding(self) -> bool:
        return "embedding" in self.features

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# features, computed once
# --------------------------------------------------------------------------------------------


@dataclass
class FeatureTable:
    """Features of every molecule the loop knows (pool and measured), by row.

    ``X``: the model's input (standardised); ``embedding``: the raw pooled GCN vectors (or
    None); ``fps``: Morgan bit vectors for diversity; ``domain``: "" inside the source's
    domain, else why not (None where unknown)."""

    smiles: list[str]
    X: np.ndarray
    embedding: np.ndarray | None
    fps: np.ndarray
    domain: list[str | None]
    settings: SurrogateSettings
    base: Any = None  # the pretrained GraphModel (fine-tuning needs its head)
    row: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.row:
            self.row = {s: i for i, s in enumerate(self.smiles)}

    def rows(self, smiles: Sequence[str]) -> np.ndarray:
        try:
            return np.array([self.row[s] for s in smiles], dtype=np.int64)
        except KeyError as exc:
            raise ALError(
                f"Molecule {exc.args[0]!r} has no features (not in the pool or the measured set)."
            ) from None


def _standardize(block: np.ndarray) -> np.ndarray:
    block = block.astype(np.float64)
    sd = block.std(0)
    out = (block - block.mean(0)) / np.where(sd > 1e-12, sd, 1.0)
    live = max(int((sd > 1e-12).sum()), 1)
    return out / np.sqrt(live)  # each block gets the same total variance


def compute_features(smiles: Sequence[str], settings: SurrogateSettings, log=None) -> FeatureTable:
    """Featurise ``smiles`` (canonical SMILES) once: frozen-encoder embeddings, Morgan counts,
    Morgan bits. Unparsable SMILES raise :class:`ALError`."""
    from mdxfer.learn.featurize import morgan_counts

    smiles = list(smiles)
    blocks, emb, base = [], None, None
    domain: list[str | None] = [None] * len(smiles)
    if settings.uses_embedding:
        from mdxfer.learn.ensemble import encoder_embeddings, in_domain, load_ensemble

        ens = load_ensemble(settings.model_dir)
        base = ens.base
        emb = encoder_embeddings(ens, smiles)
        bad = np.flatnonzero(~np.isfinite(emb).all(1))
        if len(bad):
            raise ALError(
                f"RDKit cannot featurise {len(bad)} molecule(s), e.g. {smiles[bad[0]]!r}."
            )
        domain = in_domain(ens, smiles)
        blocks.append(_standardize(emb))
    if "morgan" in settings.features:
        blocks.append(_standardize(morgan_counts(smiles)))
    X = np.concatenate(blocks, axis=1).astype(np.float32)
    if log:
        log(f"features: {settings.features}, {X.shape[1]} columns for {len(smiles)} molecules")
    return FeatureTable(smiles, X, emb, morgan_bits(smiles), domain, settings, base)


# --------------------------------------------------------------------------------------------
# ensembles
# --------------------------------------------------------------------------------------------

ALPHAS = np.logspace(-2, 4, 13)


@dataclass
class FittedEnsemble:
    """A fitted ensemble; :meth:`predict_members` gives (n_members x n) in the target unit."""

    kind: str
    coef: np.ndarray | None = None  # ridge: (members x d)
    intercept: np.ndarray | None = None  # ridge: (members,)
    forest: Any = None  # rf
    heads: list | None = None  # finetune: HeadMember objects
    info: dict[str, Any] = field(default_factory=dict)

    def predict_members(self, X: np.ndarray, emb: np.ndarray | None = None) -> np.ndarray:
        if self.kind == "ridge":
            return self.coef @ X.astype(np.float64).T + self.intercept[:, None]
        if self.kind == "rf":
            X64 = X.astype(np.float64)
            return np.stack([t.predict(X64) for t in self.forest.estimators_])
        if self.kind == "finetune":
            return np.stack([h.predict(emb.astype(np.float32)) for h in self.heads])
        raise ALError(f"unknown ensemble kind {self.kind!r}")

    def to_bytes(self) -> tuple[str, bytes]:
        """Serialise for the state database: (format, bytes). Ridge: ``npz`` (plain arrays);
        random forest: ``joblib`` (a pickle: only load databases you trust); fine-tuned
        heads: ``torch`` state dicts (``weights_only`` loadable)."""
        buf = io.BytesIO()
        if self.kind == "ridge":
            np.savez_compressed(buf, coef=self.coef, intercept=self.intercept)
            return "npz", buf.getvalue()
        if self.kind == "rf":
            import joblib

            joblib.dump(self.forest, buf, compress=3)
            return "joblib", buf.getvalue()
        import torch

        torch.save([h.to_dict() for h in self.heads], buf)
        return "torch", buf.getvalue()


def noise_weights(stderr: Sequence[float | None] | None) -> np.ndarray | None:
    """Sample weights ``1/(se² + s0²)`` (mean 1) from per-measurement standard errors.

    ``s0`` is the median of the known (finite, non-negative) stderrs, or of the positive ones
    if that median is 0; a missing stderr counts as ``s0``. None (unweighted) when no stderr
    is known or all known ones are 0.
    """
    if stderr is None:
        return None
    se = np.array([np.nan if v is None else float(v) for v in stderr], dtype=np.float64)
    known = np.isfinite(se) & (se >= 0)
    if not known.any():
        return None
    s0 = float(np.median(se[known]))
    if s0 <= 0:
        positive = se[known & (se > 0)]
        if not len(positive):
            return None
        s0 = float(np.median(positive))
    filled = np.where(known, se, s0)
    w = 1.0 / (filled**2 + s0**2)
    return w / w.mean()


def _fit_ridge(
    X: np.ndarray,
    y: np.ndarray,
    members: int,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
) -> FittedEnsemble:
    from sklearn.linear_model import RidgeCV

    n = len(y)
    coefs, icpts, alphas = [], [], []
    for _ in range(members):
        idx = rng.integers(0, n, n)
        if len(np.unique(idx)) < 3:  # degenerate resample of a tiny set
            idx = np.arange(n)
        m = RidgeCV(alphas=ALPHAS).fit(
            X[idx].astype(np.float64),
            y[idx],
            sample_weight=None if weights is None else weights[idx],
        )
        coefs.append(np.asarray(m.coef_, dtype=np.float64))
        icpts.append(float(m.intercept_))
        alphas.append(float(m.alpha_))
    return FittedEnsemble(
        "ridge", np.stack(coefs), np.array(icpts), info={"alpha_median": float(np.median(alphas))}
    )


def _fit_rf(
    X: np.ndarray, y: np.ndarray, members: int, seed: int, weights: np.ndarray | None = None
) -> FittedEnsemble:
    from sklearn.ensemble import RandomForestRegressor

    rf = RandomForestRegressor(
        n_estimators=max(members, 2),
        max_features=0.33,
        min_samples_leaf=1,
        random_state=seed,
        n_jobs=1,
    ).fit(X.astype(np.float64), y, sample_weight=weights)
    return FittedEnsemble("rf", forest=rf, info={"trees": len(rf.estimators_)})


def _fit_finetune(
    table: FeatureTable, rows: np.ndarray, y: np.ndarray, members: int, rng: np.random.Generator
) -> FittedEnsemble:
    from mdxfer.learn.transfer import TransferSettings, fit_member

    s = table.settings
    E = table.embedding[rows].astype(np.float32)
    ts = TransferSettings(
        mode="finetune", max_epochs=s.finetune_epochs, patience=s.finetune_patience
    )
    heads = []
    n = len(y)
    for _ in range(members):
        # subsamples without replacement: fine-tuning takes its early-stopping rows out of
        # them, and a duplicated molecule would sit on both sides
        idx = np.sort(rng.choice(n, size=max(3, int(round(0.8 * n))), replace=False))
        heads.append(
            fit_member("finetune", table.base, E, None, y, idx, ts, int(rng.integers(1 << 30)))
        )
    return FittedEnsemble("finetune", heads=heads)


def fit_ensemble(
    table: FeatureTable,
    smiles: Sequence[str],
    y: np.ndarray,
    seed: int,
    members: int | None = None,
    stderr: Sequence[float | None] | None = None,
) -> FittedEnsemble:
    """Fit the surrogate on measured ``smiles``/``y`` (target unit). ``stderr``: the
    measurements' standard errors (None entries for unknown), their noise for the fit
    (:func:`noise_weights`; ``ridge`` and ``rf``)."""
    s = table.settings
    y = np.asarray(y, dtype=np.float64)
    if len(y) < 3:
        raise ALError(
            f"The model needs at least 3 measured molecules, got {len(y)}: raise n_initial, "
            'or give measured molecules with initial = "FILE.csv".'
        )
    if stderr is not None and len(stderr) != len(y):
        raise ALError(f"{len(stderr)} stderrs for {len(y)} measurements.")
    rows = table.rows(smiles)
    rng = np.random.default_rng(seed)
    m = members or s.members
    w = noise_weights(stderr) if s.model in ("ridge", "rf") else None
    if s.model == "ridge":
        ens = _fit_ridge(table.X[rows], y, m, rng, w)
    elif s.model == "rf":
        ens = _fit_rf(table.X[rows], y, m, seed, w)
    else:
        return _fit_finetune(table, rows, y, m, rng)
    ens.info["noise_weighted"] = w is not None
    return ens


def predict_rows(table: FeatureTable, ens: FittedEnsemble, rows: np.ndarray) -> np.ndarray:
    """(n_members x len(rows)) predictions."""
    emb = table.embedding[rows] if table.embedding is not None else None
    return ens.predict_members(table.X[rows], emb)


def cross_validate(
    table: FeatureTable,
    smiles: Sequence[str],
    y: np.ndarray,
    seed: int,
    folds: int | None = None,
    stderr: Sequence[float | None] | None = None,
) -> dict[str, Any]:
    """k-fold cross-validation of the surrogate on the measured molecules: out-of-fold mean
    and spread per molecule, R², MAE (target unit), Spearman's rank correlation, and the
    fraction of out-of-fold targets inside mean ± 2 spread (calibration). ``stderr``: as in
    :func:`fit_ensemble` (the folds' fits are weighted; the scores are not)."""
    from scipy.stats import spearmanr
    from sklearn.model_selection import KFold

    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    k = min(folds or table.settings.cv_folds, n)
    if k < 2 or n < 6:
        return {"folds": 0, "n": n}
    smiles = list(smiles)
    oof_mean, oof_std = np.full(n, np.nan), np.full(n, np.nan)
    members = min(table.settings.members, 8)
    for f, (tr, te) in enumerate(KFold(k, shuffle=True, random_state=seed).split(np.arange(n))):
        ens = fit_ensemble(
            table,
            [smiles[i] for i in tr],
            y[tr],
            seed * 31 + f,
            members,
            None if stderr is None else [stderr[i] for i in tr],
        )
        p = predict_rows(table, ens, table.rows([smiles[i] for i in te]))
        oof_mean[te], oof_std[te] = p.mean(0), p.std(0, ddof=1)
    m = regression_metrics(y, oof_mean)
    rho = spearmanr(y, oof_mean).statistic if np.std(oof_mean) > 0 else float("nan")
    cover = float(np.mean(np.abs(y - oof_mean) <= 2 * oof_std))
    scale = spread_scale(y, oof_mean, oof_std)
    err = np.abs(y - oof_mean)
    after = (
        {f"coverage_{k}sd_calibrated": float(np.mean(err <= k * scale * oof_std)) for k in (1, 2)}
        if scale
        else {}
    )
    return {
        "folds": k,
        "n": n,
        "r2": m["r2"],
        "mae": m["mae"],
        "rmse": m["rmse"],
        "spearman": float(rho),
        "coverage_2sd": cover,
        "coverage_1sd": float(np.mean(err <= oof_std)),
        "spread_scale": scale,
        **after,
        "mean_predictor_mae": float(np.mean(np.abs(y - y.mean()))),
        "oof_mean": oof_mean.tolist(),
        "oof_std": oof_std.tolist(),
    }


def spread_scale(y: np.ndarray, oof_mean: np.ndarray, oof_std: np.ndarray) -> float | None:
    """Calibration factor of the ensemble spread from out-of-fold predictions:
    ``scale² = Σ (y - mean)² / Σ std²`` (pooled z-scores of unit variance; as
    :func:`mdxfer.learn.transfer.calibrate`). None without any out-of-fold spread."""
    s2 = float(np.sum(np.asarray(oof_std) ** 2))
    if not np.isfinite(s2) or s2 <= 0:
        return None
    return float(np.sqrt(np.sum((np.asarray(y) - oof_mean) ** 2) / s2))


def calibrated_members(members: np.ndarray, scale: float | None) -> np.ndarray:
    """Members (n_members x n) spread ``scale`` times wider (or narrower) about their mean, so
    that the spread and every Thompson draw carry the calibrated uncertainty."""
    if not scale:
        return members
    mean = members.mean(0)
    return mean + scale * (members - mean)


@contextmanager
def one_thread() -> Iterator[None]:
    """BLAS (numpy/scikit-learn) and torch on one thread: the other core belongs to LAMMPS,
    and on a busy machine more threads are slower, not faster (ridge fits ran 5x slower)."""
    from threadpoolctl import threadpool_limits

    try:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        torch, before = None, None
    try:
        with threadpool_limits(1):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(before)


def model_dir_default() -> Path:
    """Where ``mdxfer pretrain --out runs/cv`` puts the QM9-Cv model (the documented place)."""
    return Path("runs") / "cv"


def settings_with_fallback(
    model: str, features: str | None, members: int, model_dir: str | Path | None
) -> tuple[SurrogateSettings, str | None]:
    """(settings, warning) of a benchmark's surrogate. Without ``model_dir``, the pretrained
    model of :func:`model_dir_default` is used when it exists (unless ``features`` is
    ``morgan``); with none at all and no ``features`` named, Morgan fingerprints alone (no
    transfer) — the warning says so. Naming embedding features without a model, or a model
    folder that does not exist, is an :class:`ALError`."""
    warning = None
    if (
        model_dir is None
        and features != "morgan"
        and model_dir_default().joinpath("model.pt").exists()
    ):
        model_dir = model_dir_default()
    if model_dir is None and features in (None, "embedding+morgan", "embedding"):
        if features is not None:
            raise ALError(
                f"--features {features} needs a pretrained model: --model DIR "
                "(make one with `mdxfer pretrain --out runs/cv`)."
            )
        warning = (
            "no pretrained model (--model, or runs/cv): using Morgan count fingerprints "
            "only, i.e. no transfer. Make one with `mdxfer pretrain --out runs/cv`."
        )
        features = "morgan"
    if model_dir is not None and not Path(model_dir).exists():
        raise ALError(f"Model folder {model_dir} does not exist.")
    settings = SurrogateSettings(
        model=model,
        features=features or "embedding+morgan",
        members=members,
        model_dir=str(model_dir) if model_dir and features != "morgan" else None,
    )
    return settings, warning
