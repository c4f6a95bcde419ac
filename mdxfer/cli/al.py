"""``mdxfer al run | status | report | benchmark | oracle``: the active-learning loop.

torch, RDKit, scikit-learn and Parsl are imported inside the commands only.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from mdxfer.cli.common import console, friendly_errors, logged, styled, warn
from mdxfer.validate import SEED_LIMIT, check_output_dir, check_output_file, cli_number

al_app = typer.Typer(
    name="al",
    no_args_is_help=True,
    add_completion=False,
    help="Active learning: rank a candidate pool with the transferred GCN, simulate the most "
    "promising diverse batch, retrain, repeat.",
)

FILE_ARG = typer.Argument(..., help="Campaign TOML file with an \\[active_learning] section.")


def _say(msg: str) -> None:
    console.print(msg, highlight=False, markup=False, soft_wrap=True)


@friendly_errors
def run_cmd(
    file: Path = FILE_ARG,
    max_rounds: Optional[int] = typer.Option(
        None, "--max-rounds", min=0, help="Stop after this many rounds in this call (resume later)."
    ),
    report: bool = typer.Option(
        True, "--report/--no-report", help="Rewrite the Markdown report after every round."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the final summary."),
    select_only: bool = typer.Option(
        False,
        "--select-only",
        help="Choose the next round's molecules, print them and stop before simulating (the next run simulates them).",
    ),
) -> None:
    """Start or resume the loop: transfer on all results, rank the pool, pick, simulate, repeat.

    A killed loop resumes at the round it was in (state lives in the campaign database).
    """
    from mdxfer.al.loop import load_al_config, open_loop
    from mdxfer.al.report import write_report
    from mdxfer.al.state import LoopLock
    from mdxfer.campaign.runner import request_stop

    # as `campaign run`: a stop during an MD round ends its campaign run cleanly
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    cfg = load_al_config(file)
    log = (lambda m: None) if quiet else _say
    s = cfg.settings
    console.print(
        f"active learning on {cfg.pool_file.name}: oracle {cfg.oracle}, acquisition "
        f"{s.acquisition.name} ({'maximise' if s.acquisition.maximize else 'minimise'}), "
        f"diversity {s.diversity.method}, model {s.surrogate.model} on {s.surrogate.features}; "
        f"database {cfg.database}",
        soft_wrap=True,
    )
    label = cfg.label
    with LoopLock(cfg.database):
        state_box: dict[str, Any] = {}

        def on_round(info) -> None:
            if report:
                write_report(
                    state_box["state"],
                    cfg.report_dir,
                    f"active learning: {cfg.path.name}",
                    label,
                    s.acquisition.maximize,
                )

        learner, state = open_loop(cfg, log=log, on_round=on_round)
        state_box["state"] = state
        try:
            res = learner.run(max_rounds=max_rounds, select_only=select_only)
        except KeyboardInterrupt:
            console.print(
                styled(
                    "interrupted: ",
                    "yellow",
                    "finished rounds and measurements are kept; run again to resume.",
                )
            )
            state.close()
            sys.exit(130)
        if report:
            path = write_report(
                state,
                cfg.report_dir,
                f"active learning: {cfg.path.name}",
                label,
                s.acquisition.maximize,
            )
            console.print(f"report: {path}", highlight=False)
        state.close()
    best = "—" if res["best_value"] is None else f"{res['best_value']:.4g} ({res['best_smiles']})"
    if select_only:
        _print_picks(res, label)
        return
    typer.echo(
        f"{res['rounds']} round(s), {res['simulations']} simulation(s) by the loop; best {best}; "
        f"{'budget spent' if res['finished'] else 'not finished: run again to continue'}"
    )


def _print_picks(res: dict[str, Any], label: str) -> None:
    """The chosen, not yet simulated molecules of ``run --select-only``."""
    from rich.table import Table

    if not res["picks"]:
        typer.echo("nothing to choose: the loop is finished (budget, rounds or pool spent).")
        return
    table = Table(title=f"round {res['round']}: chosen, not simulated yet")
    for col in ("smiles", f"predicted {label}", "spread", "score"):
        table.add_column(col, no_wrap=True)
    f = lambda x: "—" if x is None else f"{x:.4g}"
    for p in res["picks"]:
        table.add_row(p["smiles"], f(p.get("mean")), f(p.get("std")), f(p.get("score")))
    console.print(table)
    typer.echo("run again without --select-only to simulate them.")


@friendly_errors
def status_cmd(
    file: Path = FILE_ARG,
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON on stdout."),
) -> None:
    """Rounds, best found so far and cross-validated model quality per round."""
    from rich.table import Table

    from mdxfer.al.loop import load_al_config, loop_status

    cfg = load_al_config(file)
    st = loop_status(cfg)
    rounds, maximize = st["rounds"], st["direction"] == "maximize"
    if as_json:
        typer.echo(json.dumps(st, indent=2, default=str))
        return
    console.print(
        styled(
            cfg.path.name,
            "bold",
            f": {len(rounds)} round(s), {st['simulations']} simulation(s) "
            f"by the loop ({st['failed']} failed, {st['pending']} pending), {st['known_before_loop']} "
            f"known before; loop {'running' if st['running'] else 'idle'}; target "
            f"{'maximised' if maximize else 'minimised'}",
        ),
        soft_wrap=True,
    )
    table = Table(title="rounds (CV: k-fold cross-validation of each round's model)")
    for col in (
        "round",
        "acq.",
        "n train",
        "CV R²",
        "Spearman",
        "CV MAE",
        "picks",
        "sims",
        "best",
        "state",
    ):
        table.add_column(col, no_wrap=True)
    f = lambda x, d=3: "—" if x is None else f"{x:.{d}g}"
    for r in rounds:
        table.add_row(
            str(r["round"]),
            r["acquisition"],
            str(r["n_train"]),
            f(r["cv_r2"], 2),
            f(r["cv_spearman"], 2),
            f(r["cv_mae"], 2),
            str(r["n_picks"]),
            "—" if r["n_measured"] is None else str(r["n_measured"]),
            f(r["best_value"], 4),
            r["state"],
        )
    console.print(table)
    last = next((r for r in reversed(rounds) if r["best_smiles"]), None)
    if last:
        console.print(
            f"best so far: {last['best_value']:.6g} ({last['best_smiles']})", highlight=False
        )


@friendly_errors
def report_cmd(
    file: Path = FILE_ARG,
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Folder (default: the \\[active_learning] report folder)."
    ),
) -> None:
    """Write the Markdown report: best so far, parity plot per round, picked molecules."""
    from mdxfer.al.loop import load_al_config
    from mdxfer.al.report import write_report
    from mdxfer.al.state import ALState

    cfg = load_al_config(file)
    if out is not None:
        check_output_dir(out)
    with ALState(cfg.database, readonly=True) as state:
        path = write_report(
            state,
            out or cfg.report_dir,
            f"active learning: {cfg.path.name}",
            cfg.label,
            cfg.settings.acquisition.maximize,
        )
    console.print(f"wrote {path}", highlight=False)


@friendly_errors
@logged("al benchmark")
def benchmark_cmd(
    oracle: Path = typer.Option(
        ...,
        "--oracle",
        help="Table oracle: CSV with columns smiles,target; every molecule is the pool.",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder: summary.json, summary.md/.csv, recovery.png."
    ),
    initial: int = typer.Option(
        20, "--initial", min=1, help="Random molecules simulated first (round 0)."
    ),
    batch: int = typer.Option(10, "--batch", min=1, help="Molecules per round."),
    rounds: int = typer.Option(10, "--rounds", min=0, help="Acquisition rounds after round 0."),
    seeds: int = typer.Option(
        3, "--seeds", min=1, help="Repeats with different seeds (initial sets)."
    ),
    minimize: bool = typer.Option(
        False, "--minimize", help="Look for the lowest targets (default: highest)."
    ),
    methods: Optional[List[str]] = typer.Option(
        None, "--method", help="Acquisitions to compare (repeatable; default all; random always)."
    ),
    model: Optional[Path] = typer.Option(
        None,
        "--model",
        help="Pretrained model folder (mdxfer pretrain --out DIR); default runs/cv if it exists.",
    ),
    features: Optional[str] = typer.Option(
        None,
        "--features",
        help="embedding+morgan (default with a model), embedding, or morgan (no transfer).",
    ),
    surrogate: str = typer.Option(
        "ridge", "--surrogate", help="ridge (bootstrap ensemble) | rf | finetune."
    ),
    members: int = typer.Option(16, "--members", min=2, help="Ensemble members."),
    diversity: str = typer.Option(
        "maxmin", "--diversity", help="none | maxmin | sphere | cluster."
    ),
    shortlist: float = typer.Option(
        1.5,
        "--shortlist",
        callback=cli_number(1),
        help="maxmin/cluster: candidates considered, x batch.",
    ),
    beta: float = typer.Option(
        1.0, "--beta", callback=cli_number(0), help="UCB weight on the spread."
    ),
    smiles_col: str = typer.Option("smiles", "--smiles-col"),
    target_col: str = typer.Option("target", "--target-col"),
    label: Optional[str] = typer.Option(
        None, "--label", help="Name of the target in tables and plots (default: the column)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Each acquisition against random picking on a table oracle; recovery of the top 1 % / 5 %."""
    from mdxfer.al.benchmark import run_benchmark
    from mdxfer.al.diversity import Diversity
    from mdxfer.al.surrogate import settings_with_fallback

    check_output_dir(out)
    s, warning = settings_with_fallback(surrogate, features, members, model)
    if warning:
        warn(warning)
    summary = run_benchmark(
        oracle,
        out,
        initial,
        batch,
        rounds,
        seeds,
        minimize,
        methods,
        s,
        Diversity(diversity, shortlist),
        beta,
        smiles_col,
        target_col,
        log=None if quiet else _say,
        label=label,
    )
    typer.echo((out / "summary.md").read_text())
    typer.echo(
        f"wrote {out}/summary.json, summary.md, summary.csv, recovery.png, recovery_bars.png, best_so_far.png "
        f"({summary['wall_s']:.0f} s)"
    )


@friendly_errors
def oracle_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="CSV to write (smiles,target,qm9_index)."),
    n: int = typer.Option(2400, "--n", min=1, help="Molecules."),
    prop: str = typer.Option(
        "Polarizability_bohr3", "--property", help="QM9 column used as the target."
    ),
    seed: int = typer.Option(1, "--seed", min=0, max=SEED_LIMIT - 1),
) -> None:
    """Write a QM9 table oracle (molecules outside the default pretraining subset)."""
    from mdxfer.al.benchmark import make_qm9_oracle

    check_output_file(out)

    path = make_qm9_oracle(out, n, prop, seed)
    console.print(f"wrote {path}: {n} QM9 molecules, target = {prop}", highlight=False)


def register(app: typer.Typer) -> None:
    """Attach ``mdxfer al ...`` to ``app``."""
    al_app.command("run")(run_cmd)
    al_app.command("status")(status_cmd)
    al_app.command("report")(report_cmd)
    al_app.command("benchmark")(benchmark_cmd)
    al_app.command("oracle")(oracle_cmd)
    app.add_typer(al_app, name="al")
