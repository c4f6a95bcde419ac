"""The oracle panel's figures from a campaign's per-replica export (issue 11): per candidate
the mean E_int, its replica SD, the mean reported stderr and their ratio, E_cross and its
replica SD, the cell density, and the LAMMPS CPU-hours per replica (read from the logs of the
candidate cell and the stack, so a machine shared by more jobs than cores does not inflate
them); then, pooled over the candidates with ≥ 2 replicas (degrees of freedom weighted;
:func:`eint_terms.pooled`), the replica SD against the
SD across the candidates' means and the CPU-hours to ± 1 kcal/mol (CPU-h per replica × SD²);
last, where the replicas differ: the replica SD of each run's own mean (stack E_tot, cell
E_chem) against its reported stderr, and per candidate the correlation of E_tot with E_chem
over the replicas (a replica offset both runs share cancels in E_int; one they do not, does not);
and how much of each energy's replica scatter follows the cell's barostat height
(:func:`volume_coupling`).

    .venv/bin/mdxfer campaign export examples/oracle_panel_campaign.toml --replicas \\
        --out data/oracle_panel_replicas.csv
    .venv/bin/python benchmarks/panel_report.py data/oracle_panel_replicas.csv

With ``--beside OTHER.csv`` (the same kind of export of another preset, e.g. the ``paper`` panel
with one replica each) it also prints, per candidate present in both, the two presets' means
side by side and the Spearman rank correlation between them for E_int and E_cross.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from bench_oracle import cpu_seconds
from eint_terms import pooled


def per_candidate(t: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for name, m in t.groupby("name", sort=False):
        sd = m.E_int.std(ddof=1) if len(m) > 1 else np.nan
        rows.append(
            {
                "name": name,
                "n": len(m),
                "E_int": m.E_int.mean(),
                "replica_sd": sd,
                "mean_stderr": m.E_int_stderr.mean(),
                "stderr/sd": m.E_int_stderr.mean() / sd if sd > 0 else np.nan,
                "run_stderr": m.E_int_stderr_run.mean(),
                "E_cross": m.E_cross.mean(),
                "cross_sd": m.E_cross.std(ddof=1) if len(m) > 1 else np.nan,
                "cross_stderr": m.E_cross_stderr.mean(),
                "rho_chem": m.density_chem_g_cm3.mean(),
                "rho_sd": m.density_chem_g_cm3.std(ddof=1) if len(m) > 1 else np.nan,
                "cpu_h": m.cpu_h.mean(),
            }
        )
    return pd.DataFrame(rows)


def where_replicas_differ(t: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Per energy (E_int, E_tot, E_chem, E_cross): the pooled replica SD, the RMS of the
    reported within-run stderr (``<energy>_stderr_run`` where the export has it) and their ratio; and per candidate with
    ≥ 3 replicas the Pearson correlation of E_tot with E_chem across its replicas."""
    rows = []
    for col in ("E_int", "E_tot", "E_chem", "E_cross"):
        sd, _, dof = pooled(t, col)
        # the within-run stderr (E_int and E_cross carry a calibrated one beside it)
        run, reported = f"{col}_stderr_run", f"{col}_stderr"
        se = t[run] if run in t else t[reported]
        if run in t and reported in t:  # rows written before the run column existed
            se = se.fillna(t[reported])
        rms = float(np.sqrt((se**2).mean()))
        rows.append({"energy": col, "replica_sd": sd, "rms_stderr": rms, "sd/stderr": sd / rms})
    corr = {
        name: float(np.corrcoef(m.E_tot, m.E_chem)[0, 1])
        for name, m in t.groupby("name", sort=False)
        if len(m) >= 3
    }
    return pd.DataFrame(rows), pd.Series(corr, name="corr(E_tot, E_chem)")


