"""The MD oracle's figures of merit: replicas of a panel of diverse candidates (issue 11).

    python benchmarks/bench_oracle.py run    [--protocol production] [--replicas 3] [--out runs/oracle]
    python benchmarks/bench_oracle.py report [--out runs/oracle]

``run`` simulates the partner once and every (candidate, replica) cell and stack with one MPI
rank per job, as many jobs side by side as there are free cores (each job as soon as the stages
it needs are done; replica 0 of every candidate before replica 1), resumable: finished stages
are not run again. Every finished replica is appended to ``data/oracle_panel.csv`` at once.
``report`` prints, per preset and candidate: E_int per replica, replica SD, mean reported stderr,
stderr/SD ratio, E_cross, densities, wall and CPU-hours per candidate-replica, and CPU-hours to
± 1 kcal/mol = CPU-hours × SD²; and the SD across candidates.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from eint_terms import pooled  # a sibling script (its folder is on the path when run)

from mdxfer.md.cost import log_work
from mdxfer.md.interaction import (
    DEFAULT_PARTNER,
    ESTIMATOR_COLUMN,
    prepare_species,
    prepare_stack,
    read_json,
    replica_dirs,
    replica_result,
    run_box,
    run_compress,
    run_nvt,
)
from mdxfer.md.lammps import Launcher, free_cores
from mdxfer.md.protocol import load_protocol
from mdxfer.md.thermo import summarize
from mdxfer.molecule import canonical_smiles

ROOT = Path(__file__).resolve().parents[1]
#: A chemically diverse panel (name, SMILES): hydrocarbon, aromatic, alcohol, nitrile, acid,
#: aromatic amine, halogenated. Six of them have measured liquid densities (docs/forcefield.md).
PANEL = [
    ("methanol", "CO"),
    ("benzene", "c1ccccc1"),
    ("hexane", "CCCCCC"),
    ("acetonitrile", "CC#N"),
    ("acetic_acid", "CC(=O)O"),
    ("pyridine", "c1ccncc1"),
    ("dichloromethane", "ClCCl"),
]
CSV = ROOT / "data" / "oracle_panel.csv"
FIELDS = [
    "protocol",
    "protocol_digest",
    "name",
    "smiles",
    "replica",
    "seed",
    "estimator",
    "E_int",
    "E_int_stderr",
    "E_int_pe",
    "E_int_pe_stderr",
    "E_int_etotal",
    "E_int_etotal_stderr",
    "E_cross",
    "E_cross_stderr",
    "E_partner_stderr",
    "density_chem_g_cm3",
    "density_partner_g_cm3",
    "density_stack_g_cm3",
    "lz_chem_A",
    "lz_partner_A",
    "lz_stack_A",
    "n_molecules_chem",
    "stack_start_ps",
    "stack_drift_z",
    "wall_s",
    "cpu_s",
    "partner_cpu_s",
    "mdxfer_version",
    "lammps_version",
    "E_int_stderr_run",
    "derived_from",
    "E_cross_stderr_run",
]
SCATTER = ROOT / "mdxfer" / "md" / "replica_scatter.json"


def _ranks(command: str) -> int:
    argv = shlex.split(command)
    return int(argv[argv.index("-n") + 1]) if "-n" in argv else 1


def cpu_seconds(*dirs: Path) -> float:
    """CPU seconds LAMMPS used in ``dirs`` (all stage logs): Σ loop time × MPI tasks × the
    "% CPU use" LAMMPS reports for each run. On a machine shared by more jobs than cores the
    wall time overstates the cost (a 1-rank run at 28 % CPU use), this does not."""
    return cpu_seconds_of([log for d in dirs for log in sorted(Path(d).glob("*.log"))])


def cpu_seconds_of(logs: list[Path]) -> float:
    """:func:`cpu_seconds` of these LAMMPS log files (missing ones count 0): the cost model's
    reading of each log (:func:`mdxfer.md.cost.log_work`), times its MPI ranks."""
    return sum(seconds * ranks for _, seconds, ranks in map(log_work, logs))


def panel_row(rec: dict, name: str, k: int, protocol, cdir: Path, sdir: Path, pdir: Path) -> dict:
    """One CSV row of the panel: a replica's result plus its name, replica index and cost."""
    return dict(
        rec,
        name=name,
        replica=k,
        protocol=protocol.name,
        protocol_digest=protocol.digest(),
        stack_start_ps=rec["nvt_start_ps"]["stack"],
        stack_drift_z=rec["drift_z"]["stack"],
        cpu_s=cpu_seconds(cdir, sdir),
        partner_cpu_s=cpu_seconds(pdir),
    )


