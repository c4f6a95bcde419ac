"""Put the oracle panel's finished cells (benchmarks/bench_oracle.py) into a campaign's layout.

    python scripts/import_oracle_runs.py examples/qm9_isoprene_campaign.toml [--oracle runs/oracle]

The panel and a campaign whose protocols share their cell digest (they differ at most in
stack settings, e.g. interface walls) run the same single-species boxes on the same inputs:
the 1 ns partner box (0.8 CPU-hours) and each panel candidate's replica-0 cell need not run
twice, nor the stack when the full protocol digests agree too. This copies every finished one
(stage summaries made for the campaign's protocol, `mdxfer.md.interaction.summary_matches`)
into the folder the campaign would have used; the campaign then finds those stages done.
Nothing that already exists in the campaign is overwritten, and a box made for another
protocol is left alone (the campaign simulates it itself).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _finished(d: Path, protocol) -> bool:
    """Both LAMMPS stages of ``d`` finished for ``protocol``."""
    from mdxfer.md.interaction import summary_matches

    for stage in ("compress", "nvt"):
        f = d / f"{stage}.json"
        if not f.exists() or not summary_matches(d, json.loads(f.read_text()), protocol):
            return False
    return True


def _copy(src: Path, dst: Path, protocol, what: str) -> bool:
    if not _finished(src, protocol):
        print(f"  {what}: not finished in {src} for this protocol: left to the campaign")
        return False
    if dst.exists() and any(dst.iterdir()):
        print(f"  {what}: {dst} already holds files: left as it is")
        return False
    shutil.copytree(src, dst, dirs_exist_ok=True)
    print(f"  {what}: {src} -> {dst}")
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("campaign", help="campaign TOML file")
    ap.add_argument(
        "--oracle", default=str(ROOT / "runs" / "oracle"), help="bench_oracle.py's --out folder"
    )
    args = ap.parse_args()

    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_oracle import PANEL  # noqa: E402

    from mdxfer.campaign.runner import Campaign
    from mdxfer.molecule import canonical_smiles, inchikey

    with Campaign.open(args.campaign) as camp:
        prot = camp.protocol
        roots = [d for d in sorted(Path(args.oracle).glob("*-*")) if _finished(d / "partner", prot)]
        if not roots:
            raise SystemExit(
                f"no panel run under {args.oracle} has a finished partner box for "
                f"protocol {camp.digest} (cell digest {camp.cell_digest})."
            )
        src_root = roots[0]
        print(f"panel run {src_root}")
        _copy(
            src_root / "partner",
            camp.species_dir(camp.partner, camp.partner_inchikey, camp.partner_cell_digest),
            prot,
            "partner",
        )
        wanted = {canonical_smiles(c.smiles) for c in camp.spec.candidates}
        for name, smi in PANEL:
            canon = canonical_smiles(smi)
            if canon not in wanted:
                continue
            key = inchikey(canon)
            if _copy(
                src_root / name / "candidate", camp.species_dir(canon, key), prot, f"{name} cell"
            ):
                _copy(src_root / name / "stack", camp.pair_dir(canon, key), prot, f"{name} stack")
                (camp.pair_dir(canon, key) / "replica_result.json").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
