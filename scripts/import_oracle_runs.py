"""Put the oracle panel's finished cells (benchmarks/bench_oracle.py) into a campaign's layout.

    python scripts/import_oracle_runs.py examples/qm9_isoprene_campaign.toml [--oracle runs/oracle]

The panel and a campaign with the same protocol digest run the same stages on the same inputs:
the 1 ns partner box (0.8 CPU-hours) and each panel candidate's replica-0 cell and stack need
not run twice. This copies every finished one (stage summaries whose protocol digest is the
campaign's) into the folder the campaign would have used; the campaign then finds those stages
done and only combines them. Nothing that already exists in the campaign is overwritten, and a
box whose digest differs is left alone (the campaign simulates it itself).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _finished(d: Path, digest: str) -> bool:
    """Both LAMMPS stages of ``d`` finished for the protocol with ``digest``."""
    for stage in ("compress", "nvt"):
        f = d / f"{stage}.json"
        if not f.exists() or json.loads(f.read_text()).get("protocol_digest") != digest:
            return False
    return True


def _copy(src: Path, dst: Path, digest: str, what: str) -> bool:
    if not _finished(src, digest):
        print(f"  {what}: not finished in {src} for protocol {digest}: left to the campaign")
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
    ap.add_argument("--oracle", default=str(ROOT / "runs" / "oracle"),
                    help="bench_oracle.py's --out folder")
    args = ap.parse_args()

    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_oracle import PANEL  # noqa: E402

    from mdxfer.campaign.runner import Campaign
    from mdxfer.molecule import canonical_smiles, inchikey

    with Campaign.open(args.campaign) as camp:
        digest = camp.digest
        src_root = Path(args.oracle) / f"{camp.protocol.name}-{digest}"
        if not src_root.is_dir():
            raise SystemExit(f"{src_root} does not exist: no panel run with protocol {digest}.")
        _copy(src_root / "partner", camp.species_dir(camp.partner, camp.partner_inchikey),
              digest, "partner")
        wanted = {canonical_smiles(c.smiles) for c in camp.spec.candidates}
        for name, smi in PANEL:
            canon = canonical_smiles(smi)
            if canon not in wanted:
                continue
            key = inchikey(canon)
            if _copy(src_root / name / "candidate", camp.species_dir(canon, key), digest,
                     f"{name} cell"):
                _copy(src_root / name / "stack", camp.pair_dir(canon, key), digest,
                      f"{name} stack")
                (camp.pair_dir(canon, key) / "replica_result.json").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
