"""Liquid densities reached by a protocol's compression stage, against experiment.

Usage: .venv/bin/python benchmarks/density_table.py [--protocol paper] [--ranks 1]
       [--out runs/density] [MOLECULE ...]

For each molecule: build the box, minimise, compress along z (200 atm, 300 K), and report the
mean density and Lz over the last quarter of the stage (the value the NVT stage then uses),
the drift between the last two quarters, and the wall time. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mdxfer.md.interaction import prepare_species, run_compress
from mdxfer.md.lammps import Launcher
from mdxfer.md.protocol import load_protocol

# Experimental liquid densities near 20-25 °C and 1 atm (g/cm³), CRC Handbook values.
EXPERIMENT = {
    "isoprene": ("CC(=C)C=C", 0.681),
    "benzene": ("c1ccccc1", 0.8765),
    "methanol": ("CO", 0.7914),
    "acetonitrile": ("CC#N", 0.7857),
    "acetic acid": ("CC(=O)O", 1.049),
    "pyridine": ("c1ccncc1", 0.9819),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(EXPERIMENT))
    ap.add_argument("--protocol", default="paper")
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--out", default="runs/density")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="protocol override, e.g. --set pdamp_fs=100 --set tail_correction=true",
    )
    args = ap.parse_args()
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = json.loads(value)
    protocol = load_protocol(args.protocol, overrides)
    launcher = Launcher(ranks=args.ranks)
    rows = []
    print(
        "| molecule | SMILES | ρ sim (g/cm³) | ρ exp (g/cm³) | error | Lz (Å) | drift | wall (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.names:
        smiles, rho_exp = EXPERIMENT[name]
        wd = Path(args.out) / f"{protocol.digest()}" / name.replace(" ", "_")
        t0 = time.perf_counter()
        prepare_species(smiles, protocol, wd)
        s = run_compress(wd, protocol, launcher)
        wall = time.perf_counter() - t0
        err = 100 * (s["density_g_cm3"] - rho_exp) / rho_exp
        rows.append(
            {
                "name": name,
                **s,
                "rho_exp": rho_exp,
                "error_pct": err,
                "total_wall_s": round(wall, 1),
            }
        )
        print(
            f"| {name} | `{smiles}` | {s['density_g_cm3']:.3f} ± {s['density_g_cm3_stderr']:.3f} "
            f"| {rho_exp:.3f} | {err:+.1f}% | {s['lz_A']:.1f} | {100 * s['density_drift']:.1f}% "
            f"| {s['wall_s']:.0f} |",
            flush=True,
        )
    (Path(args.out) / f"{protocol.digest()}.json").write_text(
        json.dumps({"protocol": protocol.to_dict(), "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
