"""Acquisition functions: how much an MD run of each candidate is worth.

Every function returns a *score*, larger = more worth simulating, whatever the direction of
the target. The direction is explicit: ``maximize=True`` looks for large target values,
``maximize=False`` for small ones (e.g. a strongly negative interaction energy). Internally
the target is flipped (``sign = +1 / -1``) so that "better" is always "larger".

Inputs are the ensemble's mean and spread (standard deviation over its members, in the
target's unit) or, for Thompson sampling, the members' individual predictions.

========== ===============================================================================
greedy     the predicted value: ``sign * mean``
ucb        upper confidence bound: ``sign * mean + beta * std``
ei         expected improvement over the best value measured so far (``best``), Gaussian
           with the ensemble's mean and spread: ``d Φ(d/σ) + σ φ(d/σ)``, ``d = sign*(mean -
           best) - xi``
thompson   one ensemble member per pick: the member's prediction, ``sign * members[k]``
uncertainty pure exploration: ``std``
random     a uniform random number (the baseline every other method must beat)
========== ===============================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mdxfer.errors import ALError

ACQUISITIONS = ("greedy", "ucb", "ei", "thompson", "uncertainty", "random")
#: the acquisition ``mdxfer al run`` uses when the campaign file names none (see
#: docs/active_learning.md for the benchmark that chose it)
DEFAULT_ACQUISITION = "ucb"


def _sign(maximize: bool) -> float:
    return 1.0 if maximize else -1.0


def greedy(mean: np.ndarray, maximize: bool = True) -> np.ndarray:
    """The prediction itself, oriented so that larger is better."""
    return _sign(maximize) * np.asarray(mean, dtype=float)


def ucb(mean: np.ndarray, std: np.ndarray, beta: float = 1.0, maximize: bool = True) -> np.ndarray:
    """Upper confidence bound ``sign*mean + beta*std`` (optimism in the search direction)."""
    return _sign(maximize) * np.asarray(mean, dtype=float) + beta * np.asarray(std, dtype=float)


def expected_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0, maximize: bool = True
) -> np.ndarray:
    """Expected improvement over ``best`` (the best measured value, in the target's unit) of a
    Gaussian with ``mean`` and ``std``; ``xi`` (target unit) asks for a margin. Where
    ``std`` is 0 it is ``max(d, 0)``."""
    from scipy.stats import norm

    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    d = _sign(maximize) * (mean - best) - xi
    out = np.maximum(d, 0.0)
    pos = std > 0
    z = d[pos] / std[pos]
    out[pos] = d[pos] * norm.cdf(z) + std[pos] * norm.pdf(z)
    return out


def uncertainty(std: np.ndarray) -> np.ndarray:
    """Pure exploration: the ensemble's spread."""
    return np.asarray(std, dtype=float).copy()


def thompson_draws(
    members: np.ndarray, n_picks: int, rng: np.random.Generator, maximize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Thompson sampling: one ensemble member per pick. ``members`` is (n_members x n).
    Returns the (n_picks x n) score vectors and the member index drawn for each pick (members
    are drawn without replacement while there are enough, so a batch sees different members)."""
    members = np.asarray(members, dtype=float)
    m = members.shape[0]
    if m == 0:
        raise ALError("Thompson sampling needs at least one ensemble member.")
    idx = (
        rng.permutation(m)[:n_picks]
        if n_picks <= m
        else np.concatenate([rng.permutation(m) for _ in range(-(-n_picks // m))])[:n_picks]
    )
    return _sign(maximize) * members[idx], idx


@dataclass(frozen=True)
class Acquisition:
    """A named acquisition with its parameters and the search direction.

    ``beta``: UCB's weight on the spread (in units of the spread); ``xi``: EI's margin in
    the target's unit."""

    name: str = DEFAULT_ACQUISITION
    maximize: bool = True
    beta: float = 1.0
    xi: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in ACQUISITIONS:
            raise ALError(
                f"Unknown acquisition {self.name!r}; choose one of {', '.join(ACQUISITIONS)}."
            )
        if not np.isfinite(self.beta) or self.beta < 0:
            raise ALError(f"UCB's beta must be a number >= 0, got {self.beta!r}.")

    @property
    def needs_model(self) -> bool:
        return self.name != "random"

    def score_matrix(
        self,
        mean: np.ndarray,
        std: np.ndarray,
        members: np.ndarray | None,
        n_picks: int,
        rng: np.random.Generator,
        best: float | None = None,
    ) -> np.ndarray:
        """Scores for each of the ``n_picks`` picks of a batch ((rows x n), larger = better):
        one row, except for Thompson sampling (one row per pick, each from one member).
        NaN predictions get -inf."""
        return self.batch_scores(mean, std, members, n_picks, rng, best)[0]

    def batch_scores(
        self,
        mean: np.ndarray,
        std: np.ndarray,
        members: np.ndarray | None,
        n_picks: int,
        rng: np.random.Generator,
        best: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`score_matrix` and, for Thompson sampling, the member drawn for each pick."""
        n = len(mean)
        drawn = None
        if self.name == "thompson":
            if members is None:
                raise ALError("Thompson sampling needs the ensemble members' predictions.")
            rows, drawn = thompson_draws(members, n_picks, rng, self.maximize)
        else:
            if self.name == "greedy":
                s = greedy(mean, self.maximize)
            elif self.name == "ucb":
                s = ucb(mean, std, self.beta, self.maximize)
            elif self.name == "ei":
                if best is None:
                    raise ALError("Expected improvement needs the best value measured so far.")
                s = expected_improvement(mean, std, best, self.xi, self.maximize)
            elif self.name == "uncertainty":
                s = uncertainty(std)
            else:  # random
                s = rng.random(n)
            rows = s[None, :]
        return np.where(np.isfinite(rows), rows, -np.inf), drawn

    def scores(
        self,
        mean: np.ndarray,
        std: np.ndarray,
        best: float | None = None,
        members: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """One score vector (for Thompson sampling: one member's draw)."""
        rng = rng or np.random.default_rng(0)
        return self.score_matrix(mean, std, members, 1, rng, best)[0]
