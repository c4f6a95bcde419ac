"""Molecular graphs with DGL-LifeSci's canonical atom and bond features, built for PyG.

The features reproduce DGL-LifeSci's ``CanonicalAtomFeaturizer`` (74 columns) and
``CanonicalBondFeaturizer`` (12 columns) bit for bit. Checked against the source of
``dgllife/utils/featurizers.py`` (awslabs/dgl-lifesci, commit 033bcb5b; the same definitions in
every release since 0.2):

* ``CanonicalAtomFeaturizer`` = ``ConcatFeaturizer([atom_type_one_hot, atom_degree_one_hot,
  atom_implicit_valence_one_hot, atom_formal_charge, atom_num_radical_electrons,
  atom_hybridization_one_hot, atom_is_aromatic, atom_total_num_H_one_hot])``, every function
  with its default arguments. In particular ``atom_type_one_hot`` is called with
  ``encode_unknown=False``: the 43 symbols below and **no** "unknown" bit (an element outside
  the list gets an all-zero type block). 43 + 11 + 7 + 1 + 1 + 5 + 1 + 5 = 74 columns:

  ====== ======================================================================
  column meaning
  ====== ======================================================================
  0-42   element, ``Atom.GetSymbol()`` in :data:`ATOM_TYPES`
  43-53  degree (heavy-atom neighbours, ``GetDegree``) 0..10
  54-60  implicit valence 0..6
  61     formal charge (raw integer)
  62     number of radical electrons (raw integer)
  63-67  hybridisation SP, SP2, SP3, SP3D, SP3D2
  68     aromatic (0/1)
  69-73  total number of H (``GetTotalNumHs``) 0..4
  ====== ======================================================================

  One-hot blocks follow DGL's ``one_hot_encoding(..., encode_unknown=False)``: a value outside
  the allowable set gives an all-zero block.
* ``CanonicalBondFeaturizer`` = ``ConcatFeaturizer([bond_type_one_hot, bond_is_conjugated,
  bond_is_in_ring, bond_stereo_one_hot])``: type SINGLE, DOUBLE, TRIPLE, AROMATIC (0-3),
  conjugated (4), in ring (5), stereo STEREONONE, STEREOANY, STEREOZ, STEREOE, STEREOCIS,
  STEREOTRANS (6-11). DGL stores each bond twice (edges ``2i`` and ``2i+1`` are bond ``i`` in
  both directions); :func:`canonical_bond_features` returns one row per RDKit bond and the
  graphs here repeat each row for both directions in the same ``2i, 2i+1`` order.

Implicit valence: DGL calls ``Atom.GetImplicitValence()``, deprecated since RDKit 2024.09 (it
prints a warning per call). We call ``Atom.GetValence(Chem.ValenceType.IMPLICIT)``, which gave
the same value for all 1,150,777 atoms of the 130,831 QM9 molecules in qm9pack plus charged,
bracket, radical and isotope test cases (RDKit 2026.09).

Atom order: rows follow RDKit's atom order of the molecule given. DGL-LifeSci's
``smiles_to_bigraph`` renumbers atoms canonically by default; the features of each atom are
the same, only the row order differs, and graph convolutions with pooling do not depend on it.

Speed: per atom the eight RDKit properties are read once into an integer table and the one-hot
blocks are built with numpy indexing. Many molecules are packed into one :class:`GraphSet`
(concatenated arrays plus offsets) from which mini-batches are cut without Python loops over
graphs; :func:`featurize_smiles` can spread the work over processes (``n_jobs``) and
:func:`cached_featurize` keeps the result on disk.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from rdkit import Chem, RDLogger

from mdxfer.validate import smiles_consumed_problem, smiles_text_problem

#: Bump when the features change; stored with every model and cache file.
FEATURIZER_VERSION = "dgllife-canonical-atom74-bond12/v1"

#: DGL-LifeSci's default ``atom_type_one_hot`` allowable set, in its order.
ATOM_TYPES: tuple[str, ...] = (
    "C",
    "N",
    "O",
    "S",
    "F",
    "Si",
    "P",
    "Cl",
    "Br",
    "Mg",
    "Na",
    "Ca",
    "Fe",
    "As",
    "Al",
    "I",
    "B",
    "V",
    "K",
    "Tl",
    "Yb",
    "Sb",
    "Sn",
    "Ag",
    "Pd",
    "Co",
    "Se",
    "Ti",
    "Zn",
    "H",
    "Li",
    "Ge",
    "Cu",
    "Au",
    "Ni",
    "Cd",
    "In",
    "Mn",
    "Zr",
    "Cr",
    "Pt",
    "Hg",
    "Pb",
)
HYBRIDIZATIONS = (
    Chem.rdchem.HybridizationType.SP,
    Chem.rdchem.HybridizationType.SP2,
    Chem.rdchem.HybridizationType.SP3,
    Chem.rdchem.HybridizationType.SP3D,
    Chem.rdchem.HybridizationType.SP3D2,
)
BOND_TYPES = (
    Chem.rdchem.BondType.SINGLE,
    Chem.rdchem.BondType.DOUBLE,
    Chem.rdchem.BondType.TRIPLE,
    Chem.rdchem.BondType.AROMATIC,
)
BOND_STEREOS = (
    Chem.rdchem.BondStereo.STEREONONE,
    Chem.rdchem.BondStereo.STEREOANY,
    Chem.rdchem.BondStereo.STEREOZ,
    Chem.rdchem.BondStereo.STEREOE,
    Chem.rdchem.BondStereo.STEREOCIS,
    Chem.rdchem.BondStereo.STEREOTRANS,
)

ATOM_FEATURE_SIZE = 74
BOND_FEATURE_SIZE = 12

# column offsets of the atom blocks
_TYPE, _DEGREE, _IMPVAL, _CHARGE, _RADICAL, _HYBRID, _AROM, _NUMH = 0, 43, 54, 61, 62, 63, 68, 69

_PT = Chem.GetPeriodicTable()
#: atomic number -> column of the element one-hot (-1: not in the list)
_Z_TO_TYPE = np.full(128, -1, dtype=np.int64)
for _i, _sym in enumerate(ATOM_TYPES):
    _Z_TO_TYPE[_PT.GetAtomicNumber(_sym)] = _i
_HYB_TO_COL = np.full(64, -1, dtype=np.int64)
for _i, _h in enumerate(HYBRIDIZATIONS):
    _HYB_TO_COL[int(_h)] = _i
_BT_TO_COL = np.full(64, -1, dtype=np.int64)
for _i, _b in enumerate(BOND_TYPES):
    _BT_TO_COL[int(_b)] = _i
_ST_TO_COL = np.full(64, -1, dtype=np.int64)
for _i, _s in enumerate(BOND_STEREOS):
    _ST_TO_COL[int(_s)] = _i

_IMPLICIT = Chem.ValenceType.IMPLICIT


# --------------------------------------------------------------------------------------------
# per-molecule integer tables
# --------------------------------------------------------------------------------------------


def atom_table(mol: Chem.Mol) -> np.ndarray:
    """Integer table (n_atoms x 8): Z, degree, implicit valence, formal charge, radical
    electrons, hybridisation (RDKit enum value), aromatic, total H — in RDKit atom order."""
    rows = [
        (
            a.GetAtomicNum(),
            a.GetDegree(),
            a.GetValence(_IMPLICIT),
            a.GetFormalCharge(),
            a.GetNumRadicalElectrons(),
            int(a.GetHybridization()),
            a.GetIsAromatic(),
            a.GetTotalNumHs(),
        )
        for a in mol.GetAtoms()
    ]
    return np.array(rows, dtype=np.int64).reshape(-1, 8)


def bond_table(mol: Chem.Mol) -> np.ndarray:
    """Integer table (n_bonds x 6): begin atom, end atom, bond type (RDKit enum value),
    conjugated, in ring, stereo (RDKit enum value) — in RDKit bond order."""
    rows = [
        (
            b.GetBeginAtomIdx(),
            b.GetEndAtomIdx(),
            int(b.GetBondType()),
            b.GetIsConjugated(),
            b.IsInRing(),
            int(b.GetStereo()),
        )
        for b in mol.GetBonds()
    ]
    return np.array(rows, dtype=np.int64).reshape(-1, 6)


def _one_hot_into(out: np.ndarray, col0: int, values: np.ndarray, size: int) -> None:
    """Set ``out[i, col0 + values[i]] = 1`` where ``0 <= values[i] < size`` (DGL's
    ``encode_unknown=False``: anything else leaves the block zero)."""
    ok = (values >= 0) & (values < size)
    rows = np.nonzero(ok)[0]
    out[rows, col0 + values[ok]] = 1.0


def encode_atoms(table: np.ndarray) -> np.ndarray:
    """74-column float32 features from an :func:`atom_table` (any number of stacked rows)."""
    n = table.shape[0]
    out = np.zeros((n, ATOM_FEATURE_SIZE), dtype=np.float32)
    z = table[:, 0]
    type_col = np.where(z < len(_Z_TO_TYPE), _Z_TO_TYPE[np.minimum(z, len(_Z_TO_TYPE) - 1)], -1)
    _one_hot_into(out, _TYPE, type_col, len(ATOM_TYPES))
    _one_hot_into(out, _DEGREE, table[:, 1], 11)
    _one_hot_into(out, _IMPVAL, table[:, 2], 7)
    out[:, _CHARGE] = table[:, 3]
    out[:, _RADICAL] = table[:, 4]
    _one_hot_into(out, _HYBRID, _HYB_TO_COL[table[:, 5]], len(HYBRIDIZATIONS))
    out[:, _AROM] = table[:, 6]
    _one_hot_into(out, _NUMH, table[:, 7], 5)
    return out


def encode_bonds(table: np.ndarray) -> np.ndarray:
    """12-column float32 features from a :func:`bond_table` (one row per bond)."""
    n = table.shape[0]
    out = np.zeros((n, BOND_FEATURE_SIZE), dtype=np.float32)
    _one_hot_into(out, 0, _BT_TO_COL[table[:, 2]], 4)
    out[:, 4] = table[:, 3]
    out[:, 5] = table[:, 4]
    _one_hot_into(out, 6, _ST_TO_COL[table[:, 5]], 6)
    return out


def canonical_atom_features(mol: Chem.Mol) -> np.ndarray:
    """DGL-LifeSci ``CanonicalAtomFeaturizer`` features, float32 array (n_atoms x 74), rows in
    RDKit atom order. See the module docstring for the column layout."""
    return encode_atoms(atom_table(mol))


def canonical_bond_features(mol: Chem.Mol) -> np.ndarray:
    """DGL-LifeSci ``CanonicalBondFeaturizer`` features, float32 array (n_bonds x 12), one row
    per RDKit bond in RDKit bond order (DGL repeats each row for the two edge directions)."""
    return encode_bonds(bond_table(mol))


# --------------------------------------------------------------------------------------------
# SMILES parsing
# --------------------------------------------------------------------------------------------


def parse_smiles_or_none(smiles: str) -> Chem.Mol | None:
    """RDKit molecule (hydrogens implicit, as DGL-LifeSci's ``smiles_to_bigraph``) or ``None``
    when RDKit cannot parse or sanitise it, or would read only part of the string (the same
    checks as :func:`mdxfer.molecule.parse_smiles`, which raises :class:`MoleculeError` instead).
    RDKit's own messages are silenced."""
    text = smiles.strip() if isinstance(smiles, str) else ""
    if smiles_text_problem(text):  # RDKit would drop what follows a space, 'Ö', a NUL, ...
        return None
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(text)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol is None or mol.GetNumAtoms() == 0 or smiles_consumed_problem(text, mol):
        return None
    return mol


# --------------------------------------------------------------------------------------------
# packed graphs
# --------------------------------------------------------------------------------------------


@dataclass
class GraphSet:
    """Many molecular graphs packed into flat arrays (no per-graph Python objects).

    Graph ``g`` owns nodes ``node_ptr[g]:node_ptr[g+1]`` and directed edges
    ``edge_ptr[g]:edge_ptr[g+1]``; ``edge_index`` holds global node numbers; every bond appears
    as two consecutive edges (u->v, v->u) as in DGL-LifeSci. ``z`` is the atomic number of
    each node (for the applicability check).
    """

    x: np.ndarray  # (N, 74) float32
    edge_index: np.ndarray  # (2, E) int64, global node ids
    edge_attr: np.ndarray  # (E, 12) float32
    node_ptr: np.ndarray  # (G+1,) int64
    edge_ptr: np.ndarray  # (G+1,) int64
    z: np.ndarray  # (N,) int16 atomic numbers

    def __len__(self) -> int:
        return len(self.node_ptr) - 1

    @property
    def n_atoms(self) -> np.ndarray:
        """Number of (heavy, as parsed) atoms per graph."""
        return np.diff(self.node_ptr)

    def heavy_atom_counts(self) -> np.ndarray:
        """Atoms with Z > 1 per graph."""
        heavy = (self.z > 1).astype(np.int64)
        csum = np.concatenate([[0], np.cumsum(heavy)])
        return csum[self.node_ptr[1:]] - csum[self.node_ptr[:-1]]

    def elements(self, g: int) -> set[int]:
        """Atomic numbers present in graph ``g``."""
        return set(self.z[self.node_ptr[g] : self.node_ptr[g + 1]].tolist())

    def subset(self, idx: Sequence[int] | np.ndarray) -> GraphSet:
        """A new :class:`GraphSet` holding graphs ``idx`` in that order (vectorised)."""
        idx = np.asarray(idx, dtype=np.int64)
        n_start, n_cnt = self.node_ptr[idx], np.diff(self.node_ptr)[idx]
        e_start, e_cnt = self.edge_ptr[idx], np.diff(self.edge_ptr)[idx]
        node_ptr = np.concatenate([[0], np.cumsum(n_cnt)]).astype(np.int64)
        edge_ptr = np.concatenate([[0], np.cumsum(e_cnt)]).astype(np.int64)
        nodes = _ranges(n_start, n_cnt)
        edges = _ranges(e_start, e_cnt)
        shift = np.repeat(node_ptr[:-1] - n_start, e_cnt)
        return GraphSet(
            self.x[nodes],
            self.edge_index[:, edges] + shift,
            self.edge_attr[edges],
            node_ptr,
            edge_ptr,
            self.z[nodes],
        )

    def to_batch(self, idx: Sequence[int] | np.ndarray | None = None):
        """A PyG mini-batch (``torch_geometric.data.Batch``) of graphs ``idx`` (all if None),
        equal to ``Batch.from_data_list([to_pyg(...) ...])`` but cut without Python loops."""
        import torch
        from torch_geometric.data import Batch

        gs = self if idx is None else self.subset(idx)
        counts = torch.from_numpy(np.diff(gs.node_ptr))
        batch = torch.repeat_interleave(torch.arange(len(gs)), counts)
        return Batch(
            x=torch.from_numpy(gs.x),
            edge_index=torch.from_numpy(gs.edge_index),
            edge_attr=torch.from_numpy(gs.edge_attr),
            batch=batch,
            ptr=torch.from_numpy(gs.node_ptr),
            _num_graphs=len(gs),
        )

    def save(self, path: str | Path) -> None:
        """Write to ``.npz`` (features stored as int8: every value is a small integer)."""
        np.savez_compressed(
            path,
            x=self.x.astype(np.int8),
            edge_index=self.edge_index.astype(np.int32),
            edge_attr=self.edge_attr.astype(np.int8),
            node_ptr=self.node_ptr,
            edge_ptr=self.edge_ptr,
            z=self.z,
            version=FEATURIZER_VERSION,
        )

    @classmethod
    def load(cls, path: str | Path) -> GraphSet:
        """Read a file written by :meth:`save`."""
        with np.load(path) as f:
            if str(f["version"]) != FEATURIZER_VERSION:
                raise ValueError(
                    f"{path}: featuriser version {f['version']} != {FEATURIZER_VERSION}"
                )
            return cls(
                f["x"].astype(np.float32),
                f["edge_index"].astype(np.int64),
                f["edge_attr"].astype(np.float32),
                f["node_ptr"],
                f["edge_ptr"],
                f["z"],
            )

    @classmethod
    def concat(cls, parts: Sequence[GraphSet]) -> GraphSet:
        """Join several sets end to end."""
        if len(parts) == 1:
            return parts[0]
        n_off = np.cumsum([0] + [int(p.node_ptr[-1]) for p in parts])
        e_off = np.cumsum([0] + [int(p.edge_ptr[-1]) for p in parts])
        return cls(
            np.concatenate([p.x for p in parts]),
            np.concatenate([p.edge_index + o for p, o in zip(parts, n_off)], axis=1),
            np.concatenate([p.edge_attr for p in parts]),
            np.concatenate([[0]] + [p.node_ptr[1:] + o for p, o in zip(parts, n_off)]),
            np.concatenate([[0]] + [p.edge_ptr[1:] + o for p, o in zip(parts, e_off)]),
            np.concatenate([p.z for p in parts]),
        )


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each pair, without a Python loop."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    offsets = np.repeat(starts - (ends - counts), counts)
    return np.arange(total, dtype=np.int64) + offsets


def featurize_mols(mols: Iterable[Chem.Mol]) -> GraphSet:
    """Pack RDKit molecules into a :class:`GraphSet`: the RDKit properties of all atoms and
    bonds are gathered into two flat integer tables and one-hot encoded once."""
    arows: list[tuple] = []
    brows: list[tuple] = []
    node_ptr, bond_ptr = [0], [0]
    for mol in mols:
        # GetAtomWithIdx/GetBondWithIdx: RDKit's GetAtoms()/GetBonds() sequences are iterated in
        # Python (a __len__ and a __getitem__ call per atom), ~40 % slower for the same atoms
        atoms = map(mol.GetAtomWithIdx, range(mol.GetNumAtoms()))
        arows.extend(
            [
                (
                    a.GetAtomicNum(),
                    a.GetDegree(),
                    a.GetValence(_IMPLICIT),
                    a.GetFormalCharge(),
                    a.GetNumRadicalElectrons(),
                    int(a.GetHybridization()),
                    a.GetIsAromatic(),
                    a.GetTotalNumHs(),
                )
                for a in atoms
            ]
        )
        bonds = map(mol.GetBondWithIdx, range(mol.GetNumBonds()))
        brows.extend(
            [
                (
                    b.GetBeginAtomIdx(),
                    b.GetEndAtomIdx(),
                    int(b.GetBondType()),
                    b.GetIsConjugated(),
                    b.IsInRing(),
                    int(b.GetStereo()),
                )
                for b in bonds
            ]
        )
        node_ptr.append(len(arows))
        bond_ptr.append(len(brows))
    at = np.array(arows, dtype=np.int64).reshape(-1, 8)
    bt = np.array(brows, dtype=np.int64).reshape(-1, 6)
    nptr, bptr = np.asarray(node_ptr, dtype=np.int64), np.asarray(bond_ptr, dtype=np.int64)
    ends = bt[:, :2] + np.repeat(nptr[:-1], np.diff(bptr))[:, None]  # global atom numbers
    # bond i -> directed edges 2i (begin->end) and 2i+1 (end->begin), as DGL-LifeSci
    src = ends.reshape(-1)
    dst = ends[:, ::-1].reshape(-1)
    return GraphSet(
        x=encode_atoms(at),
        edge_index=np.stack([src, dst]).astype(np.int64),
        edge_attr=np.repeat(encode_bonds(bt), 2, axis=0),
        node_ptr=nptr,
        edge_ptr=2 * bptr,
        z=at[:, 0].astype(np.int16),
    )


@dataclass
class Featurized:
    """Result of :func:`featurize_smiles`: graphs for the parsable inputs, in input order."""

    graphs: GraphSet
    index: np.ndarray  # position in the input list of each graph
    failed: list[int]  # positions that RDKit could not parse


def _featurize_chunk(smiles: Sequence[str]) -> tuple[GraphSet, list[int], list[int]]:
    mols, ok, bad = [], [], []
    for i, s in enumerate(smiles):
        mol = parse_smiles_or_none(s)
        if mol is None:
            bad.append(i)
        else:
            ok.append(i)
            mols.append(mol)
    return featurize_mols(mols), ok, bad


def featurize_smiles(smiles: Sequence[str], n_jobs: int = 1, chunk_size: int = 5000) -> Featurized:
    """Parse and featurise SMILES; unparsable entries are listed in ``failed``, not raised.

    ``n_jobs > 1`` spreads chunks of ``chunk_size`` molecules over that many processes
    (worth it above ~10,000 molecules).
    """
    smiles = list(smiles)
    chunks = [smiles[i : i + chunk_size] for i in range(0, len(smiles), chunk_size)] or [[]]
    if n_jobs > 1 and len(chunks) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(n_jobs) as pool:
            results = pool.map(_featurize_chunk, chunks)
    else:
        results = [_featurize_chunk(c) for c in chunks]
    index, failed, parts = [], [], []
    for k, (gs, ok, bad) in enumerate(results):
        base = k * chunk_size
        index.extend(base + i for i in ok)
        failed.extend(base + i for i in bad)
        parts.append(gs)
    return Featurized(GraphSet.concat(parts), np.asarray(index, dtype=np.int64), failed)


def cache_dir() -> Path:
    """Feature cache folder: ``$MDXFER_CACHE_DIR`` or ``~/.cache/mdxfer``."""
    return Path(os.environ.get("MDXFER_CACHE_DIR", Path.home() / ".cache" / "mdxfer"))


def smiles_hash(smiles: Sequence[str]) -> str:
    """SHA-256 of the featuriser version and the SMILES list (order matters)."""
    h = hashlib.sha256(FEATURIZER_VERSION.encode())
    for s in smiles:
        h.update(b"\n" + s.encode())
    return h.hexdigest()


def cached_featurize(smiles: Sequence[str], n_jobs: int = 1, use_cache: bool = True) -> Featurized:
    """:func:`featurize_smiles` with an on-disk cache keyed by :func:`smiles_hash`.

    The cache is only written when every SMILES parsed (the training-set case)."""
    if not use_cache:
        return featurize_smiles(smiles, n_jobs=n_jobs)
    path = cache_dir() / "graphs" / f"{smiles_hash(smiles)[:32]}.npz"
    if path.exists():
        try:
            gs = GraphSet.load(path)
            if len(gs) == len(smiles):
                return Featurized(gs, np.arange(len(smiles)), [])
        except (OSError, ValueError, KeyError):
            pass
    feats = featurize_smiles(smiles, n_jobs=n_jobs)
    if not feats.failed:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            feats.graphs.save(tmp)
            os.replace(tmp, path)
        except OSError:
            pass
    return feats


def to_pyg(mol: Chem.Mol, y: float | None = None):
    """One molecule as a ``torch_geometric.data.Data`` graph (both edge directions)."""
    import torch
    from torch_geometric.data import Data

    gs = featurize_mols([mol])
    data = Data(
        x=torch.from_numpy(gs.x),
        edge_index=torch.from_numpy(gs.edge_index),
        edge_attr=torch.from_numpy(gs.edge_attr),
    )
    if y is not None:
        data.y = torch.tensor([y], dtype=torch.float32)
    return data


# --------------------------------------------------------------------------------------------
# applicability domain of the source data
# --------------------------------------------------------------------------------------------

#: QM9: C, H, N, O, F with at most 9 heavy atoms
QM9_ELEMENTS = (1, 6, 7, 8, 9)
QM9_MAX_HEAVY_ATOMS = 9


def applicability(
    graphs: GraphSet,
    elements: Iterable[int] = QM9_ELEMENTS,
    max_heavy_atoms: int = QM9_MAX_HEAVY_ATOMS,
) -> list[str]:
    """Per graph: ``""`` when inside the source domain, else the reason(s), e.g.
    ``"elements Cl,S; 12 heavy atoms > 9"``."""
    allowed = np.zeros(128, dtype=bool)
    allowed[list(elements)] = True
    z = graphs.z.astype(np.int64)
    bad_atom = ~allowed[np.clip(z, 0, 127)]
    csum = np.concatenate([[0], np.cumsum(bad_atom)])
    n_bad = csum[graphs.node_ptr[1:]] - csum[graphs.node_ptr[:-1]]
    heavy = graphs.heavy_atom_counts()
    out = []
    for g in range(len(graphs)):
        reasons = []
        if n_bad[g]:
            zs = sorted(
                {
                    int(v)
                    for v in z[graphs.node_ptr[g] : graphs.node_ptr[g + 1]]
                    if not allowed[min(v, 127)]
                }
            )
            reasons.append(
                "elements " + ",".join(_PT.GetElementSymbol(v) if v > 0 else "*" for v in zs)
            )
        if heavy[g] > max_heavy_atoms:
            reasons.append(f"{heavy[g]} heavy atoms > {max_heavy_atoms}")
        out.append("; ".join(reasons))
    return out


#: Morgan count fingerprints used by fingerprint baselines and fingerprint source models
FP_RADIUS, FP_BITS = 2, 2048


def morgan_counts(smiles: Sequence[str]) -> np.ndarray:
    """Morgan count fingerprints (radius 2, 2,048 bits), float32 (n x 2048); zeros if unparsable."""
    return morgan_counts_mols([parse_smiles_or_none(s) for s in smiles])


def morgan_counts_mols(mols: Sequence[Chem.Mol | None]) -> np.ndarray:
    """:func:`morgan_counts` of RDKit molecules already parsed (zeros for None)."""
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=FP_RADIUS, fpSize=FP_BITS)
    out = np.zeros((len(mols), FP_BITS), dtype=np.float32)
    for i, mol in enumerate(mols):
        if mol is not None:
            out[i] = gen.GetCountFingerprintAsNumPy(mol)
    return out
