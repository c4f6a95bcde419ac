"""Transfer a pretrained network to a small target table, with honest cross-validation.

Modes (all use the pretrained *encoder* — graph convolutions + pooling — frozen):

``finetune``  seed 000's fine-tuning: the fully connected layers and the output start from the
              pretrained weights and are retrained with Adam at 1e-4 on the target data; early
              stopping on a validation split taken out of each training fold.
``ridge``     feature extraction (seed 002): the frozen pooled embedding, centred and scaled,
              feeds a ridge regression (penalty chosen by leave-one-out inside the fold).
``rf``        feature extraction into a random forest.
``emb_fp_ridge``  ridge on the embedding and the Morgan counts together (each block scaled to
              the same total variance).
``emb_gp``    a Gaussian process with an RBF kernel on the standardised embedding
              (:mod:`mdxfer.gp`; hyperparameters by marginal likelihood).
``fp_ridge``  direct baseline, no transfer: ridge on Morgan count fingerprints (radius 2,
              2,048 bits). Always evaluated, so a user sees whether transfer helps.
``fp_gp``     no transfer: a Gaussian process on the Morgan counts, Tanimoto kernel mixed with a
              linear one (:mod:`mdxfer.gp`).
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
by :func:`predict` and ``mdxfer rank``. Coverage of ±1σ/±2σ before and after is reported.

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
MODES = ("finetune", "ridge", "rf", "emb_fp_ridge", "emb_gp", "fp_ridge", "fp_gp")
#: modes that do not use the pretrained model (the baselines a transfer must beat)
NO_TRANSFER = ("fp_ridge", "fp_gp")
#: features a member reads: the frozen embedding, the Morgan counts, or both side by side
USES = ("embedding", "fingerprint", "both")


def features_for(uses: str, E: np.ndarray | None, FP: np.ndarray | None) -> np.ndarray:
    """The feature matrix a member with ``uses`` reads."""
    if uses == "embedding":
        return E
    if uses == "fingerprint":
        return FP
    if uses == "both":
        return np.hstack([np.asarray(E, dtype=np.float64), np.asarray(FP, dtype=np.float64)])
    raise ValueError(f"unknown feature set {uses!r}; one of {', '.join(USES)}")


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


@dataclass
class GPTable:
    """The features a group of Gaussian-process members was trained on (the whole CV table,
    shared by its fold members, so that a query's kernel against it is computed once):
    ``X`` = ``(features - x_mean) / x_scale``."""

    kernel: str
    uses: str
    X: np.ndarray
    x_mean: np.ndarray | None = None
    x_scale: float = 1.0

    @classmethod
    def build(cls, kernel: str, uses: str, feats: np.ndarray) -> GPTable:
        """Tanimoto: raw counts; RBF: centred and divided by one global standard deviation
        (no target value is used, so the whole table may set it)."""
        feats = np.asarray(feats, dtype=np.float64)
        if kernel == "tanimoto":
            return cls(kernel, uses, feats)
        mean = feats.mean(0)
        sd = float((feats - mean).std())
        return cls(kernel, uses, (feats - mean) / (sd if sd > 1e-12 else 1.0), mean, sd if sd > 1e-12 else 1.0)

    def transform(self, feats: np.ndarray) -> np.ndarray:
        feats = np.asarray(feats, dtype=np.float64)
        return feats if self.x_mean is None else (feats - self.x_mean) / self.x_scale

    def terms(self, feats: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Kernel terms of query ``feats`` against every table row, and with themselves."""
        from mdxfer.gp import pair_terms, self_terms

        q = self.transform(feats)
        return pair_terms(self.kernel, q, self.X), self_terms(self.kernel, q)

    def to_dict(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "uses": self.uses, "X": torch.from_numpy(np.ascontiguousarray(self.X)),
                "x_mean": None if self.x_mean is None else torch.from_numpy(self.x_mean), "x_scale": self.x_scale}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTable:
        return cls(d["kernel"], d["uses"], d["X"].numpy(), None if d["x_mean"] is None else d["x_mean"].numpy(),
                   float(d["x_scale"]))


@dataclass
class GPMember:
    """A Gaussian process trained on rows ``rows`` of ``table``; predicts a mean and a
    variance (:mod:`mdxfer.gp`)."""

    table: GPTable
    rows: np.ndarray
    fit: Any  # mdxfer.gp.GPFit
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def uses(self) -> str:
        return self.table.uses

    def moments_from_terms(self, terms: dict[str, np.ndarray], self_q: dict[str, np.ndarray]):
        """Mean and variance from :meth:`GPTable.terms` (columns: every table row)."""
        return self.fit.predict({k: v[:, self.rows] for k, v in terms.items()}, self_q)

    def moments(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.moments_from_terms(*self.table.terms(feats))

    def predict(self, feats: np.ndarray) -> np.ndarray:
        return self.moments(feats)[0]

    def to_dict(self) -> dict[str, Any]:
        f = self.fit
        return {"kind": "gp", "rows": torch.from_numpy(np.asarray(self.rows, dtype=np.int64)),
                "fit": {"kernel": f.kernel, "signal": f.signal, "noise": f.noise, "mean": f.mean,
                        "lengthscale": f.lengthscale, "mix": f.mix, "dot_scale": f.dot_scale,
                        "alpha": torch.from_numpy(f.alpha), "Kinv": torch.from_numpy(f.Kinv), "lml": f.lml,
                        "info": f.info},
                "info": self.info}


def _gp_from_dict(md: dict[str, Any], table: GPTable) -> GPMember:
    from mdxfer.gp import GPFit

    f = dict(md["fit"])
    f["alpha"], f["Kinv"] = f["alpha"].numpy(), f["Kinv"].numpy()
    return GPMember(table, md["rows"].numpy(), GPFit(**f), md["info"])


def _fit_gp(table: GPTable, y: np.ndarray, idx: np.ndarray) -> GPMember:
    from mdxfer.gp import fit_gp, pair_terms

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
    return LinearMember(mean, scale, np.asarray(model.coef_, dtype=np.float64), float(model.intercept_),
                        "both", {"alpha": float(model.alpha_)})


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
               idx: np.ndarray, s: "TransferSettings", seed: int, tables: dict[str, GPTable] | None = None):
    """Train one member of ``mode`` on rows ``idx``. ``tables``: the Gaussian-process feature
    tables of this ``(E, FP)`` by mode, built on first use (pass the same dict for every fold)."""
    if mode == "finetune":
        return _fit_finetune(base, E, y, idx, s, seed)
    if mode == "ridge":
        return _fit_ridge(E[idx], y[idx], "embedding", standardize=True)
    if mode == "rf":
        return _fit_forest(E[idx], y[idx], seed)
    if mode == "fp_ridge":
        return _fit_ridge(FP[idx], y[idx], "fingerprint", standardize=False)
    if mode == "emb_fp_ridge":
        return _fit_ridge_both(E[idx], FP[idx], y[idx])
    if mode in ("fp_gp", "emb_gp"):
        tables = {} if tables is None else tables
        if mode not in tables:
            tables[mode] = (GPTable.build("tanimoto", "fingerprint", FP) if mode == "fp_gp"
                            else GPTable.build("rbf", "embedding", E))
        return _fit_gp(tables[mode], y, idx)
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
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_fingerprints(self) -> bool:
        return any(m.uses in ("fingerprint", "both") for m in self.members)

    @property
    def needs_embedding(self) -> bool:
        return any(m.uses in ("embedding", "both") for m in self.members)

    @property
    def spread_scale(self) -> float:
        """The calibration factor of the spread (1 when none was fitted)."""
        return float(self.calibration.get("scale") or 1.0)

    def embed_graphs(self, graphs: GraphSet, smiles: Sequence[str] | None = None) -> np.ndarray:
        """Embeddings of the frozen encoder (n x d); fingerprint sources need ``smiles``."""
        return self.base.embed(graphs, smiles)

    def member_predictions_graphs(self, graphs: GraphSet, smiles: Sequence[str] | None = None) -> np.ndarray:
        """(n_members x n_graphs) predictions in the target unit. ``smiles`` (one per graph) is
        needed only by fingerprint members."""
        return self.member_moments_graphs(graphs, smiles)[0]

    def member_moments_graphs(self, graphs: GraphSet, smiles: Sequence[str] | None = None,
                              fps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per member (rows) and graph (columns): predicted mean and the member's own
        predictive variance (0 except for Gaussian processes). ``fps``: the graphs' Morgan
        counts when the caller has them (else computed from ``smiles``)."""
        E = self.embed_graphs(graphs, smiles) if self.needs_embedding else None
        FP = fps
        if self.needs_fingerprints and FP is None:
            if smiles is None:
                raise ValueError("fingerprint members need the SMILES of the graphs")
            FP = morgan_counts(smiles)
        mean = np.empty((len(self.members), len(graphs)))
        var = np.zeros_like(mean)
        terms: dict[int, tuple] = {}   # kernel terms per GP table, shared by its members
        for k, m in enumerate(self.members):
            X = features_for(m.uses, E, FP)
            if isinstance(m, GPMember):
                if id(m.table) not in terms:
                    terms[id(m.table)] = m.table.terms(X)
                mean[k], var[k] = m.moments_from_terms(*terms[id(m.table)])
            else:
                mean[k] = m.predict(X)
        return mean, var

    def mean_std_graphs(self, graphs: GraphSet, smiles: Sequence[str] | None = None,
                        calibrated: bool = True, fps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean and spread (:func:`combine_moments`), the spread calibrated."""
        mean, var = self.member_moments_graphs(graphs, smiles, fps)
        return combine_moments(mean, var, self.spread_scale if calibrated else 1.0)

    def applicability(self, graphs: GraphSet) -> list[str]:
        """Per graph ``""`` (inside the source domain) or the reason it is outside."""
        d = self.domain or {}
        return applicability(graphs, d.get("elements", (1, 6, 7, 8, 9)), d.get("max_heavy_atoms", 9))

    def to_dict(self) -> dict[str, Any]:
        tables = {id(t): k for k, t in enumerate(self._gp_tables())}
        members = [dict(m.to_dict(), table=tables[id(m.table)]) if isinstance(m, GPMember) else m.to_dict()
                   for m in self.members]
        return {"format": ENSEMBLE_FORMAT, "format_version": ENSEMBLE_FORMAT_VERSION,
                "featurizer": FEATURIZER_VERSION, "mode": self.mode, "base": self.base.to_dict(),
                "members": members, "target_name": self.target_name,
                "target_unit": self.target_unit, "domain": self.domain, "provenance": self.provenance,
                "calibration": self.calibration, "gp_tables": [t.to_dict() for t in self._gp_tables()]}

    def _gp_tables(self) -> list[GPTable]:
        out: dict[int, GPTable] = {}
        for m in self.members:
            if isinstance(m, GPMember):
                out.setdefault(id(m.table), m.table)
        return list(out.values())

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
        gp_tables = [GPTable.from_dict(t) for t in d.get("gp_tables", [])]
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
            elif md["kind"] == "gp":
                members.append(_gp_from_dict(md, gp_tables[md["table"]]))
            else:
                raise DataError(f"{ens_file}: unknown member kind {md['kind']!r}.")
        return Ensemble(base, members, d["mode"], d["target_name"], d["target_unit"], d["domain"],
                        d["provenance"], d.get("calibration", {}))
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


def combine_moments(mean: np.ndarray, var: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of an ensemble from its members' means and variances (members x n):
    the spread is ``scale * sqrt(var_between + mean var_within)`` (``var_between`` with
    ddof 1; 0 for one member)."""
    between = mean.var(0, ddof=1) if mean.shape[0] > 1 else np.zeros(mean.shape[1])
    return mean.mean(0), scale * np.sqrt(between + var.mean(0))


def predict(ensemble: Ensemble, smiles: Sequence[str], calibrated: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of the ensemble (target unit; the spread calibrated unless
    ``calibrated=False``); NaN if unparsable."""
    f = _featurize_or_nan(smiles)
    mean, std = np.full(len(smiles), np.nan), np.full(len(smiles), np.nan)
    if len(f.graphs):
        mean[f.index], std[f.index] = ensemble.mean_std_graphs(f.graphs, [smiles[i] for i in f.index], calibrated)
    return mean, std


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
    oof_var = np.zeros((s.repeats, n))   # members' own predictive variance (Gaussian processes)
    fit_r2, fit_mae, members = [], [], []
    tables: dict[str, GPTable] = {}
    for k, (tr, te) in enumerate(rkf.split(np.arange(n))):
        r, f = divmod(k, folds)
        seed = (s.seed * 10_007 + k) % 2 ** 32  # scikit-learn seeds must be < 2**32
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
    metrics = {"r2_val": float(r2s.mean()), "r2_val_sd": float(r2s.std()), "mae_val": float(maes.mean()),
               "mae_val_sd": float(maes.std()), "rmse_val": float(np.mean([p["rmse"] for p in per_rep])),
               "r2_train": float(np.mean(fit_r2)), "mae_train": float(np.mean(fit_mae))}
    return {"metrics": metrics, "oof": oof, "oof_var": oof_var, "members": members}


def select_mode(results: dict[str, dict[str, Any]]) -> str:
    """The mode of lowest cross-validated MAE (ties: the first in ``results``' order)."""
    return min(results, key=lambda m: results[m]["metrics"]["mae_val"])


def nested_cv(base: SourceModel, E: np.ndarray, FP: np.ndarray, y: np.ndarray, modes: Sequence[str],
              s: TransferSettings, tick: Callable[[], None] | None = None) -> dict[str, Any]:
    """The selection's own estimate: outer ``s.folds``-fold CV; inside every outer training
    side, every mode is cross-validated (``s.nested_repeats`` repeats), the best is selected
    and its fold models predict the outer test rows. Also scores, on the same outer folds,
    the best no-transfer mode chosen the same way (the baseline a user would otherwise fit)."""
    from sklearn.model_selection import KFold

    n = len(y)
    pred, base_pred = np.full(n, np.nan), np.full(n, np.nan)
    picks: list[str] = []
    outer = KFold(n_splits=s.folds, shuffle=True, random_state=(s.seed * 7_919 + 1) % 2 ** 32)
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
    out = {"r2": m["r2"], "mae": m["mae"], "picks": picks, "outer_folds": s.folds,
           "inner": f"{s.nested_repeats}x{min(s.folds, n - n // s.folds)}-fold"}
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
    out: dict[str, Any] = {"method": "scale² = Σ(y - oof mean)² / Σ oof spread² (z-scores of unit variance)",
                           "n": len(y)}
    if s2.sum() <= 0:
        return {**out, "scale": None, "note": "no out-of-fold spread (one repeat of a mode without its own "
                                                "variance): the spread is not calibrated"}
    scale = float(np.sqrt(err2.sum() / s2.sum()))
    sd = np.sqrt(s2)
    half = np.random.default_rng(seed).permutation(len(y)) % 2 == 0
    cross = np.empty(len(y))
    for part in (half, ~half):
        other = ~part
        cross[part] = np.sqrt(err2[other].sum() / s2[other].sum()) if s2[other].sum() > 0 else scale

    def cover(k: float, factor: np.ndarray | float) -> float:
        return float(np.mean(np.abs(y - m) <= k * factor * sd))

    return {**out, "scale": scale, "z_var_before": float(np.mean(err2[s2 > 0] / s2[s2 > 0])),
            "coverage_1sd_before": cover(1, 1.0), "coverage_2sd_before": cover(2, 1.0),
            "coverage_1sd_after": cover(1, scale), "coverage_2sd_after": cover(2, scale),
            "coverage_1sd_after_crossfit": cover(1, cross), "coverage_2sd_after_crossfit": cover(2, cross),
            "gaussian_1sd": 0.683, "gaussian_2sd": 0.954}


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

    if s.mode not in MODES and s.mode != "auto":
        raise DataError(f"Unknown transfer mode {s.mode!r}; choose one of {', '.join(MODES)} or auto.")
    modes = list(dict.fromkeys([m for m in s.compare if m in MODES] +
                               ([s.mode] if s.mode in MODES else [])))
    if not modes:
        raise DataError(f"No transfer mode to compare; choose from {', '.join(MODES)}.")
    nest = s.mode == "auto" and s.nested and len(modes) > 1
    folds = min(s.folds, len(y))
    inner = min(s.folds, len(y) - -(-len(y) // s.folds)) if nest else 0
    total = len(modes) * folds * (s.repeats + (s.nested_repeats * inner if nest else 0))
    results: dict[str, dict[str, Any]] = {}
    nested = None
    bar = CountBar(progress, total, "cross-validation")
    try:
        for mode in modes:
            bar.set(f"cross-validation: {mode}")
            results[mode] = cross_validate(base, E, FP, y, mode, s, bar.tick)
        if nest:
            bar.set("nested cross-validation of the selection")
            nested = nested_cv(base, E, FP, y, modes, s, bar.tick)
    finally:
        bar.close()
    if _encoder_digest(base) != digest:  # pragma: no cover - a guard, never expected
        raise RuntimeError("the frozen encoder changed during transfer")

    chosen = s.mode if s.mode != "auto" else select_mode(results)
    res = results[chosen]
    calibration = calibrate(y, res["oof"], res["oof_var"], s.seed)
    selection = selection_summary(results, chosen, nested, auto=s.mode == "auto")
    transfer_modes = [m for m in modes if m not in NO_TRANSFER]
    best_transfer = min(transfer_modes, key=lambda m: results[m]["metrics"]["mae_val"]) if transfer_modes else None
    baseline_mae = float(np.mean(np.abs(y - y.mean())))  # predicting the mean (in-sample)
    metrics = {
        **{k: res["metrics"][k] for k in ("r2_train", "r2_val", "mae_val")},
        "mode": chosen, "r2_val_sd": res["metrics"]["r2_val_sd"], "mae_val_sd": res["metrics"]["mae_val_sd"],
        "target": target_col, "n": len(y), "folds": folds, "repeats": s.repeats,
        "ensemble_size": len(res["members"]), "n_outside_domain": n_out,
        "rows_skipped": table.attrs.get("skipped", {}),
        "methods": {m: results[m]["metrics"] for m in modes},
        "selection": selection, "summary": selection["line"], "calibration": calibration,
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
        "base_provenance": base.provenance, "cv": metrics, "environment": environment()},
        {"scale": calibration.get("scale"), "method": calibration["method"]})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ens.save(out)
    _write_reports(out, ens, f, smiles, y, modes, results, res, notes, metrics, s, target_col)
    return metrics


def selection_summary(results: dict[str, dict[str, Any]], chosen: str, nested: dict[str, Any] | None,
                      auto: bool = True) -> dict[str, Any]:
    """Whether transfer helped on this table and by how much, with the selection's nested-CV
    figure; ``line``: the same in one sentence. ``auto``: ``chosen`` was selected by CV (else
    the user asked for it)."""
    def best_of(names: Sequence[str]) -> str | None:
        names = [m for m in names if m in results]
        return min(names, key=lambda m: results[m]["metrics"]["mae_val"]) if names else None

    bt, bb = best_of([m for m in results if m not in NO_TRANSFER]), best_of(NO_TRANSFER)
    r = {m: results[m]["metrics"] for m in results}
    out: dict[str, Any] = {"selected": chosen, "selected_by": "cross-validation" if auto else "--mode",
                           "selected_cv_r2": r[chosen]["r2_val"],
                           "selected_cv_mae": r[chosen]["mae_val"], "best_transfer": bt, "best_baseline": bb,
                           "criterion": "lowest cross-validated MAE"}
    parts = []
    if bt and bb:
        helped = r[bt]["mae_val"] < r[bb]["mae_val"]
        out.update({"transfer_helped": helped, "best_transfer_cv_r2": r[bt]["r2_val"],
                    "best_baseline_cv_r2": r[bb]["r2_val"],
                    "margin_cv_mae_over_best_baseline": r[bb]["mae_val"] - r[chosen]["mae_val"],
                    "margin_cv_r2_over_best_baseline": r[chosen]["r2_val"] - r[bb]["r2_val"]})
        parts.append(f"transfer {'helped' if helped else 'did not help'} on this table: best transfer mode {bt} "
                     f"R² {r[bt]['r2_val']:.3f} vs fingerprint baseline {bb} R² {r[bb]['r2_val']:.3f} (CV)")
    if auto:
        parts.append(f"selected {chosen} (CV R² {r[chosen]['r2_val']:.3f}, optimistic: best of {len(results)})")
    else:
        best = select_mode(results)
        parts.append(f"kept {chosen} as asked (--mode {chosen}, CV R² {r[chosen]['r2_val']:.3f})"
                     + (f"; the CV-best mode was {best} (R² {r[best]['r2_val']:.3f})" if best != chosen else ""))
    if nested:
        out["nested_cv"] = nested
        txt = f"nested-CV R² of the selection {nested['r2']:.3f}"
        if "baseline_r2" in nested:
            txt += f" (fingerprint baseline on the same outer folds {nested['baseline_r2']:.3f})"
        parts.append(txt)
    out["line"] = "; ".join(parts)
    return out


def _write_reports(out: Path, ens: Ensemble, f: Featurized, smiles: list[str], y: np.ndarray, modes: list[str],
                   results: dict[str, dict[str, Any]], res: dict[str, Any], notes: list[str],
                   metrics: dict[str, Any], s: TransferSettings, target_col: str) -> None:
    """``cv_predictions.csv``, ``metrics.json``, ``parity.png`` and ``calibration.png``."""
    pm, pv = ens.member_moments_graphs(f.graphs, smiles)
    fit_mean, fit_std = combine_moments(pm, pv, ens.spread_scale)
    cvp = pd.DataFrame({"smiles": smiles, "target": y})
    for m in modes:
        cvp[f"{m}_cv_mean"] = results[m]["oof"].mean(0)
        cvp[f"{m}_cv_std"] = results[m]["oof"].std(0)
    oof_mean, oof_std = combine_moments(res["oof"], res["oof_var"], 1.0)
    cvp["selected_cv_mean"], cvp["selected_cv_std_calibrated"] = oof_mean, oof_std * ens.spread_scale
    cvp["ensemble_fit_mean"], cvp["ensemble_fit_std"] = fit_mean, fit_std
    cvp["in_domain"] = [not x for x in notes]
    cvp["domain_note"] = notes
    cvp.to_csv(out / "cv_predictions.csv", index=False)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    oof = res["oof"]
    cv_name = f"cross-validation, mean ± sd of {s.repeats} repeats" if s.repeats > 1 else "cross-validation"
    parity_plot(out / "parity.png",
                [("train (ensemble fit)", y, fit_mean, None),
                 (cv_name, y, oof.mean(0), oof.std(0) if s.repeats > 1 else None)],
                f"{target_col} {('[' + s.target_unit + ']') if s.target_unit else ''}".strip(),
                title=f"transfer mode {metrics['mode']}, {s.repeats}x{metrics['folds']}-fold CV: "
                      f"R² {metrics['r2_val']:.3f}, MAE {metrics['mae_val']:.3g}",
                r2={cv_name: metrics["r2_val"]})
    if metrics["calibration"].get("scale"):
        calibration_plot(out / "calibration.png", y, oof_mean, oof_std, ens.spread_scale,
                         f"{metrics['mode']}, out-of-fold, n = {len(y)}")


def calibration_plot(path: str | Path, y: np.ndarray, mean: np.ndarray, std: np.ndarray, scale: float,
                     title: str) -> None:
    """Observed fraction of targets inside mean ± k·spread against the Gaussian expectation,
    before and after scaling the spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    k = np.linspace(0, 3, 61)
    err = np.abs(y - mean)
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.plot(2 * norm.cdf(k) - 1, 2 * norm.cdf(k) - 1, "k--", lw=1, label="ideal")
    for lab, sc in (("raw spread", 1.0), (f"calibrated (× {scale:.2f})", scale)):
        ax.plot(2 * norm.cdf(k) - 1, [np.mean(err <= kk * sc * std) for kk in k], label=lab)
    ax.set_xlabel("expected coverage of mean ± k·σ")
    ax.set_ylabel("observed coverage")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _file_sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
