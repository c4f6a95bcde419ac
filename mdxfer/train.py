"""Pretraining on QM9 (the seed's source task): seeded subset, early stopping, resumable.

``pretrain(out_dir, ...)`` writes into ``out_dir``:

* ``model.pt``     weights + target scaling + architecture + featuriser version + data hash,
                   subset and split seeds, source domain, training record, library versions;
* ``metrics.json`` ``r2_train``, ``r2_val``, ``mae_val`` (target unit, Cv: cal/(mol K)) and more;
* ``parity.png``   predicted vs reference, training and validation (the seed's figure 4);
* ``history.csv``  per-epoch losses (standardised MSE) and validation R²/MAE;
* ``checkpoint.pt`` the state after the last finished epoch: running the same command again
  continues from it (``resume=False`` starts over).

Early stopping watches the validation loss and keeps the best epoch's weights; because the
same validation molecules choose the epoch, ``r2_val`` is very slightly optimistic (one number
chosen among a few hundred epochs on 1,000 molecules).
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mdxfer import qm9
from mdxfer.featurize import DataError, GraphSet, cached_featurize
from mdxfer.fileio import save_torch_atomic
from mdxfer.model import (ModelConfig, TargetScaler, TrainedModel, build_model, environment,
                          predict_scaled, preset, set_threads)


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R², MAE and RMSE (MAE/RMSE in the unit of ``y``)."""
    from sklearn.metrics import mean_absolute_error, r2_score

    y, pred = np.asarray(y, float), np.asarray(pred, float)
    return {"r2": float(r2_score(y, pred)), "mae": float(mean_absolute_error(y, pred)),
            "rmse": float(np.sqrt(np.mean((y - pred) ** 2)))}


