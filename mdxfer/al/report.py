"""One Markdown report per loop: best so far against the number of simulations, the model's
parity plot for every round, and the table of the molecules each round picked.

``write_report(state, out_dir)`` reads everything from the loop's database tables, so it can be
written at any time (``mdxfer al report FILE``), and the loop rewrites it after every round.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mdxfer.al.state import ALState
from mdxfer.fileio import write_csv, write_text_atomic

PICK_COLUMNS = [
    "round",
    "rank",
    "smiles",
    "predicted",
    "spread",
    "score",
    "measured",
    "measured_stderr",
    "status",
    "error",
]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def history(state: ALState, maximize: bool) -> dict[str, Any]:
    """The loop's simulations in order: per simulation its round, SMILES, status, value, and the
    best value so far (starting from what was known before the loop's first pick)."""
    sign = 1.0 if maximize else -1.0
    picks = state.picks()
    before = [o for o in state.observations("done") if o["source"] != "oracle"]
    best = max((o["value"] for o in before), key=lambda v: sign * v) if before else None
    xs, best_so_far, rounds = [0], [best], [None]
    for k, p in enumerate(picks, 1):
        if (
            p["status"] == "done"
            and p["value"] is not None
            and (best is None or sign * p["value"] > sign * best)
        ):
            best = p["value"]
        xs.append(k)
        best_so_far.append(best)
        rounds.append(p["round"])
    return {
        "n": xs,
        "best": best_so_far,
        "round": rounds,
        "picks": picks,
        "n_known_before": len(before),
    }


def plot_best_so_far(path: Path, hist: dict[str, Any], label: str, maximize: bool) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    xs = [x for x, b in zip(hist["n"], hist["best"]) if b is not None]
    ys = [b for b in hist["best"] if b is not None]
    ax.step(xs, ys, where="post", color="C0", lw=2, label="best so far")
    done = [(k, p["value"]) for k, p in enumerate(hist["picks"], 1) if p["status"] == "done"]
    if done:
        ax.scatter(*zip(*done), s=10, color="0.5", alpha=0.6, label="each simulation")
    last = None
    for k, r in enumerate(hist["round"]):
        if r is not None and r != last and k > 1:
            ax.axvline(k - 0.5, color="0.85", lw=0.8, zorder=0)
        last = r
    ax.set_xlabel("number of simulations by the loop")
    ax.set_ylabel(f"{label} ({'higher' if maximize else 'lower'} is better)")
    ax.set_title("best found so far (grey lines: round boundaries)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_parity(
    path: Path,
    cv: dict[str, Any],
    train: list[str],
    picks: list[dict[str, Any]],
    values: dict[str, float],
    label: str,
    title: str,
) -> None:
    """Cross-validated predictions of the known molecules, and the round's picks as predicted
    before they were simulated, against the measured values."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    xs, ys = [], []
    if cv and cv.get("folds"):
        y = np.array([values.get(s, np.nan) for s in train])
        m, sd = np.array(cv["oof_mean"]), np.array(cv["oof_std"])
        ax.errorbar(
            y,
            m,
            yerr=sd,
            fmt="o",
            ms=3,
            alpha=0.6,
            elinewidth=0.6,
            color="C0",
            label=f"known, {cv['folds']}-fold CV (n={len(y)}, R²={cv['r2']:.2f})",
        )
        xs += list(y)
        ys += list(m)
    done = [p for p in picks if p["status"] == "done" and p["mean"] is not None]
    if done:
        y = np.array([p["value"] for p in done])
        m = np.array([p["mean"] for p in done])
        sd = np.array([p["std"] or 0.0 for p in done])
        ax.errorbar(
            y,
            m,
            yerr=sd,
            fmt="s",
            ms=4,
            alpha=0.9,
            elinewidth=0.8,
            color="C3",
            label=f"this round's picks, predicted before simulation (n={len(y)})",
        )
        xs += list(y)
        ys += list(m)
    if xs:
        lo, hi = float(np.nanmin(xs + ys)), float(np.nanmax(xs + ys))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", lw=1, zorder=0)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(f"measured {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _f(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def write_picks(state: ALState, path: str | Path) -> int:
    """Every round's picks as CSV at ``path`` (:data:`PICK_COLUMNS`): the model's prediction
    and spread when it chose them beside the oracle's value and stderr once measured (empty
    while pending); the number of rows."""
    rows = [
        {
            "round": p["round"],
            "rank": p["rank"],
            "smiles": p["smiles"],
            "predicted": p["mean"],
            "spread": p["std"],
            "score": p["score"],
            "measured": p["value"],
            "measured_stderr": p["stderr"],
            "status": p["status"],
            "error": p["error"],
        }
        for p in state.picks()
    ]
    return write_csv(path, rows, PICK_COLUMNS)


def write_report(
    state: ALState,
    out_dir: str | Path,
    title: str = "active learning",
    label: str = "target",
    maximize: bool = True,
) -> Path:
    """Write ``out_dir/report.md`` with its figures and ``out_dir/picks.csv``
    (:func:`write_picks`); returns the report's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_picks(state, out / "picks.csv")
    hist = history(state, maximize)
    plot_best_so_far(out / "best_so_far.png", hist, label, maximize)
    values = {o["smiles"]: o["value"] for o in state.observations("done")}
    rounds = state.rounds()
    limits = state.meta("limits") or {}
    loop = state.meta("loop") or {}
    settings = loop.get("settings", {})
    acq = settings.get("acquisition", {})
    lines = [f"# {title}", ""]
    lines.append(
        f"Target: **{label}**, {'maximised' if maximize else 'minimised'}. "
        f"Acquisition **{acq.get('name', '?')}** (beta {acq.get('beta', '—')}), diversity "
        f"**{settings.get('diversity', {}).get('method', '?')}**, model "
        f"**{settings.get('surrogate', {}).get('model', '?')}** on "
        f"**{settings.get('surrogate', {}).get('features', '?')}**, batch {limits.get('batch_size')}, "
        f"rounds {limits.get('rounds')}, budget {limits.get('budget')}, seed {settings.get('seed')}."
    )
    lines += [
        "",
        f"{len(hist['picks'])} simulations by the loop; {hist['n_known_before']} molecules were "
        "measured before its first pick.",
        "",
        "![best so far](best_so_far.png)",
        "",
        "Every pick, its prediction beside its measurement: [picks.csv](picks.csv).",
        "",
        "## Rounds",
        "",
        "| round | acquisition | trained on | CV R² | CV Spearman | CV MAE | ±2σ coverage | picks | "
        "simulations so far | best so far | state |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        lines.append(
            f"| {r['round']} | {r['acquisition']} | {r['n_train']} | {_f(r['cv_r2'], 3)} | "
            f"{_f(r['cv_spearman'], 3)} | {_f(r['cv_mae'], 3)} | {_f(r['cv_coverage'], 2)} | "
            f"{r['n_picks']} | {_f(r['n_measured'])} | {_f(r['best_value'])} | {r['state']} |"
        )
    lines += [
        "",
        "CV: k-fold cross-validation of the round's model on everything measured before the "
        "round (out-of-fold predictions); coverage: fraction of measured values inside the "
        "out-of-fold mean ± 2 spreads.",
        "",
    ]
    for r in rounds:
        rr = state.round_row(r["round"])
        picks = state.picks(r["round"])
        lines += [f"## Round {r['round']} ({r['acquisition']})", ""]
        if rr["train_json"] and json.loads(rr["train_json"]):
            cv = json.loads(rr["cv_json"]) if rr["cv_json"] else {}
            name = f"parity_round{r['round']:03d}.png"
            plot_parity(
                out / name,
                cv,
                json.loads(rr["train_json"]),
                picks,
                values,
                label,
                f"round {r['round']}: model trained on {r['n_train']} molecules",
            )
            lines += [f"![parity, round {r['round']}]({name})", ""]
        lines += [
            "| # | SMILES | predicted | spread | score | measured | status |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in picks:
            meas = _f(p["value"]) if p["status"] == "done" else (p["error"] or p["status"])[:80]
            lines.append(
                f"| {p['rank']} | `{p['smiles']}` | {_f(p['mean'])} | {_f(p['std'], 3)} | "
                f"{_f(p['score'], 3)} | {meas} | {p['status']} |"
            )
        lines.append("")
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
