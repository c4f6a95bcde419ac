"""Regenerate the ML example files from real QM9 rows (qm9pack); no number is invented.

* ``benchmarks/data/qm9_polarisability_32.csv`` — 32 random QM9 molecules (like the reference study's 32) that are
  *not* in the default pretraining subset (``mdxfer pretrain`` with seed 0), with columns
  ``smiles``, ``target`` and ``qm9_index``. ``target`` is QM9's isotropic polarisability
  alpha in bohr³ — a stand-in with the shape of the MD side's output (a small table of one
  property), **not** an interaction energy. The learning benchmarks measure on it (the real MD table is
  ``data/eint_isoprene.csv``).
* ``examples/candidates.smi`` — 200 other QM9 molecules named ``qm9_<index>``, followed by a
  few molecules outside QM9's domain (sulfur, chlorine, more than 9 heavy atoms) so that the
  applicability flag has something to show.

Run: ``python examples/make_ml_examples.py``
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdxfer.learn.data import qm9

HERE = Path(__file__).resolve().parent
STAND_IN = HERE.parent / "benchmarks" / "data" / "qm9_polarisability_32.csv"
OUTSIDE_QM9 = [
    ("CC(=C)C=C", "isoprene"),  # in domain: 5 heavy atoms, C/H only
    ("c1ccsc1", "thiophene"),  # sulfur
    ("ClC(Cl)Cl", "chloroform"),  # chlorine
    ("CCCCCCCCCCCC(=O)O", "lauric_acid"),  # 14 heavy atoms
    ("OCCN(CCO)CCO", "triethanolamine"),  # 10 heavy atoms
    ("C[Si](C)(C)OCC", "ethoxytrimethylsilane"),  # silicon
]


def main() -> None:
    df = qm9.load_qm9()
    sp = qm9.split()  # the default pretraining data: subset seed 0, 5,000 molecules
    used = set(sp.train.qm9_index) | set(sp.val.qm9_index)
    pool = df[~df.qm9_index.isin(used)].reset_index(drop=True)
    rng = np.random.default_rng(2024)
    pick = rng.choice(len(pool), size=32 + 200, replace=False)
    table = pool.iloc[pick[:32]]
    out = table[["SMILES", "Polarizability_bohr3", "qm9_index"]].rename(
        columns={"SMILES": "smiles", "Polarizability_bohr3": "target"}
    )
    out.to_csv(STAND_IN, index=False)

    cands = pool.iloc[pick[32:]]
    lines = [
        "# Candidate molecules for `mdxfer rank`: SMILES, then an optional name.",
        "# 200 QM9 molecules (not in the pretraining subset, not in the 32-row polarisability stand-in),",
        "# then a few molecules outside QM9's domain. Regenerate: python examples/make_ml_examples.py",
    ]
    lines += [f"{s} qm9_{i}" for s, i in zip(cands.SMILES, cands.qm9_index)]
    lines += ["# outside the source data's domain (flagged in the ranking)"]
    lines += [f"{s} {name}" for s, name in OUTSIDE_QM9]
    (HERE / "candidates.smi").write_text("\n".join(lines) + "\n")
    print(
        f"wrote {STAND_IN} (32 rows) and {HERE / 'candidates.smi'} "
        f"({len(cands) + len(OUTSIDE_QM9)} molecules)"
    )


if __name__ == "__main__":
    main()
