"""The fully connected head shared by graph and fingerprint networks."""

from __future__ import annotations

from torch import nn


def make_head(in_dim: int, fc: tuple[int, ...], dropout: float = 0.0) -> nn.Sequential:
    """Fully connected layers with ReLU, then a linear output of width 1."""
    layers: list[nn.Module] = []
    d = in_dim
    for w in fc:
        layers += [nn.Linear(d, w), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        d = w
    layers.append(nn.Linear(d, 1))
    return nn.Sequential(*layers)
