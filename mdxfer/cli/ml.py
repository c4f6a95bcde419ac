"""``mdxfer pretrain``, ``mdxfer transfer`` and ``mdxfer rank``: the learning side.

Heavy modules (torch, RDKit, PyG) are imported inside the commands, so registering these
commands costs nothing to ``mdxfer build``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from mdxfer.cli.common import friendly_errors, logged, make_console
from mdxfer.validate import SEED_LIMIT, check_output_dir, check_output_file, cli_number

THREADS_HELP = (
    "torch threads (default 1: LAMMPS usually owns the other cores; more threads "
    "on a busy machine are much slower, not faster)"
)


@friendly_errors
@logged("pretrain")
def pretrain_cmd(
    out: Path = typer.Option(
        ..., "--out", help="Output folder: model.pt, metrics.json, parity.png."
    ),
    n: Optional[int] = typer.Option(
        None,
        "--n",
        min=2,
        help="Molecules drawn at random: QM9 default 5,000 (the reference study's); with --data, default all rows.",
    ),
    n_val: Optional[int] = typer.Option(
        None,
        "--n-val",
        min=1,
        help="Of which validation molecules: QM9 default 1,000 (the reference study's); with --data, a fifth.",
    ),
    preset: str = typer.Option(
        "default",
        "--preset",
        help="Architecture: 'paper' (the reference study's GCN, Kipf & Welling 2017 convolutions) or 'default'.",
    ),
    epochs: Optional[int] = typer.Option(
        None, "--epochs", min=1, help="Maximum epochs (preset's default: 300)."
    ),
    patience: Optional[int] = typer.Option(
        None, "--patience", min=1, help="Early stopping patience, epochs."
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=1, help="Mini-batch size (preset's: 64)."
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, max=SEED_LIMIT - 1, help="Seed of the subset, weights and batch order."
    ),
    split_seed: Optional[int] = typer.Option(
        None,
        "--split-seed",
        min=0,
        max=SEED_LIMIT - 1,
        help="Seed of the train/val split (default: --seed).",
    ),
    target: str = typer.Option(
        "Heatcapacity_Cv_cal_mol_K",
        "--target",
        "--target-col",
        help="Column to learn: a QM9 property, or with --data a column of your table.",
    ),
    data: Optional[Path] = typer.Option(
        None,
        "--data",
        help="Pretrain on your own table instead of QM9: a CSV with a SMILES column (--smiles-col) and the --target column.",
    ),
    smiles_col: str = typer.Option(
        "smiles", "--smiles-col", help="With --data: the SMILES column."
    ),
    unit: str = typer.Option(
        "", "--unit", help="With --data: the target's unit (for plots and metrics)."
    ),
    time_limit: Optional[float] = typer.Option(
        None,
        "--time-limit",
        callback=cli_number(0, lo_open=True),
        help="Stop training after this many minutes.",
    ),
    init_encoder: Optional[Path] = typer.Option(
        None,
        "--init-encoder",
        help="Start the encoder from this folder's model.pt (e.g. `mdxfer selfsup`); same preset needed.",
    ),
    restart: bool = typer.Option(
        False, "--restart", help="Ignore a checkpoint in --out and start over."
    ),
    threads: int = typer.Option(1, "--threads", min=1, help=THREADS_HELP),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Processes for featurisation."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Pretrain a graph network on QM9 heat capacity (the reference study's source task), another QM9
    property, or your own table (--data TABLE.csv --target-col COLUMN).

    Re-running the same command continues from DIR/checkpoint.pt.
    """
    from mdxfer.learn.pretrain import PretrainSettings, pretrain

    check_output_dir(out)
    if data is None:  # QM9: the settings' defaults (the reference study's 5,000 / 1,000)
        n, n_val = n or PretrainSettings.n, n_val or PretrainSettings.n_val
    if n is not None and n_val is not None and n_val >= n:
        raise typer.BadParameter(f"--n-val {n_val} must be smaller than --n {n}.")
    console = make_console()
    settings = PretrainSettings(
        n=n,
        n_val=n_val,
        seed=seed,
        split_seed=split_seed,
        preset=preset,
        target=target,
        max_epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        init_encoder=str(init_encoder) if init_encoder else None,
        data=str(data) if data else None,
        smiles_col=smiles_col,
        unit=unit,
    )
    m = pretrain(
        out,
        settings,
        threads=threads,
        jobs=jobs,
        resume=not restart,
        time_limit_s=time_limit * 60 if time_limit is not None else None,
        progress=progress,
        log=console.print,
    )
    unit = f" {m['unit']}" if m["unit"] else ""
    typer.echo(
        f"R² train {m['r2_train']:.4f}  R² val {m['r2_val']:.4f}  MAE val {m['mae_val']:.4f}{unit}  "
        f"({m['epochs_run']} epochs, best {m['best_epoch']}, {m['stop_reason']}, "
        f"{m['train_wall_s']:.0f} s training, {threads} thread(s))"
    )
    if data is None:
        typer.echo(f"the reference study reported R² 0.978 train / 0.964 val; files in {out}")
    else:
        typer.echo(f"{m['data_source']}; {m['skipped_rows']} row(s) left out; files in {out}")


