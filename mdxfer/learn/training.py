"""The one training loop: epochs with early stopping, a time limit, and resumable checkpoints.

:func:`train_epochs` runs a caller's epoch function until the epochs are used up, the
validation loss has not improved for ``patience`` epochs, or the time limit is reached; an
:class:`EarlyStopper` keeps the best epoch's weights, and a :class:`Checkpoint` (optional)
saves everything after every epoch so that running the same command again continues where it
stopped. Every network in mdxfer trains through it:

* graph pretraining (:func:`mdxfer.learn.pretrain.pretrain`, resumable),
* self-supervised pretraining (:func:`mdxfer.learn.selfsup.selfsup`, resumable, no patience),
* the models of a library (:func:`mdxfer.learn.pretrain.pretrain` and
  :func:`fit_fingerprint_model`) and the held-out benchmarks' graph networks
  (:func:`fit_graph_regressor`).

(Fine-tuning a transferred head, :mod:`mdxfer.learn.transfer`, keeps its own full-batch loop:
thousands of tiny epochs per fold, where the loop's bookkeeping would cost more than the step.)
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from mdxfer.errors import DataError
from mdxfer.learn.evaluation import regression_metrics
from mdxfer.learn.featurize import GraphSet
from mdxfer.learn.models import (
    FingerprintModel,
    GraphModel,
    TargetScaler,
    encoder_digest,
    save_torch_atomic,
)
from mdxfer.learn.nn.fingerprint import FPConfig, FPRegressor, forward_batched
from mdxfer.learn.nn.graph import ModelConfig, build_model, predict_scaled
from mdxfer.progress import ProgressBar

# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------


class EarlyStopper:
    """Early stopping on a validation loss: keeps the best epoch's weights and says when to stop
    (``patience`` epochs without a lower loss, None: never; or ``time_limit_s`` seconds of
    training, counted over resumed sessions too). Its state is a plain dictionary
    (:meth:`state_dict`) that a :class:`Checkpoint` saves and restores."""

    def __init__(self, patience: int | None = None, time_limit_s: float | None = None):
        self.patience, self.time_limit_s = patience, time_limit_s
        self.epoch, self.best_epoch, self.bad_epochs = 0, 0, 0
        self.best_loss, self.train_s = math.inf, 0.0
        self.best_state: dict[str, Any] | None = None
        self.best_metrics: dict[str, Any] | None = None
        self.history: list[dict[str, float]] = []

    def stop_reason(self) -> str | None:
        """Why training should stop before the next epoch (None: go on)."""
        if self.patience is not None and self.bad_epochs >= self.patience:
            return "early_stopping"
        if self.time_limit_s is not None and self.train_s >= self.time_limit_s:
            return "time_limit"
        return None

    def record_epoch(
        self,
        loss: float,
        module: nn.Module,
        seconds: float,
        row: dict[str, float] | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        """Count one finished epoch with validation loss ``loss``; keep ``module``'s weights (and
        ``metrics``) when it is the best so far; ``row`` goes to the history between ``epoch``
        and ``time_s``."""
        self.epoch += 1
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.bad_epochs = loss, self.epoch, 0
            self.best_state, self.best_metrics = copy.deepcopy(module.state_dict()), metrics
        else:
            self.bad_epochs += 1
        self.train_s += seconds
        if row is not None:
            self.history.append({"epoch": self.epoch, **row, "time_s": self.train_s})

    def restore(
        self,
        module: nn.Module,
        nothing: str = "No epoch was trained (max epochs 0 or time limit 0).",
    ) -> None:
        """Load the best epoch's weights into ``module`` and put it in evaluation mode;
        :class:`DataError` with ``nothing`` when no epoch was trained."""
        if self.best_state is None:
            raise DataError(nothing)
        module.load_state_dict(self.best_state)
        module.eval()

    def record(self, stop_reason: str) -> dict[str, Any]:
        """The training record saved with a model."""
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": self.epoch,
            "stop_reason": stop_reason,
            "train_wall_s": round(self.train_s, 2),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "train_s": self.train_s,
            "history": self.history,
            "best_state": self.best_state,
            "best_metrics": self.best_metrics,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (also the state of checkpoints written before the loop was
        shared: self-supervised ones lack ``bad_epochs``, pretraining ones ``best_metrics``)."""
        self.epoch, self.best_loss, self.best_epoch = (
            state["epoch"],
            state["best_loss"],
            state["best_epoch"],
        )
        self.bad_epochs, self.train_s = state.get("bad_epochs", 0), state["train_s"]
        self.history, self.best_state = state["history"], state["best_state"]
        self.best_metrics = state.get("best_metrics")