def parity_plot(path: str | Path, sets: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]],
                label: str, title: str = "", r2: dict[str, float] | None = None) -> None:
    """Predicted vs reference scatter with the diagonal; ``sets`` = (name, y, pred, pred_std).
    The legend shows each set's R² (or ``r2[name]`` when given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    lo = min(float(np.min(np.r_[y, p])) for _, y, p, _ in sets if len(y))
    hi = max(float(np.max(np.r_[y, p])) for _, y, p, _ in sets if len(y))
    pad = 0.04 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", lw=1, zorder=0)
    for k, (name, y, p, s) in enumerate(sets):
        if not len(y):
            continue
        value = (r2 or {}).get(name, regression_metrics(y, p)["r2"] if len(y) > 1 else float("nan"))
        lab = f"{name} (n={len(y)}, R²={value:.3f})"
        if s is not None:
            ax.errorbar(y, p, yerr=s, fmt="o", ms=4, alpha=0.8, elinewidth=0.8, color=f"C{k}", label=lab)
        else:
            ax.scatter(y, p, s=6 if len(y) > 200 else 16, alpha=0.5 if len(y) > 200 else 0.8, color=f"C{k}",
                       label=lab)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(f"reference {label}")
    ax.set_ylabel(f"predicted {label}")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@dataclass
class PretrainSettings:
    """Everything that defines a pretraining run (the resumable part is checked on resume)."""

    n: int | None = 5000
    n_val: int | None = 1000
    seed: int = 0
    split_seed: int | None = None
    preset: str = "default"
    target: str = qm9.CV_COLUMN
    max_epochs: int | None = None
    patience: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    #: an explicit architecture (a model library's random one); replaces ``preset``
    arch: ModelConfig | None = None
    #: a folder whose ``model.pt`` encoder (e.g. ``mdxfer selfsup``) initialises this network
    init_encoder: str | None = None
    #: the user's own table (CSV with ``smiles_col`` and ``target``) instead of QM9; ``n`` and
    #: ``n_val`` then count its rows (None: all rows, a fifth of them for validation)
    data: str | None = None
    smiles_col: str = "smiles"
    unit: str = ""

    def config(self) -> ModelConfig:
        base = self.arch if self.arch is not None else preset(self.preset)
        return replace(base, **{k: v for k, v in {"max_epochs": self.max_epochs, "patience": self.patience,
                                                 "batch_size": self.batch_size, "lr": self.lr}.items()
                                if v is not None})


def _make_scheduler(cfg: ModelConfig, opt: torch.optim.Optimizer):
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=10, min_lr=1e-5)
    return None


def _train_epoch(model, opt, graphs: GraphSet, y: torch.Tensor, batch_size: int, gen: torch.Generator) -> float:
    """One pass over the training graphs in a seeded random order; mean standardised MSE."""
    model.train()
    perm = torch.randperm(len(graphs), generator=gen).numpy()
    total, count = 0.0, 0
    for start in range(0, len(perm), batch_size):
        idx = perm[start:start + batch_size]
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


class _Progress:
    """A rich progress bar (or nothing) showing epoch, losses and elapsed time."""

    def __init__(self, enabled: bool, total: int, start: int):
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        self.bar = Progress(TextColumn("epoch"), MofNCompleteColumn(), BarColumn(),
                            TextColumn("{task.fields[info]}", markup=False), TimeElapsedColumn(), transient=False)
        self.task = self.bar.add_task("pretrain", total=total, completed=start, info="")
        self.bar.start()

    def update(self, epoch: int, info: str) -> None:
        if self.enabled:
            self.bar.update(self.task, completed=epoch, info=info)

    def close(self) -> None:
        if self.enabled:
            self.bar.stop()


def pretrain(out_dir: str | Path, settings: PretrainSettings | None = None, threads: int = 1,
             jobs: int = 1, resume: bool = True, time_limit_s: float | None = None,
             progress: bool = True, use_cache: bool = True,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Pretrain a network on a seeded QM9 subset and write the files listed in the module
    docstring. Returns the metrics dictionary (also in ``metrics.json``).

    ``threads``: torch threads (1 by default: another core is usually busy with LAMMPS);
    ``jobs``: processes for featurisation; ``time_limit_s``: stop (keeping the best epoch)
    once training has used this many seconds, counted over resumed sessions too.
    """
    s = settings or PretrainSettings()
    log = log or (lambda msg: None)
    set_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = s.config()
    t0 = time.perf_counter()

    if s.data:
        sp, source, skipped, notes = qm9.table_split(s.data, s.target, s.smiles_col, s.n, s.n_val,
                                                     s.seed, s.split_seed)
        if notes:
            log(f"{s.data}: " + "; ".join(notes))
    else:
        sp = qm9.split(s.n, s.n_val, seed=s.seed, split_seed=s.split_seed, target=s.target)
        source, skipped = f"qm9pack {qm9.qm9pack_version()}", 0
    data_hash = sp.data_hash
    smiles = list(sp.train[qm9.SMILES_COLUMN]) + list(sp.val[qm9.SMILES_COLUMN])
    feats = cached_featurize(smiles, n_jobs=jobs, use_cache=use_cache)
    if feats.failed:
        bad = ", ".join(smiles[i] for i in feats.failed[:5])
        raise DataError(f"RDKit could not parse {len(feats.failed)} SMILES (e.g. {bad}).")
    n_tr = len(sp.train)
    train_g, val_g = feats.graphs.subset(np.arange(n_tr)), feats.graphs.subset(np.arange(n_tr, len(smiles)))
    t_data = time.perf_counter() - t0
    log(f"data: {n_tr} train / {len(sp.val)} val molecules ({source}), target {s.target}, "
        f"hash {data_hash[:12]}; read and featurised in {t_data:.1f} s")

    unit = s.unit or qm9.UNITS.get(s.target, "")
    scaler = TargetScaler.fit(sp.train[s.target].to_numpy(), s.target, unit)
    y_tr = torch.tensor(scaler.transform(sp.train[s.target].to_numpy()), dtype=torch.float32)
    y_val = sp.val[s.target].to_numpy()
    y_val_z = torch.tensor(scaler.transform(y_val), dtype=torch.float32)

    model = build_model(cfg, seed=s.seed)
    init_digest = None
    if s.init_encoder:
        init_digest = load_encoder_weights(model, s.init_encoder)
        log(f"encoder initialised from {s.init_encoder} (sha256 {init_digest[:12]})")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = _make_scheduler(cfg, opt)
    run_key = {"data_hash": data_hash, "arch": {k: v for k, v in cfg.to_dict().items()
                                                  if k not in ("max_epochs", "patience")},
               "seed": s.seed, "featurizer": feats_version(), "init_encoder": init_digest}
    state = {"epoch": 0, "best_loss": math.inf, "best_epoch": 0, "bad_epochs": 0,
             "train_s": 0.0, "history": [], "best_state": None}

    ckpt_path = out / "checkpoint.pt"
    ck = read_checkpoint(ckpt_path, run_key, "other data, preset or seed") if resume else None
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None and ck.get("scheduler"):
            sched.load_state_dict(ck["scheduler"])
        torch.set_rng_state(ck["torch_rng"])
        state = ck["state"]
        log(f"resuming after epoch {state['epoch']} (best val loss {state['best_loss']:.4f} "
            f"at epoch {state['best_epoch']})")

    bar = _Progress(progress, cfg.max_epochs, state["epoch"])
    stop_reason = "max_epochs"
    try:
        while state["epoch"] < cfg.max_epochs:
            if state["bad_epochs"] >= cfg.patience:
                stop_reason = "early_stopping"
                break
            if time_limit_s is not None and state["train_s"] >= time_limit_s:
                stop_reason = "time_limit"
                break
            te = time.perf_counter()
            gen = torch.Generator().manual_seed(s.seed * 1_000_003 + state["epoch"])
            tr_loss = _train_epoch(model, opt, train_g, y_tr, cfg.batch_size, gen)
            zval = predict_scaled(model, val_g)
            val_loss = float(np.mean((zval - y_val_z.numpy()) ** 2))
            vm = regression_metrics(y_val, scaler.inverse(zval))
            if sched is not None:
                sched.step(val_loss)
            state["epoch"] += 1
            if val_loss < state["best_loss"]:
                state.update(best_loss=val_loss, best_epoch=state["epoch"], bad_epochs=0,
                             best_state=copy.deepcopy(model.state_dict()))
            else:
                state["bad_epochs"] += 1
            state["train_s"] += time.perf_counter() - te
            state["history"].append({"epoch": state["epoch"], "train_loss": tr_loss, "val_loss": val_loss,
                                     "val_r2": vm["r2"], "val_mae": vm["mae"],
                                     "lr": opt.param_groups[0]["lr"], "time_s": state["train_s"]})
            save_torch_atomic({"run_key": run_key, "model": model.state_dict(), "optimizer": opt.state_dict(),
                               "scheduler": sched.state_dict() if sched is not None else None,
                               "torch_rng": torch.get_rng_state(), "state": state}, ckpt_path)
            bar.update(state["epoch"], f"train {tr_loss:.4f}  val {val_loss:.4f}  val R² {vm['r2']:.4f}  "
                                       f"best@{state['best_epoch']}")
        else:
            stop_reason = "max_epochs"
    finally:
        bar.close()

    if state["best_state"] is None:
        raise DataError("No epoch was trained (max epochs 0 or time limit 0).")
    model.load_state_dict(state["best_state"])
    model.eval()
    pred_tr = scaler.inverse(predict_scaled(model, train_g))
    pred_val = scaler.inverse(predict_scaled(model, val_g))
    m_tr, m_val = regression_metrics(sp.train[s.target].to_numpy(), pred_tr), regression_metrics(y_val, pred_val)
    heavy = np.concatenate([train_g.heavy_atom_counts()])
    domain = {"elements": sorted({1} | set(np.unique(train_g.z).tolist())),
              "max_heavy_atoms": int(heavy.max())}
    metrics = {
        "r2_train": m_tr["r2"], "r2_val": m_val["r2"], "mae_train": m_tr["mae"], "mae_val": m_val["mae"],
        "rmse_val": m_val["rmse"], "target": s.target, "unit": unit,
        "n_train": n_tr, "n_val": len(sp.val), "preset": cfg.preset, "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"], "stop_reason": stop_reason,
        "train_wall_s": round(state["train_s"], 2), "data_s": round(t_data, 2),
        "threads": threads, "seed": s.seed, "split_seed": sp.split_seed, "data_hash": data_hash,
        "data_source": source, "skipped_rows": skipped,
    }
    provenance = {
        "data": {"source": source, "target": s.target, "unit": unit,
                 "n_subset": n_tr + len(sp.val), "n_train": n_tr, "n_val": len(sp.val), "subset_seed": s.seed,
                 "split_seed": sp.split_seed, "data_hash": data_hash, "domain": domain},
        "training": {**{k: metrics[k] for k in ("epochs_run", "best_epoch", "stop_reason", "train_wall_s",
                                                "threads", "seed")},
                     "init_encoder": {"path": str(s.init_encoder), "sha256": init_digest} if s.init_encoder else None},
        "metrics": {k: metrics[k] for k in ("r2_train", "r2_val", "mae_val")},
        "environment": environment(),
    }
    TrainedModel(model, scaler, provenance).save(out / "model.pt")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_history(out / "history.csv", state["history"])
    name = qm9.LABELS.get(s.target, s.target)
    label = f"{name} [{unit}]" if unit else name
    parity_plot(out / "parity.png", [("train", sp.train[s.target].to_numpy(), pred_tr, None),
                                     ("validation", y_val, pred_val, None)], label,
                title=f"{'QM9 ' if not s.data else ''}{name}, preset {cfg.preset}, "
                      f"best epoch {state['best_epoch']}")
    log(f"wrote {out / 'model.pt'}, metrics.json, parity.png")
    return metrics


