"""Where the LAMMPS time of a campaign goes: cells against stacks (issue 11, "stack speed").

    python benchmarks/lammps_sections.py runs/qm9-isoprene [--stage nvt]

Reads every ``<stage>.log`` under the work directory's ``*/species/*`` (single-species cells)
and ``*/pairs/*`` (stacks) and prints, per kind, the median and range of: atoms, speed in
katom-steps per CPU-second (:func:`mdxfer.md.cost.log_work`: the loop's wall time × the CPU
share LAMMPS reports, so runs that shared a core are not penalised), neighbour-list builds per
1000 steps, and the share of the loop time in each section of LAMMPS's timing breakdown
(Pair, Bond, Kspace, Neigh, Comm, Output, Modify). Figures only; nothing is run.
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

from mdxfer.md.cost import log_work

SECTIONS = ("Pair", "Bond", "Kspace", "Neigh", "Comm", "Output", "Modify")
LOOP = re.compile(r"Loop time of ([\d.eE+-]+) on \d+ procs for (\d+) steps")
BUILDS = re.compile(r"Neighbor list builds = (\d+)")


def sections(log: Path) -> dict[str, float] | None:
    """One log's figures (its last run), or None when it has no finished run."""
    text = log.read_text(errors="replace")
    loops = list(LOOP.finditer(text))
    if not loops:
        return None
    last = loops[-1]
    loop, steps = float(last[1]), int(last[2])
    tail = text[last.end() :]
    work, cpu, ranks = log_work(log)
    out = {"katom_steps_per_cpu_s": work / cpu / ranks / 1e3 if cpu else float("nan")}
    builds = BUILDS.search(tail)
    out["builds_per_1000_steps"] = 1000 * int(builds[1]) / steps if builds and steps else 0.0
    for name in SECTIONS:
        m = re.search(rf"^{name}\s*\|\s*[\d.eE+-]+\s*\|\s*([\d.eE+-]+)", tail, re.M)
        out[f"{name} %"] = 100 * float(m[1]) / loop if m and loop else 0.0
    atoms = re.search(r"steps with (\d+) atoms", text[last.start() :])
    out["atoms"] = float(atoms[1]) if atoms else float("nan")
    return out


def summarise(rows: list[dict[str, float]]) -> list[str]:
    lines = []
    for key in rows[0]:
        xs = [r[key] for r in rows]
        lines.append(
            f"  {key:24s} median {statistics.median(xs):9.1f}   range {min(xs):9.1f} – {max(xs):9.1f}"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workdir", type=Path, help="a campaign's (or bench_oracle's) work directory")
    ap.add_argument("--stage", default="nvt", help="which stage's logs (default nvt)")
    args = ap.parse_args()
    for kind, pattern in (("cells", "*/species/*"), ("stacks", "*/pairs/*")):
        rows = [
            r
            for log in sorted(args.workdir.glob(f"{pattern}/{args.stage}.log"))
            if (r := sections(log)) is not None
        ]
        print(f"{kind}: {len(rows)} {args.stage} log(s) under {args.workdir}")
        if rows:
            print("\n".join(summarise(rows)))


if __name__ == "__main__":
    main()
