"""Graph networks for molecular properties: architecture presets, encoder, head.

Every model is an *encoder* (graph convolutions + pooling -> one vector per molecule, the
"pooled embedding") followed by a *head* (fully connected layers + a linear output). Transfer
learning freezes the encoder and retrains (or replaces) the head. Saving, loading and target
scaling live in :mod:`mdxfer.learn.models`.

Presets
-------
``paper``
    The reference study's network (docs/glossary.md): input (74 DGL-LifeSci atom features), 2
    graph convolutions (``GCNConv``, Kipf & Welling 2017; 128 channels, ReLU), 1 pooling layer,
    3 fully connected layers (128, 64, 32, ReLU), a linear output; Adam, learning rate 1e-3,
    constant. The study does not give the widths or the pooling operator (its figure 2 is not
    in the text): we chose 128-wide layers and sum pooling (``global_add_pool``; heat capacity
    is extensive, a mean would hide the molecule's size). Bond features are not used (the
    study's input is the 74-bit atom vector).
``default``
    A stronger network measured against ``paper`` on the same split (see docs/learning.md):
    a linear atom embedding, 4 ``GINEConv`` layers (Hu et al. 2020) that also read the 12 bond
    features, batch normalisation and residual connections, pooling by concatenated sum and
    mean, the same 3 + 1 fully connected head shape (256, 128, 64); Adam 1e-3 halved when the
    validation loss stalls.

Targets are standardised (``(y - mean) / std``, fitted on the training rows); the network
predicts standardised values and :class:`~mdxfer.learn.models.GraphModel` converts back to
physical units.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from mdxfer.errors import DataError
from mdxfer.learn.featurize import ATOM_FEATURE_SIZE, BOND_FEATURE_SIZE, GraphSet
from mdxfer.learn.nn.head import make_head


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and optimiser settings of a preset (all saved with the weights)."""

    preset: str
    conv: str  # "gcn" (GCNConv, atom features only) | "gine" (GINEConv + bonds)
    hidden: int  # channels of the graph convolutions
    n_conv: int
    pooling: str  # "sum" | "sum_mean"
    fc: tuple[int, ...]  # widths of the fully connected layers before the output
    batch_norm: bool = False
    residual: bool = False
    dropout: float = 0.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    lr_schedule: str = "constant"  # "constant" | "plateau"
    max_epochs: int = 300
    patience: int = 50  # early stopping: epochs without a better validation loss

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fc"] = list(self.fc)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        d["fc"] = tuple(d["fc"])
        return cls(**d)


PRESETS: dict[str, ModelConfig] = {
    "paper": ModelConfig(
        preset="paper",
        conv="gcn",
        hidden=128,
        n_conv=2,
        pooling="sum",
        fc=(128, 64, 32),
        lr=1e-3,
        batch_size=64,
        lr_schedule="constant",
        max_epochs=300,
        patience=50,
    ),
    "default": ModelConfig(
        preset="default",
        conv="gine",
        hidden=128,
        n_conv=4,
        pooling="sum_mean",
        fc=(256, 128, 64),
        batch_norm=True,
        residual=True,
        lr=1e-3,
        batch_size=64,
        lr_schedule="plateau",
        max_epochs=300,
        patience=40,
    ),
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """A preset's :class:`ModelConfig`, optionally with fields replaced."""
    if name not in PRESETS:
        raise DataError(f"Unknown model preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


# --------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------


class Encoder(nn.Module):
    """Graph convolutions and pooling: a PyG batch -> (n_graphs x :attr:`out_dim`) embedding."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        from torch_geometric.nn import GCNConv, GINEConv

        self.cfg = cfg
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        h = cfg.hidden
        if cfg.conv == "gcn":
            self.embed = None
            dims = [ATOM_FEATURE_SIZE] + [h] * cfg.n_conv
            for i in range(cfg.n_conv):
                self.convs.append(GCNConv(dims[i], dims[i + 1]))
        elif cfg.conv == "gine":
            self.embed = nn.Linear(ATOM_FEATURE_SIZE, h)
            for _ in range(cfg.n_conv):
                mlp = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, h))
                self.convs.append(GINEConv(mlp, train_eps=True, edge_dim=BOND_FEATURE_SIZE))
        else:
            raise ValueError(f"unknown convolution {cfg.conv!r}")
        for _ in range(cfg.n_conv):
            self.norms.append(nn.BatchNorm1d(h) if cfg.batch_norm else nn.Identity())
        self.out_dim = h * (2 if cfg.pooling == "sum_mean" else 1)

    def node_states(self, batch) -> torch.Tensor:
        """Atom embeddings after the last convolution."""
        x = batch.x if self.embed is None else self.embed(batch.x)
        for conv, norm in zip(self.convs, self.norms):
            if self.cfg.conv == "gine":
                h = conv(x, batch.edge_index, batch.edge_attr)
            else:
                h = conv(x, batch.edge_index)
            h = torch.relu(norm(h))
            if self.cfg.dropout:
                h = nn.functional.dropout(h, self.cfg.dropout, self.training)
            x = x + h if (self.cfg.residual and h.shape == x.shape) else h
        return x

    def forward(self, batch) -> torch.Tensor:
        from torch_geometric.nn import global_add_pool, global_mean_pool

        x = self.node_states(batch)
        n = batch.num_graphs
        pooled = global_add_pool(x, batch.batch, size=n)
        if self.cfg.pooling == "sum_mean":
            pooled = torch.cat([pooled, global_mean_pool(x, batch.batch, size=n)], dim=1)
        return pooled


class GraphRegressor(nn.Module):
    """Encoder + head; ``forward`` returns standardised predictions, shape (n_graphs,)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.head = make_head(self.encoder.out_dim, cfg.fc, cfg.dropout)

    def forward(self, batch) -> torch.Tensor:
        return self.head(self.encoder(batch)).squeeze(-1)


def build_model(cfg: ModelConfig, seed: int = 0) -> GraphRegressor:
    """A freshly initialised network (weights drawn with ``torch.manual_seed(seed)``)."""
    torch.manual_seed(seed)
    return GraphRegressor(cfg)


# --------------------------------------------------------------------------------------------
# scaling, inference, save / load
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def embed_graphs(encoder: Encoder, graphs: GraphSet, batch_size: int = 2048) -> np.ndarray:
    """Pooled embeddings (n_graphs x encoder.out_dim), float32, encoder in eval mode."""
    was_training = encoder.training
    encoder.eval()
    out = []
    for start in range(0, len(graphs), batch_size):
        idx = np.arange(start, min(start + batch_size, len(graphs)))
        out.append(encoder(graphs.to_batch(idx)).numpy())
    encoder.train(was_training)
    if not out:
        return np.zeros((0, encoder.out_dim), dtype=np.float32)
    return np.concatenate(out)


@torch.no_grad()
def predict_scaled(model: GraphRegressor, graphs: GraphSet, batch_size: int = 2048) -> np.ndarray:
    """Standardised predictions of ``model`` for every graph (eval mode)."""
    was_training = model.training
    model.eval()
    out = [
        model(graphs.to_batch(np.arange(s, min(s + batch_size, len(graphs))))).numpy()
        for s in range(0, len(graphs), batch_size)
    ]
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
