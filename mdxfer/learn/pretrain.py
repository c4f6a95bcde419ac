"""Pretraining source models on QM9 (or the user's own table): the commands that write a
model folder. ``mdxfer pretrain`` trains a graph network (:func:`pretrain`); a model library
also trains fingerprint networks (:func:`pretrain_fingerprint`). Both train through the one
loop of :mod:`mdxfer.learn.training`.

``pretrain(out_dir, ...)`` writes into ``out_dir``:

* ``model.pt``     weights + target scaling + architecture + featuriser version + data hash,
                   subset and split seeds, source domain, training record, library versions;
* ``metrics.json`` ``r2_train``, ``r2_val``, ``mae_val`` (target unit, Cv: cal/(mol K)) and more;
* ``parity.png``   predicted vs reference, training and validation (the reference study's
                   figure 4; docs/glossary.md);
* ``history.csv``  per-epoch losses (standardised MSE) and validation R²/MAE;
* ``checkpoint.pt`` the state after the last finished epoch: running the same command again
  continues from it (``resume=False`` starts over).

Early stopping watches the validation loss and keeps the best epoch's weights; because the
same validation molecules choose the epoch, ``r2_val`` is very slightly optimistic (one number
chosen among a few hundred epochs on 1,000 molecules).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mdxfer.errors import DataError
from mdxfer.learn.data import qm9
from mdxfer.learn.data.targets import table_split
from mdxfer.learn.evaluation import parity_plot, regression_metrics
from mdxfer.learn.featurize import (
    FEATURIZER_VERSION,
    cached_featurize,
    featurize_smiles,
    morgan_counts,
)
from mdxfer.learn.models import GraphModel, TargetScaler, environment, set_threads
from mdxfer.learn.nn.fingerprint import FPConfig
from mdxfer.learn.nn.graph import ModelConfig, build_model, predict_scaled, preset
from mdxfer.learn.training import (
    Checkpoint,
    EarlyStopper,
    EpochResult,
    fit_fingerprint_model,
    load_encoder_weights,
    make_scheduler,
    train_epochs,
    train_graph_epoch,
    write_history,
)


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
        return replace(
            base,
            **{
                k: v
                for k, v in {
                    "max_epochs": self.max_epochs,
                    "patience": self.patience,
                    "batch_size": self.batch_size,
                    "lr": self.lr,
                }.items()
                if v is not None
            },
        )


def pretrain(
    out_dir: str | Path,
    settings: PretrainSettings | None = None,
    threads: int = 1,
    jobs: int = 1,
    resume: bool = True,
    time_limit_s: float | None = None,
    progress: bool = True,
    use_cache: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
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
        sp, source, skipped, notes = table_split(
            s.data, s.target, s.smiles_col, s.n, s.n_val, s.seed, s.split_seed
        )
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
    train_g, val_g = (
        feats.graphs.subset(np.arange(n_tr)),
        feats.graphs.subset(np.arange(n_tr, len(smiles))),
    )
    t_data = time.perf_counter() - t0
    log(
        f"data: {n_tr} train / {len(sp.val)} val molecules ({source}), target {s.target}, "
        f"hash {data_hash[:12]}; read and featurised in {t_data:.1f} s"
    )

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
    sched = make_scheduler(cfg, opt)
    run_key = {
        "data_hash": data_hash,
        "arch": {k: v for k, v in cfg.to_dict().items() if k not in ("max_epochs", "patience")},
        "seed": s.seed,
        "featurizer": FEATURIZER_VERSION,
        "init_encoder": init_digest,
    }
    stopper = EarlyStopper(cfg.patience, time_limit_s)
    ckpt = Checkpoint(
        out / "checkpoint.pt",
        run_key,
        {"model": model, "optimizer": opt, "scheduler": sched},
        torch_rng=True,
    )
    if resume and ckpt.resume(stopper, "other data, preset or seed"):
        log(
            f"resuming after epoch {stopper.epoch} (best val loss {stopper.best_loss:.4f} "
            f"at epoch {stopper.best_epoch})"
        )

    def run_epoch(done: int) -> EpochResult:
        gen = torch.Generator().manual_seed(s.seed * 1_000_003 + done)
        tr_loss = train_graph_epoch(model, opt, train_g, y_tr, cfg.batch_size, gen)
        zval = predict_scaled(model, val_g)
        val_loss = float(np.mean((zval - y_val_z.numpy()) ** 2))
        vm = regression_metrics(y_val, scaler.inverse(zval))
        if sched is not None:
            sched.step(val_loss)
        return EpochResult(
            val_loss,
            {
                "train_loss": tr_loss,
                "val_loss": val_loss,
                "val_r2": vm["r2"],
                "val_mae": vm["mae"],
                "lr": opt.param_groups[0]["lr"],
            },
        )

    def describe(r: EpochResult, st: EarlyStopper) -> str:
        return (
            f"train {r.row['train_loss']:.4f}  val {r.val_loss:.4f}  val R² {r.row['val_r2']:.4f}  "
            f"best@{st.best_epoch}"
        )

    stop_reason = train_epochs(
        run_epoch,
        stopper,
        cfg.max_epochs,
        model,
        checkpoint=ckpt,
        progress=progress,
        describe=describe,
    )
    stopper.restore(model)
    pred_tr = scaler.inverse(predict_scaled(model, train_g))
    pred_val = scaler.inverse(predict_scaled(model, val_g))
    m_tr, m_val = (
        regression_metrics(sp.train[s.target].to_numpy(), pred_tr),
        regression_metrics(y_val, pred_val),
    )
    heavy = np.concatenate([train_g.heavy_atom_counts()])
    domain = {
        "elements": sorted({1} | set(np.unique(train_g.z).tolist())),
        "max_heavy_atoms": int(heavy.max()),
    }
    metrics = {
        "r2_train": m_tr["r2"],
        "r2_val": m_val["r2"],
        "mae_train": m_tr["mae"],
        "mae_val": m_val["mae"],
        "rmse_val": m_val["rmse"],
        "target": s.target,
        "unit": unit,
        "n_train": n_tr,
        "n_val": len(sp.val),
        "preset": cfg.preset,
        "epochs_run": stopper.epoch,
        "best_epoch": stopper.best_epoch,
        "stop_reason": stop_reason,
        "train_wall_s": round(stopper.train_s, 2),
        "data_s": round(t_data, 2),
        "threads": threads,
        "seed": s.seed,
        "split_seed": sp.split_seed,
        "data_hash": data_hash,
        "data_source": source,
        "skipped_rows": skipped,
    }
    provenance = {
        "data": {
            "source": source,
            "target": s.target,
            "unit": unit,
            "n_subset": n_tr + len(sp.val),
            "n_train": n_tr,
            "n_val": len(sp.val),
            "subset_seed": s.seed,
            "split_seed": sp.split_seed,
            "data_hash": data_hash,
            "domain": domain,
        },
        "training": {
            **{
                k: metrics[k]
                for k in (
                    "epochs_run",
                    "best_epoch",
                    "stop_reason",
                    "train_wall_s",
                    "threads",
                    "seed",
                )
            },
            "init_encoder": {"path": str(s.init_encoder), "sha256": init_digest}
            if s.init_encoder
            else None,
        },
        "metrics": {k: metrics[k] for k in ("r2_train", "r2_val", "mae_val")},
        "environment": environment(),
    }
    GraphModel(model, scaler, provenance).save(out / "model.pt")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_history(out / "history.csv", stopper.history)
    name = qm9.LABELS.get(s.target, s.target)
    label = f"{name} [{unit}]" if unit else name
    parity_plot(
        out / "parity.png",
        [
            ("train", sp.train[s.target].to_numpy(), pred_tr, None),
            ("validation", y_val, pred_val, None),
        ],
        label,
        title=f"{'QM9 ' if not s.data else ''}{name}, preset {cfg.preset}, "
        f"best epoch {stopper.best_epoch}",
    )
    log(f"wrote {out / 'model.pt'}, metrics.json, parity.png")
    return metrics


def pretrain_fingerprint(
    out_dir: str | Path,
    cfg: FPConfig,
    target: str,
    n: int | None = 4000,
    n_val: int | None = 800,
    seed: int = 0,
    model_seed: int = 0,
    threads: int = 1,
    time_limit_s: float | None = None,
    log: Callable[[str], None] | None = None,
    data: str | None = None,
    smiles_col: str = "smiles",
) -> dict[str, Any]:
    """Train a fingerprint network on a seeded QM9 subset (the same subset and split as
    ``mdxfer pretrain`` with this ``seed``), or on the user's table ``data``
    (:func:`~mdxfer.learn.data.targets.table_split`); writes ``model.pt`` and ``metrics.json``."""
    set_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if data:
        sp, source, _, _ = table_split(data, target, smiles_col, n, n_val, seed)
    else:
        sp, source = (
            qm9.split(n, n_val, seed=seed, target=target),
            f"qm9pack {qm9.qm9pack_version()}",
        )
    X_tr = morgan_counts(list(sp.train[qm9.SMILES_COLUMN]))
    X_val = morgan_counts(list(sp.val[qm9.SMILES_COLUMN]))
    unit = qm9.UNITS.get(target, "")
    fm, rec = fit_fingerprint_model(
        X_tr,
        sp.train[target].to_numpy(),
        X_val,
        sp.val[target].to_numpy(),
        cfg,
        seed=model_seed,
        name=target,
        unit=unit,
        time_limit_s=time_limit_s,
    )
    g = featurize_smiles(list(sp.train[qm9.SMILES_COLUMN])).graphs
    domain = {
        "elements": sorted({1} | set(np.unique(g.z).tolist())),
        "max_heavy_atoms": int(g.heavy_atom_counts().max()),
    }
    metrics = {
        **rec,
        "target": target,
        "unit": unit,
        "n_train": len(sp.train),
        "n_val": len(sp.val),
        "preset": cfg.preset,
        "threads": threads,
        "seed": model_seed,
        "subset_seed": seed,
        "data_hash": sp.data_hash,
        "wall_s": round(time.perf_counter() - t0, 2),
    }
    fm.provenance = {
        "data": {
            "source": source,
            "target": target,
            "unit": unit,
            "n_subset": len(sp.train) + len(sp.val),
            "n_train": len(sp.train),
            "n_val": len(sp.val),
            "subset_seed": seed,
            "split_seed": sp.split_seed,
            "data_hash": sp.data_hash,
            "domain": domain,
        },
        "training": {
            k: rec[k] for k in ("epochs_run", "best_epoch", "stop_reason", "train_wall_s")
        },
        "metrics": {k: rec[k] for k in ("r2_train", "r2_val", "mae_val")},
        "environment": environment(),
    }
    fm.save(out / "model.pt")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if log:
        log(f"{out.name}: R² val {rec['r2_val']:.3f} in {rec['train_wall_s']:.0f} s")
    return metrics
