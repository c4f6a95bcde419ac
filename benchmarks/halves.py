"""E_int from direct energies (E_int_unrelaxed) on the panel: the cells' NVT again, then the
energy between their halves from the trajectory.

E_int = E_tot − (E_chem + E_partner) is a difference of slab energies from three separate
runs; each run's liquid sits in its own slow state, and E_int's replica SD (7.9 kcal/mol over
the panel's 35 replicas) is as large as the spread between candidates. A stack of two cells
cut at their periodic boundaries differs from the two bulk cells, before anything relaxes, by
what crosses the cut planes only: it gains the candidate–partner energy across its two
interfaces (E_cross) and loses the candidate–candidate and partner–partner energy across one
plane of each bulk liquid — half the energy between the two halves of a bulk cell (whole
molecules by centre of mass; two planes per period; :mod:`mdxfer.md.halves`), so

    E_int_unrelaxed = E_cross − ½ E_halves(candidate) − ½ E_halves(partner)

uses only direct energies. It leaves out the slabs' own relaxation after contact, which E_int
includes (measured: docs/results.md, twelfth session — large for associating liquids).

``run`` reruns, for each exported replica whose compression stage kept its end state
(``compress.data``), the cell's NVT stage in a fresh folder through
``mdxfer.md.interaction.run_nvt`` with one rank (the campaign's trajectory, bitwise: ``report``
checks pe_nh), and the partner's once (``--partner-ps`` shortens it); ``report`` takes the
halves' energy of every rerun cell from its trajectory (cached in ``halves.json``; ``--splits``)
and writes one row per replica beside its E_int and E_cross:

    .venv/bin/python benchmarks/halves.py run data/oracle_panel_replicas5.csv --out runs/halves \
        --replica-ids 0 3 4 --partner-ps 200
    .venv/bin/python benchmarks/halves.py report data/oracle_panel_replicas5.csv runs/halves \
        [--csv data/halves_panel.csv]

``run`` is resumable (a folder with its ``nvt.json`` is not run again; a lock file keeps two
processes off one cell) and uses one LAMMPS rank per cell, as many side by side as there are
free cores (``--jobs``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mdxfer.md.halves import halves_energy
from mdxfer.md.interaction import run_nvt
from mdxfer.md.lammps import Launcher, free_cores
from mdxfer.md.protocol import load_protocol

STAGE_FILES = ("species.json", "compress.json", "compress.data", "forcefield.lmp")


def cells(export: Path, replica_ids: list[int] | None) -> list[tuple[str, int, Path]]:
    """(label, replica, cell folder) of the exported candidate cells with their
    ``compress.data``, and the partner's (label ``partner``) once."""
    df = pd.read_csv(export)
    out: list[tuple[str, int, Path]] = []
    partners = sorted(set(df.partner_dir))
    for p in partners:
        out.append(("partner", 0, Path(p)))
    for _, r in df.iterrows():
        cell = Path(r.candidate_dir)
        if replica_ids is not None and int(r.replica) not in replica_ids:
            continue
        if (cell / "compress.data").exists():
            out.append((str(r["name"]), int(r.replica), cell))
    return out


def run_cell(
    cell: Path,
    dest: Path,
    protocol_name: str,
    replica: int,
    partner_ps: float = 0.0,
    splits: int = 4,
) -> dict:
    """The NVT stage of ``cell`` again in ``dest`` (with the halves' energy); its summary.
    ``partner_ps`` > 0 shortens the partner's NVT (its first ``partner_ps`` ps: the same
    trajectory's start)."""
    if (dest / "nvt.json").exists():
        return json.loads((dest / "nvt.json").read_text())
    dest.mkdir(parents=True, exist_ok=True)
    try:  # another process of this script runs it: leave it to that one
        fd = os.open(dest / "running.pid", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pid = int((dest / "running.pid").read_text() or 0)
        if pid and Path(f"/proc/{pid}").exists():
            return {"skipped": f"running in process {pid}"}
        (dest / "running.pid").unlink()
        fd = os.open(dest / "running.pid", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    for name in STAGE_FILES:
        shutil.copy2(cell / name, dest / name)
    protocol = load_protocol(protocol_name).replica(replica)
    if partner_ps > 0:
        protocol = dataclasses.replace(protocol, partner_nvt_ps=partner_ps)
    protocol = dataclasses.replace(protocol, halves_splits=splits)
    return run_nvt(dest, protocol, Launcher(ranks=1))  # one rank: the campaign's trajectory


def run(args: argparse.Namespace) -> None:
    todo = cells(args.export, args.replica_ids)
    if args.labels:
        todo = [t for t in todo if t[0] in args.labels]
    jobs = args.jobs or free_cores()

    def one(item: tuple[str, int, Path]) -> None:
        label, k, cell = item
        s = run_cell(
            cell, args.out / f"{label}-{k}", args.protocol, k, args.partner_ps, args.splits
        )
        if "skipped" in s:
            print(f"{label}-{k}: {s['skipped']}", flush=True)
            return
        print(
            f"{label}-{k}: E_halves {s.get('ehalves', math.nan):.1f} ± "
            f"{s.get('ehalves_stderr', math.nan):.2f}, pe_nh {s['pe_nh']:.2f}",
            flush=True,
        )

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, todo))


def halves_of(cell: Path, protocol_name: str, splits: int) -> dict:
    """The energy between the halves of a rerun cell from its trajectory
    (:func:`mdxfer.md.halves.halves_energy`, from the NVT's detected start), cached in
    ``halves.json`` beside it."""
    cache = cell / "halves.json"
    if cache.exists():
        got = json.loads(cache.read_text())
        if got.get("ehalves_splits") == splits:
            return got
    nvt = json.loads((cell / "nvt.json").read_text())
    p = load_protocol(protocol_name)
    got = halves_energy(
        cell, p.dump_every_fs, splits, float(nvt.get("start_ps") or 0.0), Launcher(ranks=1)
    )
    cache.write_text(json.dumps(got, indent=1) + "\n")
    return got


