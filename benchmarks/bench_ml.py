"""Learning-side benchmark: pretraining accuracy and time, featurisation and ranking throughput.

    python benchmarks/bench_ml.py                      # everything (~10-15 min on one core)
    python benchmarks/bench_ml.py --skip-pretrain      # reuse WORK/paper and WORK/default
    python benchmarks/bench_ml.py --presets default --n-rank 20000
    python benchmarks/bench_ml.py --small-data --source runs/paper   # only the small-data table

Prints, next to the reference study's figures (R² 0.978 train / 0.964 validation, QM9 Cv, 5,000
molecules, 4,000 / 1,000):

* pretraining R²/MAE and wall time per preset (``mdxfer.learn.pretrain.pretrain``, 1 torch thread by
  default);
* featurisation throughput (SMILES -> packed PyG-ready graphs), molecules/s;
* ranking throughput on ``--n-rank`` QM9 SMILES (read .smi, parse, featurise, predict with a
  15-member fine-tuned ensemble, sort, write CSV), next to RDKit's bare SMILES-parsing rate on
  the same input;
* with ``--small-data``: held-out R² of ``mdxfer transfer``'s candidates and of its default
  (``auto``) at a few dozen training molecules on several QM9 properties (not Cv, the source's),
  several seeds, as a markdown table method x target x n (mean ± SD over seeds), and the held-out
  coverage of mean ± 1σ/2σ before and after calibration (``mdxfer.learn.heldout.small_data``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

SEED_R2 = {"train": 0.978, "val": 0.964}
HERE = Path(__file__).resolve().parent


def bench_pretrain(
    work: Path, presets: list[str], threads: int, skip: bool, time_limit_min: float | None
) -> dict:
    from mdxfer.learn.pretrain import PretrainSettings, pretrain

    results = {}
    for p in presets:
        out = work / p
        if skip and (out / "metrics.json").exists():
            m = json.loads((out / "metrics.json").read_text())
        else:
            t0 = time.perf_counter()
            m = pretrain(
                out,
                PretrainSettings(preset=p),
                threads=threads,
                resume=False,
                progress=False,
                time_limit_s=time_limit_min * 60 if time_limit_min else None,
            )
            m["total_wall_s"] = round(time.perf_counter() - t0, 1)
            (out / "metrics.json").write_text(json.dumps(m, indent=2) + "\n")
        results[p] = m
    return results


def bench_featurize(smiles: list[str], jobs: int) -> dict:
    from rdkit import Chem, RDLogger

    from mdxfer.learn.featurize import featurize_mols, featurize_smiles

    RDLogger.DisableLog("rdApp.*")
    t0 = time.perf_counter()
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    t_parse = time.perf_counter() - t0
    t0 = time.perf_counter()
    featurize_mols(mols)
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    featurize_smiles(smiles, n_jobs=jobs)
    t_both = time.perf_counter() - t0
    return {
        "n": len(smiles),
        "parse_per_s": len(smiles) / t_parse,
        "featurize_only_per_s": len(smiles) / t_feat,
        "parse_and_featurize_per_s": len(smiles) / t_both,
        "jobs": jobs,
    }


def bench_rank(
    smiles: list[str], names: list[str], model_dir: Path, work: Path, threads: int, jobs: int
) -> dict:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdFingerprintGenerator

    from mdxfer.learn.rank import rank_file

    smi = work / "rank_input.smi"
    smi.write_text("".join(f"{s} {n}\n" for s, n in zip(smiles, names)))
    RDLogger.DisableLog("rdApp.*")
    t0 = time.perf_counter()
    for s in smiles:
        Chem.MolFromSmiles(s)
    t_parse = time.perf_counter() - t0
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    n_fp = min(len(smiles), 20000)
    t0 = time.perf_counter()
    for s in smiles[:n_fp]:
        gen.GetCountFingerprintAsNumPy(Chem.MolFromSmiles(s))
    t_fp = time.perf_counter() - t0
    import resource

    r = rank_file(smi, model_dir, work / "ranked.csv", threads=threads, jobs=jobs, progress=False)
    peak = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )  # MiB, the whole process so far
    return {
        "n": len(smiles),
        "rank_per_s": r["molecules_per_s"],
        "rank_wall_s": r["wall_s"],
        "peak_rss_mib": peak,
        "members": r["members"],
        "mode": r["mode"],
        "rdkit_parse_per_s": len(smiles) / t_parse,
        "rdkit_parse_morgan_per_s": n_fp / t_fp,
        "jobs": jobs,
    }


SMALL_DATA_APPROACHES = (
    "direct_fp_ridge",
    "fp_gp",
    "emb_ridge",
    "emb_rf",
    "emb_fp_ridge",
    "emb_gp",
    "finetune",
    "auto",
)


def bench_small_data(
    source: Path, targets: list[str], n_trains: list[int], seeds: int, n: int, out: Path
) -> pd.DataFrame:
    """One :func:`mdxfer.learn.heldout.small_data` run per (target, n_train); all rows in ``out``."""
    from mdxfer.learn import heldout
    from mdxfer.learn.library import SHORT_NAMES, resolve_property

    frames = []
    for t in targets:
        prop = resolve_property(t)
        table = heldout.qm9_sample(n, 0, prop)
        for n_train in n_trains:
            t0 = time.perf_counter()
            df = heldout.small_data(
                table,
                SMALL_DATA_APPROACHES,
                n_train=n_train,
                seeds=list(range(seeds)),
                source=str(source),
                cv_repeats=2,
            )
            df.insert(0, "target", SHORT_NAMES.get(prop, prop))
            frames.append(df)
            pd.concat(frames).to_csv(out, index=False)
            print(f"  {t} n={n_train}: {time.perf_counter() - t0:.0f} s", flush=True)
    return pd.concat(frames)


def small_data_markdown(df) -> str:
    """Held-out R² (mean ± SD over seeds) as a markdown table, method x (target, n)."""
    keys = list(dict.fromkeys(zip(df.target, df.n_train)))
    lines = [
        "| method | " + " | ".join(f"{t}, n={k}" for t, k in keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for a in dict.fromkeys(df.approach):
        cells = []
        for t, k in keys:
            r = df[(df.approach == a) & (df.target == t) & (df.n_train == k)].r2
            cells.append(f"{r.mean():.2f} ± {r.std(ddof=0):.2f}")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    auto = df[df.approach == "auto"]
    picks = ", ".join(f"{m} {c}" for m, c in auto.chosen.value_counts().items())
    lines.append(f"\n`auto` chose: {picks}.")
    cov = auto[["cov1_raw", "cov1_cal", "cov2_raw", "cov2_cal"]].mean()
    lines.append(
        f"Held-out coverage of `auto` (all tables): ±1σ {cov.cov1_raw:.2f} raw -> {cov.cov1_cal:.2f} "
        f"calibrated, ±2σ {cov.cov2_raw:.2f} -> {cov.cov2_cal:.2f} (Gaussian: 0.68, 0.95)."
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "mdxfer-bench"
    )
    ap.add_argument("--presets", default="paper,default")
    ap.add_argument("--skip-pretrain", action="store_true", help="reuse WORK/<preset> if present")
    ap.add_argument("--time-limit", type=float, default=None, help="minutes per pretraining")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="featurisation processes")
    ap.add_argument("--n-featurize", type=int, default=20000)
    ap.add_argument("--n-rank", type=int, default=100000)
    ap.add_argument("--small-data", action="store_true", help="run only the small-data table")
    ap.add_argument(
        "--source",
        type=Path,
        default=None,
        help="pretrained model for --small-data (default WORK/paper)",
    )
    ap.add_argument("--targets", default="alpha,gap,mu", help="QM9 properties for --small-data")
    ap.add_argument("--n-train", default="24,48", help="training molecules for --small-data")
    ap.add_argument("--seeds", type=int, default=5, help="seeds for --small-data")
    ap.add_argument(
        "--n-sample", type=int, default=1000, help="QM9 molecules per table (the rest held out)"
    )
    args = ap.parse_args()
    if args.small_data:
        from mdxfer.learn.models import set_threads

        set_threads(args.threads)
        args.work.mkdir(parents=True, exist_ok=True)
        df = bench_small_data(
            args.source or args.work / "paper",
            args.targets.split(","),
            [int(k) for k in args.n_train.split(",")],
            args.seeds,
            args.n_sample,
            args.work / "small_data.csv",
        )
        print(small_data_markdown(df))
        return

    import torch

    from mdxfer.learn.data import qm9
    from mdxfer.learn.models import set_threads
    from mdxfer.learn.transfer import TransferSettings, transfer

    set_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    presets = [p for p in args.presets.split(",") if p]
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs, work dir {args.work}"
    )

    pre = bench_pretrain(args.work, presets, args.threads, args.skip_pretrain, args.time_limit)
    print("\nPretraining, QM9 Cv, 5,000 molecules (4,000 train / 1,000 validation), seed 0")
    print(f"{'model':<12}{'R² train':>10}{'R² val':>10}{'MAE val':>10}{'epochs':>8}{'train s':>10}")
    print(
        f"{'reference':<12}{SEED_R2['train']:>10.3f}{SEED_R2['val']:>10.3f}{'':>10}{5000:>8}{'':>10}"
    )
    for p, m in pre.items():
        print(
            f"{p:<12}{m['r2_train']:>10.4f}{m['r2_val']:>10.4f}{m['mae_val']:>10.4f}{m['epochs_run']:>8}"
            f"{m['train_wall_s']:>10.0f}   (best epoch {m['best_epoch']}, {m['stop_reason']})"
        )

    df = qm9.load_qm9()
    rng = np.random.default_rng(1)
    feat_idx = rng.choice(len(df), size=min(args.n_featurize, len(df)), replace=False)
    fb = bench_featurize(list(df.SMILES.iloc[feat_idx]), args.jobs)
    print(
        f"\nFeaturisation ({fb['n']} QM9 SMILES, {args.jobs} process(es)): "
        f"{fb['featurize_only_per_s']:,.0f} molecules/s from RDKit molecules, "
        f"{fb['parse_and_featurize_per_s']:,.0f} molecules/s from SMILES "
        f"(RDKit parsing alone {fb['parse_per_s']:,.0f}/s)"
    )

    base = args.work / ("default" if "default" in pre else presets[0])
    ens_dir = args.work / "ensemble"
    transfer(
        base,
        HERE / "data" / "qm9_polarisability_32.csv",
        ens_dir,
        TransferSettings(mode="finetune", compare=("finetune",)),
        threads=args.threads,
        progress=False,
    )
    rank_idx = rng.choice(len(df), size=min(args.n_rank, len(df)), replace=False)
    sub = df.iloc[rank_idx]
    rb = bench_rank(
        list(sub.SMILES),
        [f"qm9_{i}" for i in sub.qm9_index],
        ens_dir,
        args.work,
        args.threads,
        args.jobs,
    )
    print(
        f"\nRanking {rb['n']:,} QM9 SMILES with a {rb['members']}-member '{rb['mode']}' ensemble "
        f"(read, parse, featurise, predict, sort, write): {rb['rank_per_s']:,.0f} molecules/s "
        f"({rb['rank_wall_s']:.1f} s; peak memory of the process {rb['peak_rss_mib']:,.0f} MiB)"
    )
    print(
        f"RDKit on the same input: parsing {rb['rdkit_parse_per_s']:,.0f}/s, parsing + Morgan count "
        f"fingerprint {rb['rdkit_parse_morgan_per_s']:,.0f}/s"
    )
    summary = {"pretrain": pre, "featurize": fb, "rank": rb, "threads": args.threads}
    (args.work / "bench_ml.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print(f"\nsummary: {args.work / 'bench_ml.json'}")


if __name__ == "__main__":
    main()
