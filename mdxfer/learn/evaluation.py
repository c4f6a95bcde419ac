"""How well a model predicts: regression figures, parity and calibration plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R², MAE and RMSE (MAE/RMSE in the unit of ``y``)."""
    from sklearn.metrics import mean_absolute_error, r2_score

    y, pred = np.asarray(y, float), np.asarray(pred, float)
    return {
        "r2": float(r2_score(y, pred)),
        "mae": float(mean_absolute_error(y, pred)),
        "rmse": float(np.sqrt(np.mean((y - pred) ** 2))),
    }


def parity_plot(
    path: str | Path,
    sets: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]],
    label: str,
    title: str = "",
    r2: dict[str, float] | None = None,
) -> None:
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
            ax.errorbar(
                y, p, yerr=s, fmt="o", ms=4, alpha=0.8, elinewidth=0.8, color=f"C{k}", label=lab
            )
        else:
            ax.scatter(
                y,
                p,
                s=6 if len(y) > 200 else 16,
                alpha=0.5 if len(y) > 200 else 0.8,
                color=f"C{k}",
                label=lab,
            )
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


def calibration_plot(
    path: str | Path, y: np.ndarray, mean: np.ndarray, std: np.ndarray, scale: float, title: str
) -> None:
    """Observed fraction of targets inside mean ± k·spread against the Gaussian expectation,
    before and after scaling the spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    k = np.linspace(0, 3, 61)
    err = np.abs(y - mean)
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.plot(2 * norm.cdf(k) - 1, 2 * norm.cdf(k) - 1, "k--", lw=1, label="ideal")
    for lab, sc in (("raw spread", 1.0), (f"calibrated (× {scale:.2f})", scale)):
        ax.plot(2 * norm.cdf(k) - 1, [np.mean(err <= kk * sc * std) for kk in k], label=lab)
    ax.set_xlabel("expected coverage of mean ± k·σ")
    ax.set_ylabel("observed coverage")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
