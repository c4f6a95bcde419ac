"""Does annealing every NVT stage at fixed volume make E_int repeat between replicas?

E_int's replica scatter (7.9 kcal/mol over the panel's 35 production replicas) lives in slow
states of the runs: each cell keeps the hydrogen-bond network or dipole order its packing gave
it through its 30-ps NVT (acetic acid), and each stack's freshly cut slabs relax along their own
path for longer than its 50-ps NVT (acetonitrile) (docs/results.md, eighth and twelfth
sessions). An anneal under the barostat (sixth session) made the cells expand and end at more
different densities. This one keeps the volume: ``nvt_anneal_ps`` (a protocol field) starts
every NVT stage with half of it at ``nvt_anneal_K`` and half cooling linearly to 300 K, unsampled
— the slow modes move faster while hot, and cell and stack share one thermal history.

``run`` takes exported production replicas (``mdxfer campaign export … --replicas``) whose
compression end states are on disk, and for each runs again, in a fresh folder with one rank:
the candidate cell's NVT stage and the stack (built from the same cells' barostat ends, as
production does; relaxed, then its NVT) under production with ``--set`` overrides; the partner
is production's 1 ns box (its ``E_partner``, a common offset). ``report`` sets each replica's
E_int, E_cross, E_chem and E_tot beside production's for the same replica (same packing):

    .venv/bin/python benchmarks/nvt_anneal.py run data/oracle_panel_replicas5.csv \
        --out runs/anneal --names acetic_acid acetonitrile pyridine --replica-ids 0 3 4 \
        --set nvt_anneal_ps=20
    .venv/bin/python benchmarks/nvt_anneal.py report data/oracle_panel_replicas5.csv \
        runs/anneal [--csv data/nvt_anneal.csv]

``run`` is resumable (finished stages are not run again) and runs ``--jobs`` replicas side by
side (default: free cores), one LAMMPS rank each.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from mdxfer.md.cost import log_work
from mdxfer.md.interaction import prepare_stack, run_nvt, run_relax
from mdxfer.md.lammps import Launcher, free_cores
from mdxfer.md.protocol import load_protocol

STAGE_FILES = ("species.json", "compress.json", "compress.data", "forcefield.lmp")


def _overrides(pairs: list[str]) -> dict[str, object]:
    """``FIELD=VALUE`` pairs, each value read as TOML (a number, true/false, a quoted string)."""
    out: dict[str, object] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: FIELD=VALUE expected")
        out[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
    return out


def _copy_stage(src: Path, dest: Path) -> None:
    """The compression stage's end (inputs, summary, state) of ``src`` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in STAGE_FILES:
        if not (dest / name).exists():
            shutil.copy2(src / name, dest / name)


def run_replica(row: pd.Series, out: Path, overrides: dict[str, object]) -> dict:
    """Cell NVT, stack relax and stack NVT of one exported replica under production with
    ``overrides``; the two NVT summaries."""
    protocol = load_protocol("production", overrides).replica(int(row.replica))
    base = out / f"{row['name']}-{int(row.replica)}"
    cell, partner, stack = base / "cell", out / "partner", base / "stack"
    _copy_stage(Path(row.candidate_dir), cell)
    launcher = Launcher(ranks=1)
    cell_nvt = run_nvt(cell, protocol, launcher)
    prepare_stack(cell, partner, protocol, stack)
    run_relax(stack, protocol, launcher)
    stack_nvt = run_nvt(stack, protocol, launcher)
    return {"cell": cell_nvt, "stack": stack_nvt}


def run(args: argparse.Namespace) -> None:
    df = pd.read_csv(args.export)
    df = df[df["name"].isin(args.names) & df.replica.isin(args.replica_ids)]
    df = df[[(Path(d) / "compress.data").exists() for d in df.candidate_dir]]
    # replica by replica across the candidates: a stopped run leaves every candidate started
    df = df.sort_values(["replica", "name"])
    overrides = _overrides(args.set)
    partners = set(df.partner_dir)
    if len(partners) != 1:
        raise SystemExit(f"one partner box expected in the export, found {len(partners)}")
    _copy_stage(Path(partners.pop()), args.out / "partner")  # once, before the threads

    def one(row: pd.Series) -> None:
        try:
            s = run_replica(row, args.out, overrides)
        except Exception as exc:  # noqa: BLE001 - one failure must not cancel the queued rest
            print(f"{row['name']}-{int(row.replica)}: failed: {exc}", flush=True)
            return
        e_int = s["stack"]["pe_nh"] - s["cell"]["pe_nh"] - row.E_partner
        print(
            f"{row['name']}-{int(row.replica)}: E_int {e_int:+.1f} (production "
            f"{row.E_int:+.1f}), E_cross {s['stack']['ecross']:.1f} ({row.E_cross:.1f})",
            flush=True,
        )

    with ThreadPoolExecutor(args.jobs or free_cores()) as pool:
        list(pool.map(one, [r for _, r in df.iterrows()]))


