"""Relabel finished boxes whose force-field input is byte-identical under the current version.

    python scripts/relabel_forcefield.py DIR [DIR ...]

A change of force-field version (e.g. mdxfer-1 -> mdxfer-2: per-atom H-bond acceptors and
resonance typing) leaves many molecules' input unchanged. For each DIR holding a finished box
(species.json) built under another version, this rebuilds the box's input with the current
version in a temporary folder and compares ``forcefield.lmp`` byte for byte and the atom types
and charges of ``system.data`` (as multisets; packing positions differ); only when both are
identical is ``forcefield`` in species.json set to the current version (the old one is kept as
``forcefield_built_with``), so that the finished runs are reused instead of run again.
Stacks are relabelled when both their cells were.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path


def _types_charges(data: Path) -> Counter:
    out, on = Counter(), False
    for line in data.read_text().splitlines():
        if line.startswith("Atoms"):
            on = True
            continue
        if on:
            f = line.split()
            if len(f) >= 7:
                out[(f[2], f[3])] += 1
            elif f and f[0][0].isalpha():
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    args = ap.parse_args()
    from mdxfer.forcefield.parameters import load_table
    from mdxfer.md.interaction import prepare_species, prepare_stack
    from mdxfer.md.protocol import Protocol

    current = str(load_table()["version"])
    for d in args.dirs:
        info = json.loads((d / "species.json").read_text())
        if info.get("forcefield") == current:
            print(f"{d}: already {current}")
            continue
        protocol = Protocol.from_dict(info["protocol"])
        stack = info.get("kind") == "stack"
        if stack and any(
            json.loads((Path(info[k]) / "species.json").read_text()).get("forcefield") != current
            for k in ("bottom", "top")
        ):
            print(f"{d}: a stack whose cells are not {current}: relabel them first")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            if stack:
                prepare_stack(info["bottom"], info["top"], protocol, Path(tmp))
            else:
                prepare_species(
                    info["smiles"], protocol, Path(tmp), role=info.get("role", "candidate")
                )
            same_ff = (Path(tmp) / "forcefield.lmp").read_bytes() == (
                d / "forcefield.lmp"
            ).read_bytes()
            same_atoms = _types_charges(Path(tmp) / "system.data") == _types_charges(
                d / "system.data"
            )
        if same_ff and same_atoms:
            info["forcefield_built_with"] = info["forcefield"]
            info["forcefield"] = current
            (d / "species.json").write_text(json.dumps(info, indent=1))
            print(f"{d}: identical input under {current}: relabelled")
        else:
            print(
                f"{d}: input differs under {current} (forcefield.lmp {same_ff}, atoms "
                f"{same_atoms}): left as it is; run it again"
            )


if __name__ == "__main__":
    main()
