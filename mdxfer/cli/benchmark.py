"""``mdxfer benchmark extrapolation|small-data``: held-out comparisons of the learning approaches."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mdxfer.cli.common import friendly_errors, make_console
from mdxfer.validate import SEED_LIMIT, check_output_file, cli_number

APPROACHES_HELP = (
    "Comma-separated: direct_fp_ridge, direct_gnn, ssl_gnn, ssl_ridge, single_source, shotgun, "
    "shotgun_top3, and mdxfer transfer's candidates fp_gp, emb_ridge, emb_rf, emb_fp_ridge, emb_gp, "
    "finetune, auto (the emb_*, finetune and auto ones need --source or --library) "
    "(default: all whose inputs are given)."
)


def _approaches(spec: Optional[str], library, ssl, source) -> list[str]:
    from mdxfer.learn.heldout import APPROACHES, default_approaches

    if spec is None:
        return default_approaches(library, ssl, source)
    names = [a.strip() for a in spec.split(",") if a.strip()]
    if not names:
        raise typer.BadParameter(
            f"names no approach; give some of {', '.join(APPROACHES)} "
            "(comma-separated) or leave the option out for all.",
            param_hint="'--approaches'",
        )
    return names


def _run(
    kind: str,
    *,
    data,
    target,
    n,
    seed,
    seeds,
    library,
    ssl,
    source,
    approaches,
    exclude,
    out,
    smiles_col,
    target_col,
    gnn_epochs,
    threads,
    cv_repeats,
    **extra,
) -> None:
    import sys

    import numpy as np
    from rich.table import Table

    from mdxfer.learn import heldout
    from mdxfer.learn.models import set_threads

    check_output_file(out)
    for option, folder in (("--library", library), ("--ssl", ssl), ("--source", source)):
        if folder is not None and not Path(folder).is_dir():  # refused even where unused
            raise typer.BadParameter(
                f"{folder} is not a folder (it does not exist, or it is a "
                "file); give the model folder or leave the option out.",
                param_hint=f"'{option}'",
            )
    set_threads(threads)
    console = make_console()
    table, prop = heldout.benchmark_data(data, target, n, seed, library, smiles_col, target_col)
    excl = tuple(p.strip() for p in exclude.split(",") if p.strip()) if exclude else None
    seed_list = [seed + k for k in range(seeds)]
    df = heldout.run_benchmark(
        kind,
        table,
        _approaches(approaches, library, ssl, source),
        seed_list,
        prop=prop,
        target_name=target_col,
        library=library,
        ssl=ssl,
        source=source,
        exclude_properties=excl,
        gnn_epochs=gnn_epochs,
        cv_repeats=cv_repeats,
        log=console.print,
        **extra,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    summ = heldout.summarize(df)
    t = Table(title=f"{kind} benchmark, {len(seed_list)} seed(s): held-out figures (mean ± sd)")
    cols = (
        [("mae", "MAE"), ("r2", "R²")]
        + (
            [("frac_above_threshold", "pred ≥ threshold")]
            if "frac_above_threshold_mean" in summ
            else []
        )
        + (
            [
                ("cov1_raw", "±1σ raw"),
                ("cov1_cal", "±1σ cal"),
                ("cov2_raw", "±2σ raw"),
                ("cov2_cal", "±2σ cal"),
            ]
            if "cov1_cal_mean" in summ
            else []
        )
        + [("wall_s", "wall s")]
    )
    t.add_column("approach")
    for _, label in cols:
        t.add_column(label)
    for _, r in summ.iterrows():
        t.add_row(
            r["approach"],
            *[
                f"{r[c + '_mean']:.4g} ± {r[c + '_sd']:.2g}" if np.isfinite(r[c + "_mean"]) else "–"
                for c, _ in cols
            ],
        )
    make_console(stderr=False, width=None if sys.stdout.isatty() else 140).print(t)
    typer.echo(f"per-seed rows in {out}")


COMMON = dict(
    data=typer.Option(
        None, "--data", help="CSV with SMILES and target columns (default: a QM9 sample)."
    ),
    n=typer.Option(
        2000, "--n", min=2, help="QM9 molecules sampled (outside the library's training subset)."
    ),
    seed=typer.Option(
        0,
        "--seed",
        min=0,
        max=SEED_LIMIT - 1000,
        help="First seed (of the sample, the splits and the models).",
    ),
    library=typer.Option(
        None, "--library", help="Model library for shotgun (and the default single source)."
    ),
    ssl=typer.Option(
        None, "--ssl", help="Self-supervised model folder (mdxfer selfsup) for ssl_* approaches."
    ),
    source=typer.Option(
        None, "--source", help="Single source model folder (default: the library's best Cv GNN)."
    ),
    approaches=typer.Option(None, "--approaches", help=APPROACHES_HELP),
    exclude=typer.Option(
        None,
        "--exclude-properties",
        help="Library properties to leave out (default: the target's own property).",
    ),
    smiles_col=typer.Option("smiles", "--smiles-col"),
    target_col=typer.Option("target", "--target-col"),
    gnn_epochs=typer.Option(
        150, "--gnn-epochs", min=1, help="Maximum epochs of direct and ssl graph networks."
    ),
    threads=typer.Option(1, "--threads", min=1, help="torch threads."),
    cv_repeats=typer.Option(
        2, "--cv-repeats", min=1, help="Repeats of the 5-fold CV that picks modes and sources."
    ),
)


@friendly_errors
def extrapolation_cmd(
    target: str = typer.Option("gap", "--target", help="QM9 property (short or column name)."),
    quantile: float = typer.Option(
        0.8,
        "--quantile",
        callback=cli_number(0, 1, lo_open=True, hi_open=True),
        help="Threshold = this quantile of the target.",
    ),
    threshold: Optional[float] = typer.Option(
        None,
        "--threshold",
        callback=cli_number(),
        help="Explicit threshold (overrides --quantile).",
    ),
    seeds: int = typer.Option(
        1, "--seeds", min=1, max=1000, help="Repeats with seeds seed, seed+1, ..."
    ),
    out: Path = typer.Option(Path("extrapolation.csv"), "--out", help="Per-seed results CSV."),
    data: Optional[Path] = COMMON["data"],
    n: int = COMMON["n"],
    seed: int = COMMON["seed"],
    library: Optional[Path] = COMMON["library"],
    ssl: Optional[Path] = COMMON["ssl"],
    source: Optional[Path] = COMMON["source"],
    approaches: Optional[str] = COMMON["approaches"],
    exclude: Optional[str] = COMMON["exclude"],
    smiles_col: str = COMMON["smiles_col"],
    target_col: str = COMMON["target_col"],
    gnn_epochs: int = COMMON["gnn_epochs"],
    threads: int = COMMON["threads"],
    cv_repeats: int = typer.Option(
        1, "--cv-repeats", min=1, help="Repeats of the 5-fold CV that picks modes and sources."
    ),
) -> None:
    """Train below a threshold of the target, test above it (an extrapolation split)."""
    _run("extrapolation", **locals())  # every option by name; threshold, quantile as extra


@friendly_errors
def small_data_cmd(
    target: str = typer.Option("homo", "--target", help="QM9 property (short or column name)."),
    n_train: int = typer.Option(
        24, "--n-train", min=2, help="Training molecules per seed; the rest are held out."
    ),
    seeds: int = typer.Option(
        3, "--seeds", min=1, max=1000, help="Repeats with seeds seed, seed+1, ..."
    ),
    out: Path = typer.Option(Path("small_data.csv"), "--out", help="Per-seed results CSV."),
    data: Optional[Path] = COMMON["data"],
    n: int = typer.Option(1000, "--n", min=2, help="QM9 molecules sampled."),
    seed: int = COMMON["seed"],
    library: Optional[Path] = COMMON["library"],
    ssl: Optional[Path] = COMMON["ssl"],
    source: Optional[Path] = COMMON["source"],
    approaches: Optional[str] = COMMON["approaches"],
    exclude: Optional[str] = COMMON["exclude"],
    smiles_col: str = COMMON["smiles_col"],
    target_col: str = COMMON["target_col"],
    gnn_epochs: int = COMMON["gnn_epochs"],
    threads: int = COMMON["threads"],
    cv_repeats: int = COMMON["cv_repeats"],
) -> None:
    """A few training molecules, the rest held out: shotgun vs single source vs direct (Yamada et al. 2019's setting)."""
    _run("small-data", **locals())  # every option by name; n_train as extra


def register(app: typer.Typer) -> None:
    """Attach ``mdxfer benchmark extrapolation|small-data`` to ``app``."""
    group = typer.Typer(
        help="Benchmarks of direct training, transfer, shotgun and self-supervised starts.",
        no_args_is_help=True,
    )
    group.command("extrapolation")(extrapolation_cmd)
    group.command("small-data")(small_data_cmd)
    app.add_typer(group, name="benchmark")
