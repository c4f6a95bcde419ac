"""Plots of a run: density and total energy against time for each leg (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


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


def plot_legs(legs: dict[str, Path], out: Path) -> list[Path]:
    """Write ``density.png`` and ``energy.png`` in ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {name: leg_series(wd) for name, wd in legs.items()}
    written = []
    for column, fname, label in (("Density", "density.png", "density (g/cm³)"),
                                 ("TotEng", "energy.png", "total energy (kcal/mol)")):
        fig, axes = plt.subplots(len(data), 1, figsize=(7, 2.4 * len(data)), sharex=False)
        for ax, (name, df) in zip(axes, data.items()):
            if df.empty:
                continue
            for stage, part in df.groupby("stage", sort=False):
                ax.plot(part["time_ps"], part[column], label=stage, lw=1)
            ax.set_title(name, fontsize=9)
            ax.set_ylabel(label, fontsize=8)
            ax.legend(fontsize=7)
        axes[-1].set_xlabel("time (ps)")
        fig.tight_layout()
        path = Path(out) / fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
