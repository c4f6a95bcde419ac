"""QM9, the cheap source data, read from the CSV files shipped by the ``qm9pack`` package.

``qm9pack`` ships ``qm9pack/data/qm9_part{1,2,3}.csv`` (130,831 molecules: QM9's 133,885 minus
the 3,054 that failed its consistency check). We read those files directly (the package's
helper module imports ``pkg_resources``) and keep the scalar columns. Nothing is downloaded.

Units follow the CSV column names: heat capacity ``Heatcapacity_Cv_cal_mol_K`` in cal/(mol K)
at 298.15 K, energies in hartree (``_au``), dipole in debye, polarisability in bohr³.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from mdxfer.errors import DataError

#: the reference study's source property, cal/(mol K) at 298.15 K
CV_COLUMN = "Heatcapacity_Cv_cal_mol_K"
SMILES_COLUMN = "SMILES"
#: scalar properties kept from the CSVs (per-atom arrays such as XYZ are dropped)
PROPERTY_COLUMNS = (
    "Dipole_debye",
    "Polarizability_bohr3",
    "HOMO_au",
    "LUMO_au",
    "HOMO_LUMO_gap_au",
    "R2_bohr2",
    "ZPVE_au",
    "InternalEnergy_0K_au",
    "InternalEnergy_298K_au",
    "Enthalphy_298K_au",
    "GibbsFreeEnergy_298K_au",
    CV_COLUMN,
)
#: short names for plots
LABELS = {CV_COLUMN: "heat capacity Cv (298.15 K)"}
UNITS = {
    CV_COLUMN: "cal/(mol K)",
    "Dipole_debye": "D",
    "Polarizability_bohr3": "bohr^3",
    "R2_bohr2": "bohr^2",
}


def data_files() -> list[Path]:
    """Paths of ``qm9pack/data/qm9_part{1,2,3}.csv`` (found without importing qm9pack)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "The QM9 data package 'qm9pack' is not installed; "
            "install it with `pip install qm9pack` (it ships QM9 as CSV files)."
        )
    root = Path(list(spec.submodule_search_locations)[0]) / "data"
    files = [root / f"qm9_part{i}.csv" for i in (1, 2, 3)]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise DataError(
            f"qm9pack is installed but its data files are missing: {', '.join(missing)}."
        )
    return files


def qm9pack_version() -> str:
    """Installed qm9pack version (for provenance)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qm9pack")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


@lru_cache(maxsize=1)
def _load_cached() -> pd.DataFrame:
    cols = ["Index", SMILES_COLUMN, "N_atoms", *PROPERTY_COLUMNS]
    frames = [pd.read_csv(f, usecols=cols) for f in data_files()]
    df = pd.concat(frames, ignore_index=True)
    df = df.rename(columns={"Index": "qm9_index"})
    return df


def load_qm9() -> pd.DataFrame:
    """All qm9pack molecules: ``qm9_index``, ``SMILES``, ``N_atoms`` and the scalar properties
    (a copy; the parsed CSVs are cached for the life of the process, ~4 s to read)."""
    return _load_cached().copy()


@dataclass
class Split:
    """A seeded QM9 subset split into training and validation rows."""

    train: pd.DataFrame
    val: pd.DataFrame
    subset_seed: int
    split_seed: int
    target: str

    @property
    def data_hash(self) -> str:
        """SHA-256 over the SMILES and target values of train then val (provenance)."""
        return table_hash(pd.concat([self.train, self.val]), SMILES_COLUMN, self.target)


def table_hash(df: pd.DataFrame, smiles_col: str, target_col: str) -> str:
    """SHA-256 of ``smiles,target`` lines (target printed with repr), in row order."""
    h = hashlib.sha256()
    for s, y in zip(df[smiles_col], df[target_col]):
        h.update(f"{s},{float(y)!r}\n".encode())
    return h.hexdigest()


def subset(n: int = 5000, seed: int = 0, df: pd.DataFrame | None = None) -> pd.DataFrame:
    """``n`` molecules drawn at random without replacement (numpy ``default_rng(seed)``)."""
    df = load_qm9() if df is None else df
    if not 0 < n <= len(df):
        raise DataError(
            f"The subset size (--n) must be between 1 and {len(df)} (the table's rows), got {n}."
        )
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(df), size=n, replace=False))
    return df.iloc[idx].reset_index(drop=True)


def split(
    n: int = 5000,
    n_val: int = 1000,
    seed: int = 0,
    split_seed: int | None = None,
    target: str = CV_COLUMN,
) -> Split:
    """The reference study's source data: a seeded random subset of ``n`` molecules (5,000) split into
    ``n - n_val`` training and ``n_val`` validation molecules (4,000 / 1,000).

    ``split_seed`` defaults to ``seed``.
    """
    df = load_qm9()
    if (
        target not in df.columns
        or target == "qm9_index"
        or not pd.api.types.is_numeric_dtype(df[target])
    ):
        raise DataError(
            f"Unknown QM9 property {target!r}; choose one of {', '.join(PROPERTY_COLUMNS)}."
        )
    if not 0 < n_val < n:
        raise DataError(f"The validation size must be between 1 and n - 1 = {n - 1}, got {n_val}.")
    return split_frame(df, n, n_val, seed, split_seed, target)


def split_frame(
    df: pd.DataFrame,
    n: int,
    n_val: int,
    seed: int = 0,
    split_seed: int | None = None,
    target: str = CV_COLUMN,
) -> Split:
    """:func:`split` of any table with a :data:`SMILES_COLUMN` and a ``target`` column (a
    user's own pretraining table): ``n`` rows drawn with ``seed``, ``n_val`` of them for
    validation (``split_seed``, default ``seed``)."""
    if not 0 < n_val < n:
        raise DataError(f"The validation size must be between 1 and n - 1 = {n - 1}, got {n_val}.")
    sub = subset(n, seed, df)
    split_seed = seed if split_seed is None else split_seed
    perm = np.random.default_rng(split_seed + 1_000_003).permutation(n)
    val, train = sub.iloc[np.sort(perm[:n_val])], sub.iloc[np.sort(perm[n_val:])]
    return Split(train.reset_index(drop=True), val.reset_index(drop=True), seed, split_seed, target)
