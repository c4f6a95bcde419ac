"""Transfer a pretrained network to a small target table, with honest cross-validation.

Modes (all use the pretrained *encoder* — graph convolutions + pooling — frozen):

``finetune``  seed 000's fine-tuning: the fully connected layers and the output start from the
              pretrained weights and are retrained with Adam at 1e-4 on the target data; early
              stopping on a validation split taken out of each training fold.
``ridge``     feature extraction (seed 002): the frozen pooled embedding, centred and scaled,
              feeds a ridge regression (penalty chosen by leave-one-out inside the fold).
``rf``        feature extraction into a random forest.
``fp_ridge``  direct baseline, no transfer: ridge on Morgan count fingerprints (radius 2,
              2,048 bits). Always evaluated, so a user sees whether transfer helps.
``auto``      the mode with the lowest cross-validated MAE among the above.

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
deviation as the spread.

Applicability: a molecule with elements outside the source's (QM9: C, H, N, O, F) or more heavy
atoms than any source molecule (9) reaches input weights the source never trained; such
predictions are flagged (``in_domain = False``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from rdkit import Chem

from mdxfer.featurize import (FEATURIZER_VERSION, DataError, Featurized, GraphSet, applicability,
                              featurize_smiles, morgan_counts, parse_smiles)
from mdxfer.fileio import save_torch_atomic
from mdxfer.fpnet import SourceModel, load_source, source_from_dict
from mdxfer.model import TargetScaler, environment, read_torch_file, set_threads
from mdxfer.progress import CountBar
from mdxfer.train import parity_plot, regression_metrics
from mdxfer.validate import smiles_text_problem

ENSEMBLE_FORMAT = "mdxfer-ensemble"
ENSEMBLE_FORMAT_VERSION = 1
MODES = ("finetune", "ridge", "rf", "fp_ridge")


# --------------------------------------------------------------------------------------------
# input table
# --------------------------------------------------------------------------------------------

def read_target_table(path: str | Path, smiles_col: str = "smiles", target_col: str = "target",
                      log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Read a CSV of SMILES and target values (:func:`mdxfer.tables.read_targets`: a campaign
    export is taken as it is, rows not ``done`` or without a target are skipped and counted in
    ``log`` and ``df.attrs["skipped"]``); returns columns ``smiles``, ``target``, ``line`` (line
    number in the file). Raises :class:`DataError` naming the bad lines."""
    from mdxfer.tables import read_targets

    path = Path(path)
    rows = read_targets(path, smiles_col, target_col)
    skipped = rows.skipped_text()
    if skipped and log:
        log(f"{path}: {skipped}")
    out = pd.DataFrame({"smiles": [r.smiles for r in rows.records], "target": rows.targets,
                        "line": [r.line for r in rows.records]})
    problems = list(rows.problems)
    first_line: dict[str, int] = {}   # canonical SMILES -> first line that holds it
    for s, line in zip(out.smiles, out.line):
        mol = parse_smiles(s) if s else None
        if not s:
            problems.append(f"line {line}: empty SMILES")
        elif mol is None:
            why = smiles_text_problem(s)
            problems.append(f"line {line}: RDKit cannot parse SMILES {s!r}" + (f" ({why})" if why else ""))
        else:
            canon = Chem.MolToSmiles(mol)
            if canon in first_line:
                problems.append(f"line {line}: {s!r} is the molecule of line {first_line[canon]} again")
            first_line.setdefault(canon, line)
    problems.sort(key=lambda p: int(p.split(":")[0].split()[1]))
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        dup = (" Keep one row per molecule (average repeated measurements): a molecule in both the "
               "training and the validation folds makes the cross-validation optimistic."
               if any("again" in p for p in problems) else "")
        raise DataError(f"{path}: " + "; ".join(problems[:10]) + more + f". Fix or remove these rows.{dup}")
    if len(out) < 5:
        left = f" ({skipped})" if skipped else ""
        raise DataError(f"{path} has {len(out)} usable rows{left}; cross-validated transfer needs at least 5.")
    y = out["target"].to_numpy(dtype=float)
    if np.ptp(y) <= 1e-12 * max(1.0, float(np.abs(y).max())):
        raise DataError(f"{path}: every target value is {y[0]:g}; a constant target has nothing to "
                        "learn (R² is undefined). Check the --target-col column.")
    out["smiles"] = out["smiles"].astype(str)
    out["target"] = out["target"].astype(float)
    out.attrs["skipped"] = {"status": rows.skipped_status, "missing_target": rows.skipped_missing}
    return out


