"""``mdxfer campaign init | run | status | export | table | retry | profile``.

Parsl is imported inside ``run`` and ``retry`` only; printing goes to stderr (rich), machine
output (``status --json``, ``profile``) to stdout.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import typer

from mdxfer.cli.common import EXIT_FAILED_TASKS, console, friendly_errors, styled
from mdxfer.errors import CampaignError
from mdxfer.validate import check_output_file

FILE_ARG = typer.Argument(..., help="The campaign TOML file.")


def _sigterm_as_interrupt() -> None:
    """A scheduler's SIGTERM, Ctrl-C or ``kill -INT`` stop the run cleanly: unfinished tasks
    go back to pending (:func:`mdxfer.campaign.runner.request_stop`). SIGINT is set explicitly,
    so ``kill -INT`` also stops a run started in the background (where the shell ignores it)."""
    from mdxfer.campaign.runner import request_stop

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def _fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


@friendly_errors
def init_cmd(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Campaign file to write (e.g. campaign.toml)."
    ),
    profile: str = typer.Option(
        "local", help="Execution profile: local, slurm, slurm-local, slurm-mpi, pbs, pbs-mpi."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented example campaign file (local profile, quick protocol, 3 candidates)."""
    from mdxfer.campaign.spec import write_example

    check_output_file(out)
    write_example(out, profile, force)
    console.print(f"wrote {out}; run it with: mdxfer campaign run {out}")


def _print_progress(msg: str) -> None:
    console.print(msg, highlight=False, markup=False, soft_wrap=True)


def _run(file: Path, quiet: bool) -> None:
    from mdxfer.campaign.runner import Campaign

    _sigterm_as_interrupt()
    with Campaign.open(file) as camp:
        if not camp.has_candidates():
            raise CampaignError(
                f"Campaign {file} has no candidates (none in the file, none in its "
                f"database {camp.spec.database}): add [candidates] smiles = "
                '["CCO", ...] or file = "candidates.smi".'
            )
        console.print(
            f"campaign {camp.spec.name}: profile {camp.spec.profile_name}, protocol "
            f"{camp.protocol.name} ({camp.digest}), database {camp.spec.database}",
            highlight=False,
        )
        eta = camp.eta()
        if eta["remaining"]:
            console.print(_eta_line(eta), highlight=False, markup=False, soft_wrap=True)
        try:
            report = camp.run(progress=None if quiet else _print_progress)
        except KeyboardInterrupt:
            console.print(
                styled("interrupted: ", "yellow", "finished results are kept; run again to resume.")
            )
            sys.exit(130)
        console.print(
            f"run {report.run_id}: {report.done} done, {report.failed} failed of "
            f"{report.candidates} submitted; stages run {report.stages_ran}, skipped "
            f"(already finished) {report.stages_skipped}; {report.wall_s:.1f} s",
            highlight=False,
        )
        st = camp.status()
        _print_status(st)
    failed = st["counts"]["failed"]
    if failed:
        console.print(
            styled(
                "finished with failures: ",
                "yellow",
                f"{failed} of {st['candidates']} candidate(s) failed (reasons above; "
                "`mdxfer campaign retry FILE` after fixing the cause); exit status "
                f"{EXIT_FAILED_TASKS}.",
            ),
            soft_wrap=True,
        )
        sys.exit(EXIT_FAILED_TASKS)


@friendly_errors
def run_cmd(
    file: Path = FILE_ARG,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No line per finished candidate."),
) -> None:
    """Start or resume a campaign: run every pending candidate.

    Exit status: 0 when every candidate is done, 3 when the run ended with failed candidates
    (this run's or earlier ones'), 130 when interrupted, 1 (2: a bad option) for an error."""
    _run(file, quiet)


