"""The ranking outside QM9 and its MD checks (issue 12): the rubber-modifier list ranked by a
model trained on the E_int table, the top and bottom of the ranking simulated with the
production protocol, predicted against simulated.

    .venv/bin/python scripts/rubber_checks.py pick --ranked data/rubber_ranked.csv
        [--top 3 --bottom 2] [--out examples/rubber_checks_campaign.toml]
    .venv/bin/mdxfer campaign run examples/rubber_checks_campaign.toml      # the MD checks
    .venv/bin/python scripts/rubber_checks.py compare --ranked data/rubber_ranked.csv
        --export data/rubber_checks_export.csv [--target E_cross] [--out data/rubber_checks.csv]

``pick`` takes the ``--top`` best and ``--bottom`` worst molecules of a ``mdxfer rank`` output
(best first) that MD can simulate (``md_supported``), and writes a campaign file for them:
production preset, isoprene, one replica, the same work directory as the E_int table's
campaign (a molecule simulated there is never simulated twice). ``compare`` joins the
predictions with a ``mdxfer campaign export`` of that campaign (by canonical SMILES): predicted
mean ± spread, simulated value ± stderr, and whether the simulated value lies within 2 σ of the
prediction (σ: the model's spread and the simulation's stderr in quadrature).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pandas as pd

from mdxfer.molecule import canonical_smiles

ROOT = Path(__file__).resolve().parents[1]

CAMPAIGN = """\
# The MD checks of the ranking outside QM9 (issue 12, docs/eint_table.md): the {n_top} best and
# the {n_bottom} worst molecules of {ranked} (by predicted {target}), production
# protocol against isoprene. Written by scripts/rubber_checks.py pick; run with
#   .venv/bin/mdxfer campaign run examples/rubber_checks_campaign.toml
# and compare with scripts/rubber_checks.py compare. Paths are relative to this file.

[campaign]
name = "rubber-checks"
database = "{database}"
workdir = "{workdir}"      # the E_int table's: boxes and the partner are shared
partner = "CC(=C)C=C"

[candidates]
smiles = [
{rows}
]

[protocol]
preset = "production"
replicas = 1

[execution]
profile = "local"
[execution.executor]
kind = "threads"
workers = 0
[execution.lammps]
command = ""
ranks = 1
mpi_prefix = false
guard = true

[retry]
max_retries = 2
retry_on = ["lost", "lammps"]
"""


def pick(ranked: pd.DataFrame, top: int, bottom: int) -> pd.DataFrame:
    """The ``top`` first and ``bottom`` last rows MD can simulate, with a ``role`` column."""
    ok = ranked[ranked["md_supported"].astype(str).str.lower() == "true"]
    step = ok["mean"].diff().dropna()
    if not ((step >= 0).all() or (step <= 0).all()):
        raise SystemExit(
            "the ranked file is not in the order of its predictions (a mdxfer rank output, best first)"
        )
    if len(ok) < top + bottom:
        raise SystemExit(f"only {len(ok)} molecules MD can simulate; need {top + bottom}")
    first = ok.head(top).assign(role="top")
    last = ok.tail(bottom).assign(role="bottom")
    return pd.concat([first, last], ignore_index=True)


def write_campaign(picked: pd.DataFrame, out: Path, ranked: Path, target: str) -> None:
    """The check campaign at ``out``; its database and work directory are the repository's
    ``runs/`` folders, written relative to ``out``'s folder wherever it is."""
    rows = ",\n".join(
        f"    {{smiles = {json.dumps(s)}, name = {json.dumps(str(n))}}}"
        for s, n in zip(picked.smiles, picked.name)
    )
    text = CAMPAIGN.format(
        n_top=int((picked.role == "top").sum()),
        n_bottom=int((picked.role == "bottom").sum()),
        ranked=ranked.relative_to(ROOT) if ranked.is_relative_to(ROOT) else ranked,
        target=target,
        rows=rows,
        database=os.path.relpath(ROOT / "runs" / "rubber-checks" / "campaign.db", out.parent),
        workdir=os.path.relpath(ROOT / "runs" / "qm9-isoprene", out.parent),
    )
    out.write_text(text)


def compare(ranked: pd.DataFrame, export: pd.DataFrame, target: str) -> pd.DataFrame:
    """Predicted against simulated, one row per simulated molecule."""
    ranked = ranked.assign(key=[canonical_smiles(s) for s in ranked.smiles])
    export = export.assign(key=[canonical_smiles(s) for s in export.smiles])
    done = export[export.status == "done"]
    m = done.merge(ranked, on="key", suffixes=("", "_ranked"))
    out = pd.DataFrame(
        {
            "name": m["name"],
            "smiles": m["smiles"],
            "rank": m["rank"],
            "predicted": m["mean"],
            "predicted_spread": m["std"],
            "simulated": m[target],
            "simulated_stderr": m[f"{target}_stderr"],
            "in_domain": m["in_domain"],
        }
    )
    # the model's spread and the simulation's stderr in quadrature (a missing stderr counts 0)
    combined = (out.predicted_spread**2 + out.simulated_stderr.fillna(0.0) ** 2) ** 0.5
    out["within_2_sigma"] = (out.simulated - out.predicted).abs() <= 2 * combined
    return out.sort_values("rank").reset_index(drop=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pick", help="write the check campaign for the top/bottom of a ranking")
    p.add_argument("--ranked", type=Path, required=True)
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--bottom", type=int, default=2)
    p.add_argument("--target", default="E_cross")
    p.add_argument("--out", type=Path, default=ROOT / "examples" / "rubber_checks_campaign.toml")
    c = sub.add_parser("compare", help="predicted against simulated")
    c.add_argument("--ranked", type=Path, required=True)
    c.add_argument("--export", type=Path, required=True)
    c.add_argument("--target", default="E_cross")
    c.add_argument("--out", type=Path, default=ROOT / "data" / "rubber_checks.csv")
    args = ap.parse_args()
    ranked = pd.read_csv(args.ranked)
    if args.cmd == "pick":
        picked = pick(ranked, args.top, args.bottom)
        write_campaign(picked, args.out, args.ranked.resolve(), args.target)
        print(picked[["rank", "name", "smiles", "mean", "std", "role"]].to_string(index=False))
        print(f"wrote {args.out}")
    else:
        table = compare(ranked, pd.read_csv(args.export), args.target)
        table.to_csv(args.out, index=False, float_format="%.4f")
        print(table.to_string(index=False))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