# --------------------------------------------------------------------------------------------
# ensemble members
# --------------------------------------------------------------------------------------------

@dataclass
class HeadMember:
    """A fully connected head on the pooled embedding, with its own target scaling."""

    head: torch.nn.Sequential
    scaler: TargetScaler
    info: dict[str, Any] = field(default_factory=dict)
    uses = "embedding"

    @torch.no_grad()
    def predict(self, feats: np.ndarray) -> np.ndarray:
        self.head.eval()
        return self.scaler.inverse(self.head(torch.from_numpy(feats)).squeeze(-1).numpy())

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "head", "state_dict": copy.deepcopy(self.head.state_dict()),
                "scaler": asdict(self.scaler), "info": self.info}


@dataclass
class LinearMember:
    """``y = ((x - x_mean) / x_scale) . coef + intercept`` on the embedding or fingerprint."""

    x_mean: np.ndarray
    x_scale: np.ndarray
    coef: np.ndarray
    intercept: float
    uses: str = "embedding"
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, feats: np.ndarray) -> np.ndarray:
        return ((feats.astype(np.float64) - self.x_mean) / self.x_scale) @ self.coef + self.intercept

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "linear", "x_mean": torch.from_numpy(self.x_mean), "x_scale": torch.from_numpy(self.x_scale),
                "coef": torch.from_numpy(self.coef), "intercept": self.intercept, "uses": self.uses, "info": self.info}


@dataclass
class ForestMember:
    """A scikit-learn random forest on the embedding (stored with joblib, i.e. pickle)."""

    forest: Any
    uses: str = "embedding"
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, feats: np.ndarray) -> np.ndarray:
        return self.forest.predict(feats.astype(np.float64))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "forest", "uses": self.uses, "info": self.info}


def _fit_finetune(base: SourceModel, E: np.ndarray, y: np.ndarray, idx: np.ndarray, s: "TransferSettings",
                  seed: int) -> HeadMember:
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
    return HeadMember(head, scaler, {"best_epoch": best_epoch, "epochs_run": epoch, "lr": s.lr,
                                     "n_train": len(tr), "n_earlystop": len(va), "seed": seed})


def _fit_ridge(X: np.ndarray, y: np.ndarray, uses: str, standardize: bool) -> LinearMember:
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
    return LinearMember(mean, scale, np.asarray(model.coef_, dtype=np.float64), float(model.intercept_),
                        uses, {"alpha": float(model.alpha_)})


def _fit_forest(X: np.ndarray, y: np.ndarray, seed: int) -> ForestMember:
    from sklearn.ensemble import RandomForestRegressor

    rf = RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1).fit(X.astype(np.float64), y)
    return ForestMember(rf, "embedding", {"n_estimators": 200, "seed": seed})


def fit_member(mode: str, base: SourceModel, E: np.ndarray, FP: np.ndarray, y: np.ndarray,
               idx: np.ndarray, s: "TransferSettings", seed: int):
    """Train one member of ``mode`` on rows ``idx``."""
    if mode == "finetune":
        return _fit_finetune(base, E, y, idx, s, seed)
    if mode == "ridge":
        return _fit_ridge(E[idx], y[idx], "embedding", standardize=True)
    if mode == "rf":
        return _fit_forest(E[idx], y[idx], seed)
    if mode == "fp_ridge":
        return _fit_ridge(FP[idx], y[idx], "fingerprint", standardize=False)
    raise DataError(f"Unknown transfer mode {mode!r}; choose one of {', '.join(MODES)} or auto.")