def read_checkpoint(path: Path, run_key: dict[str, Any], differs: str) -> dict[str, Any] | None:
    """The checkpoint saved at ``path`` (None if there is none). One saved by a different run
    (its ``run_key`` differs: ``differs`` says in what) raises :class:`DataError`."""
    if not path.exists():
        return None
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if ck.get("run_key") != run_key:
        raise DataError(
            f"{path} belongs to a different run ({differs}). "
            "Use another --out folder, or --restart to overwrite it."
        )
    return ck


@dataclass
class Checkpoint:
    """A resumable run's ``checkpoint.pt``: ``run_key`` (what must match to resume), the state of
    every object in ``objects`` (modules, optimiser, scheduler; None entries are saved as None),
    torch's random state when ``torch_rng``, and the :class:`EarlyStopper`'s state."""

    path: Path
    run_key: dict[str, Any]
    objects: dict[str, Any] = field(default_factory=dict)
    torch_rng: bool = False

    def save(self, stopper: EarlyStopper) -> None:
        d = {
            "run_key": self.run_key,
            **{k: (o.state_dict() if o is not None else None) for k, o in self.objects.items()},
        }
        if self.torch_rng:
            d["torch_rng"] = torch.get_rng_state()
        save_torch_atomic({**d, "state": stopper.state_dict()}, self.path)

    def resume(self, stopper: EarlyStopper, differs: str) -> bool:
        """Load the saved run into the objects and ``stopper``; False when there is none."""
        ck = read_checkpoint(self.path, self.run_key, differs)
        if ck is None:
            return False
        for k, o in self.objects.items():
            if o is not None and ck.get(k):
                o.load_state_dict(ck[k])
        if self.torch_rng:
            torch.set_rng_state(ck["torch_rng"])
        stopper.load_state_dict(ck["state"])
        return True


@dataclass
class EpochResult:
    """What one epoch reports: the validation loss (lower is better), the history columns,
    and figures kept with the best epoch."""

    val_loss: float
    row: dict[str, float] | None = None
    metrics: dict[str, Any] | None = None


def train_epochs(
    run_epoch: Callable[[int], EpochResult],
    stopper: EarlyStopper,
    max_epochs: int,
    keep: nn.Module,
    *,
    checkpoint: Checkpoint | None = None,
    progress: bool = False,
    describe: Callable[[EpochResult, EarlyStopper], str] | None = None,
    exhausted: str = "max_epochs",
) -> str:
    """Run ``run_epoch(epoch)`` (``epoch``: epochs finished so far) until ``max_epochs`` are done
    or ``stopper`` says stop (checked before every epoch, so a resumed run that had already
    stopped trains no further). ``keep``: the module whose best weights are kept; after every
    epoch ``checkpoint`` is saved and the progress bar shows ``describe(result, stopper)``.
    Returns the stop reason (``exhausted`` when the epochs ran out)."""
    bar = ProgressBar(progress, max_epochs, "epoch", completed=stopper.epoch, info=True)
    try:
        while stopper.epoch < max_epochs:
            reason = stopper.stop_reason()
            if reason:
                return reason
            t0 = time.perf_counter()
            r = run_epoch(stopper.epoch)
            stopper.record_epoch(r.val_loss, keep, time.perf_counter() - t0, r.row, r.metrics)
            if checkpoint is not None:
                checkpoint.save(stopper)
            bar.update(stopper.epoch, describe(r, stopper) if describe else "")
        return exhausted
    finally:
        bar.close()


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    """Per-epoch history as CSV (nothing when empty)."""
    if not history:
        return
    keys = list(history[0])
    lines = [",".join(keys)] + [",".join(f"{h[k]:.6g}" for k in keys) for h in history]
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# graph networks
# --------------------------------------------------------------------------------------------


def make_scheduler(cfg: ModelConfig, opt: torch.optim.Optimizer):
    """The preset's learning-rate schedule: halve on a plateau of the validation loss, or None."""
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=10, min_lr=1e-5)
    return None