def table(export: Path, out: Path, protocol_name: str, splits: int) -> pd.DataFrame:
    """One row per replica with its rerun cell: E_int, E_cross, E_halves and E_int_unrelaxed."""
    df = pd.read_csv(export)
    partner = halves_of(out / "partner-0", protocol_name, splits)
    rows = []
    for _, r in df.iterrows():
        cell = out / f"{r['name']}-{int(r.replica)}"
        if not (cell / "nvt.json").exists():
            continue
        nvt = json.loads((cell / "nvt.json").read_text())
        s = {**nvt, **halves_of(cell, protocol_name, splits)}
        orig = json.loads((Path(r.candidate_dir) / "nvt.json").read_text())
        direct = r.E_cross - 0.5 * s["ehalves"] - 0.5 * partner["ehalves"]
        # an export written before E_cross was calibrated holds its in-run stderr as E_cross_stderr
        cross_run = r.get("E_cross_stderr_run", r.E_cross_stderr)
        rows.append(
            {
                "name": r["name"],
                "replica": int(r.replica),
                "E_int": r.E_int,
                "E_cross": r.E_cross,
                "E_cross_stderr_run": cross_run,
                "E_halves_chem": s["ehalves"],
                "E_halves_chem_stderr": s["ehalves_stderr"],
                "E_halves_partner": partner["ehalves"],
                "E_halves_partner_stderr": partner["ehalves_stderr"],
                "E_int_unrelaxed": direct,
                "E_int_unrelaxed_stderr_run": math.hypot(cross_run, 0.5 * s["ehalves_stderr"]),
                "E_int_stderr_run": r.E_int_stderr_run,
                "protocol_digest": r.protocol_digest,
                "pe_nh_rerun_minus_campaign": s["pe_nh"] - orig["pe_nh"],
                "lz_chem_A": r.lz_chem_A,
                "E_halves_chem_frames": s["ehalves_frames"],
                "E_halves_chem_groupgroup": nvt.get(
                    "ehalves"
                ),  # in-run, one split (hbonds in part)
                "cpu_s_nvt": s["wall_s"],
                "cpu_s_nvt_campaign": orig["wall_s"],
            }
        )
    return pd.DataFrame(rows)


def pooled_sd(df: pd.DataFrame, col: str) -> tuple[float, int]:
    """Pooled within-candidate SD of ``col`` and its degrees of freedom."""
    ss, dof = 0.0, 0
    for _, g in df.groupby("name"):
        if len(g) > 1:
            ss += float(((g[col] - g[col].mean()) ** 2).sum())
            dof += len(g) - 1
    return (math.sqrt(ss / dof) if dof else math.nan), dof


def report(args: argparse.Namespace) -> None:
    df = table(args.export, args.out, args.protocol, args.splits)
    if args.csv:
        df.to_csv(args.csv, index=False)
    pd.set_option("display.width", 200)
    print(df.round(2).to_string(index=False))
    print()
    print("| quantity | replica SD (pooled) | dof | SD across candidates' means | ratio |")
    print("|---|---|---|---|---|")
    for col in ("E_int", "E_cross", "E_halves_chem", "E_int_unrelaxed"):
        sd, dof = pooled_sd(df, col)
        across = float(df.groupby("name")[col].mean().std(ddof=1))
        print(f"| {col} | {sd:.2f} | {dof} | {across:.2f} | {sd / across:.2f} |")
    means = df.groupby("name")[["E_int", "E_int_unrelaxed", "E_cross"]].mean()
    full = pd.read_csv(args.export).groupby("name")["E_int"].agg(["mean", "std", "count"])
    means["E_int_all"] = full["mean"]
    means["E_int_all_se"] = full["std"] / np.sqrt(full["count"])
    means["gap"] = means["E_int_all"] - means["E_int_unrelaxed"]
    print()
    print(means.round(2).to_string())
    rho = stats.spearmanr(means["E_int_all"], means["E_int_unrelaxed"]).statistic
    r = stats.pearsonr(means["E_int_all"], means["E_int_unrelaxed"]).statistic
    print(
        f"\nE_int (all replicas) against E_int_unrelaxed over candidates: Spearman {rho:.2f}, "
        f"Pearson {r:.2f}; mean gap {means['gap'].mean():.2f}, SD {means['gap'].std():.2f}"
    )
    print(f"rerun pe_nh − campaign pe_nh: max |Δ| {df.pe_nh_rerun_minus_campaign.abs().max():.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("run")
    a.add_argument("export", type=Path)
    a.add_argument("--out", type=Path, default=Path("runs/halves"))
    a.add_argument("--protocol", default="production")
    a.add_argument("--replica-ids", type=int, nargs="*", default=None)
    a.add_argument("--jobs", type=int, default=0)
    a.add_argument("--labels", nargs="*", default=None, help="only these (names, partner)")
    a.add_argument("--splits", type=int, default=4, help="Protocol.halves_splits")
    a.add_argument(
        "--partner-ps", type=float, default=0.0, help="the partner's NVT length (0: the preset's)"
    )
    b = sub.add_parser("report")
    b.add_argument("export", type=Path)
    b.add_argument("out", type=Path)
    b.add_argument("--csv", type=Path, default=None)
    b.add_argument("--protocol", default="production")
    b.add_argument("--splits", type=int, default=4, help="halves_splits of the analysis")
    args = ap.parse_args()
    run(args) if args.cmd == "run" else report(args)


if __name__ == "__main__":
    main()
