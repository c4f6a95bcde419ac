"""Draw the QM9 molecules of the E_int campaign (issue 12): seeded, reproducible, and only
molecules that mdxfer can simulate.

    .venv/bin/python scripts/draw_qm9.py                 # 32 molecules, seed 12 (the committed draw)
    .venv/bin/python scripts/draw_qm9.py --n 32 --seed 12 --check   # redraw and compare, write nothing

The whole of QM9 as qm9pack ships it (130,831 molecules, :func:`mdxfer.learn.data.qm9.load_qm9`) is put in
one random order, ``numpy.random.default_rng(seed).permutation``; the molecules are taken in that
order and each is checked the way the production protocol will build it: RDKit parse
(:func:`mdxfer.molecule.parse_smiles`), at least :data:`MIN_HEAVY_ATOMS` heavy atoms, no net
charge, then the compact 3D conformer (:func:`mdxfer.molecule.embed_compact`, the protocol's
seed) and DREIDING typing with the protocol's charges
(:func:`mdxfer.forcefield.parametrize`: unsupported elements, charged species, radicals, bond
types, MMFF94 charges). A molecule that fails is recorded with its reason and the next one in
the order is taken, until ``n`` are kept. No MD is run.

Writes (paths relative to the repository):

* ``data/qm9_draw.csv`` — the kept molecules in draw order: ``name`` (``qm9_<QM9 index>``),
  ``smiles`` (QM9's SMILES as qm9pack gives it), ``canonical_smiles``, ``qm9_index``,
  ``Cv_cal_mol_K`` (QM9 heat capacity at 298.15 K), ``heavy_atoms``, ``draw_position`` (0-based
  place in the random order), ``in_pretrain_subset`` (whether the molecule is in the default
  ``mdxfer pretrain`` data: 5,000 molecules, subset seed 0 — the source model has seen its Cv,
  never its E_int), ``formal_charges`` (atoms with a formal charge at net charge 0, e.g. a
  zwitterion; empty for none).
* ``data/qm9_draw_skipped.csv`` — the molecules passed over: ``draw_position``, ``qm9_index``,
  ``smiles``, ``reason``.
* ``examples/qm9_isoprene_candidates.smi`` — the kept molecules as ``SMILES name`` lines, read
  by ``examples/qm9_isoprene_campaign.toml``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_N = 32
DEFAULT_SEED = 12  # issue 12; any fixed seed would do, this one is the committed draw
MIN_HEAVY_ATOMS = 3
DRAW_CSV = ROOT / "data" / "qm9_draw.csv"
SKIPPED_CSV = ROOT / "data" / "qm9_draw_skipped.csv"
#: molecules the campaign could not simulate (QM9 index, SMILES, the campaign's failure
#: reason); the draw passes over them like the others and takes the next one
MD_FAILED_CSV = ROOT / "data" / "qm9_md_failed.csv"
SMI_FILE = ROOT / "examples" / "qm9_isoprene_candidates.smi"
KEPT_COLUMNS = [
    "name",
    "smiles",
    "canonical_smiles",
    "qm9_index",
    "Cv_cal_mol_K",
    "heavy_atoms",
    "draw_position",
    "in_pretrain_subset",
    "formal_charges",
]
SKIPPED_COLUMNS = ["draw_position", "qm9_index", "smiles", "reason"]


def simulation_problem(smiles: str, protocol_name: str = "production") -> str | None:
    """Why mdxfer cannot simulate ``smiles`` under the preset ``protocol_name``, or None.

    The checks are mdxfer's own, in the order a campaign meets them: parsing, the draw's own
    rules (heavy atoms, net charge), the compact conformer of the packmol route (or the plain
    conformer of the random-packing route) and DREIDING parametrisation with the protocol's
    charge model.
    """
    from rdkit import Chem

    from mdxfer.errors import MdxferError
    from mdxfer.forcefield import parametrize
    from mdxfer.md.protocol import load_protocol
    from mdxfer.molecule import canonical_smiles, embed, embed_compact, parse_smiles

    protocol = load_protocol(protocol_name)
    try:
        mol = parse_smiles(smiles)
    except MdxferError as exc:
        return f"molecule: {exc}"
    heavy = mol.GetNumHeavyAtoms()
    if heavy < MIN_HEAVY_ATOMS:
        return f"too small: {heavy} heavy atom(s), the draw keeps >= {MIN_HEAVY_ATOMS}"
    charge = Chem.GetFormalCharge(mol)
    if charge:
        return f"net charge {charge:+d} e: mdxfer simulates neutral molecules only"
    canon = canonical_smiles(smiles)
    try:
        if protocol.packing == "packmol":
            conf = embed_compact(canon, seed=protocol.seed)
        else:
            conf = embed(canon, seed=protocol.seed)
    except MdxferError as exc:
        return f"embedding: {exc}"
    except Exception as exc:  # noqa: BLE001 - RDKit raises its own classes; record the reason
        return f"embedding: {type(exc).__name__}: {exc}"
    try:
        parametrize(conf, canon, charges=protocol.charges)
    except MdxferError as exc:
        return f"forcefield: {exc}"
    except Exception as exc:  # noqa: BLE001
        return f"forcefield: {type(exc).__name__}: {exc}"
    return None


def md_failures(path: Path = MD_FAILED_CSV) -> dict[str, str]:
    """QM9 SMILES -> why the production campaign could not simulate it (from ``path``)."""
    if not path.is_file():
        return {}
    df = pd.read_csv(path)
    return {str(s): f"MD: {r}" for s, r in zip(df.smiles, df.reason)}


def with_md_failures(
    failed: dict[str, str], problem: Callable[[str], str | None] = simulation_problem
) -> Callable[[str], str | None]:
    """``problem``, but a molecule the campaign failed on is passed over with that reason."""
    return lambda smiles: failed.get(smiles) or problem(smiles)


def formal_charges(smiles: str) -> str:
    """``N+1 O-1`` style list of the atoms with a formal charge (empty for none)."""
    from mdxfer.molecule import parse_smiles

    return " ".join(
        f"{a.GetSymbol()}{a.GetFormalCharge():+d}"
        for a in parse_smiles(smiles).GetAtoms()
        if a.GetFormalCharge()
    )


def draw(
    df: pd.DataFrame,
    n: int = DEFAULT_N,
    seed: int = DEFAULT_SEED,
    problem: Callable[[str], str | None] = simulation_problem,
    pretrain: set[int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, skipped): the first ``n`` molecules of ``df`` in the order
    ``default_rng(seed).permutation(len(df))`` for which ``problem(smiles)`` is None, and the
    ones passed over on the way with their reasons. ``df`` has QM9's columns (``qm9_index``,
    ``SMILES``, the Cv column); ``pretrain`` is the set of QM9 indices of the pretraining data."""
    from mdxfer.learn.data.qm9 import CV_COLUMN
    from mdxfer.molecule import canonical_smiles, parse_smiles

    order = np.random.default_rng(seed).permutation(len(df))
    kept, skipped = [], []
    for pos, i in enumerate(order):
        if len(kept) == n:
            break
        row = df.iloc[int(i)]
        smiles, index = str(row["SMILES"]), int(row["qm9_index"])
        reason = problem(smiles)
        if reason is not None:
            skipped.append(
                {
                    "draw_position": pos,
                    "qm9_index": index,
                    "smiles": smiles,
                    "reason": " ".join(reason.split()),
                }
            )
            continue
        kept.append(
            {
                "name": f"qm9_{index}",
                "smiles": smiles,
                "canonical_smiles": canonical_smiles(smiles),
                "qm9_index": index,
                "Cv_cal_mol_K": float(row[CV_COLUMN]),
                "heavy_atoms": parse_smiles(smiles).GetNumHeavyAtoms(),
                "draw_position": pos,
                "in_pretrain_subset": bool(pretrain is not None and index in pretrain),
                "formal_charges": formal_charges(smiles),
            }
        )
    if len(kept) < n:
        raise ValueError(f"only {len(kept)} of {len(df)} molecules pass; asked for {n}")
    return (
        pd.DataFrame(kept, columns=KEPT_COLUMNS),
        pd.DataFrame(skipped, columns=SKIPPED_COLUMNS),
    )