def _cpu_s(d: Path, stack: bool) -> float:
    """LAMMPS CPU-seconds of what ran here: a cell's NVT log (its compression was copied), a
    stack's relaxation (``compress*.log``) and NVT logs."""
    logs = [d / "nvt.log"] + (sorted(d.glob("compress*.log")) if stack else [])
    return sum(log_work(log)[1] for log in logs)


def rows(export: Path, out: Path) -> pd.DataFrame:
    """One row per replica run under ``out``: annealed and production figures side by side."""
    df = pd.read_csv(export)
    recs = []
    for _, r in df.iterrows():
        base = out / f"{r['name']}-{int(r.replica)}"
        cell, stack = base / "cell" / "nvt.json", base / "stack" / "nvt.json"
        if not (cell.exists() and stack.exists()):
            continue
        c, s = json.loads(cell.read_text()), json.loads(stack.read_text())
        recs.append(
            {
                "name": r["name"],
                "replica": int(r.replica),
                "E_int": s["pe_nh"] - c["pe_nh"] - r.E_partner,
                "E_int_prod": r.E_int,
                "E_cross": s.get("ecross"),
                "E_cross_prod": r.E_cross,
                "E_chem": c["pe_nh"],
                "E_chem_prod": r.E_chem,
                "E_tot": s["pe_nh"],
                "E_tot_prod": r.E_tot,
                "E_int_stderr_run": math.hypot(c["pe_nh_stderr"], s["pe_nh_stderr"]),
                "E_int_stderr_run_prod": r.E_int_stderr_run,
                "stack_drift_z": s.get("pe_nh_drift_z"),
                "cell_cpu_s": _cpu_s(base / "cell", stack=False),
                "stack_cpu_s": _cpu_s(base / "stack", stack=True),
            }
        )
    return pd.DataFrame(recs)


def pooled_sd(t: pd.DataFrame, col: str) -> tuple[float, int]:
    """(pooled within-candidate SD of ``col``, degrees of freedom)."""
    ss, dof = 0.0, 0
    for _, g in t.groupby("name"):
        v = g[col].to_numpy(dtype=float)
        if len(v) > 1:
            ss += float(((v - v.mean()) ** 2).sum())
            dof += len(v) - 1
    return (math.sqrt(ss / dof) if dof else float("nan")), dof


def report(args: argparse.Namespace) -> None:
    t = rows(args.export, args.out)
    if t.empty:
        raise SystemExit(f"no finished replica under {args.out}")
    pd.set_option("display.width", 200)
    print(t.round(2).to_string(index=False))
    print()
    per = []
    for name, g in t.groupby("name"):
        per.append(
            {
                "name": name,
                "n": len(g),
                **{f"sd_{c}": g[c].std(ddof=1) for c in ("E_int", "E_int_prod", "E_cross")},
                "sd_E_cross_prod": g["E_cross_prod"].std(ddof=1),
                "mean_E_int": g["E_int"].mean(),
                "mean_E_int_prod": g["E_int_prod"].mean(),
            }
        )
    print(pd.DataFrame(per).round(2).to_string(index=False))
    print()
    for col in ("E_int", "E_int_prod", "E_cross", "E_cross_prod", "E_chem", "E_chem_prod"):
        sd, dof = pooled_sd(t, col)
        print(f"pooled replica SD {col:14s} {sd:7.2f}  ({dof} dof)")
    rms = float(np.sqrt((t.E_int_stderr_run**2).mean()))
    print(
        f"RMS within-run stderr of E_int: annealed {rms:.2f}, production "
        f"{float(np.sqrt((t.E_int_stderr_run_prod**2).mean())):.2f}"
    )
    cpu = (t.cell_cpu_s + t.stack_cpu_s).mean() / 3600
    print(f"CPU-h per replica, cell NVT + stack relax + stack NVT (annealed): {cpu:.3f}")
    if args.csv:
        t.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("export", type=Path)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--names", nargs="+", required=True)
    r.add_argument("--replica-ids", nargs="+", type=int, default=[0, 3, 4])
    r.add_argument("--set", nargs="+", default=["nvt_anneal_ps=20"])
    r.add_argument("--jobs", type=int, default=0)
    p = sub.add_parser("report")
    p.add_argument("export", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--csv", type=Path)
    args = parser.parse_args()
    {"run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
