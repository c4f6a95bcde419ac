"""Exact Gaussian-process regression for small tables (tens to a few hundred molecules).

Two kernels, each ``k(a, b) = signal * base(a, b)`` plus independent noise, with a constant
mean:

``tanimoto``  on Morgan count fingerprints: ``base(a, b) = <a,b> / (|a|² + |b|² - <a,b>)``,
              the Tanimoto (Jaccard) similarity of count vectors in its inner-product form,
              a positive-definite kernel for non-negative vectors (the form GAUCHE uses; on
              bit vectors it is the usual Tanimoto similarity). It has no length scale.
``rbf``       on the (standardised) frozen embedding: ``base = exp(-|a-b|² / (2 l²))``.

Hyperparameters — signal variance, noise variance, the constant mean and (``rbf``) the length
scale — maximise the log marginal likelihood. The mean is profiled out in closed form (its
maximum-likelihood value is the generalised-least-squares mean), and for a fixed base Gram
matrix ``B = U diag(lam) U^T`` the likelihood of ``signal * B + noise * I`` costs O(n) per
evaluation after one eigendecomposition, so signal and noise are optimised by L-BFGS-B on two
numbers; the length scale is chosen from a grid of multiples of the median pairwise distance.

Why not scikit-learn's ``GaussianProcessRegressor``: a Tanimoto kernel there needs a custom
``Kernel`` subclass with hand-written gradients, and its optimiser re-factorises the full
matrix at every step; the eigendecomposition route above is exact, shorter and faster for
these kernels (no hyperparameter inside the base kernel except the gridded length scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

KERNELS = ("tanimoto", "rbf")
LENGTHSCALE_GRID = (0.25, 0.5, 1.0, 2.0, 4.0)  # multiples of the median pairwise distance
MIX_GRID = (1.0, 0.75, 0.5, 0.25, 0.0)  # Tanimoto share of the fingerprint kernel
LOG_SIGNAL_BOUNDS = (np.log(1e-2), np.log(1e2))  # in units of the target's variance
LOG_NOISE_BOUNDS = (np.log(1e-4), np.log(2.0))


def tanimoto(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Tanimoto similarity of the rows of ``A`` (n x d) and ``B`` (m x d), non-negative
    vectors (counts or bits); two all-zero rows count as identical (1)."""
    return pair_terms("tanimoto", A, B)["t"]


def pair_terms(kernel: str, A: np.ndarray, B: np.ndarray) -> dict[str, np.ndarray]:
    """The hyperparameter-free parts of the kernel between the rows of ``A`` and ``B``:
    ``tanimoto``: Tanimoto similarity ``t`` and inner products ``dot`` (the fingerprint
    kernel mixes both); ``rbf``: squared distances ``d2``."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    ab = A @ B.T
    aa, bb = (A * A).sum(1), (B * B).sum(1)
    if kernel == "tanimoto":
        den = aa[:, None] + bb[None, :] - ab
        ok = den > 1e-12
        return {"t": np.where(ok, ab / np.where(ok, den, 1.0), 1.0), "dot": ab}
    if kernel == "rbf":
        return {"d2": np.maximum(aa[:, None] + bb[None, :] - 2 * ab, 0.0)}
    raise ValueError(f"unknown GP kernel {kernel!r}; choose one of {', '.join(KERNELS)}")


def self_terms(kernel: str, A: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`pair_terms` of each row of ``A`` with itself (the diagonal), in O(n d)."""
    A = np.asarray(A, dtype=np.float64)
    if kernel == "tanimoto":
        return {"t": np.ones(len(A)), "dot": (A * A).sum(1)}
    return {"d2": np.zeros(len(A))}


