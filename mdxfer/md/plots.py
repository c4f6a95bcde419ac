"""Plots of a run: density and total energy against time for each leg (matplotlib, Agg)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mdxfer.md.thermo import with_derived


def leg_series(workdir: Path) -> pd.DataFrame:
    """Compress and NVT thermo of one leg, joined, with a ``time_ps`` column."""
    parts = []
    offset = 0.0
    for stage in ("compress", "nvt"):
        path = Path(workdir) / f"{stage}.thermo.csv"
        if not path.exists():
            continue
        df = pd.read_csv(path)
        t = (df["Time"] - df["Time"].iloc[0]) / 1000.0 + offset
        df = df.assign(time_ps=t, stage=stage)
        offset = float(t.iloc[-1])
        parts.append(df)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


#: estimator -> (thermo column, summary key, what it is)
_ENERGY = {
    "etotal": ("TotEng", "etotal", "total energy"),
    "pe": ("PotEng", "pe", "potential energy"),
    "pe_nh": ("PotEngNH", "pe_nh", "potential energy without harmonic terms"),
}


def _nvt_summary(workdir: Path) -> tuple[dict, str]:
    """The NVT stage's summary (``nvt.json``; empty when absent) and the protocol's estimator."""
    wd = Path(workdir)
    summary = json.loads((wd / "nvt.json").read_text()) if (wd / "nvt.json").exists() else {}
    species = (
        json.loads((wd / "species.json").read_text()) if (wd / "species.json").exists() else {}
    )
    return summary, species.get("protocol", {}).get("estimator", "etotal")


def _mark_average(ax, df: pd.DataFrame, summary: dict, key: str, unit: str) -> None:
    """Shade the NVT samples that were averaged and draw their mean ± stderr (``unit``)."""
    nvt = df[df["stage"] == "nvt"]
    if nvt.empty or key not in summary:
        return
    t0 = float(nvt["time_ps"].iloc[0]) + float(summary.get("start_ps", 0.0))
    t1 = float(nvt["time_ps"].iloc[-1])
    mean, se = float(summary[key]), float(summary.get(f"{key}_stderr") or 0.0)
    ax.axvspan(t0, t1, color="0.85", zorder=0, label="averaged")
    ax.hlines(mean, t0, t1, color="k", lw=1.2, label=f"mean {mean:.4g} ± {se:.2g} {unit}")
    ax.fill_between([t0, t1], mean - se, mean + se, color="k", alpha=0.2, lw=0)


def plot_legs(legs: dict[str, Path], out: Path) -> list[Path]:
    """Write ``density.png`` and ``energy.png`` in ``out``; returns their paths. Each panel
    shades the NVT samples that were averaged (after the start-up discard) and draws their
    mean ± standard error; ``energy.png`` shows the energy the protocol's estimator averages
    (total, potential, or potential without harmonic terms), in kcal/mol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {name: leg_series(wd) for name, wd in legs.items()}
    info = {name: _nvt_summary(wd) for name, wd in legs.items()}
    written = []
    for what, fname in (("density", "density.png"), ("energy", "energy.png")):
        fig, axes = plt.subplots(
            len(data), 1, figsize=(7, 2.6 * len(data)), sharex=False, squeeze=False
        )
        for ax, (name, df) in zip(axes[:, 0], data.items()):
            if df.empty:
                continue
            summary, estimator = info[name]
            if what == "density":
                column, key, label, unit = "Density", "density_g_cm3", "density (g/cm³)", "g/cm³"
                title = name
            else:
                column, key, text = _ENERGY.get(estimator, _ENERGY["etotal"])
                label, unit, title = "energy (kcal/mol)", "kcal/mol", f"{name}: {text}"
                df = with_derived(df)
            for stage, part in df.groupby("stage", sort=False):
                if column in part:
                    ax.plot(part["time_ps"], part[column], label=stage, lw=1)
            _mark_average(ax, df, summary, key, unit)
            ax.set_title(title, fontsize=9)
            ax.set_ylabel(label, fontsize=8)
            ax.set_xlabel("time (ps)", fontsize=8)
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = Path(out) / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
