"""Benchmark: the loop against random picking on a table oracle, same code path.

For every seed, every acquisition (and ``random``) runs the whole loop — round 0 with the
same ``initial`` random molecules, then ``rounds`` batches of ``batch`` — against a
``smiles,target`` table whose every molecule is the pool. Recovery of the true top 1 % / 5 %
of the pool (the fraction of those molecules that the loop simulated) is averaged over seeds.

Written to ``out``: ``summary.json`` (``{"pool", "budget", "default", "methods": {name:
{"top1_recovery", "top5_recovery", ...}}}``), ``summary.csv`` and ``summary.md`` (a table),
``recovery.png`` (recovery against the number of simulations), ``best_so_far.png`` and
``picks/<method>-seed<k>.csv`` (every run's picks in order).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mdxfer.al.acquisition import ACQUISITIONS, DEFAULT_ACQUISITION, Acquisition
from mdxfer.al.diversity import Diversity
from mdxfer.al.loop import ActiveLearner, LoopSettings
from mdxfer.al.oracles import TableOracle
from mdxfer.al.state import ALState
from mdxfer.al.surrogate import SurrogateSettings, compute_features, one_thread
from mdxfer.errors import ALError
from mdxfer.learn.data import qm9

Log = Callable[[str], None]


def top_sets(
    pool: Sequence[str],
    values: dict[str, float],
    maximize: bool,
    fractions: Sequence[float] = (0.01, 0.05),
) -> dict[float, set[str]]:
    """The true top ``fraction`` of the pool (at least one molecule each)."""
    y = np.array([values[s] for s in pool])
    order = np.argsort(-y if maximize else y, kind="stable")
    return {f: {pool[i] for i in order[: max(1, int(round(f * len(pool))))]} for f in fractions}


def run_benchmark(
    oracle_csv: str | Path,
    out: str | Path,
    initial: int = 20,
    batch: int = 10,
    rounds: int = 10,
    seeds: int = 3,
    minimize: bool = False,
    methods: Sequence[str] | None = None,
    surrogate: SurrogateSettings | None = None,
    diversity: Diversity | None = None,
    beta: float = 1.0,
    smiles_col: str = "smiles",
    target_col: str = "target",
    log: Log | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """Run the benchmark and write its files; returns the summary (also ``summary.json``)."""
    log = log or (lambda msg: None)
    out = Path(out)
    (out / "picks").mkdir(parents=True, exist_ok=True)
    methods = list(methods or ["random", *[a for a in ACQUISITIONS if a != "random"]])
    for m in methods:
        Acquisition(m)  # validates the name
    if "random" not in methods:
        methods.insert(0, "random")
    surrogate = surrogate or SurrogateSettings(features="morgan")
    diversity = diversity or Diversity()
    t_all = time.perf_counter()
    oracle = TableOracle(oracle_csv, smiles_col, target_col)
    if oracle.skipped:
        log(f"{oracle_csv}: {oracle.skipped}")
    pool = list(oracle.values)
    budget = initial + batch * rounds
    if budget > len(pool):
        raise ALError(
            f"The budget ({initial} + {rounds} x {batch} = {budget}) exceeds the pool ({len(pool)})."
        )
    maximize = not minimize
    tops = top_sets(pool, oracle.values, maximize)
    log(
        f"pool {len(pool)} molecules, budget {budget} simulations ({100 * budget / len(pool):.1f} % of the pool); "
        f"top 1 % = {len(tops[0.01])}, top 5 % = {len(tops[0.05])} molecules"
    )
    with one_thread():
        t0 = time.perf_counter()
        features = compute_features(pool, surrogate, log)
        feat_s = time.perf_counter() - t0
    log(f"features computed once in {feat_s:.1f} s")

    curves: dict[str, dict[str, list[np.ndarray]]] = {
        m: {"top1": [], "top5": [], "best": []} for m in methods
    }
    per_seed: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    walls: dict[str, float] = {m: 0.0 for m in methods}
    sign = 1.0 if maximize else -1.0
    for seed in range(seeds):
        for m in methods:
            settings = LoopSettings(
                batch_size=batch,
                rounds=rounds,
                budget=budget,
                n_initial=initial,
                acquisition=Acquisition(m, maximize, beta),
                diversity=diversity if m != "random" else replace(diversity, method="none"),
                surrogate=surrogate,
                seed=seed,
            )
            t0 = time.perf_counter()
            with ALState(":memory:") as state:
                ActiveLearner(
                    pool, oracle, state, settings, features=features, cross_validate_rounds=False
                ).run()
                picks = state.picks()
            wall = time.perf_counter() - t0
            walls[m] += wall
            order = [p["smiles"] for p in picks]
            vals = np.array([oracle.values[s] for s in order])
            c1 = np.cumsum([s in tops[0.01] for s in order]) / len(tops[0.01])
            c5 = np.cumsum([s in tops[0.05] for s in order]) / len(tops[0.05])
            best = sign * np.maximum.accumulate(sign * vals)
            curves[m]["top1"].append(c1)
            curves[m]["top5"].append(c5)
            curves[m]["best"].append(best)
            per_seed[m].append(
                {
                    "seed": seed,
                    "top1_recovery": float(c1[-1]),
                    "top5_recovery": float(c5[-1]),
                    "best_found": float(best[-1]),
                    "simulations": len(order),
                    "wall_s": round(wall, 2),
                }
            )
            _write_picks(out / "picks" / f"{m}-seed{seed}.csv", picks, tops)
            log(
                f"seed {seed} {m:12s} top-1% {c1[-1]:.3f}  top-5% {c5[-1]:.3f}  best {best[-1]:.4g}  ({wall:.1f} s)"
            )

    true_best = max(oracle.values.values(), key=lambda v: sign * v)
    summary: dict[str, Any] = {
        "pool": len(pool),
        "budget": budget,
        "default": DEFAULT_ACQUISITION,
        "budget_fraction": budget / len(pool),
        "maximize": maximize,
        "oracle": str(oracle_csv),
        "target": label or target_col,
        "initial": initial,
        "batch": batch,
        "rounds": rounds,
        "seeds": seeds,
        "top1_size": len(tops[0.01]),
        "top5_size": len(tops[0.05]),
        "true_best": true_best,
        "surrogate": surrogate.to_dict(),
        "diversity": {
            "method": diversity.method,
            "shortlist": diversity.shortlist,
            "threshold": diversity.threshold,
        },
        "beta": beta,
        "feature_s": round(feat_s, 2),
        "methods": {},
    }
    rnd1 = float(np.mean([s["top1_recovery"] for s in per_seed["random"]]))
    for m in methods:
        t1 = np.array([s["top1_recovery"] for s in per_seed[m]])
        t5 = np.array([s["top5_recovery"] for s in per_seed[m]])
        bf = np.array([s["best_found"] for s in per_seed[m]])
        summary["methods"][m] = {
            "top1_recovery": float(t1.mean()),
            "top5_recovery": float(t5.mean()),
            "top1_recovery_sd": float(t1.std()),
            "top5_recovery_sd": float(t5.std()),
            "best_found": float(bf.mean()),
            "found_true_best": float(np.mean([sign * b >= sign * true_best for b in bf])),
            "top1_vs_random": float(t1.mean() / rnd1) if rnd1 > 0 else None,
            "top1_vs_random_expected": float(t1.mean() / (budget / len(pool))),
            "wall_s": round(walls[m], 2),
            "per_seed": per_seed[m],
        }
    summary["random_expected_recovery"] = budget / len(pool)
    summary["wall_s"] = round(time.perf_counter() - t_all, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _write_tables(out, summary)
    _plot(out, curves, summary, label or target_col, maximize)
    return summary


def _write_picks(path: Path, picks: list[dict[str, Any]], tops: dict[float, set[str]]) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["n", "round", "smiles", "predicted", "spread", "score", "value", "top1", "top5"]
        )
        for k, p in enumerate(picks, 1):
            w.writerow(
                [
                    k,
                    p["round"],
                    p["smiles"],
                    p["mean"],
                    p["std"],
                    p["score"],
                    p["value"],
                    int(p["smiles"] in tops[0.01]),
                    int(p["smiles"] in tops[0.05]),
                ]
            )


def _write_tables(out: Path, s: dict[str, Any]) -> None:
    rows = ["method,top1_recovery,top1_sd,top5_recovery,top5_sd,top1_vs_random,best_found,wall_s"]
    md = [
        f"Pool {s['pool']} molecules, budget {s['budget']} simulations "
        f"({100 * s['budget_fraction']:.1f} % of the pool: {s['initial']} random + {s['rounds']} x {s['batch']}), "
        f"{s['seeds']} seeds; target {s['target']} ({'maximised' if s['maximize'] else 'minimised'}); "
        f"model {s['surrogate']['model']} on {s['surrogate']['features']}; diversity {s['diversity']['method']}. "
        f"Default acquisition of `mdxfer al run`: **{s['default']}**.",
        "",
        "| method | top-1 % recovery | top-5 % recovery | × random (top 1 %, measured / expected) | best found | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for m, v in s["methods"].items():
        ratio = "—" if v["top1_vs_random"] is None else f"{v['top1_vs_random']:.1f}"
        rows.append(
            f"{m},{v['top1_recovery']:.4f},{v['top1_recovery_sd']:.4f},{v['top5_recovery']:.4f},"
            f"{v['top5_recovery_sd']:.4f},{'' if v['top1_vs_random'] is None else round(v['top1_vs_random'], 3)},"
            f"{v['best_found']:.6g},{v['wall_s']}"
        )
        md.append(
            f"| {m}{' (default)' if m == s['default'] else ''} | {v['top1_recovery']:.3f} ± "
            f"{v['top1_recovery_sd']:.3f} | {v['top5_recovery']:.3f} ± {v['top5_recovery_sd']:.3f} | {ratio} / {v['top1_vs_random_expected']:.1f} | "
            f"{v['best_found']:.4g} | {v['wall_s']:.0f} |"
        )
    md += [
        "",
        f"Random picking is expected to recover {s['random_expected_recovery']:.3f} of either set "
        "(budget / pool); ± is the standard deviation over seeds.",
    ]
    (out / "summary.csv").write_text("\n".join(rows) + "\n")
    (out / "summary.md").write_text("\n".join(md) + "\n")


def _plot(
    out: Path,
    curves: dict[str, dict[str, list[np.ndarray]]],
    s: dict[str, Any],
    label: str,
    maximize: bool,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for ax, key, name in ((axes[0], "top1", "top 1 %"), (axes[1], "top5", "top 5 %")):
        for k, (m, c) in enumerate(curves.items()):
            arr = np.array(c[key])
            x = np.arange(1, arr.shape[1] + 1)
            style = dict(color="k", ls="--") if m == "random" else dict(color=f"C{k}")
            lw = 2.5 if m == s["default"] else 1.3
            ax.plot(
                x,
                arr.mean(0),
                lw=lw,
                label=m + (" (default)" if m == s["default"] else ""),
                **style,
            )
            if arr.shape[0] > 1:
                ax.fill_between(
                    x, arr.min(0), arr.max(0), alpha=0.12, **({"color": style["color"]})
                )
        ax.axvline(s["initial"] + 0.5, color="0.8", lw=0.8)
        ax.set_xlabel("number of simulations")
        ax.set_ylabel(f"fraction of the pool's {name} found")
        ax.set_title(
            f"{name} of {s['pool']} ({s['top1_size'] if key == 'top1' else s['top5_size']} molecules), "
            f"mean of {s['seeds']} seeds",
            fontsize=9,
        )
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{label}: recovery against random picking (band: min-max over seeds)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(out / "recovery.png")
    plt.close(fig)

    # recovery at the fixed budget, per method (bars: mean, whiskers: min-max over seeds)
    names = list(curves)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    x = np.arange(len(names))
    for j, (key, name) in enumerate((("top1", "top 1 %"), ("top5", "top 5 %"))):
        finals = [np.array([c[-1] for c in curves[m][key]]) for m in names]
        means = np.array([f.mean() for f in finals])
        err = np.array([[f.mean() - f.min() for f in finals], [f.max() - f.mean() for f in finals]])
        ax.bar(
            x + (j - 0.5) * 0.38,
            means,
            0.38,
            yerr=err,
            capsize=3,
            color=f"C{j}",
            label=f"{name} found",
        )
    ax.axhline(
        s["random_expected_recovery"],
        color="k",
        ls="--",
        lw=1,
        label=f"random, expected ({s['random_expected_recovery']:.2f})",
    )
    ax.set_xticks(x, [m + ("\n(default)" if m == s["default"] else "") for m in names], fontsize=8)
    ax.set_ylabel("fraction recovered")
    ax.set_ylim(0, 1)
    ax.set_title(
        f"{label}: budget {s['budget']} of {s['pool']} ({100 * s['budget_fraction']:.0f} %), "
        f"{s['seeds']} seeds",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "recovery_bars.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for k, (m, c) in enumerate(curves.items()):
        arr = np.array(c["best"])
        style = dict(color="k", ls="--") if m == "random" else dict(color=f"C{k}")
        ax.plot(
            np.arange(1, arr.shape[1] + 1),
            arr.mean(0),
            lw=2.5 if m == s["default"] else 1.3,
            label=m,
            **style,
        )
    ax.axhline(s["true_best"], color="0.6", lw=0.8, ls=":", label="best in the pool")
    ax.set_xlabel("number of simulations")
    ax.set_ylabel(f"best {label} found ({'higher' if maximize else 'lower'} is better)")
    ax.set_title(f"best so far, mean of {s['seeds']} seeds", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "best_so_far.png")
    plt.close(fig)


def make_qm9_oracle(
    out: str | Path,
    n: int = 2400,
    prop: str = "Polarizability_bohr3",
    seed: int = 1,
    exclude_pretraining: bool = True,
    pretrain_n: int = 5000,
    pretrain_seed: int = 0,
) -> Path:
    """Write a ``smiles,target`` oracle table of ``n`` QM9 molecules and property ``prop``
    (from qm9pack's CSVs through :mod:`mdxfer.learn.data.qm9`), drawn at random without the molecules of
    the default pretraining subset (``mdxfer.learn.data.qm9.subset(5000, 0)``)."""
    df = qm9.load_qm9()
    if prop not in qm9.PROPERTY_COLUMNS or prop not in df.columns:  # SMILES, qm9_index: no target
        raise ALError(
            f"--property {prop!r} is not a QM9 property; choose one of "
            f"{', '.join(qm9.PROPERTY_COLUMNS)}."
        )
    if exclude_pretraining:
        pre = set(qm9.subset(pretrain_n, pretrain_seed, df)[qm9.SMILES_COLUMN])
        df = df[~df[qm9.SMILES_COLUMN].isin(pre)]
    df = df.drop_duplicates(qm9.SMILES_COLUMN)
    if not 1 <= n <= len(df):
        raise ALError(
            f"--n {n}: the oracle can hold 1 to {len(df)} QM9 molecules (those outside "
            "the default pretraining subset); ask for fewer."
        )
    rows = df.iloc[np.sort(np.random.default_rng(seed).choice(len(df), size=n, replace=False))]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows[[qm9.SMILES_COLUMN, prop, "qm9_index"]].rename(
        columns={qm9.SMILES_COLUMN: "smiles", prop: "target"}
    ).to_csv(out, index=False)
    return out
