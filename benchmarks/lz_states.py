"""Do replicas' cell heights converge if the barostat runs on? (issue 11, eleventh session)

A candidate cell's NVT height is the mean Lz of the last window of its z-barostat stage; the
fixed-volume stack inherits it, and E_int and E_cross follow it (+1.25 and +0.70 kcal/mol per
0.1 Å over the panel). The replicas' heights scatter 2–7 × more than the stage's reported
stderr (pooled 0.19 Å against 0.06). Either the stage is too short to pin a height every replica
would reach (then a longer stage removes that scatter), or each replica sits in its own slow
state (then it does not). This runs each replica's barostat on from where its compression
stage stopped (its ``compress.data``: positions and velocities; the same NPT input as the
stage's own extensions, ``templates/in.compress_more.lmp``) and compares the replicas' mean
heights over successive windows with their heights as made.

    .venv/bin/python benchmarks/lz_states.py run data/oracle_panel_replicas5.csv \\
        --names benzene pyridine hexane methanol --ps 150 --out runs/lz-states
    .venv/bin/python benchmarks/lz_states.py report runs/lz-states [--csv data/lz_states.csv]

``run`` uses one LAMMPS rank per replica, as many side by side as there are free cores, and
is resumable (a replica with its ``more.json`` is not run again).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from mdxfer.md.interaction import barostat_values, read_json
from mdxfer.md.lammps import Launcher, free_cores, render, run_input
from mdxfer.md.protocol import load_protocol
from mdxfer.md.thermo import concat_runs, correlated_stderr, read_runs


def replicas(export: Path, names: list[str] | None) -> list[tuple[str, int, Path]]:
    """(name, replica, candidate cell folder) of each exported replica whose compression
    stage kept its end state (``compress.data``)."""
    df = pd.read_csv(export)
    out = []
    for _, r in df.iterrows():
        cell = Path(r.candidate_dir)
        if (names and r["name"] not in names) or not (cell / "compress.data").exists():
            continue
        out.append((str(r["name"]), int(r.replica), cell))
    if names:  # in the order asked: the first named run first
        out.sort(key=lambda x: (names.index(x[0]), x[1]))
    return out


def run_on(cell: Path, dest: Path, protocol_name: str, replica: int, ps: float) -> dict:
    """Run the z-barostat of ``cell`` on for ``ps`` ps in ``dest``; returns its summary (the
    Lz series is ``dest/more.thermo.csv``)."""
    if (dest / "more.json").exists():
        return json.loads((dest / "more.json").read_text())
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("forcefield.lmp", "compress.data"):
        shutil.copy2(cell / f, dest / f)
    protocol = load_protocol(protocol_name).replica(replica)
    info = read_json(cell / "species.json")
    chunk_steps = min(protocol.steps(protocol.compress_chunk_ps), protocol.steps(ps))
    n_chunks = max(1, math.ceil(protocol.steps(ps) / chunk_steps))
    ps = n_chunks * chunk_steps * protocol.timestep_fs / 1000.0  # what runs: whole chunks
    values = barostat_values(protocol, bool(info["hbond_pairs"]), "more", chunk_steps)
    values["dump_every"] = protocol.steps(ps)  # positions are not needed: one frame at the end
    text = render(
        "in.compress_more.lmp",
        **values,
        extension=1,
        data_in="compress.data",
        n_chunks=n_chunks,
    )
    (dest / "in.more.lmp").write_text(text)
    run = run_input(dest, "in.more.lmp", "more", Launcher(ranks=1))
    series = concat_runs(read_runs(run["log"]))
    series.to_csv(dest / "more.thermo.csv", index=False)
    summary = {"wall_s": run["wall_s"], "ps": ps, "rows": len(series)}
    (dest / "more.json").write_text(json.dumps(summary))
    (dest / "compress.data").unlink()  # the source keeps it; the copy is 0.3-1 MB
    return summary


def run(args: argparse.Namespace) -> None:
    todo = replicas(Path(args.export), args.names)
    out = Path(args.out)
    print(f"{len(todo)} replica(s): {sorted({n for n, _, _ in todo})}", flush=True)

    def one(item: tuple[str, int, Path]) -> None:
        name, k, cell = item
        s = run_on(cell, out / f"{name}-{k}", args.protocol, k, args.ps)
        print(f"{name} replica {k}: {s['ps']:g} ps in {s['wall_s']:.0f} s", flush=True)

    with ThreadPoolExecutor(max_workers=args.jobs or free_cores()) as pool:
        list(pool.map(one, todo))


def windows(lz: np.ndarray, time_ps: np.ndarray, width_ps: float) -> list[tuple[float, float]]:
    """(window end in ps, mean Lz in Å) of consecutive windows ``width_ps`` wide."""
    out = []
    edges = np.arange(time_ps[0], time_ps[-1] + 1e-9, width_ps)
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (time_ps > a) & (time_ps <= b)
        if sel.any():
            out.append((round(float(b - time_ps[0]), 6), float(lz[sel].mean())))
    return out


def collect(out: Path, export: Path, width_ps: float) -> pd.DataFrame:
    """One row per (candidate, replica): the height as made (``lz_made``, the stage's own mean),
    each continuation window's mean (``w<end>``), the continuation's whole mean
    (``lz_more``) and its stderr (``lz_more_se``, :func:`mdxfer.md.thermo.correlated_stderr`),
    the slope of Lz over the continuation (``lz_slope_A_per_100ps``) and the change of the
    potential energy from its first to its last sixth (``pe_change``, kcal/mol)."""
    made = pd.read_csv(export).set_index(["name", "replica"]).lz_chem_A
    rows = []
    for d in sorted(out.iterdir()):
        csv = d / "more.thermo.csv"
        if not csv.exists():
            continue
        name, k = d.name.rsplit("-", 1)
        s = pd.read_csv(csv)
        t, lz = s.Time.to_numpy() / 1000.0, s.Lz.to_numpy()  # fs -> ps
        row = {"name": name, "replica": int(k), "lz_made": float(made.loc[(name, int(k))])}
        for end, mean in windows(lz, t, width_ps):
            row[f"w{end:g}"] = mean
        row["lz_more"] = float(lz[1:].mean())
        row["lz_more_se"] = correlated_stderr(lz[1:])
        # still going somewhere? the straight line through Lz, and the potential energy's change
        # from the first to the last sixth of the continuation (kcal/mol, whole cell)
        row["lz_slope_A_per_100ps"] = float(np.polyfit(t - t[0], lz, 1)[0] * 100.0)
        sixth = max(1, len(s) // 6)
        pe = s.PotEng.to_numpy()
        row["pe_change"] = float(pe[-sixth:].mean() - pe[1 : 1 + sixth].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def replica_sds(t: pd.DataFrame) -> pd.DataFrame:
    """Per candidate, the replicas' SD (Å) of each height column; last row: pooled over the
    candidates (degrees of freedom weighted)."""
    cols = [c for c in t.columns if c == "lz_made" or c[0] == "w" or c == "lz_more"]
    g = t.groupby("name")
    sd = g[cols].std(ddof=1)
    sd.insert(0, "n", g.size())
    dof = sd.n - 1
    pooled = {c: float(np.sqrt((dof * sd[c] ** 2).sum() / dof.sum())) for c in cols}
    sd.loc["pooled"] = {"n": int(sd.n.sum()), **pooled}
    sd["mean_se_more"] = list(g.lz_more_se.mean()) + [float(np.sqrt((t.lz_more_se**2).mean()))]
    return sd


def report(args: argparse.Namespace) -> None:
    t = collect(Path(args.out), Path(args.export), args.window)
    pd.set_option("display.width", 220)
    print("Lz (Å) per replica: as made, then the continuation's windows and its whole mean")
    print(t.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nreplica SD (Å) of each column; mean_se_more: the continuation's own stderr")
    print(replica_sds(t).to_string(float_format=lambda v: f"{v:.3f}"))
    if args.csv:
        t.to_csv(args.csv, index=False, float_format="%.4f")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("export", help="a campaign's `export --replicas` CSV")
    r.add_argument("--names", nargs="*", default=None)
    r.add_argument("--ps", type=float, default=150.0, help="barostat ps to run on")
    r.add_argument("--protocol", default="production")
    r.add_argument("--out", default="runs/lz-states")
    r.add_argument("--jobs", type=int, default=None)
    p = sub.add_parser("report")
    p.add_argument("out")
    p.add_argument("--export", default="data/oracle_panel_replicas5.csv")
    p.add_argument("--window", type=float, default=50.0, help="window width, ps")
    p.add_argument("--csv", default=None)
    args = ap.parse_args()
    {"run": run, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