def train_graph_epoch(
    model, opt, graphs: GraphSet, y: torch.Tensor, batch_size: int, gen: torch.Generator
) -> float:
    """One pass over the training graphs in a seeded random order; mean standardised MSE."""
    model.train()
    perm = torch.randperm(len(graphs), generator=gen).numpy()
    total, count = 0.0, 0
    for start in range(0, len(perm), batch_size):
        idx = perm[start : start + batch_size]
        if len(idx) < 2 and model.cfg.batch_norm:
            continue  # batch norm cannot train on a single graph
        batch = graphs.to_batch(idx)
        loss = torch.nn.functional.mse_loss(model(batch), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
        count += len(idx)
    return total / max(count, 1)


def load_encoder_weights(model, folder: str | Path) -> str:
    """Copy the encoder weights of the model in ``folder`` (``model.pt``) into ``model``'s
    encoder; the architectures must match. Returns the SHA-256 of the copied weights."""
    src = GraphModel.load(folder)
    mine, theirs = model.encoder.state_dict(), src.model.encoder.state_dict()
    if {k: tuple(v.shape) for k, v in mine.items()} != {
        k: tuple(v.shape) for k, v in theirs.items()
    }:
        raise DataError(
            f"The encoder in {folder} ({src.config.conv}, {src.config.n_conv} layers x "
            f"{src.config.hidden}) does not match this network ({model.cfg.conv}, "
            f"{model.cfg.n_conv} x {model.cfg.hidden}); pretrain with the same preset."
        )
    model.encoder.load_state_dict(theirs)
    return encoder_digest(model.encoder)


def fit_graph_regressor(
    graphs: GraphSet,
    y: np.ndarray,
    cfg: ModelConfig,
    seed: int = 0,
    init_encoder: str | Path | None = None,
    val_fraction: float = 0.1,
    time_limit_s: float | None = None,
    name: str = "target",
    unit: str = "",
) -> tuple[GraphModel, dict[str, Any]]:
    """Train a whole network (encoder and head) on any graphs and targets, with early stopping
    on a seeded random ``val_fraction`` of them; the encoder may start from another model's
    (``init_encoder``, e.g. self-supervised). Returns the model (best epoch) and a record."""
    y = np.asarray(y, dtype=np.float64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    n_val = min(max(1, int(round(val_fraction * len(y)))), len(y) - 2)
    va, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    train_g, val_g = graphs.subset(tr), graphs.subset(va)
    scaler = TargetScaler.fit(y[tr], name, unit)
    y_tr = torch.tensor(scaler.transform(y[tr]), dtype=torch.float32)
    y_val_z = scaler.transform(y[va])
    model = build_model(cfg, seed=seed)
    if init_encoder is not None:
        load_encoder_weights(model, init_encoder)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = make_scheduler(cfg, opt)

    def run_epoch(done: int) -> EpochResult:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + done + 1)
        train_graph_epoch(model, opt, train_g, y_tr, cfg.batch_size, gen)
        vl = float(np.mean((predict_scaled(model, val_g) - y_val_z) ** 2))
        if sched is not None:
            sched.step(vl)
        return EpochResult(vl)

    stopper = EarlyStopper(cfg.patience, time_limit_s)
    reason = train_epochs(run_epoch, stopper, cfg.max_epochs, model)
    stopper.restore(model)
    record = stopper.record(reason)
    return GraphModel(model, scaler, {"training": record}), record


# --------------------------------------------------------------------------------------------
# fingerprint networks
# --------------------------------------------------------------------------------------------


def fit_fingerprint_model(
    X_tr: np.ndarray,
    y_tr: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    cfg: FPConfig,
    seed: int = 0,
    name: str = "target",
    unit: str = "",
    time_limit_s: float | None = None,
) -> tuple[FingerprintModel, dict[str, Any]]:
    """Train on Morgan counts ``X_tr`` (n x 2,048) with early stopping on ``X_val``; returns the
    model (best validation epoch) and a training record. Targets are standardised on ``y_tr``."""
    scaler = TargetScaler.fit(y_tr, name, unit)
    torch.manual_seed(seed)
    model = FPRegressor(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xt, yt = (
        torch.from_numpy(X_tr.astype(np.float32)),
        torch.tensor(scaler.transform(y_tr), dtype=torch.float32),
    )
    xv, yv_z = X_val.astype(np.float32), scaler.transform(y_val)
    gen = torch.Generator().manual_seed(seed)

    def run_epoch(done: int) -> EpochResult:
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        for s in range(0, len(perm), cfg.batch_size):
            idx = perm[s : s + cfg.batch_size]
            loss = nn.functional.mse_loss(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return EpochResult(float(np.mean((forward_batched(model, xv) - yv_z) ** 2)))

    stopper = EarlyStopper(cfg.patience, time_limit_s)
    reason = train_epochs(run_epoch, stopper, cfg.max_epochs, model)
    stopper.restore(model)
    fm = FingerprintModel(model, scaler)
    m_tr = regression_metrics(
        y_tr, fm.scaler.inverse(forward_batched(model, X_tr.astype(np.float32)))
    )
    m_val = regression_metrics(y_val, fm.scaler.inverse(forward_batched(model, xv)))
    record = {
        "r2_train": m_tr["r2"],
        "r2_val": m_val["r2"],
        "mae_train": m_tr["mae"],
        "mae_val": m_val["mae"],
        "rmse_val": m_val["rmse"],
        **stopper.record(reason),
    }
    return fm, record
