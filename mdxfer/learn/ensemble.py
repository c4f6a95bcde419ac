"""Ensembles and committees: what ``mdxfer rank`` and active learning load and predict with.

An :class:`Ensemble` is a frozen source model (its encoder gives each molecule an embedding)
and several prediction *members*, the fold models of a cross-validated transfer
(:mod:`mdxfer.learn.transfer`):

``HeadMember``    a fully connected head on the embedding (fine-tuning);
``LinearMember``  ridge regression on the embedding, the Morgan counts, or both;
``ForestMember``  a random forest on the embedding (stored with joblib);
``GPMember``      a Gaussian process (:mod:`mdxfer.learn.gp`) on the embedding or the counts,
                  sharing its training table (:class:`GPTable`) with the other folds.

Every prediction is the members' mean, with their spread (and the Gaussian processes' own
variance) as the uncertainty, scaled by the calibration factor fitted on out-of-fold
predictions. A :class:`Committee` pools several ensembles (shotgun transfer's best few).

:func:`load_ensemble` is the one loader of a model folder: a committee (``committee.json``),
a transfer (``ensemble.pt``) or a pretraining folder (``model.pt``, loaded as a one-member
ensemble with its own head) — the source model inside is read by
:func:`mdxfer.learn.models.source_from_dict` / :func:`~mdxfer.learn.models.load_source`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mdxfer.errors import DataError
from mdxfer.fileio import write_json_atomic
from mdxfer.learn.featurize import (
    FEATURIZER_VERSION,
    QM9_ELEMENTS,
    QM9_MAX_HEAVY_ATOMS,
    GraphSet,
    applicability,
    featurize_smiles,
    morgan_counts,
)
from mdxfer.learn.gp import GPFit, pair_terms, self_terms
from mdxfer.learn.models import (
    SourceModel,
    TargetScaler,
    load_source,
    read_torch_file,
    save_torch_atomic,
    source_from_dict,
)

ENSEMBLE_FORMAT = "mdxfer-ensemble"
ENSEMBLE_FORMAT_VERSION = 1
COMMITTEE_FORMAT = "mdxfer-committee"

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
# members
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
        return {
            "kind": "head",
            "state_dict": copy.deepcopy(self.head.state_dict()),
            "scaler": asdict(self.scaler),
            "info": self.info,
        }


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
        return (
            (feats.astype(np.float64) - self.x_mean) / self.x_scale
        ) @ self.coef + self.intercept

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "linear",
            "x_mean": torch.from_numpy(self.x_mean),
            "x_scale": torch.from_numpy(self.x_scale),
            "coef": torch.from_numpy(self.coef),
            "intercept": self.intercept,
            "uses": self.uses,
            "info": self.info,
        }


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
        return cls(
            kernel,
            uses,
            (feats - mean) / (sd if sd > 1e-12 else 1.0),
            mean,
            sd if sd > 1e-12 else 1.0,
        )

    def transform(self, feats: np.ndarray) -> np.ndarray:
        feats = np.asarray(feats, dtype=np.float64)
        return feats if self.x_mean is None else (feats - self.x_mean) / self.x_scale

    def terms(self, feats: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Kernel terms of query ``feats`` against every table row, and with themselves."""
        q = self.transform(feats)
        return pair_terms(self.kernel, q, self.X), self_terms(self.kernel, q)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "uses": self.uses,
            "X": torch.from_numpy(np.ascontiguousarray(self.X)),
            "x_mean": None if self.x_mean is None else torch.from_numpy(self.x_mean),
            "x_scale": self.x_scale,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTable:
        return cls(
            d["kernel"],
            d["uses"],
            d["X"].numpy(),
            None if d["x_mean"] is None else d["x_mean"].numpy(),
            float(d["x_scale"]),
        )


@dataclass
class GPMember:
    """A Gaussian process trained on rows ``rows`` of ``table``; predicts a mean and a
    variance (:mod:`mdxfer.learn.gp`)."""

    table: GPTable
    rows: np.ndarray
    fit: GPFit
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
        return {
            "kind": "gp",
            "rows": torch.from_numpy(np.asarray(self.rows, dtype=np.int64)),
            "fit": {
                "kernel": f.kernel,
                "signal": f.signal,
                "noise": f.noise,
                "mean": f.mean,
                "lengthscale": f.lengthscale,
                "mix": f.mix,
                "dot_scale": f.dot_scale,
                "alpha": torch.from_numpy(f.alpha),
                "Kinv": torch.from_numpy(f.Kinv),
                "lml": f.lml,
                "info": f.info,
            },
            "info": self.info,
        }


