"""Fingerprint networks: the second kind of source model in a model library.

Seed 002's libraries hold, next to graph models, fully connected networks on fixed molecular
descriptors. mdxfer's descriptor is the Morgan count fingerprint (radius 2, 2,048 bits, the same
vector as the ``fp_ridge`` baseline), fed as ``log1p(count)``. A network is a pyramid of fully
connected layers (widths decreasing) and a linear output; its first ``n_encoder`` hidden layers
are the *encoder* (the frozen feature extractor in transfer) and the rest the *head*, so a
:class:`FingerprintModel` has the same ``model.encoder`` / ``model.head`` / ``scaler`` shape as
a graph :class:`~mdxfer.model.TrainedModel` and every transfer mode works on either.

Both kinds answer ``embed(graphs, smiles)``; :func:`source_from_dict` and :func:`load_source`
read either kind from its ``model.pt``.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from mdxfer.featurize import FEATURIZER_VERSION, FP_BITS, FP_RADIUS, DataError, GraphSet, morgan_counts
from mdxfer.fileio import save_torch_atomic
from mdxfer.model import (MODEL_FORMAT, TargetScaler, TrainedModel, environment, make_head, read_torch_file,
                          set_threads)

FP_FORMAT = "mdxfer-fpnet"
FP_FORMAT_VERSION = 1


@dataclass(frozen=True)
class FPConfig:
    """Architecture and optimiser of a fingerprint network."""

    widths: tuple[int, ...]      # hidden layer widths, input side first
    n_encoder: int = 1           # hidden layers that form the encoder (the rest: the head)
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 128
    max_epochs: int = 200
    patience: int = 20
    preset: str = "fp_mlp"
    conv: str = "morgan"         # for tables that print a graph model's convolution

    def __post_init__(self) -> None:
        if not 1 <= self.n_encoder <= len(self.widths):
            raise DataError(f"n_encoder must be between 1 and {len(self.widths)}, got {self.n_encoder}.")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FPConfig":
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        return cls(**d)


class FPEncoder(nn.Module):
    """``log1p(Morgan counts)`` -> the first ``n_encoder`` hidden layers (ReLU)."""

    def __init__(self, cfg: FPConfig):
        super().__init__()
        layers: list[nn.Module] = []
        d = FP_BITS
        for w in cfg.widths[:cfg.n_encoder]:
            layers += [nn.Linear(d, w), nn.ReLU()]
            if cfg.dropout:
                layers.append(nn.Dropout(cfg.dropout))
            d = w
        self.net = nn.Sequential(*layers)
        self.out_dim = d

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        return self.net(torch.log1p(counts))


class FPRegressor(nn.Module):
    """Encoder + head; ``forward`` takes raw Morgan counts and returns standardised predictions."""

    def __init__(self, cfg: FPConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = FPEncoder(cfg)
        self.head = make_head(self.encoder.out_dim, cfg.widths[cfg.n_encoder:], cfg.dropout)

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(counts)).squeeze(-1)


@torch.no_grad()
def _run(module: nn.Module, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    was = module.training
    module.eval()
    out = [module(torch.from_numpy(X[s:s + batch_size])).numpy() for s in range(0, len(X), batch_size)]
    module.train(was)
    return np.concatenate(out) if out else np.zeros((0,), dtype=np.float32)


@dataclass
class FingerprintModel:
    """A fingerprint network with its target scaling and provenance (``model.pt``)."""

    model: FPRegressor
    scaler: TargetScaler
    provenance: dict[str, Any] = field(default_factory=dict)
    kind = "fp_mlp"

    @property
    def config(self) -> FPConfig:
        return self.model.cfg

    def embed(self, graphs: GraphSet | None, smiles: Sequence[str] | None) -> np.ndarray:
        """Encoder output for each SMILES (n x ``encoder.out_dim``); ``graphs`` is ignored."""
        if smiles is None:
            raise ValueError("a fingerprint model embeds SMILES, not graphs")
        if not len(smiles):
            return np.zeros((0, self.model.encoder.out_dim), dtype=np.float32)
        return _run(self.model.encoder, morgan_counts(list(smiles)))

    def predict(self, smiles: list[str]) -> np.ndarray:
        """Predictions in the target's unit (unparsable SMILES get an all-zero fingerprint)."""
        return self.scaler.inverse(_run(self.model, morgan_counts(smiles)))

    def to_dict(self) -> dict[str, Any]:
        return {"format": FP_FORMAT, "format_version": FP_FORMAT_VERSION, "featurizer": FEATURIZER_VERSION,
                "fingerprint": {"kind": "morgan-count", "radius": FP_RADIUS, "bits": FP_BITS},
                "config": self.config.to_dict(), "state_dict": copy.deepcopy(self.model.state_dict()),
                "target": asdict(self.scaler), "provenance": self.provenance}

    def save(self, path: str | Path) -> None:
        """Write atomically (temporary file, then rename)."""
        save_torch_atomic(self.to_dict(), path)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "") -> "FingerprintModel":
        fp = d.get("fingerprint", {})
        if (fp.get("radius"), fp.get("bits")) != (FP_RADIUS, FP_BITS):
            raise DataError(f"{source or 'model'} uses a fingerprint {fp} this mdxfer does not compute.")
        model = FPRegressor(FPConfig.from_dict(d["config"]))
        model.load_state_dict(d["state_dict"])
        model.eval()
        return cls(model, TargetScaler(**d["target"]), d.get("provenance", {}))


SourceModel = TrainedModel | FingerprintModel


