"""Which energy terms carry E_int's replica scatter, and which carry the differences between
candidates (issue 11): E_int = E_tot − (E_chem + E_partner) split term by term from the stored
NVT thermo series of finished campaign stacks — no LAMMPS run.

Every finished stack below the given campaign work directories (``species.json`` of kind
``stack`` whose protocol is a replica of ``--protocol``: same family digest) is read with its candidate cell and partner (the
folders its ``species.json`` names). Each box is averaged from the start pymbar detects on its
``PotEngNH`` series (as the production estimator does), and per term

    ΔX = X(stack) − X(candidate cell) − X(partner)         (kcal/mol, whole cells)

for X in E_vdwl (LJ + DREIDING H-bond), E_coul + E_long (Coulomb, real + k-space), E_dihed,
E_harm (bond + angle + inversion) and the sums the estimators use: pe_nh (= vdwl + coul + long +
dihed), pe (everything), nb (vdwl + coul + long, no bonded term). Printed per candidate: the
mean over replicas and the replica SD; then, pooled over candidates with ≥ 2 replicas, the
replica SD against the SD across the candidates' means (the ratio issue 11 asks ≤ 0.25 of).

    .venv/bin/python benchmarks/eint_terms.py runs/qm9-isoprene [--csv data/eint_terms.csv]
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from mdxfer.md.protocol import Protocol, load_protocol
from mdxfer.md.thermo import correlated_stderr, detect_start, with_derived

TERMS = {
    "vdwl": ("E_vdwl",),
    "coul": ("E_coul", "E_long"),
    "dihed": ("E_dihed",),
    "harm": ("E_bond", "E_angle", "E_impro"),
}
#: the estimators as sums of terms
SUMS = {
    "nb": ("vdwl", "coul"),
    "pe_nh": ("vdwl", "coul", "dihed"),
    "pe": ("vdwl", "coul", "dihed", "harm"),
}


@cache  # the partner is shared by every stack
def box_terms(box: Path) -> dict[str, float]:
    """Mean of every term (and of its sums) over the equilibrated part of ``box``'s NVT series,
    kcal/mol, with the stderr of each sum; the start is detected on ``PotEngNH``."""
    series = with_derived(pd.read_csv(box / "nvt.thermo.csv"))
    part = series.iloc[detect_start(series["PotEngNH"].to_numpy(dtype=float)) :]
    values = {t: part[list(cols)].sum(axis=1).to_numpy(dtype=float) for t, cols in TERMS.items()}
    for name, terms in SUMS.items():
        values[name] = sum(values[t] for t in terms)
    out = {k: float(v.mean()) for k, v in values.items()}
    out.update({f"{k}_se": correlated_stderr(values[k]) for k in SUMS})
    return out


def stacks(workdirs: list[Path], family: str) -> list[dict]:
    """One record per finished stack of a replica of the protocol family ``family``
    (:meth:`Protocol.family_digest`): SMILES, seed and the ΔX of every term."""
    rows = []
    for root in workdirs:
        for info_file in sorted(root.glob("*/pairs/*/species.json")):
            stack = info_file.parent
            info = json.loads(info_file.read_text())
            result = stack / "replica_result.json"
            if info.get("kind") != "stack" or not result.exists():
                continue
            if Protocol.from_dict(info["protocol"]).family_digest() != family:
                continue
            rec = json.loads(result.read_text())
            dirs = rec["workdirs"]
            s, c, p = (box_terms(Path(dirs[k])) for k in ("stack", "candidate", "partner"))
            row = {"smiles": info["bottom_smiles"], "seed": rec.get("seed"), "E_int": rec["E_int"]}
            for k in (*TERMS, *SUMS):
                row[f"d_{k}"] = s[k] - c[k] - p[k]
            for k in SUMS:
                row[f"{k}_se"] = float(np.sqrt(s[f"{k}_se"] ** 2 + c[f"{k}_se"] ** 2))
            row["E_cross"] = rec.get("E_cross")
            rows.append(row)
    return rows


def pooled(t: pd.DataFrame, col: str) -> tuple[float, float, int]:
    """(pooled replica SD, SD across the candidates' means, degrees of freedom) of ``col``."""
    groups = [m[col].to_numpy() for _, m in t.groupby("smiles") if len(m) > 1]
    dof = sum(len(g) - 1 for g in groups)
    if not dof:
        return float("nan"), float("nan"), 0
    ss = sum(((g - g.mean()) ** 2).sum() for g in groups)
    means = [g.mean() for g in groups]
    return float(np.sqrt(ss / dof)), float(np.std(means, ddof=1)), dof


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workdirs", nargs="+", type=Path, help="campaign work directories")
    ap.add_argument("--protocol", default="production", help="preset or TOML of the stacks")
    ap.add_argument("--csv", type=Path, help="write the per-stack rows here")
    args = ap.parse_args()
    protocol = load_protocol(args.protocol)
    t = pd.DataFrame(stacks(args.workdirs, protocol.family_digest()))
    if t.empty:
        raise SystemExit(f"no finished stack of {protocol.digest()} under {args.workdirs}")
    if args.csv:
        t.to_csv(args.csv, index=False, float_format="%.4f")
    pd.set_option("display.width", 220)
    cols = [f"d_{k}" for k in (*TERMS, *SUMS)] + ["E_cross"]
    per = t.groupby("smiles")[cols].agg(["mean", "std", "count"])
    replicated = t.groupby("smiles").filter(lambda m: len(m) > 1)
    print(f"{len(t)} stacks, {t.smiles.nunique()} candidates ({protocol.digest()} and replicas)")
    if not replicated.empty:
        print(per[per[("d_pe_nh", "count")] > 1].round(1).to_string())
    print(
        f"\n{'term':>8} {'replica SD':>11} {'SD across':>10} {'ratio':>6} {'dof':>4}  "
        f"{'SD over all stacks':>18}"
    )
    for c in cols:
        sd, across, dof = pooled(t, c)
        ratio = sd / across if across else float("nan")
        print(f"{c:>8} {sd:11.2f} {across:10.2f} {ratio:6.2f} {dof:4d}  {t[c].std(ddof=1):18.2f}")
    for k in SUMS:
        print(f"mean within-run stderr of Δ{k}: {t[f'{k}_se'].mean():.2f}")


if __name__ == "__main__":
    main()