def gp_member_from_dict(md: dict[str, Any], table: GPTable) -> GPMember:
    f = dict(md["fit"])
    f["alpha"], f["Kinv"] = f["alpha"].numpy(), f["Kinv"].numpy()
    return GPMember(table, md["rows"].numpy(), GPFit(**f), md["info"])


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

    def member_predictions_graphs(
        self, graphs: GraphSet, smiles: Sequence[str] | None = None
    ) -> np.ndarray:
        """(n_members x n_graphs) predictions in the target unit. ``smiles`` (one per graph) is
        needed only by fingerprint members."""
        return self.member_moments_graphs(graphs, smiles)[0]

    def member_moments_graphs(
        self, graphs: GraphSet, smiles: Sequence[str] | None = None, fps: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
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
        terms: dict[int, tuple] = {}  # kernel terms per GP table, shared by its members
        for k, m in enumerate(self.members):
            X = features_for(m.uses, E, FP)
            if isinstance(m, GPMember):
                if id(m.table) not in terms:
                    terms[id(m.table)] = m.table.terms(X)
                mean[k], var[k] = m.moments_from_terms(*terms[id(m.table)])
            else:
                mean[k] = m.predict(X)
        return mean, var

    def mean_std_graphs(
        self,
        graphs: GraphSet,
        smiles: Sequence[str] | None = None,
        calibrated: bool = True,
        fps: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean and spread (:func:`combine_moments`), the spread calibrated."""
        mean, var = self.member_moments_graphs(graphs, smiles, fps)
        return combine_moments(mean, var, self.spread_scale if calibrated else 1.0)

    def applicability(self, graphs: GraphSet) -> list[str]:
        """Per graph ``""`` (inside the source domain) or the reason it is outside."""
        d = self.domain or {}
        return applicability(
            graphs, d.get("elements", QM9_ELEMENTS), d.get("max_heavy_atoms", QM9_MAX_HEAVY_ATOMS)
        )

    def to_dict(self) -> dict[str, Any]:
        tables = {id(t): k for k, t in enumerate(self._gp_tables())}
        members = [
            dict(m.to_dict(), table=tables[id(m.table)]) if isinstance(m, GPMember) else m.to_dict()
            for m in self.members
        ]
        return {
            "format": ENSEMBLE_FORMAT,
            "format_version": ENSEMBLE_FORMAT_VERSION,
            "featurizer": FEATURIZER_VERSION,
            "mode": self.mode,
            "base": self.base.to_dict(),
            "members": members,
            "target_name": self.target_name,
            "target_unit": self.target_unit,
            "domain": self.domain,
            "provenance": self.provenance,
            "calibration": self.calibration,
            "gp_tables": [t.to_dict() for t in self._gp_tables()],
        }

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
        return load_committee(folder)
    ens_file = folder / "ensemble.pt" if path.is_dir() else path
    if ens_file.name == "ensemble.pt" and ens_file.exists():
        d = read_torch_file(ens_file)
        if d.get("format") != ENSEMBLE_FORMAT:
            raise DataError(f"{ens_file} is not an mdxfer ensemble file.")
        if d.get("featurizer") != FEATURIZER_VERSION:
            raise DataError(
                f"{ens_file} uses featuriser {d.get('featurizer')!r}, this mdxfer "
                f"{FEATURIZER_VERSION!r}; redo the transfer."
            )
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
                members.append(
                    LinearMember(
                        md["x_mean"].numpy(),
                        md["x_scale"].numpy(),
                        md["coef"].numpy(),
                        md["intercept"],
                        md["uses"],
                        md["info"],
                    )
                )
            elif md["kind"] == "forest":
                if forests is None:
                    import joblib

                    forests = iter(joblib.load(folder / "forests.joblib"))
                members.append(ForestMember(next(forests), md["uses"], md["info"]))
            elif md["kind"] == "gp":
                members.append(gp_member_from_dict(md, gp_tables[md["table"]]))
            else:
                raise DataError(f"{ens_file}: unknown member kind {md['kind']!r}.")
        return Ensemble(
            base,
            members,
            d["mode"],
            d["target_name"],
            d["target_unit"],
            d["domain"],
            d["provenance"],
            d.get("calibration", {}),
        )
    model_file = folder / "model.pt" if path.is_dir() else path
    if model_file.exists():
        base = load_source(model_file)
        member = HeadMember(base.model.head, base.scaler, {"source": "pretrained head"})
        domain = base.provenance.get("data", {}).get("domain", {})
        return Ensemble(
            base,
            [member],
            "pretrained",
            base.scaler.name,
            base.scaler.unit,
            domain,
            base.provenance,
        )
    raise DataError(
        f"{path} holds neither ensemble.pt (mdxfer transfer) nor model.pt (mdxfer pretrain)."
    )


def predict_members(ensemble: Ensemble, smiles: Sequence[str]) -> np.ndarray:
    """(n_members x n) predictions in the target unit; NaN columns for unparsable SMILES
    (one draw per member: what Thompson sampling needs)."""
    f = featurize_smiles(list(smiles))
    out = np.full((len(ensemble.members), len(smiles)), np.nan)
    if len(f.graphs):
        out[:, f.index] = ensemble.member_predictions_graphs(f.graphs, [smiles[i] for i in f.index])
    return out


def combine_moments(
    mean: np.ndarray, var: np.ndarray, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of an ensemble from its members' means and variances (members x n):
    the spread is ``scale * sqrt(var_between + mean var_within)`` (``var_between`` with
    ddof 1; 0 for one member)."""
    between = mean.var(0, ddof=1) if mean.shape[0] > 1 else np.zeros(mean.shape[1])
    return mean.mean(0), scale * np.sqrt(between + var.mean(0))


def predict(
    ensemble: Ensemble, smiles: Sequence[str], calibrated: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of the ensemble (target unit; the spread calibrated unless
    ``calibrated=False``); NaN if unparsable."""
    f = featurize_smiles(list(smiles))
    mean, std = np.full(len(smiles), np.nan), np.full(len(smiles), np.nan)
    if len(f.graphs):
        mean[f.index], std[f.index] = ensemble.mean_std_graphs(
            f.graphs, [smiles[i] for i in f.index], calibrated
        )
    return mean, std


def encoder_embeddings(ensemble: Ensemble, smiles: Sequence[str]) -> np.ndarray:
    """Pooled embeddings of the frozen encoder (n x d); NaN rows for unparsable SMILES."""
    f = featurize_smiles(list(smiles))
    out = np.full((len(smiles), ensemble.base.model.encoder.out_dim), np.nan, dtype=np.float32)
    if len(f.graphs):
        out[f.index] = ensemble.embed_graphs(f.graphs, [smiles[i] for i in f.index])
    return out


def in_domain(ensemble: Ensemble, smiles: Sequence[str]) -> list[str | None]:
    """Per SMILES ``""`` if inside the source domain, the reason if outside, None if unparsable."""
    f = featurize_smiles(list(smiles))
    out: list[str | None] = [None] * len(smiles)
    for i, note in zip(f.index, ensemble.applicability(f.graphs)):
        out[i] = note
    return out


# --------------------------------------------------------------------------------------------
# committees
# --------------------------------------------------------------------------------------------


class Committee(Ensemble):
    """Several ensembles whose predictions are pooled (member predictions stacked): the mean of
    the committee is the mean over every member of every part. Embeddings and the applicability
    check come from the first (best) part."""

    def __init__(self, parts: Sequence[Ensemble], provenance: dict[str, Any] | None = None):
        first = parts[0]
        super().__init__(
            first.base,
            [m for p in parts for m in p.members],
            "shotgun",
            first.target_name,
            first.target_unit,
            first.domain,
            provenance or {},
        )
        self.parts = list(parts)

    def member_predictions_graphs(
        self, graphs: GraphSet, smiles: Sequence[str] | None = None
    ) -> np.ndarray:
        return np.vstack([p.member_predictions_graphs(graphs, smiles) for p in self.parts])

    def member_moments_graphs(
        self, graphs: GraphSet, smiles: Sequence[str] | None = None, fps: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        moments = [p.member_moments_graphs(graphs, smiles, fps) for p in self.parts]
        return np.vstack([m for m, _ in moments]), np.vstack([v for _, v in moments])

    def applicability(self, graphs: GraphSet) -> list[str]:
        notes = [p.applicability(graphs) for p in self.parts]
        return ["; ".join(dict.fromkeys(n for n in col if n)) for col in zip(*notes)]

    def save(self, out_dir: str | Path) -> None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        names = []
        for k, p in enumerate(self.parts):
            p.save(out / f"part-{k}")
            names.append(f"part-{k}")
        write_json_atomic(
            out / "committee.json",
            {"format": COMMITTEE_FORMAT, "parts": names, "provenance": self.provenance},
        )


def load_committee(folder: str | Path) -> Committee:
    """Read a folder written by :meth:`Committee.save`."""
    folder = Path(folder)
    d = json.loads((folder / "committee.json").read_text())
    if d.get("format") != COMMITTEE_FORMAT:
        raise DataError(f"{folder / 'committee.json'} is not an mdxfer committee file.")
    parts = []
    for name in d["parts"]:
        if not all(c.isalnum() or c in "-_" for c in name):
            raise DataError(f"{folder / 'committee.json'}: unsafe part name {name!r}.")
        parts.append(load_ensemble(folder / name))
    return Committee(parts, d.get("provenance", {}))
