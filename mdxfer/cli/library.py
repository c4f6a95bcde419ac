"""``mdxfer library build|list``: a library of pretrained source models for shotgun transfer
learning (Yamada et al. 2019)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mdxfer.cli.common import friendly_errors, logged, make_console
from mdxfer.validate import SEED_LIMIT, check_output_dir, check_output_file, cli_number


@friendly_errors
@logged("library build")
def build_cmd(
    out: Path = typer.Option(
        ..., "--out", help="Library folder: manifest.json and one folder per model."
    ),
    properties: str = typer.Option(
        "cv,alpha,gap,zpve,mu",
        "--properties",
        help="QM9 properties, comma-separated (short names cv, alpha, gap, zpve, mu, "
        "homo, lumo, r2, u0, ... or column names).",
    ),
    gnn: int = typer.Option(
        2, "--gnn", min=0, help="Graph networks (random architectures) per property."
    ),
    fp: int = typer.Option(
        2, "--fp", min=0, help="Fingerprint networks (random architectures) per property."
    ),
    n: Optional[int] = typer.Option(
        None,
        "--n",
        min=2,
        help="Molecules (training + validation), the same for every model: QM9 default 4,000; with --data, default all rows.",
    ),
    n_val: Optional[int] = typer.Option(
        None,
        "--n-val",
        min=1,
        help="Of which validation molecules: QM9 default 800; with --data, a fifth.",
    ),
    data: Optional[Path] = typer.Option(
        None,
        "--data",
        help="Build on your own table instead of QM9: a CSV with a SMILES column (--smiles-col); --properties then names its columns.",
    ),
    smiles_col: str = typer.Option(
        "smiles", "--smiles-col", help="With --data: the SMILES column."
    ),
    gnn_epochs: int = typer.Option(
        80, "--gnn-epochs", min=1, help="Maximum epochs of a graph network."
    ),
    fp_epochs: int = typer.Option(
        150, "--fp-epochs", min=1, help="Maximum epochs of a fingerprint network."
    ),
    model_minutes: Optional[float] = typer.Option(
        2.5,
        "--model-minutes",
        callback=cli_number(0, lo_open=True),
        help="Training time limit per model, minutes (best epoch kept).",
    ),
    seed: int = typer.Option(
        0,
        "--seed",
        min=0,
        max=SEED_LIMIT - 1,
        help="Seed of the QM9 subset and of the random architectures.",
    ),
    jobs: int = typer.Option(
        2, "--jobs", min=1, help="Models trained at once (one process and one torch thread each)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train a library of source models over several QM9 properties — or the columns of your
    own table (--data) — (resumable: run it again to finish an interrupted build)."""
    from mdxfer.learn.library import (
        LibrarySettings,
        build_library,
        check_table_columns,
        manifest_table,
        resolve_property,
    )

    check_output_dir(out)
    if data is None:  # QM9: the settings' defaults (4,000 / 800)
        n, n_val = n or LibrarySettings.n, n_val or LibrarySettings.n_val
    if n is not None and n_val is not None and n_val >= n:
        raise typer.BadParameter(f"--n-val {n_val} must be smaller than --n {n}.")
    if gnn + fp == 0:
        raise typer.BadParameter(
            "--gnn 0 and --fp 0 leave nothing to build; ask for at least one model per property.",
            param_hint="'--gnn' / '--fp'",
        )
    console = make_console()
    names = [p.strip() for p in properties.split(",") if p.strip()]
    props = tuple(names if data else (resolve_property(p) for p in names))
    if not props:
        raise typer.BadParameter(
            "names no property; give some, comma-separated (e.g. "
            "cv,alpha,gap, or your table's columns with --data).",
            param_hint="'--properties'",
        )
    if data is not None:
        check_table_columns(data, smiles_col, props)
    s = LibrarySettings(
        properties=props,
        gnn_per_property=gnn,
        fp_per_property=fp,
        n=n,
        n_val=n_val,
        seed=seed,
        gnn_epochs=gnn_epochs,
        fp_epochs=fp_epochs,
        model_time_limit_s=model_minutes * 60 if model_minutes else None,
        data=str(data.resolve()) if data else None,
        smiles_col=smiles_col,
    )
    m = build_library(out, s, jobs=jobs, progress=progress, log=console.print)
    _print_table(manifest_table(m))
    typer.echo(
        f"{len(m['models'])} models in {out}/manifest.json "
        f"({m.get('build_wall_s', 0) / 60:.1f} min of building)"
    )


@friendly_errors
def list_cmd(
    library: Path = typer.Argument(..., help="Library folder (holds manifest.json)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the table as CSV."),
) -> None:
    """Show a library's models with their architecture and validation figures."""
    from mdxfer.learn.library import manifest_table, read_manifest

    if csv is not None:
        check_output_file(csv, "--csv")
    df = manifest_table(read_manifest(library))
    _print_table(df)
    if csv:
        df.to_csv(csv, index=False)


def _print_table(df) -> None:
    import sys

    from rich.table import Table

    t = Table()
    for c in df.columns:
        t.add_column(c)
    for _, r in df.iterrows():
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in r])
    make_console(stderr=False, width=None if sys.stdout.isatty() else 160).print(t)


def register(app: typer.Typer) -> None:
    """Attach ``mdxfer library build|list`` to ``app``."""
    group = typer.Typer(
        help="Libraries of pretrained source models for shotgun transfer.", no_args_is_help=True
    )
    group.command("build")(build_cmd)
    group.command("list")(list_cmd)
    app.add_typer(group, name="library")
