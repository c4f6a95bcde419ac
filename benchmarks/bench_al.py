"""Active-learning benchmark on QM9: the loop's acquisitions against random picking.

    python benchmarks/bench_al.py                       # polarisability, 2,400 molecules, 3 seeds
    python benchmarks/bench_al.py --property HOMO_LUMO_gap_au --minimize
    python benchmarks/bench_al.py --compare             # also: surrogates / features / diversity

Builds a table oracle from qm9pack's CSVs (``mdxfer.learn.data.qm9``; molecules outside the default
pretraining subset), then runs exactly what ``mdxfer al benchmark`` runs::

    mdxfer al benchmark --oracle runs/al-bench/polar.csv --initial 20 --batch 10 --rounds 10 \\
        --seeds 3 --model runs/cv --out runs/al-bench/polar

The budget (20 + 10 x 10 = 120 simulations) is 5 % of the 2,400-molecule pool. The pretrained
model is ``runs/cv`` (``mdxfer pretrain --out runs/cv``; pretrained here if missing).
``--compare`` also runs the default acquisition with other surrogate settings and writes
``compare.json``: the figures behind the choice of the loop's defaults.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--property", default="Polarizability_bohr3")
    ap.add_argument("--minimize", action="store_true")
    ap.add_argument("--n", type=int, default=2400)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--model", type=Path, default=ROOT / "runs" / "cv")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "al-bench")
    ap.add_argument(
        "--compare", action="store_true", help="also compare surrogates, features and diversity"
    )
    args = ap.parse_args()

    from mdxfer.al.acquisition import DEFAULT_ACQUISITION
    from mdxfer.al.benchmark import make_qm9_oracle, run_benchmark
    from mdxfer.al.diversity import Diversity
    from mdxfer.al.surrogate import SurrogateSettings
    from mdxfer.learn.models import set_threads

    set_threads(1)
    if not (args.model / "model.pt").exists():
        from mdxfer.learn.pretrain import pretrain

        print(f"pretraining the QM9-Cv model into {args.model} (about 5-10 min on one core)")
        pretrain(args.model, threads=1, progress=False)
    tag = args.property.split("_")[0].lower()
    oracle = make_qm9_oracle(args.out / f"{tag}.csv", args.n, args.property)
    say = print
    main_out = args.out / tag
    s = SurrogateSettings(model_dir=str(args.model))
    run_benchmark(
        oracle,
        main_out,
        20,
        10,
        10,
        args.seeds,
        args.minimize,
        surrogate=s,
        log=say,
        label=args.property,
    )
    print((main_out / "summary.md").read_text())
    if not args.compare:
        return
    variants = {
        "ridge, embedding+morgan, maxmin": (
            SurrogateSettings(model_dir=str(args.model)),
            Diversity("maxmin"),
        ),
        "ridge, embedding+morgan, no diversity": (
            SurrogateSettings(model_dir=str(args.model)),
            Diversity("none"),
        ),
        "ridge, embedding only": (
            SurrogateSettings(features="embedding", model_dir=str(args.model)),
            Diversity("maxmin"),
        ),
        "ridge, morgan only (no transfer)": (
            SurrogateSettings(features="morgan"),
            Diversity("maxmin"),
        ),
        "random forest, embedding+morgan": (
            SurrogateSettings(model="rf", members=100, model_dir=str(args.model)),
            Diversity("maxmin"),
        ),
    }
    results = {}
    for name, (sur, div) in variants.items():
        t0 = time.perf_counter()
        out = (
            args.out
            / f"{tag}-compare"
            / name.replace(", ", "_").replace(" ", "-").replace("(", "").replace(")", "")
        )
        r = run_benchmark(
            oracle,
            out,
            20,
            10,
            10,
            args.seeds,
            args.minimize,
            [DEFAULT_ACQUISITION, "greedy"],
            sur,
            div,
            label=args.property,
        )
        results[name] = {
            m: {k: v[k] for k in ("top1_recovery", "top5_recovery", "wall_s")}
            for m, v in r["methods"].items()
        }
        print(
            f"{name}: "
            + ", ".join(
                f"{m} top1 {v['top1_recovery']:.3f} top5 {v['top5_recovery']:.3f}"
                for m, v in results[name].items()
            )
            + f" ({time.perf_counter() - t0:.0f} s)"
        )
    (args.out / f"{tag}-compare" / "compare.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