# --------------------------------------------------------------------------------------------
# the ensemble
# --------------------------------------------------------------------------------------------

@dataclass
class Ensemble:
    """A frozen pretrained encoder and several prediction members (what ``rank`` loads).

    A pretraining folder loads as a one-member ensemble (its own head; spread 0)."""

    base: SourceModel
    members: list
    mode: str
    target_name: str
    target_unit: str = ""
    domain: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_fingerprints(self) -> bool:
        return any(m.uses == "fingerprint" for m in self.members)

    @property
    def needs_embedding(self) -> bool:
        return any(m.uses == "embedding" for m in self.members)

    def embed_graphs(self, graphs: GraphSet, smiles: Sequence[str] | None = None) -> np.ndarray:
        """Embeddings of the frozen encoder (n x d); fingerprint sources need ``smiles``."""
        return self.base.embed(graphs, smiles)

    def member_predictions_graphs(self, graphs: GraphSet, smiles: Sequence[str] | None = None) -> np.ndarray:
        """(n_members x n_graphs) predictions in the target unit. ``smiles`` (one per graph) is
        needed only by fingerprint members."""
        E = self.embed_graphs(graphs, smiles) if self.needs_embedding else None
        FP = None
        if self.needs_fingerprints:
            if smiles is None:
                raise ValueError("fingerprint members need the SMILES of the graphs")
            FP = morgan_counts(smiles)
        out = np.empty((len(self.members), len(graphs)))
        for k, m in enumerate(self.members):
            out[k] = m.predict(E if m.uses == "embedding" else FP)
        return out

    def applicability(self, graphs: GraphSet) -> list[str]:
        """Per graph ``""`` (inside the source domain) or the reason it is outside."""
        d = self.domain or {}
        return applicability(graphs, d.get("elements", (1, 6, 7, 8, 9)), d.get("max_heavy_atoms", 9))

    def to_dict(self) -> dict[str, Any]:
        return {"format": ENSEMBLE_FORMAT, "format_version": ENSEMBLE_FORMAT_VERSION,
                "featurizer": FEATURIZER_VERSION, "mode": self.mode, "base": self.base.to_dict(),
                "members": [m.to_dict() for m in self.members], "target_name": self.target_name,
                "target_unit": self.target_unit, "domain": self.domain, "provenance": self.provenance}

    def save(self, out_dir: str | Path) -> None:
        """Write ``ensemble.pt`` (tensors and plain values) and, for forests,
        ``forests.joblib`` (pickle: load only folders you trust)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        forests = [m.forest for m in self.members if isinstance(m, ForestMember)]
        if forests:
            import joblib

            joblib.dump(forests, out / "forests.joblib")
        save_torch_atomic(self.to_dict(), out / "ensemble.pt")


def load_ensemble(path: str | Path) -> Ensemble:
    """Load a transfer folder (``ensemble.pt``) or a pretraining folder (``model.pt``)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"No model folder {path}.")
    folder = path if path.is_dir() else path.parent
    if path.is_dir() and (folder / "committee.json").exists():
        from mdxfer.shotgun import load_committee

        return load_committee(folder)
    ens_file = folder / "ensemble.pt" if path.is_dir() else path
    if ens_file.name == "ensemble.pt" and ens_file.exists():
        d = read_torch_file(ens_file)
        if d.get("format") != ENSEMBLE_FORMAT:
            raise DataError(f"{ens_file} is not an mdxfer ensemble file.")
        if d.get("featurizer") != FEATURIZER_VERSION:
            raise DataError(f"{ens_file} uses featuriser {d.get('featurizer')!r}, this mdxfer "
                            f"{FEATURIZER_VERSION!r}; redo the transfer.")
        base = source_from_dict(d["base"], str(ens_file))
        forests = None
        members = []
        for md in d["members"]:
            if md["kind"] == "head":
                head = copy.deepcopy(base.model.head)
                head.load_state_dict(md["state_dict"])
                head.eval()
                members.append(HeadMember(head, TargetScaler(**md["scaler"]), md["info"]))
            elif md["kind"] == "linear":
                members.append(LinearMember(md["x_mean"].numpy(), md["x_scale"].numpy(), md["coef"].numpy(),
                                            md["intercept"], md["uses"], md["info"]))
            elif md["kind"] == "forest":
                if forests is None:
                    import joblib

                    forests = iter(joblib.load(folder / "forests.joblib"))
                members.append(ForestMember(next(forests), md["uses"], md["info"]))
            else:
                raise DataError(f"{ens_file}: unknown member kind {md['kind']!r}.")
        return Ensemble(base, members, d["mode"], d["target_name"], d["target_unit"], d["domain"],
                        d["provenance"])
    model_file = folder / "model.pt" if path.is_dir() else path
    if model_file.exists():
        base = load_source(model_file)
        member = HeadMember(base.model.head, base.scaler, {"source": "pretrained head"})
        domain = base.provenance.get("data", {}).get("domain", {})
        return Ensemble(base, [member], "pretrained", base.scaler.name, base.scaler.unit, domain,
                        base.provenance)
    raise DataError(f"{path} holds neither ensemble.pt (mdxfer transfer) nor model.pt (mdxfer pretrain).")