def append_row(row: dict) -> None:
    """Append ``row`` to the panel CSV; a file written before a column of :data:`FIELDS`
    existed is first rewritten with it (empty in its old rows), so columns stay aligned."""
    CSV.parent.mkdir(parents=True, exist_ok=True)
    new = not CSV.exists()
    if not new:
        with open(CSV, newline="") as fh:
            header = next(csv.reader(fh), [])
        if set(FIELDS) - set(header):
            pd.read_csv(CSV).reindex(columns=FIELDS).to_csv(CSV, index=False)
    with open(CSV, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


def read_panel() -> pd.DataFrame:
    """The panel CSV, one row per (protocol digest, name, replica) (two runs sharing a partner
    may both append a replica: the first row is kept)."""
    df = pd.read_csv(CSV)
    return df.drop_duplicates(subset=["protocol_digest", "name", "replica"]).reset_index(drop=True)


def done_rows() -> set[tuple[str, str, int]]:
    if not CSV.exists():
        return set()
    df = pd.read_csv(CSV)
    return {(d, n, int(r)) for d, n, r in zip(df.protocol_digest, df.name, df.replica)}


def finished_replicas(out: Path, replicas: int, only=None):
    """(name, k, candidate dir, stack dir) of every panel replica whose cell and stack NVT runs
    are finished (``only``: these panel names)."""
    for name, _ in PANEL:
        if only and name not in only:
            continue
        for k in range(replicas):
            cdir, sdir = replica_dirs(out / name, k)
            if (cdir / "nvt.json").exists() and (sdir / "nvt.json").exists():
                yield name, k, cdir, sdir


def nvt_summary(d: Path, protocol) -> dict:
    """Statistics of ``d``'s stored NVT series, recomputed with the protocol's estimator."""
    return series_summary(pd.read_csv(d / "nvt.thermo.csv"), protocol)


def series_summary(series: pd.DataFrame, protocol, upto_ps: float | None = None) -> dict:
    """Statistics of an NVT thermo series with the protocol's estimator; with ``upto_ps``, of
    its first ``upto_ps`` ps only (what a run that long would have given: same inputs, seed)."""
    if upto_ps is not None:
        series = series[series.Time - series.Time.iloc[0] <= upto_ps * 1000.0 + 1e-6]
    return summarize(
        series, protocol.nvt_discard_fraction, detect=ESTIMATOR_COLUMN[protocol.estimator]
    )


def run(args: argparse.Namespace) -> None:
    protocol = load_protocol(args.protocol)
    out = Path(args.out) / f"{protocol.name}-{protocol.digest()}"
    panel = [p for p in PANEL if not args.only or p[0] in args.only]
    smiles = dict(panel)
    one = Launcher(ranks=1)
    pdir = out / "partner"
    prepare_species(canonical_smiles(DEFAULT_PARTNER), protocol, pdir, role="partner")
    finished = done_rows()
    lock = threading.Lock()
    done: set[tuple] = set()  # finished jobs
    failed: set[tuple] = set()  # (name, k) that failed
    # jobs in order of preference; each runs when the jobs it needs are done
    jobs: list[tuple] = [("pcomp", None, None), ("pnvt", None, None)]
    pending: list[tuple[str, int]] = []
    for k in range(args.first_replica, args.replicas):
        for name, _ in panel:
            if (protocol.digest(), name, k) not in finished:
                jobs += [("comp", name, k), ("stack", name, k), ("nvt", name, k)]
                pending.append((name, k))
    needs = {
        "pcomp": lambda n, k: [],
        "pnvt": lambda n, k: [("pcomp", None, None)],
        "comp": lambda n, k: [],
        "stack": lambda n, k: [("pcomp", None, None), ("comp", n, k)],
        "nvt": lambda n, k: [("comp", n, k)],
    }
    if protocol.stack_source == "nvt":
        needs["stack"] = lambda n, k: [("pnvt", None, None), ("nvt", n, k)]

    def dirs(name: str, k: int) -> tuple[Path, Path]:
        return replica_dirs(out / name, k)

    if args.wait_partner:  # another run simulates the partner: only wait for its files
        jobs[:] = [j for j in jobs if j[0] not in ("pcomp", "pnvt")]

    def partner_finished(kind: str) -> None:
        if args.wait_partner:
            for k, f in (("pcomp", "compress.json"), ("pnvt", "nvt.json")):
                if (pdir / f).exists():
                    done.add((k, None, None))

    def next_job():
        with lock:
            partner_finished("")
            jobs[:] = [j for j in jobs if (j[1], j[2]) not in failed]
            for i, j in enumerate(jobs):
                if all(d in done for d in needs[j[0]](j[1], j[2])):
                    return jobs.pop(i)
            if not jobs and pending and args.wait_partner:
                finalize()
                return "wait" if pending else None
            return "wait" if jobs else None

    def finalize() -> None:
        """Append every replica whose three cells are finished (under ``lock``)."""
        partner_finished("")
        if ("pnvt", None, None) not in done:
            return
        for name, k in list(pending):
            if ("stack", name, k) in done and ("nvt", name, k) in done:
                prot = protocol.replica(k)
                cdir, sdir = dirs(name, k)
                rec = replica_result(smiles[name], cdir, pdir, sdir, prot, one)
                append_row(panel_row(rec, name, k, protocol, cdir, sdir, pdir))
                pending.remove((name, k))
                print(
                    f"  -> {name} replica {k}: E_int {rec['E_int']:.2f} ± "
                    f"{rec['E_int_stderr']:.2f}, E_cross {rec['E_cross']:.2f}",
                    flush=True,
                )

    def worker(wid: int) -> None:
        while True:
            job = next_job()
            if job is None:
                return
            if job == "wait":
                time.sleep(5)
                continue
            kind, name, k = job
            t0 = time.time()
            prot = protocol.replica(k) if k is not None else protocol
            try:
                if kind == "pcomp":
                    run_compress(pdir, protocol, one)
                elif kind == "pnvt":
                    run_nvt(pdir, protocol, one)
                elif kind == "comp":
                    cdir, _ = dirs(name, k)
                    prepare_species(smiles[name], prot, cdir)
                    run_compress(cdir, prot, one)
                elif kind == "nvt":
                    run_nvt(dirs(name, k)[0], prot, one)
                else:
                    cdir, sdir = dirs(name, k)
                    prepare_stack(cdir, pdir, prot, sdir)
                    run_box(sdir, prot, one)
                with lock:
                    done.add(job)
                    finalize()
                print(
                    f"[{time.strftime('%H:%M:%S')}] worker {wid}: {kind} {name or 'partner'} "
                    f"{'' if k is None else k} done in {time.time() - t0:.0f} s",
                    flush=True,
                )
            except Exception as exc:  # keep the rest of the panel going
                print(
                    f"[{time.strftime('%H:%M:%S')}] worker {wid}: {kind} {name} {k} FAILED: {exc}",
                    flush=True,
                )
                if name is None:
                    raise
                with lock:
                    failed.add((name, k))

    n = args.workers or free_cores()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def report(args: argparse.Namespace) -> None:
    if not CSV.exists():
        sys.exit(f"{CSV} does not exist yet: run 'bench_oracle.py run' first.")
    df = read_panel()
    pd.set_option("display.width", 200)
    for (prot, digest), g in df.groupby(["protocol", "protocol_digest"]):
        print(f"\n== protocol {prot} ({digest}), estimator {g.estimator.iloc[0]} ==")
        rows = []
        for name, m in g.groupby("name", sort=False):
            sd = m.E_int.std(ddof=1) if len(m) > 1 else np.nan
            se = m.E_int_stderr.mean()
            cpu_h = m.cpu_s.mean() / 3600
            rows.append(
                {
                    "name": name,
                    "n": len(m),
                    "E_int": m.E_int.mean(),
                    "replica_sd": sd,
                    "mean_stderr": se,
                    "stderr/sd": se / sd if sd > 0 else np.nan,
                    "sd_pe": m.E_int_pe.std(ddof=1) if len(m) > 1 else np.nan,
                    "sd_etotal": m.E_int_etotal.std(ddof=1) if len(m) > 1 else np.nan,
                    "E_cross": m.E_cross.mean(),
                    "sd_cross": m.E_cross.std(ddof=1) if len(m) > 1 else np.nan,
                    "rho_chem": m.density_chem_g_cm3.mean(),
                    "lz_chem": m.lz_chem_A.mean(),
                    "wall_min": m.wall_s.mean() / 60,
                    "cpu_h": cpu_h,
                    "cpu_h_to_1kcal": cpu_h * sd**2 if sd > 0 else np.nan,
                }
            )
        t = pd.DataFrame(rows)
        print(t.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        pooled = np.sqrt(np.nanmean(t.replica_sd**2)) if t.replica_sd.notna().any() else np.nan
        print(
            f"pooled replica SD {pooled:.2f} kcal/mol; SD across candidates (means) "
            f"{t.E_int.std(ddof=1):.2f}; ratio {pooled / t.E_int.std(ddof=1):.2f} (target ≤ 0.25)"
        )
        cpu = t.cpu_h.mean()
        print(
            f"CPU-hours per candidate-replica {cpu:.3f} (partner once: "
            f"{g.partner_cpu_s.iloc[0] / 3600:.3f}); CPU-hours to ± 1 kcal/mol "
            f"{cpu * pooled**2:.2f}; partner stderr (common offset) "
            f"{g.E_partner_stderr.iloc[0]:.2f} kcal/mol"
        )


def collect(args: argparse.Namespace) -> None:
    """Rewrite data/oracle_panel.csv from every finished replica on disk, with the statistics
    recomputed from the stored NVT series by the current estimator (same raw data; runs started
    with an older mdxfer appended their own figures)."""
    protocol = load_protocol(args.protocol)
    out = Path(args.out) / f"{protocol.name}-{protocol.digest()}"
    pdir = out / "partner"

    def legs_of(d: Path) -> dict:
        nvt = read_json(d / "nvt.json")
        nvt.update(nvt_summary(d, protocol))
        return {"compress": read_json(d / "compress.json"), "nvt": nvt}

    rows = []
    for name, smi in PANEL:
        for k in range(args.replicas):
            cdir, sdir = replica_dirs(out / name, k)
            if not all((d / "nvt.json").exists() for d in (cdir, sdir, pdir)):
                continue
            prot = protocol.replica(k)
            rec = replica_result(
                smi,
                cdir,
                pdir,
                sdir,
                prot,
                Launcher(ranks=1),
                legs={"candidate": legs_of(cdir), "partner": legs_of(pdir), "stack": legs_of(sdir)},
            )
            rows.append(panel_row(rec, name, k, protocol, cdir, sdir, pdir))
    others = read_panel() if CSV.exists() else pd.DataFrame()
    if not others.empty:  # other protocols' rows stay as they are
        others = others[others.protocol_digest != protocol.digest()]
    CSV.unlink(missing_ok=True)
    for row in others.to_dict("records"):
        append_row(row)
    for row in rows:
        append_row(row)
    print(
        f"wrote {len(rows)} replicas of {protocol.digest()} to {CSV} "
        f"(and kept {len(others)} of other protocols)"
    )


def partial(args: argparse.Namespace) -> None:
    """Replicas whose candidate cell and stack are finished, before the partner is: E_tot − E_chem
    and E_cross per replica (the partner's energy is one constant shared by all of them, so the
    replica SD and the differences between candidates are already final)."""
    protocol = load_protocol(args.protocol)
    out = Path(args.out) / f"{protocol.name}-{protocol.digest()}"
    key = protocol.estimator
    rows = []
    for name, k, cdir, sdir in finished_replicas(out, args.replicas):
        # statistics recomputed from the stored series with the current estimator
        c, st = nvt_summary(cdir, protocol), nvt_summary(sdir, protocol)
        comp = read_json(cdir / "compress.json")
        rows.append(
            {
                "name": name,
                "replica": k,
                "E_tot_minus_E_chem": st[key] - c[key],
                "stderr": float(np.hypot(st[f"{key}_stderr"], c[f"{key}_stderr"])),
                "E_cross": st.get("ecross"),
                "E_cross_stderr": st.get("ecross_stderr"),
                "rho_chem": c["density_g_cm3"],
                "plateau": comp["plateau"],
                "drift": comp["density_drift"],
                "stack_start_ps": st.get("start_ps"),
                "stack_drift_z": st.get(f"{key}_drift_z"),
                "cpu_h": cpu_seconds(cdir, sdir) / 3600,
            }
        )
    t = pd.DataFrame(rows)
    t.insert(0, "protocol_digest", protocol.digest())
    if args.csv:
        t.to_csv(args.csv, index=False, float_format="%.4f")
    pd.set_option("display.width", 200)
    print(t.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for name, m in t.groupby("name", sort=False):
        if len(m) > 1:
            print(
                f"{name}: replica SD of E_tot − E_chem {m.E_tot_minus_E_chem.std(ddof=1):.2f}, "
                f"of E_cross {m.E_cross.std(ddof=1):.2f}; mean stderr {m.stderr.mean():.2f} "
                f"(n = {len(m)})"
            )


def components(args: argparse.Namespace) -> None:
    """Where the replica scatter of E_int comes from: per (candidate, replica) the candidate
    cell's energy E_chem, the stack's E_tot, E_cross and the stack's self part E_tot − E_cross
    (estimator energy, kcal/mol), then per candidate the SD over replicas of each and of
    E_int; E_chem is put on the stack's molecule count (replicas may pack one molecule more)."""
    protocol = load_protocol(args.protocol)
    out = Path(args.out) / f"{protocol.name}-{protocol.digest()}"
    key = protocol.estimator
    rows = []
    for name, k, cdir, sdir in finished_replicas(out, args.replicas):
        c, st = nvt_summary(cdir, protocol), nvt_summary(sdir, protocol)
        n = read_json(cdir / "species.json").get("n_molecules", np.nan)
        rows.append(
            {
                "name": name,
                "replica": k,
                "n_mol": n,
                "E_chem": c[key],
                "E_chem_per_mol": c[key] / n,
                "E_stack": st[key],
                "E_cross": st.get("ecross", np.nan),
                "E_self": st[key] - st.get("ecross", np.nan),
                "E_tot_minus_E_chem": st[key] - c[key],
                "se_chem": c[f"{key}_stderr"],
                "se_stack": st[f"{key}_stderr"],
                "harm_chem": c["pe"] - c["pe_nh"],
                "harm_stack": st["pe"] - st["pe_nh"],
            }
        )
    t = pd.DataFrame(rows)
    pd.set_option("display.width", 220)
    print(t.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    summary = []
    for name, m in t.groupby("name", sort=False):
        if len(m) < 2:
            continue
        n_ref = m.n_mol.mean()
        chem = m.E_chem_per_mol * n_ref
        summary.append(
            {
                "name": name,
                "n": len(m),
                "sd_E_int": m.E_tot_minus_E_chem.std(ddof=1),
                "sd_E_chem": chem.std(ddof=1),
                "sd_E_stack": (m.E_stack - m.E_chem + chem).std(ddof=1),
                "corr_stack_chem": np.corrcoef(m.E_stack, m.E_chem)[0, 1] if len(m) > 2 else np.nan,
                "sd_E_cross": m.E_cross.std(ddof=1),
                "sd_E_self": m.E_self.std(ddof=1),
                "sd_harm": (m.harm_stack - m.harm_chem).std(ddof=1),
                "mean_se_chem": m.se_chem.mean(),
                "mean_se_stack": m.se_stack.mean(),
            }
        )
    if summary:
        print(pd.DataFrame(summary).to_string(index=False, float_format=lambda v: f"{v:.2f}"))


def _run_stderr(m: pd.DataFrame, quantity: str = "E_int") -> pd.Series:
    """In-run stderr of ``quantity`` in each row (rows written before its calibration existed
    hold it as ``<quantity>_stderr``)."""
    run, total = f"{quantity}_stderr_run", f"{quantity}_stderr"
    if run not in m:
        return m[total]
    return m[run].fillna(m[total]) if total in m else m[run]


def calibration(g: pd.DataFrame, quantity: str = "E_int") -> dict:
    """σ_between of ``quantity`` (kcal/mol) over one protocol's panel rows ``g`` (columns
    ``name``, the quantity and its in-run stderr): ``sigma``, ``dof``, and a leave-one-candidate
    -out check — per candidate, the stderr calibrated with the σ of the other candidates against
    that candidate's replica SD (``table``), and their pooled ratio (``loo_ratio``, target
    0.7–1.5; the in-run stderr's own pooled ratio is ``run_ratio``)."""
    from mdxfer.md.scatter import pooled_between_sd

    groups = {
        name: (list(m[quantity]), list(_run_stderr(m, quantity)))
        for name, m in g.groupby("name", sort=False)
    }
    sigma, dof = pooled_between_sd(list(groups.values()))
    rows, var_cal, var_run, var_sd = [], 0.0, 0.0, 0.0
    for name, (vals, ses) in groups.items():
        if len(vals) < 2:
            continue
        s_loo, _ = pooled_between_sd([v for k, v in groups.items() if k != name])
        run = float(np.sqrt(np.mean(np.square(ses))))
        cal = float(np.hypot(run, s_loo))
        sd = float(np.std(vals, ddof=1))
        rows.append(
            {
                "name": name,
                "n": len(vals),
                "replica_sd": sd,
                "stderr_run": run,
                "sigma_loo": s_loo,
                "stderr_calibrated": cal,
                "ratio_run": run / sd,
                "ratio_calibrated": cal / sd,
            }
        )
        var_cal += (len(vals) - 1) * cal**2
        var_run += (len(vals) - 1) * run**2
        var_sd += (len(vals) - 1) * sd**2
    return {
        "sigma": sigma,
        "dof": dof,
        "table": pd.DataFrame(rows),
        "loo_ratio": float(np.sqrt(var_cal / var_sd)) if var_sd else float("nan"),
        "run_ratio": float(np.sqrt(var_run / var_sd)) if var_sd else float("nan"),
    }


#: σ keys of each calibrated quantity in mdxfer/md/replica_scatter.json: sigma_between<s>_kcal,
#: dof<s>, loo_pooled_ratio<s>
SUFFIX = {"E_int": "", "E_cross": "_cross", "E_int_unrelaxed": "_unrelaxed"}
#: keys of quantities calibrated on their own panel, kept when E_int's σ is measured again
ADDED_SUFFIXES = ("_unrelaxed", "_unrelaxed_kcal")


def calibrate(args: argparse.Namespace) -> None:
    """Measure σ_between of E_int and E_cross (the replica scatter the in-run stderr misses) per
    protocol from the panel, check it leave-one-candidate-out, and store it in
    mdxfer/md/replica_scatter.json. Rows from data/oracle_panel.csv, or (``--export``, with
    ``--protocol`` naming its preset) a campaign's per-replica export."""
    import json

    if args.export:
        df = pd.read_csv(args.export)
        # each replica runs under its own digest (its seed): keep the rows of the preset's
        # replicas, under replica 0's digest
        preset = load_protocol(args.protocol)
        ks = df.replica.astype(int)
        ours = df.protocol_digest == [preset.replica(k).digest() for k in ks]
        if not ours.all():
            print(f"{(~ours).sum()} row(s) of another protocol than {args.protocol!r}: left out")
        df = df[ours].assign(protocol=args.protocol, protocol_digest=preset.digest())
        path = Path(args.export).resolve()
        source = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    else:
        df, source = read_panel(), "data/oracle_panel.csv"
    table = json.loads(SCATTER.read_text()) if SCATTER.exists() else {}
    only_added = "E_int" not in args.quantities  # add σ of other quantities to an entry
    for (prot, digest), g in df.groupby(["protocol", "protocol_digest"]):
        entry = {}
        for quantity in args.quantities:
            if quantity not in g or g[quantity].isna().all():
                continue
            c = calibration(g.dropna(subset=[quantity]), quantity)
            if c["dof"] < args.min_dof:
                print(
                    f"{prot} ({digest}) {quantity}: {c['dof']} degrees of freedom, fewer than "
                    f"{args.min_dof}: not stored"
                )
                continue
            print(
                f"== {prot} ({digest}) {quantity}: σ_between {c['sigma']:.2f} kcal/mol from "
                f"{c['dof']} degrees of freedom =="
            )
            print(c["table"].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
            print(
                f"pooled stderr/SD: in-run {c['run_ratio']:.2f}, calibrated leave-one-"
                f"candidate-out {c['loo_ratio']:.2f} (target 0.7–1.5)"
            )
            suffix = SUFFIX[quantity]
            entry[f"sigma_between{suffix}_kcal"] = round(c["sigma"], 2)
            entry[f"dof{suffix}"] = c["dof"]
            entry[f"loo_pooled_ratio{suffix}"] = round(c["loo_ratio"], 2)
            if only_added:
                entry[f"n_replicas{suffix}"] = int(len(g))
                entry[f"source{suffix}"] = f"{source} (benchmarks/bench_oracle.py calibrate)"
        if not entry or ("sigma_between_kcal" not in entry and not only_added):
            continue
        try:
            family = (
                load_protocol(prot).family_digest()
                if load_protocol(prot).digest() == digest
                else None
            )
        except Exception:  # noqa: BLE001 - a preset renamed or removed since
            family = None
        if family is None:
            print(f"{prot} ({digest}): not the digest of today's preset {prot!r}: not stored")
            continue
        old = table.get(family, {})
        if only_added:
            if not old:
                print(f"{prot} ({digest}): no E_int σ stored for this family to add to")
                continue
            table[family] = {**old, **entry}
            continue
        if old.get("n_replicas", 0) > len(g) and not args.force:
            print(
                f"{prot} ({digest}): the stored σ comes from {old['n_replicas']} replicas "
                f"({old.get('source')}), more than these {len(g)}: kept (--force replaces it)"
            )
            continue
        table.pop(digest, None)
        table[family] = {
            **{k: v for k, v in old.items() if any(k.endswith(x) for x in ADDED_SUFFIXES)},
            "protocol": prot,
            "protocol_digest": digest,
            **entry,
            "n_candidates": int((g.groupby("name").size() > 1).sum()),
            "n_replicas": int(len(g)),
            "source": f"{source} (benchmarks/bench_oracle.py calibrate)",
        }
    SCATTER.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {SCATTER.relative_to(ROOT)}")


def wall(args: argparse.Namespace) -> None:
    """Paired test of the interface walls: the stack NVT of finished replicas run again from the
    same relaxed stack with ``interface_wall_A`` set (same cells, same partner), E_int and
    E_cross per replica with and without walls, and their replica SDs."""
    import dataclasses
    import shutil

    protocol = load_protocol(args.protocol)
    variant = dataclasses.replace(
        protocol, interface_wall_A=args.tolerance, interface_wall_k=args.k
    )
    out = Path(args.out) / f"{protocol.name}-{protocol.digest()}"
    pdir = out / "partner"
    key = protocol.estimator
    todo = [
        (name, k, cdir, sdir, sdir.parent / f"stack_wall{args.tolerance:g}")
        for name, k, cdir, sdir in finished_replicas(out, args.replicas, args.only)
    ]

    def one(item) -> None:
        name, k, cdir, sdir, wdir = item
        if not (wdir / "nvt.json").exists():
            try:
                wdir.mkdir()  # the claim: another process running this replica made it
            except FileExistsError:
                print(
                    f"{wdir} exists without nvt.json: another run has it (or it died: "
                    "delete the folder)",
                    flush=True,
                )
                return
            for f in (
                "species.json",
                "forcefield.lmp",
                "system.data",
                "compress.data",
                "compress.json",
            ):
                shutil.copy2(sdir / f, wdir / f)
            t0 = time.time()
            run_nvt(wdir, variant.replica(k), Launcher(ranks=1))
            print(
                f"[{time.strftime('%H:%M:%S')}] {name} {k} walls done in {time.time() - t0:.0f} s",
                flush=True,
            )

    if not args.report_only:
        threads = []
        queue = list(todo)
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    item = queue.pop(0)
                one(item)

        for _ in range(args.workers):
            threads.append(threading.Thread(target=worker))
            threads[-1].start()
        for t in threads:
            t.join()
    p = nvt_summary(pdir, protocol)
    rows = []
    for name, k, cdir, sdir, wdir in todo:
        if not (wdir / "nvt.json").exists():
            continue
        c, s0, s1 = (nvt_summary(d, protocol) for d in (cdir, sdir, wdir))
        rows.append(
            {
                "name": name,
                "replica": k,
                "E_int": s0[key] - c[key] - p[key],
                "E_int_wall": s1[key] - c[key] - p[key],
                "se_wall": float(np.hypot(s1[f"{key}_stderr"], c[f"{key}_stderr"])),
                "E_cross": s0.get("ecross"),
                "E_cross_wall": s1.get("ecross"),
                "drift_z_wall": s1.get(f"{key}_drift_z"),
                "cross_drift_z_wall": s1.get("ecross_drift_z"),
            }
        )
    t = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(t.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    for name, m in t.groupby("name", sort=False):
        if len(m) > 1:
            print(
                f"{name}: replica SD of E_int {m.E_int.std(ddof=1):.2f} -> with walls "
                f"{m.E_int_wall.std(ddof=1):.2f}; of E_cross {m.E_cross.std(ddof=1):.2f} -> "
                f"{m.E_cross_wall.std(ddof=1):.2f} (n = {len(m)})"
            )
    if args.csv:
        t.to_csv(args.csv, index=False, float_format="%.4f")


def cells(args: argparse.Namespace) -> None:
    """Single-species cells only (compress + NVT), a protocol variant against the panel's cells:
    per replica the estimator energy E_chem, its within-run stderr, density, plateau drift and
    barostat time, then per candidate the replica SD of E_chem (per cell and per 100 molecules)
    beside the production panel's."""
    overrides = dict(kv.split("=", 1) for kv in args.set)
    overrides = {k: _toml_value(v) for k, v in overrides.items()}
    base = load_protocol(args.protocol)
    variant = load_protocol(args.protocol, overrides)
    key = variant.estimator
    root = Path(args.out)
    out = root / f"cells-{variant.digest()}"
    todo = [
        (name, smi, k) for k in range(args.replicas) for name, smi in PANEL if name in args.only
    ]
    queue, lock = list(todo), threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                name, smi, k = queue.pop(0)
            d = out / name / f"replica_{k:02d}"
            t0 = time.time()
            prepare_species(canonical_smiles(smi), variant.replica(k), d)
            run_box(d, variant.replica(k), Launcher(ranks=1))
            print(
                f"[{time.strftime('%H:%M:%S')}] {name} {k} cell done in {time.time() - t0:.0f} s",
                flush=True,
            )

    if not args.report_only:
        threads = [threading.Thread(target=worker) for _ in range(args.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    rows = []
    for label, prot, folder in (
        ("base", base, root / f"{base.name}-{base.digest()}"),
        ("variant", variant, out),
    ):
        for name, _, k in todo:
            d = (
                replica_dirs(folder / name, k)[0]
                if label == "base"
                else folder / name / f"replica_{k:02d}"
            )
            if not (d / "nvt.thermo.csv").exists():
                continue
            series = pd.read_csv(d / "nvt.thermo.csv")
            s, comp = series_summary(series, prot), read_json(d / "compress.json")
            run_ps = (series.Time.iloc[-1] - series.Time.iloc[0]) / 1000.0
            upto = {
                f"E_chem_{ps:g}ps": series_summary(series, prot, ps)[key]
                for ps in args.upto
                if run_ps >= ps
            }
            rows.append(
                {
                    **upto,
                    "set": label,
                    "name": name,
                    "replica": k,
                    "E_chem": s[key],
                    "se": s[f"{key}_stderr"],
                    # replicas may differ by a molecule (the slab count follows each seed's
                    # conformer volume): compare energies per 100 molecules as well
                    "n_mol": read_json(d / "species.json")["n_molecules"],
                    "density": comp["density_g_cm3"],
                    "lz": comp["lz_A"],
                    "drift": comp["density_drift"],
                    "npt_ps": comp["npt_ps"],
                    "cpu_s": cpu_seconds(d),
                }
            )
    t = pd.DataFrame(rows)
    t["E_chem_per100"] = 100.0 * t["E_chem"] / t["n_mol"]
    pd.set_option("display.width", 200)
    print(f"variant {variant.digest()} = {args.protocol} with {overrides}")
    print(t.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    g = t.groupby(["name", "set"]).agg(
        n=("E_chem", "size"),
        sd_E_chem=("E_chem", "std"),
        sd_per100=("E_chem_per100", "std"),
        mean_se=("se", "mean"),
        sd_density=("density", "std"),
        sd_lz=("lz", "std"),
        density=("density", "mean"),
        npt_ps=("npt_ps", "mean"),
        cpu_s=("cpu_s", "mean"),
    )
    print(g.to_string(float_format=lambda v: f"{v:.3f}"))
    firsts = [c for c in t.columns if c.startswith("E_chem_") and c.endswith("ps")]
    if firsts:  # the same runs cut short: does a longer NVT bring the replicas together?
        print("replica SD of E_chem from the first part of each NVT run (kcal/mol):")
        print(t.groupby(["name", "set"])[firsts].std().to_string(float_format=lambda v: f"{v:.2f}"))
    if args.csv:
        t.to_csv(args.csv, index=False, float_format="%.4f")


def adopt(args: argparse.Namespace) -> None:
    """Start the panel of a protocol that differs from a finished one only in its interface walls:
    copy the finished panel's partner and candidate cells (same cell digest: the very boxes the
    new protocol runs) and the stacks that ``wall`` re-ran with the new protocol's walls (their
    build and minimisation do not use the walls; their NVT ran with them, under the new
    protocol's replica digest) into the new protocol's folder, relabelled to its digest."""
    import dataclasses
    import json
    import shutil

    target = load_protocol(args.protocol)
    base = dataclasses.replace(target, interface_wall_A=0.0)
    if base.digest() == target.digest() or base.cell_digest() != target.cell_digest():
        raise SystemExit(f"{args.protocol} has no interface walls to adopt runs for.")
    src = Path(args.out) / f"{base.name}-{base.digest()}"
    dst = Path(args.out) / f"{target.name}-{target.digest()}"
    tag = f"stack_wall{target.interface_wall_A:g}"

    def copy(a: Path, b: Path) -> bool:
        if b.exists() or not (a / "nvt.json").exists():
            return False
        shutil.copytree(a, b)
        return True

    copy(src / "partner", dst / "partner")
    n_cells = n_stacks = 0
    for name, _ in PANEL:
        for k in range(args.replicas):
            cdir, sdir = replica_dirs(src / name, k)
            ncdir, nsdir = replica_dirs(dst / name, k)
            n_cells += copy(cdir, ncdir)
            wall_dir = sdir.parent / tag
            prot = target.replica(k)
            if not (wall_dir / "nvt.json").exists() or nsdir.exists():
                continue
            if read_json(wall_dir / "nvt.json").get("protocol_digest") != prot.digest():
                print(f"{wall_dir}: its NVT ran with another protocol; not adopted")
                continue
            shutil.copytree(wall_dir, nsdir)
            info = read_json(nsdir / "species.json")
            info.update(
                protocol=prot.to_dict(),
                protocol_digest=prot.digest(),
                bottom=str(ncdir.resolve()),
                top=str((dst / "partner").resolve()),
            )
            (nsdir / "species.json").write_text(json.dumps(info, indent=1))
            comp = read_json(nsdir / "compress.json")
            comp["protocol_digest"] = prot.digest()
            (nsdir / "compress.json").write_text(json.dumps(comp, indent=1))
            n_stacks += 1
    print(f"{dst}: adopted {n_cells} cell(s) and {n_stacks} wall stack(s) from {src}")


def export_replicas(path: Path) -> tuple[list[tuple[str, int, Path, Path]], Path]:
    """The replicas of a campaign's per-replica export (``mdxfer campaign export --replicas``):
    (name, replica, candidate dir, stack dir) of each, and the campaign's one partner dir."""
    t = pd.read_csv(path)
    t["name"] = t["name"].fillna(t["smiles"])
    partners = set(t.partner_dir.dropna())
    if len(partners) != 1:
        raise SystemExit(f"{path}: expected one partner directory, found {len(partners)}")
    reps = [
        (str(r.name), int(r.replica), Path(r.candidate_dir), Path(r.stack_dir))
        for r in t.itertuples()
    ]
    return reps, Path(partners.pop())


def nvt_cpu_h(cdir: Path, sdir: Path, protocol, cell_ps: float, stack_ps: float) -> float:
    """LAMMPS CPU-hours of one replica had its cell NVT stopped after ``cell_ps`` and its stack
    NVT after ``stack_ps``: the barostat and minimisation stages as logged, each NVT run's loop
    time scaled by the share of its steps kept. NaN when the logs are not on disk."""
    if not (cdir / "nvt.log").exists() or not (sdir / "nvt.log").exists():
        return float("nan")
    cell = cpu_seconds_of([cdir / "nvt.log"]) * min(1.0, cell_ps / protocol.nvt_ps)
    stack = cpu_seconds_of([sdir / "nvt.log"]) * min(1.0, stack_ps / protocol.stack_nvt_ps)
    fixed = cpu_seconds_of(sorted(cdir.glob("compress*.log")) + sorted(sdir.glob("compress*.log")))
    return (fixed + cell + stack) / 3600


def truncated_rows(series: dict, partner: dict, protocol, cell_ps, stack_ps) -> pd.DataFrame:
    """Per (cell length, stack length, candidate, replica): E_int and E_cross from the first
    ``cell_ps`` ps of the cell's NVT series and the first ``stack_ps`` ps of the stack's
    (``series``: (name, replica) → (cell series, stack series, cell dir, stack dir);
    ``partner``: the partner's summary, a common offset)."""
    key = protocol.estimator
    rows = []
    for cps in cell_ps:
        for sps in stack_ps:
            for (name, k), (cser, sser, cdir, sdir) in series.items():
                c = series_summary(cser, protocol, cps)
                st = series_summary(sser, protocol, sps)
                rows.append(
                    {
                        "cell_ps": cps,
                        "stack_ps": sps,
                        "name": name,
                        "replica": k,
                        "E_int": st[key] - c[key] - partner[key],
                        "se_run": float(np.hypot(st[f"{key}_stderr"], c[f"{key}_stderr"])),
                        "E_cross": st.get("ecross"),
                        "se_cross": st.get("ecross_stderr"),
                        "cpu_h": nvt_cpu_h(cdir, sdir, protocol, cps, sps)
                        if cdir is not None
                        else float("nan"),
                    }
                )
    return pd.DataFrame(rows)


def length_summary(t: pd.DataFrame, boot: int = 0, seed: int = 0) -> pd.DataFrame:
    """Per (cell length, stack length) of :func:`truncated_rows`: pooled replica SDs of E_int and
    E_cross, mean within-run stderr, SD across the candidates' means, CPU-hours per replica and
    to ± 1 kcal/mol; against the longest pair (the runs as made), the mean shift of the
    candidates' E_int means, its SD over candidates and their Spearman correlation; with
    ``boot`` > 0, the 95 % interval of (pooled E_int SD − the longest pair's) from resampling
    each candidate's replicas with replacement, the same draws for both (a paired bootstrap)."""
    from scipy.stats import spearmanr

    full = t[(t.cell_ps == t.cell_ps.max()) & (t.stack_ps == t.stack_ps.max())]
    full = full.set_index(["name", "replica"])
    ref = full.E_int.groupby("name").mean()
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(boot):
        draws.append(
            {
                name: rng.integers(0, len(g), len(g))
                for name, g in full.groupby("name")
                if len(g) > 1
            }
        )
    out = []
    for (cps, sps), g in t.groupby(["cell_ps", "stack_ps"]):
        g = g.set_index(["name", "replica"]).loc[full.index]
        means = g.E_int.groupby("name").mean()
        by_candidate = g.reset_index().rename(columns={"name": "smiles"})  # pooled's grouping
        sd, _, dof = pooled(by_candidate, "E_int")
        cpu = float(g.cpu_h.mean())
        row = {
            "cell_nvt_ps": cps,
            "stack_nvt_ps": sps,
            "candidates": int(means.size),
            "dof": dof,
            "E_int_replica_sd": sd,
            "E_int_stderr_run": float(g.se_run.mean()),
            "spread_E_int": float(means.std()),
            "E_int_shift": float((means - ref).mean()),
            "shift_sd": float((means - ref).std()),
            "spearman_vs_full": float(spearmanr(means, ref.loc[means.index])[0]),
            "E_cross_replica_sd": pooled(by_candidate, "E_cross")[0],
            "E_cross_stderr_run": float(g.se_cross.mean()),
            "spread_E_cross": float(g.E_cross.groupby("name").mean().std()),
            "cpu_h": cpu,
            "cpu_h_to_1": cpu * sd**2,
        }
        if draws:
            diffs = []
            for d in draws:
                va, vb = [], []
                for name, idx in d.items():
                    va.append(g.E_int.loc[name].to_numpy()[idx].var(ddof=1))
                    vb.append(full.E_int.loc[name].to_numpy()[idx].var(ddof=1))
                diffs.append(np.sqrt(np.mean(va)) - np.sqrt(np.mean(vb)))
            row["sd_diff_lo"], row["sd_diff_hi"] = np.percentile(diffs, [2.5, 97.5])
        out.append(row)
    return pd.DataFrame(out)


def per_candidate_sd(t: pd.DataFrame) -> pd.DataFrame:
    """E_int replica SD (kcal/mol) of each candidate (rows, with the number of replicas) at
    each (cell, stack) length of :func:`truncated_rows` (columns ``cell/stack``)."""
    t = t.assign(length=[f"{c:g}/{s:g}" for c, s in zip(t.cell_ps, t.stack_ps)])
    out = t.pivot_table(index="name", columns="length", values="E_int", aggfunc="std")
    out.insert(0, "replicas", t.groupby("name").replica.nunique())
    return out


def shorter(args: argparse.Namespace) -> None:
    """Shorter NVT runs at no cost: every finished replica analysed as if the candidate cell's
    NVT had stopped after ``--cell-ps`` and the stack's after ``--stack-ps`` (the first part of
    the same trajectory is exactly what the shorter run would have produced: same inputs, same
    seed). Per length pair (:func:`length_summary`): replica SDs of E_int and E_cross, the
    within-run stderr, the CPU-hours that length costs, the shift of E_int against the runs as
    made and, with ``--bootstrap``, whether the change in replica SD is more than chance.
    Replicas from the panel's folders under ``--out``, or (``--export``) from a campaign's
    per-replica export."""
    protocol = load_protocol(args.protocol)
    if args.export:
        reps, pdir = export_replicas(Path(args.export))
        if args.replica_ids:
            reps = [r for r in reps if r[1] in set(args.replica_ids)]
    else:
        out = Path(args.out) / f"{protocol.name}-{protocol.digest()}"
        reps, pdir = list(finished_replicas(out, args.replicas)), out / "partner"
    series = {
        (n, k): (pd.read_csv(c / "nvt.thermo.csv"), pd.read_csv(s / "nvt.thermo.csv"), c, s)
        for n, k, c, s in reps
    }
    t = truncated_rows(series, nvt_summary(pdir, protocol), protocol, args.cell_ps, args.stack_ps)
    summary = length_summary(t, boot=args.bootstrap)
    pd.set_option("display.width", 220)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.per_candidate:
        print("\nE_int replica SD per candidate (columns: cell/stack NVT ps)")
        print(per_candidate_sd(t).to_string(float_format=lambda v: f"{v:.2f}"))
    if args.csv:
        summary.to_csv(args.csv, index=False, float_format="%.3f")


def derive(args: argparse.Namespace) -> None:
    """Panel rows of a protocol whose candidate-cell and stack NVT runs are shorter than those of
    a finished panel (``--source-set``: the overrides that give the finished panel's protocol
    from ``--protocol``), computed from the first part of the finished runs — exactly what the
    shorter runs would have produced (same inputs and seeds; LAMMPS is deterministic on one
    rank). Every other number must agree. The rows replace that protocol's rows in
    data/oracle_panel.csv, marked ``derived_from`` = the source digest; ``cpu_s`` counts the
    shortened NVT runs' share of the measured loop time."""
    import dataclasses

    from mdxfer.md.interaction import combine

    overrides = {k: _toml_value(v) for k, v in (kv.split("=", 1) for kv in args.source_set)}
    target = load_protocol(args.protocol)
    source = load_protocol(args.protocol, overrides)
    same = dataclasses.replace(source, nvt_ps=target.nvt_ps, stack_nvt_ps=target.stack_nvt_ps)
    if same.digest() != target.digest():
        raise SystemExit("the two protocols differ in more than nvt_ps and stack_nvt_ps")
    if target.nvt_ps > source.nvt_ps or target.stack_nvt_ps > source.stack_nvt_ps:
        raise SystemExit("the target's NVT runs must not be longer than the source's")
    out = Path(args.out) / f"{source.name}-{source.digest()}"
    pdir = out / "partner"

    def leg(d: Path, ps: float | None) -> dict:
        nvt = dict(read_json(d / "nvt.json"))
        nvt.update(series_summary(pd.read_csv(d / "nvt.thermo.csv"), target, ps))
        return {"compress": read_json(d / "compress.json"), "nvt": nvt}

    smiles = dict(PANEL)
    fc, fs = target.nvt_ps / source.nvt_ps, target.stack_nvt_ps / source.stack_nvt_ps
    rows = []
    for name, k, cdir, sdir in finished_replicas(out, args.replicas):
        prot = target.replica(k)
        info = read_json(sdir / "species.json")
        cinfo = read_json(cdir / "species.json")
        meta = {
            "smiles": cinfo["smiles"],
            "input_smiles": smiles[name],
            "n_molecules": prot.n_molecules,
            "n_molecules_chem": cinfo["n_molecules"],
            "seed": prot.seed,
            "box_xy_A2": info["box_A"][0] * info["box_A"][1],
        }
        rec = combine(
            leg(cdir, target.nvt_ps), leg(pdir, None), leg(sdir, target.stack_nvt_ps), prot, meta
        )
        cpu = (
            cpu_seconds(cdir, sdir)
            - (1 - fc) * cpu_seconds_of([cdir / "nvt.log"])
            - (1 - fs) * cpu_seconds_of([sdir / "nvt.log"])
        )
        rows.append(
            dict(
                rec,
                name=name,
                replica=k,
                protocol=target.name,
                protocol_digest=target.digest(),
                stack_start_ps=rec["nvt_start_ps"]["stack"],
                stack_drift_z=rec["drift_z"]["stack"],
                cpu_s=cpu,
                partner_cpu_s=cpu_seconds(pdir),
                derived_from=source.digest(),
                mdxfer_version=read_json(sdir / "replica_result.json").get("mdxfer_version")
                if (sdir / "replica_result.json").exists()
                else None,
            )
        )
    others = read_panel() if CSV.exists() else pd.DataFrame()
    if not others.empty:
        others = others[others.protocol_digest != target.digest()]
    CSV.unlink(missing_ok=True)
    for row in others.to_dict("records") + rows:
        append_row(row)
    print(
        f"wrote {len(rows)} derived replicas of {target.digest()} (from {source.digest()}) to {CSV}"
    )


def check_derived(args: argparse.Namespace) -> None:
    """Run one derived replica for real (``--protocol``'s cell, stack and, reused, partner box
    in its own folder) and compare its E_int, E_cross and stderrs with the row ``derive`` wrote:
    the derivation claims they are the same numbers."""
    import shutil

    protocol = load_protocol(args.protocol)
    out = Path(args.out) / f"{protocol.name}-{protocol.digest()}"
    rows = read_panel()
    row = rows[
        (rows.protocol_digest == protocol.digest())
        & (rows.name == args.name)
        & (rows.replica == args.replica)
    ]
    if row.empty or not isinstance(row.derived_from.iloc[0], str):
        raise SystemExit(
            f"no derived row of {args.name} replica {args.replica} for {protocol.digest()} in {CSV}"
        )
    source = Path(args.out) / f"{protocol.name}-{row.derived_from.iloc[0]}"
    pdir = out / "partner"
    if not pdir.exists():
        shutil.copytree(source / "partner", pdir)  # same cell digest: the same box
    smi = dict(PANEL)[args.name]
    prot = protocol.replica(args.replica)
    cdir, sdir = replica_dirs(out / args.name, args.replica)
    one = Launcher(ranks=1)
    prepare_species(canonical_smiles(DEFAULT_PARTNER), protocol, pdir, role="partner")
    run_box(pdir, protocol, one)
    prepare_species(canonical_smiles(smi), prot, cdir)
    run_box(cdir, prot, one)
    prepare_stack(cdir, pdir, prot, sdir)
    run_box(sdir, prot, one)
    rec = replica_result(smi, cdir, pdir, sdir, prot, one)
    d = row.iloc[0]
    print(f"{args.name} replica {args.replica}, protocol {protocol.digest()}:")
    for key in (
        "E_int",
        "E_int_stderr_run",
        "E_cross",
        "E_cross_stderr",
        "density_chem_g_cm3",
        "lz_stack_A",
    ):
        print(
            f"  {key:20s} run {rec[key]: .6f}   derived {float(d[key]): .6f}   "
            f"difference {rec[key] - float(d[key]): .2e}"
        )


def _toml_value(text: str):
    """A ``--set`` value read as TOML (numbers, booleans, quoted strings)."""
    import tomllib

    return tomllib.loads(f"v = {text}")["v"]


def panel_parser(sub, name: str, **kw) -> argparse.ArgumentParser:
    """A subcommand with the panel's common options: --protocol, --replicas, --out."""
    parser = sub.add_parser(name, **kw)
    parser.add_argument("--protocol", default="production")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "runs" / "oracle"))
    return parser


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = panel_parser(sub, "run")
    r.add_argument("--workers", type=int, default=None)
    r.add_argument("--only", nargs="*", help="panel names to run (default: all)")
    r.add_argument(
        "--first-replica",
        type=int,
        default=0,
        help="skip replicas below this one (another run is doing them)",
    )
    r.add_argument(
        "--wait-partner",
        action="store_true",
        help="another run simulates the partner box: wait for it instead",
    )
    p = sub.add_parser("report")
    p.add_argument("--out", default=str(ROOT / "runs" / "oracle"))
    q = panel_parser(sub, "partial", help=partial.__doc__.splitlines()[0])
    q.add_argument("--csv", default=None, help="also write the table to this CSV file")
    panel_parser(sub, "collect", help=collect.__doc__.splitlines()[0])
    panel_parser(sub, "components", help=components.__doc__.splitlines()[0])
    cal = sub.add_parser("calibrate", help=calibrate.__doc__.splitlines()[0])
    cal.add_argument("--export", default=None, help="a campaign's `export --replicas` CSV")
    cal.add_argument(
        "--quantities",
        nargs="+",
        default=["E_int", "E_cross"],
        choices=list(SUFFIX),
        help="what to calibrate; without E_int, the σ are added to the family's stored entry",
    )
    cal.add_argument(
        "--force", action="store_true", help="replace a σ measured on more replicas than these"
    )
    cal.add_argument(
        "--protocol", default="production", help="with --export: the preset its rows ran"
    )
    cal.add_argument(
        "--min-dof",
        type=int,
        default=4,
        help="store σ only when the panel gives at least this many degrees of freedom",
    )
    w = panel_parser(sub, "wall", help=wall.__doc__.splitlines()[0])
    w.add_argument("--only", nargs="*")
    w.add_argument("--tolerance", type=float, default=1.0, help="interface_wall_A, Å")
    w.add_argument("--k", type=float, default=5.0, help="interface_wall_k, kcal/mol/Å²")
    w.add_argument("--workers", type=int, default=1)
    w.add_argument("--report-only", action="store_true")
    w.add_argument("--csv", default=None)
    sh = panel_parser(sub, "shorter", help=shorter.__doc__.splitlines()[0])
    sh.add_argument("--cell-ps", type=float, nargs="*", default=[60.0, 40.0, 30.0])
    sh.add_argument("--stack-ps", type=float, nargs="*", default=[100.0, 70.0, 50.0])
    sh.add_argument("--csv", default=None)
    sh.add_argument("--export", default=None, help="a campaign's `export --replicas` CSV")
    sh.add_argument("--bootstrap", type=int, default=0, help="paired bootstrap draws")
    sh.add_argument("--per-candidate", action="store_true", help="also each one's SD")
    sh.add_argument(
        "--replica-ids", type=int, nargs="*", default=None, help="with --export: only these"
    )
    de = sub.add_parser("derive", help=derive.__doc__.splitlines()[0])
    de.add_argument("--protocol", default="production")
    de.add_argument(
        "--source-set",
        nargs="*",
        default=[],
        help="overrides of --protocol that give the finished panel's protocol",
    )
    de.add_argument("--replicas", type=int, default=3)
    de.add_argument("--out", default=str(ROOT / "runs" / "oracle"))
    ck = panel_parser(sub, "check-derived", help=check_derived.__doc__.splitlines()[0])
    ck.add_argument("--name", default="acetonitrile")
    ck.add_argument("--replica", type=int, default=0)
    panel_parser(sub, "adopt", help=adopt.__doc__.splitlines()[0])
    ce = sub.add_parser("cells", help=cells.__doc__.splitlines()[0])
    ce.add_argument("--protocol", default="production")
    ce.add_argument("--set", nargs="*", default=[], help="protocol overrides, key=value (TOML)")
    ce.add_argument("--only", nargs="*", default=["benzene", "pyridine"])
    ce.add_argument("--replicas", type=int, default=3)
    ce.add_argument("--out", default=str(ROOT / "runs" / "oracle"))
    ce.add_argument("--workers", type=int, default=2)
    ce.add_argument("--report-only", action="store_true")
    ce.add_argument("--csv", default=None)
    ce.add_argument(
        "--upto",
        nargs="*",
        type=float,
        default=[],
        help="also E_chem from the first PS of each NVT run (a shorter run, same trajectory)",
    )
    args = ap.parse_args()
    {
        "run": run,
        "report": report,
        "partial": partial,
        "collect": collect,
        "components": components,
        "calibrate": calibrate,
        "wall": wall,
        "cells": cells,
        "adopt": adopt,
        "shorter": shorter,
        "derive": derive,
        "check-derived": check_derived,
    }[args.cmd](args)


if __name__ == "__main__":
    main()