def load_encoder_weights(model, folder: str | Path) -> str:
    """Copy the encoder weights of the model in ``folder`` (``model.pt``) into ``model``'s
    encoder; the architectures must match. Returns the SHA-256 of the copied weights."""
    import hashlib

    src = TrainedModel.load(folder)
    mine, theirs = model.encoder.state_dict(), src.model.encoder.state_dict()
    if {k: tuple(v.shape) for k, v in mine.items()} != {k: tuple(v.shape) for k, v in theirs.items()}:
        raise DataError(f"The encoder in {folder} ({src.config.conv}, {src.config.n_conv} layers x "
                        f"{src.config.hidden}) does not match this network ({model.cfg.conv}, "
                        f"{model.cfg.n_conv} x {model.cfg.hidden}); pretrain with the same preset.")
    model.encoder.load_state_dict(theirs)
    h = hashlib.sha256()
    for k, v in theirs.items():
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def feats_version() -> str:
    from mdxfer.featurize import FEATURIZER_VERSION

    return FEATURIZER_VERSION


def read_checkpoint(path: Path, run_key: dict[str, Any], differs: str) -> dict[str, Any] | None:
    """The checkpoint saved at ``path`` (None if there is none). One saved by a different run
    (its ``run_key`` differs: ``differs`` says in what) raises :class:`DataError`."""
    if not path.exists():
        return None
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if ck.get("run_key") != run_key:
        raise DataError(f"{path} belongs to a different run ({differs}). "
                        "Use another --out folder, or --restart to overwrite it.")
    return ck