@dataclass
class GPFit:
    """A fitted GP in the target's units. ``alpha = K^-1 (y - mean)``, ``Kinv = K^-1`` with
    ``K = signal * base + noise * I`` over the training rows; ``base`` is the Tanimoto kernel
    mixed with a normalised linear kernel (weight ``mix`` on Tanimoto; ``dot_scale``: the
    training rows' mean squared norm) or an RBF of length scale ``lengthscale``."""

    kernel: str
    signal: float
    noise: float
    mean: float
    lengthscale: float
    mix: float
    dot_scale: float
    alpha: np.ndarray
    Kinv: np.ndarray
    lml: float
    info: dict[str, Any] = field(default_factory=dict)

    def similarity(self, terms: dict[str, np.ndarray]) -> np.ndarray:
        """Base kernel from :func:`pair_terms` (or :func:`self_terms`) values."""
        return base_from_terms(self.kernel, terms, self.lengthscale, self.mix, self.dot_scale)

    def predict(
        self, terms_q: dict[str, np.ndarray], self_q: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and variance of a new *measurement* (latent variance + noise) from
        the kernel terms between query and training rows and of the queries with themselves."""
        ks = self.signal * self.similarity(terms_q)
        mean = self.mean + ks @ self.alpha
        latent = self.signal * self.similarity(self_q) - np.einsum("ij,jk,ik->i", ks, self.Kinv, ks)
        return mean, np.maximum(latent, 0.0) + self.noise


def base_from_terms(
    kernel: str,
    terms: dict[str, np.ndarray],
    lengthscale: float = 1.0,
    mix: float = 1.0,
    dot_scale: float = 1.0,
) -> np.ndarray:
    if kernel == "rbf":
        return np.exp(-terms["d2"] / (2.0 * lengthscale**2))
    out = mix * terms["t"]
    if mix < 1.0:
        out = out + (1.0 - mix) * terms["dot"] / dot_scale
    return out


def _neg_lml(params: np.ndarray, lam: np.ndarray, yt: np.ndarray, ot: np.ndarray) -> float:
    """Negative log marginal likelihood (constant mean profiled out) in the eigenbasis of the
    base Gram matrix; ``params`` = (log signal, log noise)."""
    d = np.exp(params[0]) * lam + np.exp(params[1])
    w = ot / d
    mu = float(w @ yt) / float(w @ ot)
    r = yt - mu * ot
    return 0.5 * float(np.sum(r * r / d) + np.sum(np.log(d)) + len(d) * np.log(2 * np.pi))


def _optimise(lam: np.ndarray, yt: np.ndarray, ot: np.ndarray) -> tuple[np.ndarray, float]:
    """Maximise the likelihood over (log signal, log noise): a coarse grid, then L-BFGS-B."""
    from scipy.optimize import minimize

    grid = [
        (s, n)
        for s in np.linspace(*LOG_SIGNAL_BOUNDS, 5)
        for n in np.linspace(*LOG_NOISE_BOUNDS, 5)
    ]
    start = min(grid, key=lambda p: _neg_lml(np.array(p), lam, yt, ot))
    res = minimize(
        _neg_lml,
        np.array(start),
        args=(lam, yt, ot),
        method="L-BFGS-B",
        bounds=[LOG_SIGNAL_BOUNDS, LOG_NOISE_BOUNDS],
    )
    return res.x, float(res.fun)


def fit_gp(kernel: str, terms: dict[str, np.ndarray], y: np.ndarray) -> GPFit:
    """Fit on the training rows' kernel terms (:func:`pair_terms` of the rows with
    themselves) and targets ``y``; the length scale (``rbf``) or the Tanimoto/linear mix
    (``tanimoto``) is the grid value of highest marginal likelihood."""
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n < 2:
        raise ValueError("a Gaussian process needs at least 2 training rows")
    centre, scale = float(y.mean()), float(y.std())
    scale = scale if scale > 1e-12 else 1.0
    ys = (y - centre) / scale
    dot_scale = 1.0
    if kernel == "rbf":
        off = terms["d2"][~np.eye(n, dtype=bool)]
        med = float(np.sqrt(np.median(off))) if off.size and np.median(off) > 0 else 1.0
        grid = [(med * g, 1.0) for g in LENGTHSCALE_GRID]
    else:
        dot_scale = float(np.mean(np.diag(terms["dot"]))) or 1.0
        grid = [(1.0, m) for m in MIX_GRID]
    best = None
    for ell, mix in grid:
        B = base_from_terms(kernel, terms, ell, mix, dot_scale)
        lam, U = np.linalg.eigh(B)
        lam = np.maximum(lam, 0.0)
        yt, ot = U.T @ ys, U.T @ np.ones(n)
        params, nll = _optimise(lam, yt, ot)
        if best is None or nll < best[0]:
            best = (nll, ell, mix, params, lam, U, yt, ot)
    nll, ell, mix, params, lam, U, yt, ot = best
    sig, noi = float(np.exp(params[0])), float(np.exp(params[1]))
    d = sig * lam + noi
    mu_s = float((ot / d) @ yt) / float((ot / d) @ ot)
    Kinv_s = (U / d) @ U.T
    alpha_s = Kinv_s @ (ys - mu_s)
    # back to the target's units: K = scale² K_s, so K^-1 = K_s^-1 / scale²
    return GPFit(
        kernel,
        sig * scale**2,
        noi * scale**2,
        centre + scale * mu_s,
        float(ell),
        float(mix),
        dot_scale,
        alpha_s / scale,
        Kinv_s / scale**2,
        float(-nll - n * np.log(scale)),
        {
            "signal_rel": sig,
            "noise_rel": noi,
            "lengthscale": float(ell),
            "mix": float(mix),
            "n_train": n,
        },
    )
