"""Model-library benchmark: build time of the default library and shotgun-transfer time.

    python benchmarks/bench_library.py                        # default library (~15-25 min, 2 cores)
    python benchmarks/bench_library.py --work runs/library    # reuse (or finish) a library there
    python benchmarks/bench_library.py --quick                # 2 properties x 1+1 models, ~1 min

Prints the build's wall time against the 30-minute target (issue 7), each model's validation
R² and training time, and the wall time of a shotgun transfer of the whole library to
``benchmarks/data/qm9_polarisability_32.csv`` (32 rows; ShotgunSettings defaults: finetune + ridge, 2 x 5-fold CV),
i.e. the cost per candidate (model x mode) of the shotgun.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_MIN = 30.0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--work", type=Path, default=None, help="library folder (default: a temporary one)"
    )
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument(
        "--quick", action="store_true", help="a tiny library (checks the script, not the target)"
    )
    ap.add_argument("--data", type=Path, default=HERE / "data" / "qm9_polarisability_32.csv")
    a = ap.parse_args()

    from mdxfer.learn.library import LibrarySettings, build_library, manifest_table
    from mdxfer.learn.shotgun import ShotgunSettings, shotgun_transfer

    s = (
        LibrarySettings(
            properties=("cv", "alpha"),
            gnn_per_property=1,
            fp_per_property=1,
            n=600,
            n_val=120,
            gnn_epochs=10,
            fp_epochs=20,
        )
        if a.quick
        else LibrarySettings()
    )
    work = a.work or Path(tempfile.mkdtemp(prefix="mdxfer-library-"))
    t0 = time.perf_counter()
    m = build_library(work, s, jobs=a.jobs, progress=False, log=print)
    wall = time.perf_counter() - t0
    df = manifest_table(m)
    print(df.to_string(index=False))
    built = m.get("build_wall_s", wall)
    print(
        f"\nlibrary: {len(m['models'])} models, build wall {built / 60:.1f} min over all sessions "
        f"({wall / 60:.1f} min this run), {a.jobs} processes; target ≤ {TARGET_MIN:.0f} min: "
        f"{'met' if built / 60 <= TARGET_MIN else 'NOT met'}"
    )

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        r = shotgun_transfer(work, a.data, out, ShotgunSettings(), progress=False)
        sg = time.perf_counter() - t0
    print(
        f"shotgun: {r['n_candidates']} candidates on {r['n']} rows ({r['repeats']}x{r['folds']}-fold CV) in "
        f"{sg:.0f} s = {sg / r['n_candidates']:.2f} s per candidate; kept {r['chosen']} "
        f"(CV MAE {r['mae_val']:.4g} vs direct {r['direct_mae_val']:.4g})"
    )
    print(
        json.dumps(
            {
                "library_build_min": round(built / 60, 2),
                "models": len(m["models"]),
                "shotgun_s": round(sg, 1),
                "candidates": r["n_candidates"],
            }
        )
    )


if __name__ == "__main__":
    main()