@friendly_errors
def retry_cmd(
    file: Path = FILE_ARG,
    run: bool = typer.Option(
        True, "--run/--no-run", help="Run them now (default) or only mark them pending."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No line per finished candidate."),
) -> None:
    """Mark failed tasks (not invalid SMILES) and tasks interrupted by a killed run pending
    again, and run them (exit status as for `campaign run`)."""
    from mdxfer.campaign.runner import Campaign

    with Campaign.open(file) as camp:
        failed, interrupted = camp.requeue()  # refused while a run holds the lock
    console.print(
        f"{failed} failed and {interrupted} interrupted task(s) are pending again", highlight=False
    )
    if run and failed + interrupted:
        _run(file, quiet)


def _eta_line(eta: dict[str, Any]) -> str:
    """'left: N candidate(s), ≈ X CPU-hours, ETA ≈ Y with W LAMMPS runs side by side (basis)'."""
    hours = eta["eta_s"] / 3600
    when = f"{hours:.1f} h" if hours >= 1.5 else f"{eta['eta_s'] / 60:.0f} min"
    partner = " incl. the partner box" if eta.get("partner_left") else ""
    runs_left, full = eta.get("replicas_left"), eta["remaining"] * eta.get("replicas", 1)
    reps = (
        f" (≈ {runs_left:.1f} of {full} replica runs' work)"
        if runs_left is not None and abs(runs_left - full) > 0.05
        else ""
    )
    return (
        f"left: {eta['remaining']} candidate(s){reps}, ≈ {eta['cpu_s'] / 3600:.2f} CPU-hours of "
        f"LAMMPS{partner}; ETA ≈ {when} with {eta['workers']} run(s) side by side "
        f"(per candidate: {eta['basis'] or 'unknown'})"
    )


def _print_status(st: dict[str, Any]) -> None:
    from rich.table import Table

    c = st["counts"]
    running = (
        f"{c['running']} running"
        if st["runner_active"] or not c["running"]
        else f"{c['running']} interrupted (`campaign run` resumes them)"
    )
    console.print(
        styled(
            str(st["campaign"]),
            "bold",
            f": {st['candidates']} candidates — {c['done']} done, "
            f"{c['failed']} failed, {running}, {c['pending']} pending "
            f"({100 * st['progress']:.0f}% finished); partner {st['partner']} "
            f"{st['partner_state']}; runner {'active' if st['runner_active'] else 'idle'}",
        ),
        soft_wrap=True,
    )
    if st.get("jobs"):
        jobs = st["jobs"]
        states: dict[str, int] = {}
        for j in jobs:
            states[j["state"]] = states.get(j["state"], 0) + 1
        console.print(
            f"blocks of run {jobs[0]['run_id']} ({jobs[0]['provider']}): "
            + ", ".join(f"{n} {s}" for s, n in states.items())
            + f"; {st['jobs_total']} job(s) in all runs",
            highlight=False,
        )
        for j in jobs:
            worker = "worker connected" if j["connected_at"] else "no worker yet"
            console.print(
                f"  block {j['block']} ({j['executor']}): job {j['job_id']} "
                f"{j['state']}, {worker}" + (f" — {j['message']}" if j["message"] else ""),
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
    eta = st.get("eta") or {}
    if eta.get("remaining"):
        console.print(_eta_line(eta), highlight=False, markup=False, soft_wrap=True)
    if st["mean_wall_s"]:
        console.print(
            f"mean LAMMPS time per finished candidate {st['mean_wall_s']:.1f} s "
            "(its own box + the stack, summed over replicas)",
            highlight=False,
        )
    if st["best"]:
        table = Table(title="best so far (most negative E_int)")
        for col in ("smiles", "name", "E_int (kcal/mol)"):
            table.add_column(col)
        for r in st["best"]:
            reps = (
                f" ({r['n_replicas']} replicas, SD {_fmt(r['E_int_replica_sd'])})"
                if (r.get("n_replicas") or 1) > 1
                else ""
            )
            table.add_row(
                r["smiles"],
                r["name"] or "",
                f"{_fmt(r['E_int'])} ± {_fmt(r['E_int_stderr'])}{reps}",
            )
        console.print(table)
    if st["failures"]:
        table = Table(title="failures")
        for col in ("smiles", "stage", "class", "reason"):
            table.add_column(col, overflow="fold")
        for r in st["failures"]:
            table.add_row(
                r["smiles"], r["failed_stage"] or "", r["error_class"] or "", r["error"] or ""
            )
        console.print(table)


@friendly_errors
def status_cmd(
    file: Path = FILE_ARG,
    top: int = typer.Option(5, "--top", min=0, help="How many of the best results to show."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON on stdout."),
) -> None:
    """Counts per state, failures with reasons, best results so far, progress."""
    from mdxfer.campaign.runner import Campaign

    with Campaign.open(file, readonly=True) as camp:
        st = camp.status(top=top)
    if as_json:
        typer.echo(json.dumps(st, indent=2, default=str))
    else:
        _print_status(st)


@friendly_errors
def export_cmd(
    file: Path = FILE_ARG,
    out: Path = typer.Option(..., "--out", "-o", help="CSV file to write."),
    replicas: bool = typer.Option(
        False,
        "--replicas",
        help="One row per finished replica (seed, E_int, stderrs, E_cross, densities, "
        "folders) instead of one per candidate.",
    ),
) -> None:
    """One CSV row per candidate: smiles, status, E_int, E_int_stderr, error, provenance
    (``--replicas``: one row per finished replica)."""
    from mdxfer.campaign.runner import Campaign

    check_output_file(out)
    with Campaign.open(file, readonly=True) as camp:
        n = camp.export_replicas(out) if replicas else camp.export(out)
    console.print(f"wrote {n} row(s) to {out}", highlight=False)


@friendly_errors
def table_cmd(
    source: Path = typer.Argument(
        ..., help="A campaign TOML file, or a CSV written by `mdxfer campaign export`."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="CSV file to write (e.g. data/eint_isoprene.csv)."
    ),
) -> None:
    """The shipped E_int table: finished candidates only, sorted by name, with the store's
    task key and the protocol digest of every row (docs/eint_table.md)."""
    from mdxfer.campaign.table import make_table

    check_output_file(out)
    n, total, ceilings = make_table(source, out)
    console.print(f"wrote {n} finished of {total} candidate(s) to {out}", highlight=False)
    for line in ceilings:
        console.print(line, highlight=False, markup=False)


@friendly_errors
def profile_cmd(
    file: Path = FILE_ARG,
    script: bool = typer.Option(
        True,
        "--script/--no-script",
        help="Also print the batch job script (dry run: nothing is submitted).",
    ),
) -> None:
    """Show the execution profile as resolved, the LAMMPS command and the job script."""
    import tomli_w

    from mdxfer.campaign.profiles import (
        concurrency,
        make_launcher,
        render_job_script,
        resolve_profile,
    )
    from mdxfer.campaign.spec import load_spec

    spec = load_spec(file)
    profile = resolve_profile(spec)
    typer.echo(f"# profile {spec.profile_name} as resolved for {file}")
    typer.echo(tomli_w.dumps({"execution": profile}, multiline_strings=True))
    typer.echo(f"# LAMMPS command: {make_launcher(profile).describe()} -in in.<stage>.lmp ...")
    typer.echo(f"# concurrent LAMMPS runs at full scale: {concurrency(profile)}")
    if script and profile["executor"].get("kind") != "threads":
        typer.echo("# job script for one block (not submitted):")
        typer.echo(render_job_script(profile))


def register(app: typer.Typer) -> None:
    """Attach ``mdxfer campaign ...`` to ``app``."""
    group = typer.Typer(
        name="campaign",
        no_args_is_help=True,
        add_completion=False,
        help="Many interaction-energy simulations through Parsl (local, Slurm, PBS), kept in a "
        "SQLite database and resumable.",
    )
    group.command("init")(init_cmd)
    group.command("run")(run_cmd)
    group.command("status")(status_cmd)
    group.command("export")(export_cmd)
    group.command("table")(table_cmd)
    group.command("retry")(retry_cmd)
    group.command("profile")(profile_cmd)
    app.add_typer(group, name="campaign")