def volume_coupling(
    t: pd.DataFrame,
    cols: tuple[str, ...] = ("E_int", "E_tot", "E_chem", "E_cross"),
    permutations: int = 2000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How much of each energy's replica scatter follows the candidate cell's height.

    Each replica's cell runs NVT (and the fixed-volume stack is built) at its own barostat mean
    ``lz_chem_A``; that mean differs between replicas. Per candidate with ≥ 3 replicas: the SD
    of that height (Å) and, per energy, the slope of a straight line through (height, energy) in
    kcal/mol per 0.1 Å and the Pearson r. Pooled (every candidate centred on its own means, one
    common slope: an analysis of covariance): the common slope, the replica SD before and after
    removing it (dof: replicas − candidates, and one fewer after), and a permutation p-value of
    the common slope (heights shuffled within each candidate, ``permutations`` times)."""
    t = t[t.groupby("name").name.transform("size") >= 3]
    rows = []
    for name, m in t.groupby("name", sort=False):
        row = {"name": name, "n": len(m), "lz_sd_A": m.lz_chem_A.std(ddof=1)}
        for col in cols:
            slope = np.polyfit(m.lz_chem_A, m[col], 1)[0]
            row[f"{col}_per_0.1A"] = slope / 10.0
            row[f"{col}_r"] = float(np.corrcoef(m.lz_chem_A, m[col])[0, 1])
        rows.append(row)
    x = (t.lz_chem_A - t.groupby("name").lz_chem_A.transform("mean")).to_numpy()
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero((t.name == n).to_numpy()) for n in t.name.unique()]
    dof = len(t) - len(groups)
    pooled_rows = []
    for col in cols:
        y = (t[col] - t.groupby("name")[col].transform("mean")).to_numpy()
        slope = float(x @ y / (x @ x))
        resid = y - slope * x
        null = 0
        for _ in range(permutations):
            xp = x.copy()
            for g in groups:
                xp[g] = rng.permutation(x[g])
            null += abs(xp @ y / (xp @ xp)) >= abs(slope)
        pooled_rows.append(
            {
                "energy": col,
                "slope_per_0.1A": slope / 10.0,
                "replica_sd": float(np.sqrt(y @ y / dof)),
                "sd_without_height": float(np.sqrt(resid @ resid / (dof - 1))),
                "dof": dof,
                "p_permutation": (null + 1) / (permutations + 1),
            }
        )
    return pd.DataFrame(rows), pd.DataFrame(pooled_rows)


def beside(t: pd.DataFrame, other: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per candidate in both tables (by name): the mean E_int, E_cross and cell density of each
    (``_a``: ``t``, ``_b``: ``other``), ``other``'s mean reported stderrs and CPU-hours; and the
    Spearman correlation between the two presets' means for E_int and E_cross (NaN below 3)."""
    from scipy.stats import spearmanr

    cols = ["E_int", "E_int_stderr", "E_cross", "E_cross_stderr", "density_chem_g_cm3", "cpu_h"]
    a = t.groupby("name", sort=False)[cols].mean()
    b = other.groupby("name", sort=False)[cols].mean()
    both = a.merge(b, left_index=True, right_index=True, suffixes=("_a", "_b"))
    rho = {
        col: float(spearmanr(both[f"{col}_a"], both[f"{col}_b"])[0]) if len(both) >= 3 else np.nan
        for col in ("E_int", "E_cross")
    }
    return both.reset_index(), rho


def _has_logs(d: Path) -> bool:
    return d.is_dir() and any(d.glob("*.log"))


def with_cpu_hours(t: pd.DataFrame) -> pd.DataFrame:
    """``t`` with ``name`` filled from the SMILES and ``cpu_h`` (LAMMPS's own CPU-hours of the
    candidate cell and the stack; NaN where either has no LAMMPS log on disk — a campaign's
    archive may keep a run's results without its logs, which would otherwise count 0)."""
    t = t.copy()
    t["name"] = t["name"].fillna(t["smiles"])
    t["cpu_h"] = [
        cpu_seconds(Path(c), Path(s)) / 3600
        if _has_logs(Path(c)) and _has_logs(Path(s))
        else np.nan
        for c, s in zip(t.candidate_dir, t.stack_dir)
    ]
    if t.cpu_h.isna().any():
        print(
            f"{int(t.cpu_h.isna().sum())} replicas have no LAMMPS logs on disk for their cell or "
            "stack (restore the campaign's archive): no CPU-hours for them"
        )
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", type=Path, help="mdxfer campaign export --replicas output")
    ap.add_argument(
        "--beside", type=Path, help="another preset's export: means side by side, Spearman"
    )
    args = ap.parse_args()
    t = with_cpu_hours(pd.read_csv(args.csv))
    c = per_candidate(t)
    pd.set_option("display.width", 220)
    print(c.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    cpu = t.cpu_h.mean()
    sds = {}
    replicated = int((t.groupby("smiles").size() > 1).sum())
    for col in ("E_int", "E_cross"):
        sds[col], across, dof = pooled(t, col)
        print(
            f"{col}: pooled replica SD {sds[col]:.2f} kcal/mol ({dof} dof), SD across the "
            f"{replicated} replicated candidates' means {across:.2f}, ratio {sds[col] / across:.2f} "
            f"(target ≤ 0.25); CPU-h to ± 1 kcal/mol {cpu * sds[col] ** 2:.2f}"
        )
    ratio = c.set_index("name")["stderr/sd"].dropna()
    rms_stderr = float(np.sqrt((t.E_int_stderr**2).mean()))
    print(
        f"E_int stderr/SD per candidate {ratio.min():.2f}–{ratio.max():.2f}; pooled (RMS "
        f"stderr {rms_stderr:.2f} / pooled SD) {rms_stderr / sds['E_int']:.2f} (target 0.7–1.5)"
    )
    print(f"CPU-hours per candidate-replica {cpu:.3f} (LAMMPS's own, cell + stack)")
    spread, corr = where_replicas_differ(t)
    print("\nwhere the replicas differ (kcal/mol; E_int's stderr is the within-run one):")
    print(spread.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(corr.to_string(float_format=lambda v: f"{v:.2f}"))
    per, common = volume_coupling(t)
    print("\nthe cell's barostat height (lz_chem_A) against each energy, per candidate:")
    print(per.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print("pooled, one common slope (kcal/mol per 0.1 Å of cell height):")
    print(common.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.beside:
        both, rho = beside(t, with_cpu_hours(pd.read_csv(args.beside)))
        print(f"\n{args.csv.name} (_a) beside {args.beside.name} (_b), means per candidate:")
        print(both.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        print(
            f"Spearman between the two over {len(both)} candidates: E_int {rho['E_int']:.2f}, "
            f"E_cross {rho['E_cross']:.2f}"
        )


if __name__ == "__main__":
    main()