def source_from_dict(d: dict[str, Any], source: str = "") -> TrainedModel | FingerprintModel:
    """A graph model or a fingerprint model, by the ``format`` field of its saved dictionary."""
    if d.get("format") == FP_FORMAT:
        return FingerprintModel.from_dict(d, source)
    if d.get("format") == MODEL_FORMAT:
        return TrainedModel.from_dict(d, source)
    raise DataError(f"{source or 'model'} is neither an mdxfer graph model nor a fingerprint model.")


def load_source(path: str | Path) -> TrainedModel | FingerprintModel:
    """Read ``model.pt`` (or a folder holding it) of either kind."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.exists():
        raise DataError(f"No model at {path}; train one with `mdxfer pretrain` or `mdxfer library build`.")
    return source_from_dict(read_torch_file(path), str(path))


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------

def fit_fingerprint_model(X_tr: np.ndarray, y_tr: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                          cfg: FPConfig, seed: int = 0, name: str = "target", unit: str = "",
                          time_limit_s: float | None = None) -> tuple[FingerprintModel, dict[str, Any]]:
    """Train on Morgan counts ``X_tr`` (n x 2,048) with early stopping on ``X_val``; returns the
    model (best validation epoch) and a training record. Targets are standardised on ``y_tr``."""
    from mdxfer.train import EarlyStopper, regression_metrics

    scaler = TargetScaler.fit(y_tr, name, unit)
    torch.manual_seed(seed)
    model = FPRegressor(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xt, yt = torch.from_numpy(X_tr.astype(np.float32)), torch.tensor(scaler.transform(y_tr), dtype=torch.float32)
    yv_z = scaler.transform(y_val)
    gen = torch.Generator().manual_seed(seed)
    stopper, epoch = EarlyStopper(cfg.patience, time_limit_s), 0
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        for s in range(0, len(perm), cfg.batch_size):
            idx = perm[s:s + cfg.batch_size]
            loss = nn.functional.mse_loss(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        vl = float(np.mean((_run(model, X_val.astype(np.float32)) - yv_z) ** 2))
        if stopper.update(epoch, vl, model):
            break
    stopper.restore(model)
    fm = FingerprintModel(model, scaler)
    m_tr = regression_metrics(y_tr, fm.scaler.inverse(_run(model, X_tr.astype(np.float32))))
    m_val = regression_metrics(y_val, fm.scaler.inverse(_run(model, X_val.astype(np.float32))))
    record = {"r2_train": m_tr["r2"], "r2_val": m_val["r2"], "mae_train": m_tr["mae"], "mae_val": m_val["mae"],
              "rmse_val": m_val["rmse"], **stopper.record(epoch)}
    return fm, record


def pretrain_fingerprint(out_dir: str | Path, cfg: FPConfig, target: str, n: int | None = 4000,
                         n_val: int | None = 800, seed: int = 0, model_seed: int = 0,
                         threads: int = 1, time_limit_s: float | None = None,
                         log: Callable[[str], None] | None = None, data: str | None = None,
                         smiles_col: str = "smiles") -> dict[str, Any]:
    """Train a fingerprint network on a seeded QM9 subset (the same subset and split as
    ``mdxfer pretrain`` with this ``seed``), or on the user's table ``data``
    (:func:`mdxfer.qm9.table_split`); writes ``model.pt`` and ``metrics.json``."""
    from mdxfer import qm9

    set_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if data:
        sp, source, _, _ = qm9.table_split(data, target, smiles_col, n, n_val, seed)
    else:
        sp, source = qm9.split(n, n_val, seed=seed, target=target), f"qm9pack {qm9.qm9pack_version()}"
    X_tr = morgan_counts(list(sp.train[qm9.SMILES_COLUMN]))
    X_val = morgan_counts(list(sp.val[qm9.SMILES_COLUMN]))
    unit = qm9.UNITS.get(target, "")
    fm, rec = fit_fingerprint_model(X_tr, sp.train[target].to_numpy(), X_val, sp.val[target].to_numpy(), cfg,
                                    seed=model_seed, name=target, unit=unit, time_limit_s=time_limit_s)
    from mdxfer.featurize import featurize_smiles

    g = featurize_smiles(list(sp.train[qm9.SMILES_COLUMN])).graphs
    domain = {"elements": sorted({1} | set(np.unique(g.z).tolist())), "max_heavy_atoms": int(g.heavy_atom_counts().max())}
    metrics = {**rec, "target": target, "unit": unit, "n_train": len(sp.train), "n_val": len(sp.val),
               "preset": cfg.preset, "threads": threads, "seed": model_seed, "subset_seed": seed,
               "data_hash": sp.data_hash, "wall_s": round(time.perf_counter() - t0, 2)}
    fm.provenance = {
        "data": {"source": source, "target": target, "unit": unit,
                 "n_subset": len(sp.train) + len(sp.val),
                 "n_train": len(sp.train), "n_val": len(sp.val), "subset_seed": seed, "split_seed": sp.split_seed,
                 "data_hash": sp.data_hash, "domain": domain},
        "training": {k: rec[k] for k in ("epochs_run", "best_epoch", "stop_reason", "train_wall_s")},
        "metrics": {k: rec[k] for k in ("r2_train", "r2_val", "mae_val")},
        "environment": environment(),
    }
    fm.save(out / "model.pt")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if log:
        log(f"{out.name}: R² val {rec['r2_val']:.3f} in {rec['train_wall_s']:.0f} s")
    return metrics
