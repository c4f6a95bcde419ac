"""Fingerprint networks: the second kind of source model in a model library.

Shotgun transfer learning (Yamada et al. 2019; docs/glossary.md) builds libraries that hold,
next to graph models, fully connected networks on fixed molecular descriptors. mdxfer's
descriptor is the Morgan count fingerprint (radius 2, 2,048 bits, the same vector as the
``fp_ridge`` baseline), fed as ``log1p(count)``. A network is a pyramid of fully connected
layers (widths decreasing) and a linear output; its first ``n_encoder`` hidden layers are the
*encoder* (the frozen feature extractor in transfer) and the rest the *head*, so a
:class:`~mdxfer.learn.models.FingerprintModel` has the same ``model.encoder`` / ``model.head``
/ ``scaler`` shape as a :class:`~mdxfer.learn.models.GraphModel` and every transfer mode works
on either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mdxfer.errors import DataError
from mdxfer.learn.featurize import FP_BITS
from mdxfer.learn.nn.head import make_head


@dataclass(frozen=True)
class FPConfig:
    """Architecture and optimiser of a fingerprint network."""

    widths: tuple[int, ...]  # hidden layer widths, input side first
    n_encoder: int = 1  # hidden layers that form the encoder (the rest: the head)
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 128
    max_epochs: int = 200
    patience: int = 20
    preset: str = "fp_mlp"
    conv: str = "morgan"  # for tables that print a graph model's convolution

    def __post_init__(self) -> None:
        if not 1 <= self.n_encoder <= len(self.widths):
            raise DataError(
                f"n_encoder must be between 1 and {len(self.widths)}, got {self.n_encoder}."
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FPConfig:
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        return cls(**d)


class FPEncoder(nn.Module):
    """``log1p(Morgan counts)`` -> the first ``n_encoder`` hidden layers (ReLU)."""

    def __init__(self, cfg: FPConfig):
        super().__init__()
        layers: list[nn.Module] = []
        d = FP_BITS
        for w in cfg.widths[: cfg.n_encoder]:
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
        self.head = make_head(self.encoder.out_dim, cfg.widths[cfg.n_encoder :], cfg.dropout)

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(counts)).squeeze(-1)


@torch.no_grad()
def forward_batched(module: nn.Module, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """``module`` on the rows of ``X`` in batches, evaluation mode, no gradients."""
    was = module.training
    module.eval()
    out = [
        module(torch.from_numpy(X[s : s + batch_size])).numpy()
        for s in range(0, len(X), batch_size)
    ]
    module.train(was)
    return np.concatenate(out) if out else np.zeros((0,), dtype=np.float32)