class EarlyStopper:
    """Early stopping on a validation loss: keeps the best epoch's weights and says when to stop
    (``patience`` epochs without improvement, or ``time_limit_s`` seconds since creation)."""

    def __init__(self, patience: int, time_limit_s: float | None = None):
        self.patience, self.time_limit_s = patience, time_limit_s
        self.best, self.best_state, self.best_epoch, self.bad = math.inf, None, 0, 0
        self.reason = "max_epochs"
        self.t0 = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t0

    def update(self, epoch: int, loss: float, model: torch.nn.Module) -> bool:
        """Record epoch ``epoch``'s validation loss; True when training should stop."""
        if loss < self.best:
            self.best, self.best_state, self.best_epoch, self.bad = loss, copy.deepcopy(model.state_dict()), epoch, 0
        else:
            self.bad += 1
        if self.bad >= self.patience:
            self.reason = "early_stopping"
        elif self.time_limit_s is not None and self.elapsed_s >= self.time_limit_s:
            self.reason = "time_limit"
        else:
            return False
        return True

    def restore(self, model: torch.nn.Module) -> None:
        """Load the best epoch's weights into ``model`` and put it in evaluation mode."""
        model.load_state_dict(self.best_state)
        model.eval()

    def record(self, epochs_run: int) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch, "epochs_run": epochs_run, "stop_reason": self.reason,
                "train_wall_s": round(self.elapsed_s, 2)}


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    if not history:
        return
    keys = list(history[0])
    lines = [",".join(keys)] + [",".join(f"{h[k]:.6g}" for k in keys) for h in history]
    path.write_text("\n".join(lines) + "\n")


def fit_graph_regressor(graphs: GraphSet, y: np.ndarray, cfg: ModelConfig, seed: int = 0,
                        init_encoder: str | Path | None = None, val_fraction: float = 0.1,
                        time_limit_s: float | None = None, name: str = "target",
                        unit: str = "") -> tuple[TrainedModel, dict[str, Any]]:
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
    sched = _make_scheduler(cfg, opt)
    stopper, epoch = EarlyStopper(cfg.patience, time_limit_s), 0
    for epoch in range(1, cfg.max_epochs + 1):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        _train_epoch(model, opt, train_g, y_tr, cfg.batch_size, gen)
        vl = float(np.mean((predict_scaled(model, val_g) - y_val_z) ** 2))
        if sched is not None:
            sched.step(vl)
        if stopper.update(epoch, vl, model):
            break
    stopper.restore(model)
    record = stopper.record(epoch)
    return TrainedModel(model, scaler, {"training": record}), record
