"""Archive what a campaign needs to resume elsewhere: its store and its task folders, without
trajectories.

    python scripts/archive_campaign.py CAMPAIGN.toml --out data/campaign_runs/NAME.tar.gz

A session's work directory (runs/, not in git) does not survive the machine; this archive does,
in a few MB. It holds a consistent copy of the SQLite store (SQLite's backup API, so a running
campaign is fine) and, per task folder: every stage summary, thermo series, input and log; the
data files a later stage still reads (a box's ``system.data`` and ``compress.data``: stacks are
built from the boxes' barostat ends; an unfinished stack's own ones); the LAMMPS logs of
unfinished tasks only; never DCD trajectories or LAMMPS' stdout copies. Restore with ``mkdir -p WORKDIR && tar xzf ARCHIVE -C WORKDIR``; then
``mdxfer campaign run CAMPAIGN.toml`` resumes (finished stages are not run again).
"""

from __future__ import annotations

import argparse
import sqlite3
import tarfile
import tempfile
from pathlib import Path

SKIP_SUFFIXES = {".dcd", ".stdout", ".lock"}


def keep(path: Path, kind: str, finished: bool) -> bool:
    """Whether ``path`` (in a task folder of ``kind``) goes into the archive."""
    if path.suffix in SKIP_SUFFIXES or path.name.endswith(".lock"):
        return False
    if path.suffix == ".log":
        return not finished  # a finished task's numbers are in its JSON, CSV and the store
    if path.suffix == ".data":
        if kind == "species":
            return path.name in ("system.data", "compress.data")
        return not finished  # a finished stack's data files are read by nothing
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("campaign", help="campaign TOML file")
    ap.add_argument("--out", required=True, help="the .tar.gz to write")
    ap.add_argument(
        "--db-arcname",
        default=None,
        help="name of the store in the archive when it lives outside the work directory "
        "(default campaign.db; give another name when a second campaign shares the work "
        "directory, and move it back to the campaign file's `database` after extracting)",
    )
    args = ap.parse_args()

    from mdxfer.campaign.spec import load_spec

    spec = load_spec(args.campaign)
    workdir = Path(spec.workdir)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "campaign.db"
        src = sqlite3.connect(f"file:{spec.database}?mode=ro", uri=True, timeout=60)
        dst = sqlite3.connect(copy)
        src.backup(dst)
        tasks = src.execute(
            "SELECT kind, state, workdir FROM tasks WHERE workdir IS NOT NULL "
            "AND state != 'pending'"
        ).fetchall()
        src.close()
        dst.close()
        n = 0
        with tarfile.open(out, "w:gz") as tar:
            tar.add(
                copy,
                arcname=Path(spec.database).relative_to(workdir)
                if Path(spec.database).is_relative_to(workdir)
                else (args.db_arcname or "campaign.db"),
            )
            campaign_file = Path(args.campaign).resolve()
            if campaign_file.is_relative_to(workdir.resolve()):  # a file kept with its runs
                tar.add(campaign_file, arcname=str(campaign_file.relative_to(workdir.resolve())))
            for kind, state, rel in tasks:
                folder = workdir / rel
                if not folder.is_dir():
                    continue
                finished = state == "done"
                for f in sorted(folder.rglob("*")):
                    if f.is_file() and keep(f, kind, finished):
                        tar.add(f, arcname=str(f.relative_to(workdir)))
                        n += 1
    print(
        f"wrote {out}: the store and {n} files of {len(tasks)} task folders "
        f"({out.stat().st_size / 1e6:.1f} MB)"
    )


if __name__ == "__main__":
    main()
