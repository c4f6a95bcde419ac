"""Why a liquid comes out too light (issue 11, "physical"): the barostat stage of one
production cell run again with one atom type's Lennard-Jones parameters replaced, everything
else (packing, seed, charges, H-bond term, protocol) unchanged.

The cell is prepared as the production preset prepares it, its ``forcefield.lmp`` is
rewritten with the new ε (kcal/mol) and σ (Å) for that type — every pair with it mixed again
by DREIDING's rules as mdxfer writes them (geometric ε and σ; checked against the file
first) — and :func:`mdxfer.md.interaction.run_compress` runs the 200 atm z-only barostat
stage. Printed: the density (g/cm³) against the unmodified preset's from the same seed.

    .venv/bin/python benchmarks/density_cause.py CO --type H_ --eps 0.030 --sigma 2.50 \
        >> runs/density_cause.log
    .venv/bin/python benchmarks/density_cause.py --table runs/density_cause.log \
        --out data/density_cause.csv

``--table`` puts each run (the JSON lines of the log) beside the unmodified production cell of
the same seed (replica 0 of the E_int table's campaign, ``--cells``) and experiment.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

from mdxfer.md.interaction import prepare_species, run_compress
from mdxfer.md.lammps import Launcher
from mdxfer.md.protocol import load_protocol

#: an LJ pair line as mdxfer writes it: ``pair_coeff I J [lj/cut/coul/long] ε σ  # A B`` (the
#: style is named under pair_style hybrid/overlay, i.e. with charges or H-bonds)
PAIR = re.compile(
    r"^pair_coeff (\d+) (\d+) ((?:lj/cut/coul/long )?)([\d.]+) ([\d.]+)\s+# (\S+) (\S+)$",
    re.M,
)


def replace_lj(text: str, atom_type: str, eps: float, sigma: float) -> tuple[str, int]:
    """``text`` (a forcefield.lmp) with ``atom_type``'s LJ ε, σ replaced and its mixed pairs
    recomputed; the number of pair_coeff lines changed. Raises ValueError when the file's mixed
    pairs do not follow geometric ε and σ (then this rewrite would be wrong)."""
    pairs = PAIR.findall(text)
    own = {a: (float(e), float(s)) for _, _, _, e, s, a, b in pairs if a == b}
    if atom_type not in own:
        raise ValueError(f"no LJ self pair of {atom_type!r} in this force field: {sorted(own)}")
    for _, _, _, e, s, a, b in pairs:
        (ea, sa), (eb, sb) = own[a], own[b]
        if abs(float(e) - math.sqrt(ea * eb)) > 2e-6 or abs(float(s) - math.sqrt(sa * sb)) > 2e-6:
            raise ValueError(f"pair {a} {b} is not mixed geometrically")
    own[atom_type] = (eps, sigma)
    changed = 0

    def mixed(m: re.Match) -> str:
        nonlocal changed
        i, j, style, _, _, a, b = m.groups()
        if atom_type not in (a, b):
            return m.group(0)
        changed += 1
        (ea, sa), (eb, sb) = own[a], own[b]
        return (
            f"pair_coeff {i} {j} {style}{math.sqrt(ea * eb):.6f} {math.sqrt(sa * sb):.6f}"
            f"  # {a} {b}  (density_cause: {atom_type} ε {eps:g}, σ {sigma:g})"
        )

    return PAIR.sub(mixed, text), changed


#: liquid densities at 20–25 °C, 1 atm (g/cm³), as in docs/forcefield.md
EXPERIMENT = {
    "CO": 0.787,
    "CCCCCC": 0.655,
    "CC#N": 0.786,
    "c1ccncc1": 0.982,
    "CC(=O)O": 1.049,
    "c1ccccc1": 0.874,
    "C=CC(=C)C": 0.681,
    "ClCCl": 1.326,
}


def table(log: Path, cells: Path, out: Path) -> None:
    """Write the runs of ``log`` beside the unmodified cells under ``cells`` as CSV ``out``."""
    import pandas as pd

    from mdxfer.molecule import canonical_smiles, inchikey

    rows = []
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        canon = canonical_smiles(r["smiles"])
        found = sorted(cells.glob(f"{inchikey(canon)}-*/compress.json"))
        if not found:
            raise SystemExit(f"no unmodified cell of {r['smiles']} under {cells}")
        base = json.loads(found[0].read_text())
        exp = EXPERIMENT.get(canon, float("nan"))
        rows.append(
            {
                "smiles": r["smiles"],
                "rho_exp": exp,
                "rho_dreiding": base["density_g_cm3"],
                "err_dreiding_pct": 100 * (base["density_g_cm3"] / exp - 1),
                "dreiding_plateau": base.get("plateau"),
                "type": r["type"],
                "eps": r["eps"],
                "sigma": r["sigma"],
                "rho_replaced": r["density_g_cm3"],
                "err_replaced_pct": 100 * (r["density_g_cm3"] / exp - 1),
                "replaced_plateau": r["plateau"],
                "replaced_barostat_ps": r["npt_ps"],
            }
        )
    t = pd.DataFrame(rows)
    t.to_csv(out, index=False, float_format="%.4f")
    print(t.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("smiles", nargs="?")
    ap.add_argument("--type", help="DREIDING type label, e.g. H_ or O_3")
    ap.add_argument("--eps", type=float, help="ε, kcal/mol")
    ap.add_argument("--sigma", type=float, help="σ, Å")
    ap.add_argument("--protocol", default="production")
    ap.add_argument("--out", type=Path, help="work folder (runs/density_cause) or --table's CSV")
    ap.add_argument("--table", type=Path, help="a log of earlier runs: write the table")
    ap.add_argument(
        "--cells",
        type=Path,
        default=Path("runs/qm9-isoprene/a3d6f7f062cd-e1d4ee/species"),
        help="the unmodified production cells (species folders)",
    )
    args = ap.parse_args()
    if args.table:
        table(args.table, args.cells, args.out or Path("data/density_cause.csv"))
        return
    if None in (args.smiles, args.type, args.eps, args.sigma):
        ap.error("give SMILES --type --eps --sigma (or --table LOG)")
    args.out = args.out or Path("runs/density_cause")
    protocol = load_protocol(args.protocol)
    tag = f"{args.type}_{args.eps:g}_{args.sigma:g}"
    workdir = args.out / f"{args.smiles.replace('/', '_')}-{protocol.digest()}-{tag}"
    wd = prepare_species(args.smiles, protocol, workdir)
    ff = wd / "forcefield.lmp"
    text = ff.read_text()
    if "density_cause" not in text:
        text, n = replace_lj(text, args.type, args.eps, args.sigma)
        ff.write_text(text)
        print(f"{ff}: {n} pair_coeff lines with {args.type} changed")
    summary = run_compress(wd, protocol, Launcher(ranks=1))
    print(
        json.dumps(
            {
                "smiles": args.smiles,
                "type": args.type,
                "eps": args.eps,
                "sigma": args.sigma,
                "density_g_cm3": summary["density_g_cm3"],
                "density_stderr": summary.get("density_g_cm3_stderr"),
                "drift": summary.get("density_drift"),
                "npt_ps": summary.get("npt_ps"),
                "plateau": summary.get("plateau"),
                "workdir": str(wd),
            }
        )
    )


if __name__ == "__main__":
    main()
