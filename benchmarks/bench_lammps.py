"""One MD stage through mdxfer and as a bare `lmp` run of the very same input.

Usage: .venv/bin/python benchmarks/bench_lammps.py [--smiles CC(=C)C=C] [--ranks 1]
       [--ps 10] [--from DIR] [--out runs/bench_lammps]

Builds a box of 100 molecules (paper box), compresses it until liquid (``--compress-ps`` with
Pdamp 100 fs), or takes an already compressed box with ``--from DIR`` (a directory holding
species.json and compress.data). Then runs the NVT stage for ``--ps`` ps twice: once with
:func:`mdxfer.md.interaction.run_nvt` (input rendering, LAMMPS, log parsing, statistics) and
once as the bare command line on the identical input file. Prints atoms, steps, atom-steps/s,
ns/day for each and the ratio (mdxfer's overhead).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import time
from pathlib import Path

from mdxfer.md.interaction import prepare_species, read_json, run_compress, run_nvt
from mdxfer.md.lammps import Launcher
from mdxfer.md.protocol import Protocol, load_protocol


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smiles", default="CC(=C)C=C")
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--ps", type=float, default=5.0, help="NVT length (ps)")
    ap.add_argument("--compress-ps", type=float, default=40.0)
    ap.add_argument("--from", dest="src", default=None)
    ap.add_argument("--out", default="runs/bench_lammps")
    args = ap.parse_args()
    launcher = Launcher(ranks=args.ranks)
    out = Path(args.out)
    if args.src:
        src = Path(args.src)
        info = read_json(src / "species.json")
        base = Protocol.from_dict(info["protocol"])
        work = out / "mdxfer"
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(src, work, ignore=shutil.ignore_patterns("nvt*", "*.dcd"))
    else:
        base = load_protocol("paper", {"pdamp_fs": 100.0, "compress_ps": args.compress_ps})
        work = prepare_species(args.smiles, base, out / "mdxfer")
        t0 = time.perf_counter()
        comp = run_compress(work, base, launcher)
        print(
            f"compressed in {time.perf_counter() - t0:.0f} s to {comp['density_g_cm3']:.3f} g/cm³"
        )
    protocol = dataclasses.replace(
        base, nvt_ps=args.ps, thermo_every_fs=100.0, dump_every_fs=1000.0
    )
    for stale in work.glob("nvt*"):
        stale.unlink()
    t0 = time.perf_counter()
    summary = run_nvt(work, protocol, launcher)
    t_mdxfer = time.perf_counter() - t0

    bare = out / "bare"
    if bare.exists():
        shutil.rmtree(bare)
    bare.mkdir(parents=True)
    for name in ("compress.data", "forcefield.lmp", "in.nvt.lmp"):
        shutil.copy(work / name, bare / name)
    argv = launcher.argv() + ["-in", "in.nvt.lmp", "-log", "bare.log", "-screen", "none"]
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=bare, env=launcher.environment(), check=True)
    t_bare = time.perf_counter() - t0

    n_atoms = read_json(work / "species.json")["n_atoms"]
    steps = protocol.steps(args.ps)
    print(
        f"system: {args.smiles if not args.src else args.src}, {n_atoms} atoms, "
        f"{summary['density_g_cm3']:.3f} g/cm³, {steps} steps of {protocol.timestep_fs:g} fs, "
        f"{launcher.describe()}"
    )
    print(f"{'run':<8} {'wall (s)':>9} {'atom-steps/s':>14} {'ns/day':>8}")
    for name, t in (("mdxfer", t_mdxfer), ("bare lmp", t_bare)):
        rate = n_atoms * steps / t
        ns_day = steps * protocol.timestep_fs * 1e-6 / t * 86400
        print(f"{name:<8} {t:>9.2f} {rate:>14.3e} {ns_day:>8.2f}")
    print(f"overhead ratio mdxfer / bare = {t_mdxfer / t_bare:.3f}")


if __name__ == "__main__":
    main()
