"""N candidates through a campaign and through the plain sequential pipeline.

Usage: .venv/bin/python benchmarks/bench_campaign.py [--n 3] [--protocol quick]
       [--set FIELD=VALUE ...] [--ranks 1] [--parallel] [--out runs/bench_campaign]

Runs the same N candidates (small molecules, interaction with isoprene) four ways, one LAMMPS
rank each, and prints wall times:

A. plain, sequential, no reuse: ``mdxfer.md.interaction.interaction_energy`` per candidate,
   each simulating its own partner box (what N separate ``mdxfer interaction`` calls do);
B. plain, sequential, partner box simulated once and passed as ``partner_dir``;
C. a campaign (local profile, Parsl ThreadPoolExecutor with ONE worker, so it does exactly B's
   work in the same order of magnitude, serially), started from an empty database;
D. (``--parallel``) the same campaign with the default local profile (workers = free cores).

Orchestration overhead per candidate = (C − (B − plotting)) / N, where plotting is the
density/energy figures that ``interaction_energy`` draws and a campaign does not (timed here
on one result). A second estimate, independent of B, is C's wall time minus the time spent
inside its tasks (stage_runs.app_s; one worker, so they do not overlap). The partner-reuse
speed-up is A / B in wall time, and in MD work (atoms x steps, independent of the machine's
load). E_int of C equals B's to 1e-9 (checked): same inputs, same seeds, 1 rank.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path

from mdxfer.md.interaction import interaction_energy, prepare_species, run_box
from mdxfer.md.lammps import Launcher
from mdxfer.md.protocol import load_protocol

CANDIDATES = ["CCO", "CC(C)=O", "CCCC", "CCCO", "CC(=O)OC", "CCN", "c1ccccc1", "CCCCO"]
PARTNER = "CC(=C)C=C"


def overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def campaign_file(
    path: Path, smiles: list[str], preset: str, extra: dict, ranks: int, workers: int
) -> Path:
    proto = "\n".join(f"{k} = {json.dumps(v)}" for k, v in extra.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'[campaign]\npartner = "{PARTNER}"\n[candidates]\nsmiles = {json.dumps(smiles)}\n'
        f'[protocol]\npreset = "{preset}"\n{proto}\n'
        f'[execution]\nprofile = "local"\n[execution.executor]\nworkers = {workers}\n'
        f"[execution.lammps]\nranks = {ranks}\n"
    )
    return path


def atom_steps(dirs: list[Path]) -> int:
    """MD work of the boxes in ``dirs``: atoms x (compress + NVT steps); load-independent."""
    total = 0
    for d in dirs:
        atoms = json.loads((d / "species.json").read_text())["n_atoms"]
        total += atoms * sum(
            json.loads((d / f"{s}.json").read_text())["steps"] for s in ("compress", "nvt")
        )
    return total


def run_campaign_timed(path: Path) -> tuple[float, dict, list[dict]]:
    from mdxfer.campaign import Campaign

    t0 = time.perf_counter()
    with Campaign.open(path) as camp:
        camp.run()
        rows = camp.results()
        db = camp.spec.database
    wall = time.perf_counter() - t0
    conn = sqlite3.connect(db)
    app_s, lammps_s, n_apps = conn.execute(
        "SELECT SUM(app_s), SUM(lammps_s), COUNT(*) FROM stage_runs"
    ).fetchone()
    conn.close()
    return wall, {"app_s": app_s, "lammps_s": lammps_s, "n_apps": n_apps}, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3, help=f"candidates (at most {len(CANDIDATES)})")
    ap.add_argument("--protocol", default="quick")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="FIELD=VALUE")
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--parallel", action="store_true", help="also run D (all free cores)")
    ap.add_argument("--out", default="runs/bench_campaign")
    args = ap.parse_args()
    smiles = CANDIDATES[: args.n]
    extra = overrides(args.sets)
    protocol = load_protocol(args.protocol, extra)
    launcher = Launcher(ranks=args.ranks)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    n = len(smiles)
    print(
        f"{n} candidates {smiles} with {PARTNER}; protocol {protocol.name} "
        f"({protocol.digest()}), {args.ranks} LAMMPS rank(s)",
        flush=True,
    )

    t0 = time.perf_counter()
    plain_a = [
        interaction_energy(s, protocol, out / "A" / str(i), launcher=launcher)
        for i, s in enumerate(smiles)
    ]
    t_a = time.perf_counter() - t0
    print(f"A  plain, own partner each : {t_a:7.1f} s", flush=True)

    t0 = time.perf_counter()
    pdir = prepare_species(PARTNER, protocol, out / "B" / "partner")
    run_box(pdir, protocol, launcher)
    plain_b = [
        interaction_energy(s, protocol, out / "B" / str(i), launcher=launcher, partner_dir=pdir)
        for i, s in enumerate(smiles)
    ]
    t_b = time.perf_counter() - t0
    print(f"B  plain, partner reused   : {t_b:7.1f} s", flush=True)

    from mdxfer.md.plots import plot_legs

    (out / "plot_probe").mkdir(parents=True)
    t0 = time.perf_counter()
    plot_legs(
        {
            "candidate": out / "B" / "0" / "candidate",
            "partner": pdir,
            "stack": out / "B" / "0" / "stack",
        },
        out / "plot_probe",
    )
    plot_s = time.perf_counter() - t0

    t_c, c_stats, rows_c = run_campaign_timed(
        campaign_file(out / "C" / "c.toml", smiles, args.protocol, extra, args.ranks, 1)
    )
    print(f"C  campaign, 1 worker      : {t_c:7.1f} s", flush=True)
    by_smiles = {r["smiles"]: r for r in rows_c}
    for s, b in zip(smiles, plain_b):
        c = by_smiles[s]
        assert c["status"] == "done", c
        assert abs(c["E_int"] - b["E_int"]) <= 1e-9 * max(1.0, abs(b["E_int"])), (s, c, b)

    t_d = None
    if args.parallel:
        t_d, _, rows_d = run_campaign_timed(
            campaign_file(out / "D" / "d.toml", smiles, args.protocol, extra, args.ranks, 0)
        )
        print(f"D  campaign, all cores     : {t_d:7.1f} s", flush=True)

    lammps_a = sum(r["wall_s"] for r in plain_a)
    work_a = atom_steps(
        [out / "A" / str(i) / leg for i in range(n) for leg in ("candidate", "partner", "stack")]
    )
    work_b = atom_steps(
        [pdir] + [out / "B" / str(i) / leg for i in range(n) for leg in ("candidate", "stack")]
    )
    work_c = atom_steps(
        sorted((out / "C").glob("c-runs/*/species/*"))
        + sorted((out / "C").glob("c-runs/*/pairs/*"))
    )
    print()
    print(
        f"LAMMPS time inside: A {lammps_a:.1f} s, C {c_stats['lammps_s']:.1f} s "
        f"({c_stats['n_apps']} Parsl tasks); plotting in B {plot_s:.2f} s per candidate"
    )
    over = (t_c - (t_b - n * plot_s)) / n
    base = (t_b - n * plot_s) / n
    print(
        f"orchestration overhead vs plain (C - (B - plots)) / N : {over:+.2f} s per candidate "
        f"= {100 * over / base:+.1f}% of {base:.1f} s"
    )
    inside = (t_c - c_stats["app_s"]) / n
    print(
        f"orchestration overhead, C wall - time in tasks      : {inside:+.2f} s per candidate "
        f"= {100 * inside / base:+.1f}%; {(t_c - c_stats['app_s']) / c_stats['n_apps']:.3f} s "
        "per Parsl task"
    )
    print(
        f"partner reuse speed-up A / B                        : {t_a / t_b:.2f}x wall "
        f"(A / C: {t_a / t_c:.2f}x); MD work A / B {work_a / work_b:.2f}x "
        f"(atom-steps {work_a:.3g} vs {work_b:.3g}; campaign {work_c:.3g})"
    )
    if t_d:
        print(f"parallel speed-up C / D                             : {t_c / t_d:.2f}x")
    paper_s = 37 * 60 * 2  # ~37 min per candidate on 2 cores = ~74 core-minutes (lammps-notes)
    print(
        f"for the paper protocol (~{paper_s / 60:.0f} min per candidate on one core) the same "
        f"overhead is {100 * max(over, inside) / paper_s:.3f}%"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
