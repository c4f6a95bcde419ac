"""A library of pretrained source models for shotgun transfer learning (Yamada et al. 2019, whose
library is XenonPy.MDL), scaled to a laptop.

``build_library(out_dir)`` trains, for each of several QM9 properties, a few graph networks
and a few fingerprint networks with *random* architectures (seeded): pyramid-shaped fully
connected heads whose depth and first width are drawn at random and whose widths shrink layer
by layer, random convolution type, width, depth and pooling for the graph models. All models of
a library see the same seeded QM9 subset and split (one featurisation, cached), so their
validation figures compare.

Layout of ``DIR``::

    manifest.json       {"format": "mdxfer-library", "settings": {...}, "models": [entry, ...]}
    <name>/model.pt     a graph model (mdxfer pretrain format) or a fingerprint model
    <name>/metrics.json

where each manifest entry is ``{"name", "property", "kind" ("gnn" | "fp_mlp"), "path",
"metrics": {"r2_val", "mae_val", ...}, "architecture", "data", "featurizer", "seed"}``.

The build is resumable: models already in the manifest are skipped, so running the same
command after an interruption finishes the rest. Models train in ``jobs`` processes with one
torch thread each (never more threads than free cores: see docs/learning.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from mdxfer.errors import DataError
from mdxfer.fileio import write_json_atomic
from mdxfer.learn.data import qm9
from mdxfer.learn.data.targets import table_split
from mdxfer.learn.featurize import FEATURIZER_VERSION, cached_featurize
from mdxfer.learn.models import SourceModel, load_source, set_threads
from mdxfer.learn.nn.fingerprint import FPConfig
from mdxfer.learn.nn.graph import ModelConfig
from mdxfer.learn.pretrain import PretrainSettings, pretrain, pretrain_fingerprint
from mdxfer.progress import ProgressBar
from mdxfer.tables import read_targets

LIBRARY_FORMAT = "mdxfer-library"
LIBRARY_FORMAT_VERSION = 1
KINDS = ("gnn", "fp_mlp")

#: short names used in model names (and accepted on the command line)
SHORT_NAMES = {
    qm9.CV_COLUMN: "cv",
    "Polarizability_bohr3": "alpha",
    "HOMO_LUMO_gap_au": "gap",
    "ZPVE_au": "zpve",
    "Dipole_debye": "mu",
    "HOMO_au": "homo",
    "LUMO_au": "lumo",
    "R2_bohr2": "r2",
    "InternalEnergy_0K_au": "u0",
    "InternalEnergy_298K_au": "u298",
    "Enthalphy_298K_au": "h298",
    "GibbsFreeEnergy_298K_au": "g298",
}
DEFAULT_PROPERTIES = (
    qm9.CV_COLUMN,
    "Polarizability_bohr3",
    "HOMO_LUMO_gap_au",
    "ZPVE_au",
    "Dipole_debye",
)


def resolve_property(name: str) -> str:
    """A QM9 column from its column name or short name (``cv``, ``alpha``, ``gap``, ...)."""
    if name in qm9.PROPERTY_COLUMNS:
        return name
    for col, short in SHORT_NAMES.items():
        if name.lower() == short:
            return col
    raise DataError(
        f"Unknown QM9 property {name!r}; use a column ({', '.join(qm9.PROPERTY_COLUMNS)}) "
        f"or a short name ({', '.join(SHORT_NAMES.values())})."
    )


def check_table_columns(data: str | Path, smiles_col: str, columns: Sequence[str]) -> None:
    """Refuse a table to build a library on (``--data``) unless every one of ``columns``
    exists beside ``smiles_col`` and holds numbers: a clear error before any training."""
    for col in columns:
        read_targets(data, smiles_col, col, what="Library table", error=DataError)


@dataclass
class LibrarySettings:
    """What a library build trains. Defaults fit ~15-25 min on 2 cores (see docs/learning.md)."""

    properties: tuple[str, ...] = DEFAULT_PROPERTIES
    gnn_per_property: int = 2
    fp_per_property: int = 2
    n: int = 4000  # QM9 molecules (train + validation), shared by all models
    n_val: int = 800
    seed: int = 0  # subset/split seed and the seed of the random architectures
    gnn_epochs: int = 80
    gnn_patience: int = 15
    fp_epochs: int = 150
    fp_patience: int = 15
    model_time_limit_s: float | None = 150.0
    #: the user's own table instead of QM9: ``properties`` are then its columns, ``n``/``n_val``
    #: count its rows (None: every usable row, a fifth for validation)
    data: str | None = None
    smiles_col: str = "smiles"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["properties"] = list(self.properties)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LibrarySettings:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["properties"] = tuple(d.get("properties", DEFAULT_PROPERTIES))
        return cls(**d)


# --------------------------------------------------------------------------------------------
# random architectures
# --------------------------------------------------------------------------------------------


def pyramid(
    rng: np.random.Generator,
    depth_range: tuple[int, int],
    first_range: tuple[int, int],
    shrink: tuple[float, float] = (0.4, 0.8),
    floor: int = 8,
) -> tuple[int, ...]:
    """Widths of a pyramid: a random depth, a random first width, each next layer a random
    fraction (``shrink``) of the previous one, never below ``floor``."""
    depth = int(rng.integers(depth_range[0], depth_range[1] + 1))
    w = int(rng.integers(first_range[0], first_range[1] + 1))
    widths = []
    for _ in range(depth):
        widths.append(max(floor, w))
        w = int(round(w * rng.uniform(*shrink)))
    return tuple(widths)


def random_gnn_config(
    rng: np.random.Generator, epochs: int = 80, patience: int = 15
) -> ModelConfig:
    """A random graph network: GCN or GINE, 2-4 layers of 64-160 channels, sum or sum+mean
    pooling, a 1-3 layer pyramid head."""
    conv = str(rng.choice(["gcn", "gine"]))
    hidden = int(rng.choice([64, 96, 128, 160]))
    return ModelConfig(
        preset="library",
        conv=conv,
        hidden=hidden,
        n_conv=int(rng.integers(2, 5)),
        pooling=str(rng.choice(["sum", "sum_mean"])),
        fc=pyramid(rng, (1, 3), (hidden // 2, 2 * hidden)),
        batch_norm=conv == "gine",
        residual=conv == "gine",
        lr=float(rng.choice([5e-4, 1e-3, 2e-3])),
        batch_size=64,
        lr_schedule="plateau",
        max_epochs=epochs,
        patience=patience,
    )


def random_fp_config(rng: np.random.Generator, epochs: int = 150, patience: int = 15) -> FPConfig:
    """A random fingerprint network: a 2-4 layer pyramid starting at 256-1,024 units; the
    first layer is the encoder."""
    return FPConfig(
        widths=pyramid(rng, (2, 4), (256, 1024)),
        n_encoder=1,
        dropout=float(rng.choice([0.0, 0.1, 0.2])),
        lr=float(rng.choice([5e-4, 1e-3])),
        weight_decay=1e-5,
        batch_size=128,
        max_epochs=epochs,
        patience=patience,
    )


def plan(settings: LibrarySettings) -> list[dict[str, Any]]:
    """Every model the settings call for: name, property, kind, seed and architecture
    (deterministic in ``settings``)."""
    out = []
    props = list(
        dict.fromkeys(
            settings.properties
            if settings.data
            else (resolve_property(p) for p in settings.properties)
        )
    )  # each once
    for p_idx, prop in enumerate(props):
        short = SHORT_NAMES.get(prop, "".join(c if c.isalnum() else "_" for c in prop.lower()))
        for kind, count in (
            ("gnn", settings.gnn_per_property),
            ("fp_mlp", settings.fp_per_property),
        ):
            for k in range(count):
                seed = int(
                    settings.seed * 1_000_003 + p_idx * 1_009 + (0 if kind == "gnn" else 500) + k
                )
                rng = np.random.default_rng(seed)
                arch = (
                    random_gnn_config(rng, settings.gnn_epochs, settings.gnn_patience)
                    if kind == "gnn"
                    else random_fp_config(rng, settings.fp_epochs, settings.fp_patience)
                )
                out.append(
                    {
                        "name": f"{short}-{kind.replace('_', '')}-{k}",
                        "property": prop,
                        "kind": kind,
                        "seed": seed,
                        "architecture": arch.to_dict(),
                    }
                )
    return out


# --------------------------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------------------------


def read_manifest(library_dir: str | Path) -> dict[str, Any]:
    """Read and check ``DIR/manifest.json``; raises :class:`DataError` with what is wrong."""
    path = Path(library_dir) / "manifest.json"
    if not path.exists():
        raise DataError(
            f"{library_dir} is not a model library (no manifest.json); build one with "
            "`mdxfer library build --out DIR`."
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
    except UnicodeDecodeError:
        raise DataError(
            f"{path} is not a text file (not UTF-8): it is not a library manifest; "
            "rebuild it with `mdxfer library build --out DIR`."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise DataError(f"{path} has no 'models' list.")
    for i, m in enumerate(data["models"]):
        if not isinstance(m, dict):
            raise DataError(
                f"{path}: model {i} is {m!r}, not a table of name, property, kind, metrics."
            )
        missing = [k for k in ("name", "property", "kind", "metrics") if k not in m]
        if missing:
            raise DataError(f"{path}: model {i} lacks {', '.join(missing)}.")
        if m["kind"] not in KINDS:
            raise DataError(f"{path}: model {m['name']!r} has unknown kind {m['kind']!r}.")
        if not _safe_name(m["name"]):
            raise DataError(f"{path}: model name {m['name']!r} is not a plain folder name.")
    return data


def _safe_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "-_." for c in name) and name not in (".", "..")


def model_path(library_dir: str | Path, entry: dict[str, Any]) -> Path:
    """Folder of a manifest entry (``path`` relative to the library, a plain folder name)."""
    rel = entry.get("path", entry["name"])
    if not _safe_name(str(rel)):
        raise DataError(f"Library entry {entry['name']!r} has an unsafe path {rel!r}.")
    return Path(library_dir) / str(rel)


def _widths(w) -> str:
    return "-".join(str(x) for x in (w or []))


def manifest_table(data: dict[str, Any]):
    """The manifest as a pandas table (one row per model)."""
    rows = []
    for m in data["models"]:
        a = m.get("architecture", {})
        arch = (
            f"{a.get('conv')} {a.get('n_conv')}x{a.get('hidden')} {a.get('pooling')} fc {_widths(a.get('fc'))}"
            if m["kind"] == "gnn"
            else f"morgan mlp {_widths(a.get('widths'))}"
        )
        mm = m["metrics"]
        rows.append(
            {
                "name": m["name"],
                "property": SHORT_NAMES.get(m["property"], m["property"]),
                "kind": m["kind"],
                "architecture": arch,
                "r2_val": mm.get("r2_val"),
                "mae_val": mm.get("mae_val"),
                "epochs": mm.get("epochs_run"),
                "train_s": mm.get("train_wall_s"),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------------


def _train_one(job: dict[str, Any], settings: dict[str, Any], out_dir: str) -> dict[str, Any]:
    """Train one planned model into ``out_dir/<name>`` (runs in a worker process)."""
    set_threads(1)
    torch.manual_seed(job["seed"])
    s = LibrarySettings.from_dict(settings)
    folder = Path(out_dir) / job["name"]
    t0 = time.perf_counter()
    if job["kind"] == "gnn":
        ps = PretrainSettings(
            n=s.n,
            n_val=s.n_val,
            seed=s.seed,
            target=job["property"],
            arch=ModelConfig.from_dict(job["architecture"]),
            data=s.data,
            smiles_col=s.smiles_col,
        )
        m = pretrain(folder, ps, threads=1, time_limit_s=s.model_time_limit_s, progress=False)
        ck = folder / "checkpoint.pt"
        if ck.exists():
            ck.unlink()  # the finished model is in model.pt; the checkpoint is 3x its size
    else:
        m = pretrain_fingerprint(
            folder,
            FPConfig.from_dict(job["architecture"]),
            job["property"],
            n=s.n,
            n_val=s.n_val,
            seed=s.seed,
            model_seed=job["seed"],
            time_limit_s=s.model_time_limit_s,
            data=s.data,
            smiles_col=s.smiles_col,
        )
    keep = (
        "r2_train",
        "r2_val",
        "mae_train",
        "mae_val",
        "rmse_val",
        "epochs_run",
        "best_epoch",
        "stop_reason",
        "train_wall_s",
        "n_train",
        "n_val",
        "unit",
        "data_hash",
    )
    return {
        **{k: job[k] for k in ("name", "property", "kind", "seed", "architecture")},
        "path": job["name"],
        "metrics": {k: m.get(k) for k in keep},
        "featurizer": FEATURIZER_VERSION,
        "wall_s": round(time.perf_counter() - t0, 2),
    }


def settings_digest(settings: LibrarySettings) -> str:
    return hashlib.sha256(json.dumps(settings.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def build_library(
    out_dir: str | Path,
    settings: LibrarySettings | None = None,
    jobs: int = 2,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train every planned model not yet in ``out_dir/manifest.json``; returns the manifest.

    ``jobs``: worker processes (one torch thread each). Featurisation happens once, before the
    workers start (cached in ``~/.cache/mdxfer``). Re-running with the same settings resumes; other
    settings in a folder that already holds a library is an error (use another folder)."""
    s = settings or LibrarySettings()
    log = log or (lambda msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs_planned = plan(s)
    digest = settings_digest(s)
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        manifest = read_manifest(out)
        if manifest.get("settings_digest") != digest:
            raise DataError(
                f"{out} holds a library built with other settings ({manifest.get('settings')}); "
                "build into another folder."
            )
    else:
        manifest = {
            "format": LIBRARY_FORMAT,
            "format_version": LIBRARY_FORMAT_VERSION,
            "featurizer": FEATURIZER_VERSION,
            "settings": s.to_dict(),
            "settings_digest": digest,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "models": [],
        }
    done = {m["name"] for m in manifest["models"] if (model_path(out, m) / "model.pt").exists()}
    manifest["models"] = [m for m in manifest["models"] if m["name"] in done]
    todo = [j for j in jobs_planned if j["name"] not in done]
    log(
        f"library {out}: {len(jobs_planned)} models planned, {len(done)} already built, {len(todo)} to train "
        f"in {jobs} process(es)"
    )
    if not todo:
        return manifest
    t0 = time.perf_counter()
    # featurise once in this process so the workers read the cache
    if s.data:
        sp = table_split(s.data, s.properties[0], s.smiles_col, s.n, s.n_val, s.seed)[0]
    else:
        sp = qm9.split(s.n, s.n_val, seed=s.seed, target=resolve_property(s.properties[0]))
    cached_featurize(list(sp.train[qm9.SMILES_COLUMN]) + list(sp.val[qm9.SMILES_COLUMN]))
    order = {j["name"]: i for i, j in enumerate(jobs_planned)}
    bar = ProgressBar(progress, len(jobs_planned), "library", completed=len(done))
    try:
        if jobs <= 1:
            for j in todo:
                _record(
                    manifest, manifest_path, _train_one(j, s.to_dict(), str(out)), order, log, bar
                )
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(
                max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init
            ) as pool:
                futs = {pool.submit(_train_one, j, s.to_dict(), str(out)): j for j in todo}
                for fut in as_completed(futs):
                    _record(manifest, manifest_path, fut.result(), order, log, bar)
    finally:
        bar.close()
    manifest["build_wall_s"] = round(
        manifest.get("build_wall_s", 0.0) + time.perf_counter() - t0, 1
    )
    write_json_atomic(manifest_path, manifest)
    return manifest


def _worker_init() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _record(
    manifest: dict[str, Any],
    path: Path,
    entry: dict[str, Any],
    order: dict[str, int],
    log: Callable[[str], None],
    bar: ProgressBar,
) -> None:
    manifest["models"].append(entry)
    manifest["models"].sort(key=lambda m: order.get(m["name"], 1 << 30))
    write_json_atomic(path, manifest)
    mm = entry["metrics"]
    log(
        f"{entry['name']:<14} R² val {mm['r2_val']:.3f}  MAE {mm['mae_val']:.4g}  "
        f"({mm['epochs_run']} epochs, {entry['wall_s']:.0f} s)"
    )
    bar.tick()


def load_library(
    library_dir: str | Path, exclude_properties: tuple[str, ...] = ()
) -> list[tuple[dict, SourceModel]]:
    """``(manifest entry, source model)`` for every model of the library, minus those trained on
    ``exclude_properties`` (column or short names)."""
    data = read_manifest(library_dir)
    excluded = set()
    for p in exclude_properties:  # QM9 short names, or the columns of a library built --data
        try:
            excluded.add(resolve_property(p))
        except DataError:
            excluded.add(p)
    out = []
    for m in data["models"]:
        if m["property"] in excluded:
            continue
        out.append((m, load_source(model_path(library_dir, m))))
    if not out:
        raise DataError(
            f"No usable model in {library_dir}"
            + (f" after excluding {', '.join(sorted(excluded))}" if excluded else "")
            + "."
        )
    return out