def smi_text(kept: pd.DataFrame, seed: int) -> str:
    head = [
        f"# {len(kept)} QM9 molecules drawn at random (seed {seed}) by scripts/draw_qm9.py;",
        "# the molecules passed over and why: data/qm9_draw_skipped.csv. Do not edit by hand.",
        "# SMILES name  (name = qm9_<QM9 index>, QM9's own SMILES)",
    ]
    return "\n".join(head + [f"{s} {name}" for s, name in zip(kept.smiles, kept.name)]) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=DEFAULT_N, help="molecules to keep (32)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="draw seed (12)")
    ap.add_argument(
        "--check",
        action="store_true",
        help="redraw and compare with the committed files; write nothing",
    )
    args = ap.parse_args(argv)

    from mdxfer.learn.data import qm9

    df = qm9.load_qm9()
    pretrain = set(qm9.subset(5000, 0, df).qm9_index)  # `mdxfer pretrain` defaults
    problem = with_md_failures(md_failures())
    kept, skipped = draw(df, args.n, args.seed, problem=problem, pretrain=pretrain)
    if args.check:
        same = (
            DRAW_CSV.is_file()
            and SKIPPED_CSV.is_file()
            and list(pd.read_csv(DRAW_CSV).qm9_index) == list(kept.qm9_index)
            and list(pd.read_csv(SKIPPED_CSV).qm9_index) == list(skipped.qm9_index)
        )
        print("the committed draw is reproduced" if same else "the draw DIFFERS from the files")
        return 0 if same else 1
    DRAW_CSV.parent.mkdir(parents=True, exist_ok=True)
    kept.to_csv(DRAW_CSV, index=False)
    skipped.to_csv(SKIPPED_CSV, index=False)
    SMI_FILE.write_text(smi_text(kept, args.seed))
    print(
        f"kept {len(kept)} (qm9pack {qm9.qm9pack_version()}, seed {args.seed}), skipped "
        f"{len(skipped)}: {DRAW_CSV.relative_to(ROOT)}, {SKIPPED_CSV.relative_to(ROOT)}, "
        f"{SMI_FILE.relative_to(ROOT)}"
    )
    for r in skipped.itertuples():
        print(f"  skipped #{r.draw_position} qm9_{r.qm9_index} {r.smiles}: {r.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