@friendly_errors
@logged("transfer")
def transfer_cmd(
    base: Optional[Path] = typer.Option(
        None, "--base", help="Pretraining folder (holds model.pt)."
    ),
    library: Optional[Path] = typer.Option(
        None,
        "--library",
        help="Shotgun transfer: a model library (mdxfer library build); every "
        "model is transferred and the best kept.",
    ),
    top: int = typer.Option(
        1, "--top", min=1, help="With --library: keep the best K candidates as a committee."
    ),
    modes: str = typer.Option(
        "finetune,ridge", "--modes", help="With --library: transfer modes to try."
    ),
    exclude: str = typer.Option(
        "",
        "--exclude-properties",
        help="With --library: leave out models of these properties (e.g. the target itself).",
    ),
    data: Path = typer.Option(..., "--data", help="CSV with a SMILES column and a target column."),
    out: Path = typer.Option(
        ..., "--out", help="Output folder: ensemble.pt, metrics.json, parity.png."
    ),
    smiles_col: str = typer.Option("smiles", "--smiles-col", help="Name of the SMILES column."),
    target_col: str = typer.Option("target", "--target-col", help="Name of the target column."),
    unit: str = typer.Option("", "--unit", help="Unit of the target, for reports (e.g. kcal/mol)."),
    mode: str = typer.Option(
        "auto",
        "--mode",
        help="auto (default: every mode below cross-validated, the lowest CV MAE kept), "
        "finetune (the reference study's fine-tuning), ridge or rf (feature extraction), emb_fp_ridge "
        "(embedding + Morgan counts), emb_gp (RBF Gaussian process on the "
        "embedding), fp_ridge or fp_gp (no transfer: Morgan counts).",
    ),
    nested: bool = typer.Option(
        True,
        "--nested/--no-nested",
        help="With --mode auto: score the selection itself by nested CV (about 2-3x the time).",
    ),
    folds: int = typer.Option(
        5, "--folds", min=2, help="k of the repeated k-fold cross-validation (at most the rows)."
    ),
    repeats: int = typer.Option(
        3, "--repeats", min=1, help="Repeats of the k-fold cross-validation."
    ),
    lr: float = typer.Option(
        1e-4,
        "--lr",
        callback=cli_number(0, lo_open=True),
        help="Fine-tuning learning rate (the reference study: 1e-4).",
    ),
    epochs: int = typer.Option(
        10000, "--epochs", min=1, help="Maximum fine-tuning epochs (the reference study: 10,000)."
    ),
    patience: int = typer.Option(
        500, "--patience", min=1, help="Fine-tuning early-stopping patience, epochs."
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, max=SEED_LIMIT - 1, help="Seed of folds and heads."
    ),
    threads: int = typer.Option(1, "--threads", min=1, help=THREADS_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Transfer a pretrained model to a small table (conv + pooling frozen), cross-validated,
    next to a fingerprint-ridge baseline; with --library, shotgun transfer over a model library."""
    from rich.table import Table

    from mdxfer.learn.transfer import TransferSettings, transfer

    console = make_console()
    if (base is None) == (library is None):
        raise typer.BadParameter(
            "give exactly one of --base (one source model) or --library (shotgun)."
        )
    check_output_dir(out)
    if library is not None:
        _shotgun(
            library=library,
            data=data,
            out=out,
            smiles_col=smiles_col,
            target_col=target_col,
            unit=unit,
            top=top,
            modes=modes,
            exclude=exclude,
            folds=folds,
            repeats=repeats,
            seed=seed,
            threads=threads,
            progress=progress,
            console=console,
        )
        return
    s = TransferSettings(
        mode=mode,
        folds=folds,
        repeats=repeats,
        seed=seed,
        lr=lr,
        max_epochs=epochs,
        patience=patience,
        target_unit=unit,
        nested=nested,
    )
    m = transfer(
        base,
        data,
        out,
        s,
        smiles_col=smiles_col,
        target_col=target_col,
        threads=threads,
        progress=progress,
        log=console.print,
    )
    table = Table(
        title=f"{m['repeats']}x{m['folds']}-fold cross-validation, n = {m['n']} "
        f"(MAE of the mean: {m['mean_predictor_mae']:.4g})"
    )
    for col in ("method", "R² val", "MAE val", "R² train"):
        table.add_column(col)
    for name, mm in m["methods"].items():
        mark = " (saved)" if name == m["mode"] else ""
        table.add_row(
            name + mark,
            f"{mm['r2_val']:.3f} ± {mm['r2_val_sd']:.3f}",
            f"{mm['mae_val']:.4g} ± {mm['mae_val_sd']:.2g}",
            f"{mm['r2_train']:.3f}",
        )
    make_console(stderr=False).print(table)
    typer.echo(m["summary"])
    cal = m["calibration"]
    if cal.get("scale"):
        typer.echo(
            f"spread calibrated x {cal['scale']:.2f} on out-of-fold predictions: ±1σ covers "
            f"{cal['coverage_1sd_before']:.0%} -> {cal['coverage_1sd_after']:.0%}, ±2σ "
            f"{cal['coverage_2sd_before']:.0%} -> {cal['coverage_2sd_after']:.0%} (Gaussian: 68%, 95%)"
        )
    if m["n_outside_domain"]:
        typer.echo(
            f"note: {m['n_outside_domain']} training molecules lie outside the source's domain "
            "(see cv_predictions.csv)."
        )
    typer.echo(f"ensemble of {m['ensemble_size']} '{m['mode']}' models written to {out}")


def _shotgun(
    *,
    library: Path,
    data: Path,
    out: Path,
    smiles_col: str,
    target_col: str,
    unit: str,
    top: int,
    modes: str,
    exclude: str,
    folds: int,
    repeats: int,
    seed: int,
    threads: int,
    progress: bool,
    console,
) -> None:
    """Shotgun transfer over a model library (``transfer --library``): options by name."""
    import pandas as pd
    from rich.table import Table

    from mdxfer.learn.shotgun import ShotgunSettings, shotgun_cv, shotgun_transfer

    s = ShotgunSettings(
        modes=tuple(m.strip() for m in modes.split(",") if m.strip()),
        top=top,
        exclude_properties=tuple(p.strip() for p in exclude.split(",") if p.strip()),
        cv=shotgun_cv(folds=folds, repeats=repeats, seed=seed),
    )
    m = shotgun_transfer(
        library,
        data,
        out,
        s,
        smiles_col=smiles_col,
        target_col=target_col,
        target_unit=unit,
        threads=threads,
        progress=progress,
        log=console.print,
    )
    from mdxfer.learn.library import SHORT_NAMES

    df = pd.read_csv(Path(out) / "candidates.csv", keep_default_na=False)
    table = Table(
        title=f"shotgun transfer: {m['n_candidates']} candidates, {m['repeats']}x{m['folds']}-fold CV, "
        f"n = {m['n']} (MAE of the mean: {m['mean_predictor_mae']:.4g})"
    )
    for col in ("rank", "model", "property", "mode", "MAE val", "R² val"):
        table.add_column(col)
    for _, r in df.head(10).iterrows():
        table.add_row(
            str(r["rank"]) + (" *" if r["chosen"] else ""),
            str(r["model"]),
            SHORT_NAMES.get(r["property"], r["property"]),
            str(r["mode"]),
            f"{r['mae_val']:.4g} ± {r['mae_val_sd']:.2g}",
            f"{r['r2_val']:.3f} ± {r['r2_val_sd']:.2g}",
        )
    make_console(stderr=False).print(table)
    if m["transfer_beats_direct"] is False:
        typer.echo(
            "note: no transferred model beat the direct fingerprint-ridge baseline on this table."
        )
    typer.echo(
        f"kept {', '.join(m['chosen'])} (CV MAE {m['mae_val']:.4g}, optimistic: best of {m['n_candidates']}); "
        f"all scores in {out}/candidates.csv"
    )


@friendly_errors
def rank_cmd(
    candidates: Path = typer.Argument(
        ...,
        help=".smi file (SMILES \\[name] per line, # comments) or .csv with a "
        "header line; a CSV's other columns are written back.",
    ),
    model: Path = typer.Option(
        ..., "--model", help="Transfer folder (ensemble.pt) or pretraining folder."
    ),
    out: Path = typer.Option(Path("ranked.csv"), "--out", help="Output CSV."),
    smiles_col: str = typer.Option(
        "smiles", "--smiles-col", help="With a .csv: name of the SMILES column."
    ),
    maximize: bool = typer.Option(
        True, "--maximize/--minimize", help="Best = highest (default) or lowest."
    ),
    top: Optional[int] = typer.Option(None, "--top", min=1, help="Write only the best K."),
    unsupported: str = typer.Option(
        "flag",
        "--unsupported",
        help="Molecules `mdxfer interaction` refuses (several fragments, net charge, radical, an element "
        "outside H C N O F S Cl Br): 'flag' ranks them with md_supported = False and the reason in "
        "md_note; 'skip' leaves them out, like unparsable lines.",
    ),
    threads: int = typer.Option(1, "--threads", min=1, help=THREADS_HELP),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Processes for featurisation."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Rank candidate molecules, best first, with mean and spread of the ensemble."""
    from mdxfer.learn.rank import UNSUPPORTED, rank_file

    if unsupported not in UNSUPPORTED:
        raise typer.BadParameter(
            f"--unsupported must be one of {', '.join(UNSUPPORTED)}, got {unsupported!r}."
        )
    check_output_file(out)
    err = make_console()

    def on_bad(line: int, smiles: str) -> None:
        err.print(f"{candidates}:{line}: cannot parse SMILES {smiles!r}; skipped")

    def on_skip(line: int, smiles: str, why: str) -> None:
        err.print(f"{candidates}:{line}: {smiles!r} cannot be simulated ({why}); skipped")

    r = rank_file(
        candidates,
        model,
        out,
        maximize=maximize,
        top=top,
        jobs=jobs,
        threads=threads,
        progress=progress and sys.stderr.isatty(),
        on_bad=on_bad,
        unsupported=unsupported,
        on_skip=on_skip,
        smiles_col=smiles_col,
    )
    md = (
        f"{r['skipped']} skipped as unsupported by MD"
        if unsupported == "skip"
        else f"{r['md_unsupported']} flagged md_supported = False"
    )
    typer.echo(
        f"ranked {r['ranked']} molecules ({r['bad_lines']} unparsable lines skipped, "
        f"{r['outside_domain']} outside the source's domain, {md}) by {r['target']} with "
        f"{r['members']} model(s); wrote {r['written']} rows to {out} "
        f"[{r['molecules_per_s']:.0f} molecules/s]"
    )


@friendly_errors
@logged("selfsup")
def selfsup_cmd(
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output folder: model.pt (pretrained encoder), metrics.json, history.csv.",
    ),
    n: int = typer.Option(20000, "--n", min=0, help="QM9 molecules drawn at random (0: none)."),
    smiles: Optional[Path] = typer.Option(
        None, "--smiles", help="Extra unlabelled molecules: .smi or .csv (with a 'smiles' column)."
    ),
    preset: str = typer.Option(
        "default",
        "--preset",
        help="Encoder architecture ('paper' or 'default'); use the same for `pretrain --init-encoder`.",
    ),
    tasks: str = typer.Option(
        "atom,motif",
        "--tasks",
        help="Pretraining tasks: atom (masked elements), motif (functional groups, rings, bonds).",
    ),
    balance: str = typer.Option(
        "inverse",
        "--balance",
        help="Masked-atom class weights: inverse, sqrt or none (element frequency).",
    ),
    epochs: int = typer.Option(20, "--epochs", min=1, help="Epochs over the unlabelled molecules."),
    batch_size: int = typer.Option(128, "--batch-size", min=1, help="Mini-batch size."),
    seed: int = typer.Option(
        0,
        "--seed",
        min=0,
        max=SEED_LIMIT - 1,
        help="Seed of the subset, split, masks, weights and batch order.",
    ),
    time_limit: Optional[float] = typer.Option(
        None,
        "--time-limit",
        callback=cli_number(0, lo_open=True),
        help="Stop training after this many minutes.",
    ),
    restart: bool = typer.Option(
        False, "--restart", help="Ignore a checkpoint in --out and start over."
    ),
    threads: int = typer.Option(1, "--threads", min=1, help=THREADS_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Self-supervised pretraining of the encoder: masked atoms (Hu et al. 2020) + motifs (Rong et al. 2020), no labels."""
    from mdxfer.learn.selfsup import SelfSupSettings, selfsup

    check_output_dir(out)
    console = make_console()

    def on_bad(line: int, text: str) -> None:
        console.print(f"{smiles}:{line}: cannot parse SMILES {text!r}; skipped")

    s = SelfSupSettings(
        n=n,
        smiles_file=str(smiles) if smiles else None,
        seed=seed,
        preset=preset,
        tasks=tuple(tasks.split(",")),
        balance=balance,
        epochs=epochs,
        batch_size=batch_size,
    )
    m = selfsup(
        out,
        s,
        threads=threads,
        resume=not restart,
        progress=progress,
        on_bad=on_bad,
        time_limit_s=time_limit * 60 if time_limit is not None else None,
        log=console.print,
    )
    parts = []
    if "val_atom_acc" in m:
        parts.append(
            f"masked atoms: accuracy {m['val_atom_acc']:.3f}, balanced {m['val_atom_balanced_acc']:.3f} "
            f"(majority class {m['val_atom_majority_acc']:.3f} / {m['val_atom_majority_balanced_acc']:.3f})"
        )
    if "val_motif_auc" in m:
        parts.append(f"motifs: mean ROC-AUC {m['val_motif_auc']:.3f} over {m['n_motifs']} labels")
    typer.echo("validation " + "; ".join(parts))
    typer.echo(
        f"{m['n_molecules']} molecules, {m['epochs_run']} epochs (best {m['best_epoch']}, {m['stop_reason']}), "
        f"{m['train_wall_s']:.0f} s training; encoder in {out}/model.pt "
        f"(use: mdxfer pretrain --init-encoder {out} --preset {m['preset']})"
    )


def register(app: typer.Typer) -> None:
    """Add ``pretrain``, ``transfer`` and ``rank`` to the ``mdxfer`` command."""
    app.command("pretrain")(pretrain_cmd)
    app.command("transfer")(transfer_cmd)
    app.command("rank")(rank_cmd)
    app.command("selfsup")(selfsup_cmd)