def _featurize_or_nan(smiles: Sequence[str]) -> Featurized:
    return featurize_smiles(list(smiles))


def predict_members(ensemble: Ensemble, smiles: Sequence[str]) -> np.ndarray:
    """(n_members x n) predictions in the target unit; NaN columns for unparsable SMILES
    (one draw per member: what Thompson sampling needs)."""
    f = _featurize_or_nan(smiles)
    out = np.full((len(ensemble.members), len(smiles)), np.nan)
    if len(f.graphs):
        out[:, f.index] = ensemble.member_predictions_graphs(f.graphs, [smiles[i] for i in f.index])
    return out


def predict(ensemble: Ensemble, smiles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over the members (target unit); NaN if unparsable."""
    p = predict_members(ensemble, smiles)
    std = p.std(0, ddof=1) if p.shape[0] > 1 else np.zeros(p.shape[1])
    return p.mean(0), std


def embed(ensemble: Ensemble, smiles: Sequence[str]) -> np.ndarray:
    """Pooled embeddings of the frozen encoder (n x d); NaN rows for unparsable SMILES."""
    f = _featurize_or_nan(smiles)
    out = np.full((len(smiles), ensemble.base.model.encoder.out_dim), np.nan, dtype=np.float32)
    if len(f.graphs):
        out[f.index] = ensemble.embed_graphs(f.graphs, [smiles[i] for i in f.index])
    return out


def in_domain(ensemble: Ensemble, smiles: Sequence[str]) -> list[str | None]:
    """Per SMILES ``""`` if inside the source domain, the reason if outside, None if unparsable."""
    f = _featurize_or_nan(smiles)
    out: list[str | None] = [None] * len(smiles)
    for i, note in zip(f.index, ensemble.applicability(f.graphs)):
        out[i] = note
    return out


# --------------------------------------------------------------------------------------------
# cross-validated transfer
# --------------------------------------------------------------------------------------------

@dataclass
class TransferSettings:
    """Transfer options. ``lr``/``max_epochs``/``patience``/``val_fraction`` concern fine-tuning."""

    mode: str = "finetune"
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


def _encoder_digest(base: SourceModel) -> str:
    h = hashlib.sha256()
    for k, v in base.model.encoder.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def check_folds(folds: int, n: int) -> None:
    """k-fold cross-validation needs 2 <= k <= n rows."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise DataError(f"folds must be an integer >= 2 for k-fold cross-validation, got {folds!r}.")
    if folds > n:
        raise DataError(f"{folds}-fold cross-validation needs at least {folds} rows; the table has {n}. "
                        f"Use --folds {n} or fewer, or add rows.")


def cross_validate(base: SourceModel, E: np.ndarray, FP: np.ndarray, y: np.ndarray, mode: str,
                   s: TransferSettings, tick: Callable[[], None] | None = None) -> dict[str, Any]:
    """Repeated k-fold CV of one mode. Returns metrics, out-of-fold predictions (repeats x n)
    and the fold models (the ensemble)."""
    from sklearn.model_selection import RepeatedKFold

    n = len(y)
    check_folds(s.folds, n)
    folds = s.folds
    rkf = RepeatedKFold(n_splits=folds, n_repeats=s.repeats, random_state=s.seed)
    oof = np.full((s.repeats, n), np.nan)
    fit_r2, fit_mae, members = [], [], []
    for k, (tr, te) in enumerate(rkf.split(np.arange(n))):
        r, f = divmod(k, folds)
        seed = (s.seed * 10_007 + k) % 2 ** 32  # scikit-learn seeds must be < 2**32
        m = fit_member(mode, base, E, FP, y, tr, s, seed)
        m.info.update({"repeat": r, "fold": f})
        X = E if m.uses == "embedding" else FP
        oof[r, te] = m.predict(X[te])
        pm = regression_metrics(y[tr], m.predict(X[tr]))
        fit_r2.append(pm["r2"])
        fit_mae.append(pm["mae"])
        members.append(m)
        if tick:
            tick()
    per_rep = [regression_metrics(y, oof[r]) for r in range(s.repeats)]
    r2s, maes = np.array([p["r2"] for p in per_rep]), np.array([p["mae"] for p in per_rep])
    metrics = {"r2_val": float(r2s.mean()), "r2_val_sd": float(r2s.std()), "mae_val": float(maes.mean()),
               "mae_val_sd": float(maes.std()), "rmse_val": float(np.mean([p["rmse"] for p in per_rep])),
               "r2_train": float(np.mean(fit_r2)), "mae_train": float(np.mean(fit_mae))}
    return {"metrics": metrics, "oof": oof, "members": members}


def transfer(base_dir: str | Path, data: str | Path, out_dir: str | Path, settings: TransferSettings | None = None,
             smiles_col: str = "smiles", target_col: str = "target", threads: int = 1, progress: bool = True,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Cross-validated transfer of the model in ``base_dir`` to the table ``data``; writes
    ``ensemble.pt``, ``metrics.json``, ``cv_predictions.csv`` and ``parity.png`` into
    ``out_dir`` and returns the metrics."""
    s = copy.copy(settings or TransferSettings())
    log = log or (lambda msg: None)
    set_threads(threads)
    t0 = time.perf_counter()
    base = load_source(base_dir)
    digest = _encoder_digest(base)
    table = read_target_table(data, smiles_col, target_col, log=log)
    check_folds(s.folds, len(table))
    s.target_name = target_col
    smiles, y = list(table.smiles), table.target.to_numpy()
    f = featurize_smiles(smiles)
    E = base.embed(f.graphs, smiles)
    FP = morgan_counts(smiles)
    domain = base.provenance.get("data", {}).get("domain", {})
    notes = applicability(f.graphs, domain.get("elements", (1, 6, 7, 8, 9)), domain.get("max_heavy_atoms", 9))
    n_out = sum(bool(x) for x in notes)
    log(f"{len(y)} target rows; {n_out} outside the source's domain")

    modes = list(dict.fromkeys([m for m in s.compare if m in MODES] +
                               ([s.mode] if s.mode in MODES else [])))
    if s.mode not in MODES and s.mode != "auto":
        raise DataError(f"Unknown transfer mode {s.mode!r}; choose one of {', '.join(MODES)} or auto.")
    results: dict[str, dict[str, Any]] = {}
    total = len(modes) * s.repeats * min(s.folds, len(y))
    bar = CountBar(progress, total, "cross-validation")
    try:
        for mode in modes:
            bar.set(f"cross-validation: {mode}")
            results[mode] = cross_validate(base, E, FP, y, mode, s, bar.tick)
    finally:
        bar.close()
    if _encoder_digest(base) != digest:  # pragma: no cover - a guard, never expected
        raise RuntimeError("the frozen encoder changed during transfer")

    chosen = s.mode if s.mode != "auto" else min(modes, key=lambda m: results[m]["metrics"]["mae_val"])
    res = results[chosen]
    transfer_modes = [m for m in modes if m != "fp_ridge"]
    best_transfer = min(transfer_modes, key=lambda m: results[m]["metrics"]["mae_val"]) if transfer_modes else None
    baseline_mae = float(np.mean(np.abs(y - y.mean())))  # predicting the mean (in-sample)
    metrics = {
        **{k: res["metrics"][k] for k in ("r2_train", "r2_val", "mae_val")},
        "mode": chosen, "r2_val_sd": res["metrics"]["r2_val_sd"], "mae_val_sd": res["metrics"]["mae_val_sd"],
        "target": target_col, "n": len(y), "folds": min(s.folds, len(y)), "repeats": s.repeats,
        "ensemble_size": len(res["members"]), "n_outside_domain": n_out,
        "rows_skipped": table.attrs.get("skipped", {}),
        "methods": {m: results[m]["metrics"] for m in modes},
        "fingerprint_baseline_mae": results["fp_ridge"]["metrics"]["mae_val"] if "fp_ridge" in results else None,
        "transfer_beats_baseline": (results[best_transfer]["metrics"]["mae_val"] < results["fp_ridge"]["metrics"]["mae_val"])
        if best_transfer and "fp_ridge" in results else None,
        "mean_predictor_mae": baseline_mae, "wall_s": round(time.perf_counter() - t0, 2), "threads": threads,
        "base_model": str(Path(base_dir)), "base_data_hash": base.provenance.get("data", {}).get("data_hash"),
    }
    ens = Ensemble(base, res["members"], chosen, target_col, s.target_unit, domain, {
        "data": {"file": str(data), "smiles_col": smiles_col, "target_col": target_col, "n": len(y),
                 "sha256": _file_sha(data)},
        "settings": {k: v for k, v in asdict(s).items() if k not in ("target_name", "target_unit")},
        "base_provenance": base.provenance, "cv": metrics, "environment": environment()})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ens.save(out)

    pm = ens.member_predictions_graphs(f.graphs, smiles)
    cvp = pd.DataFrame({"smiles": smiles, "target": y})
    for m in modes:
        cvp[f"{m}_cv_mean"] = results[m]["oof"].mean(0)
        cvp[f"{m}_cv_std"] = results[m]["oof"].std(0)
    cvp["ensemble_fit_mean"], cvp["ensemble_fit_std"] = pm.mean(0), pm.std(0, ddof=1) if len(pm) > 1 else 0.0
    cvp["in_domain"] = [not x for x in notes]
    cvp["domain_note"] = notes
    cvp.to_csv(out / "cv_predictions.csv", index=False)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    oof = res["oof"]
    cv_name = f"cross-validation, mean ± sd of {s.repeats} repeats" if s.repeats > 1 else "cross-validation"
    parity_plot(out / "parity.png",
                [("train (ensemble fit)", y, pm.mean(0), None),
                 (cv_name, y, oof.mean(0), oof.std(0) if s.repeats > 1 else None)],
                f"{target_col} {('[' + s.target_unit + ']') if s.target_unit else ''}".strip(),
                title=f"transfer mode {chosen}, {s.repeats}x{metrics['folds']}-fold CV: "
                      f"R² {metrics['r2_val']:.3f}, MAE {metrics['mae_val']:.3g}",
                r2={cv_name: metrics["r2_val"]})
    return metrics


def _file_sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
