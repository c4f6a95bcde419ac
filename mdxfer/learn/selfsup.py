"""Self-supervised pretraining of the graph encoder on unlabelled molecules.

Two pretext tasks train the same :class:`~mdxfer.learn.nn.graph.Encoder` that supervised
models use (docs/glossary.md):

``atom`` (masked atoms, attribute masking after Hu et al. 2020)
    In every mini-batch a seeded random 15 % of the atoms (at least one per molecule) have their
    whole 74-column feature row replaced by zeros (the mask token); a linear classifier on the
    encoder's atom states predicts their element: one of the 43 DGL-LifeSci symbols of
    :data:`~mdxfer.learn.featurize.ATOM_TYPES` or ``other``. Organic molecules are mostly carbon, so
    the cross-entropy is weighted per element (:func:`element_weights`, ``inverse`` frequency by
    default): reweighting the rare elements improved accuracy in the self-supervised
    study this follows (docs/glossary.md).
``motif`` (functional groups, rings, bonds; motif prediction after Rong et al. 2020, GROVER)
    A linear layer on the pooled (unmasked) embedding predicts, multi-label, which motifs the
    molecule holds: RDKit's 85 functional-group fragments (the SMARTS of ``fr_*`` in
    ``rdkit.Chem.Fragments``, read from RDKit's ``FragmentDescriptors.csv``), ring sizes 3-8,
    bond types, and element-bond-element pairs (``C=O``, ``C:N``, ``C#N`` ...). Only labels
    present in 0.5-99.5 % of the training molecules are kept; their names are stored in the
    model file. Loss: binary cross-entropy with logits.

The loss is the sum of the chosen tasks' losses. The heads are thrown away; ``model.pt`` is a
normal :class:`~mdxfer.learn.models.GraphModel` with the pretrained encoder and a freshly initialised
fully connected head, so ``mdxfer pretrain --init-encoder DIR`` (same preset) and ``mdxfer
transfer --base DIR`` read it unchanged.

``selfsup(out_dir, settings)`` writes ``model.pt``, ``metrics.json``, ``history.csv`` and
``checkpoint.pt`` (running the same command again continues from it).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from mdxfer.errors import DataError
from mdxfer.inputs import read_molecules
from mdxfer.learn.data import qm9
from mdxfer.learn.featurize import (
    ATOM_TYPES,
    GraphSet,
    cache_dir,
    cached_featurize,
    parse_smiles_or_none,
    smiles_hash,
)
from mdxfer.learn.models import GraphModel, TargetScaler, environment, set_threads
from mdxfer.learn.nn.graph import ModelConfig, build_model, preset
from mdxfer.learn.training import Checkpoint, EarlyStopper, EpochResult, train_epochs, write_history

__all__ = [
    "ELEMENT_CLASSES",
    "OTHER",
    "BALANCES",
    "TASKS",
    "element_classes",
    "element_counts",
    "element_weights",
    "mask_atoms",
    "masked_batch",
    "motif_candidates",
    "motif_labels",
    "select_motifs",
    "read_smiles_file",
    "SelfSupSettings",
    "PretrainHeads",
    "selfsup",
]

#: element classes of the masked-atom task: DGL-LifeSci's 43 symbols, then "other"
ELEMENT_CLASSES: tuple[str, ...] = (*ATOM_TYPES, "other")
OTHER = len(ATOM_TYPES)
BALANCES = ("inverse", "sqrt", "none")
TASKS = ("atom", "motif")
#: a motif label is kept when present in at least / at most this fraction of training molecules
MOTIF_MIN_FRACTION, MOTIF_MAX_FRACTION = 0.005, 0.995
RING_SIZES = range(3, 9)
_BOND_SYMBOLS = {"SINGLE": "-", "DOUBLE": "=", "TRIPLE": "#", "AROMATIC": ":"}


# --------------------------------------------------------------------------------------------
# masked-atom task
# --------------------------------------------------------------------------------------------


def element_classes(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Element class of each atom row (74 DGL features): column of the element one-hot, or
    :data:`OTHER` when the type block is all zero (an element outside DGL's list)."""
    t = np.asarray(x[:, : len(ATOM_TYPES)])
    return np.where(t.any(axis=1), t.argmax(axis=1), OTHER).astype(np.int64)


def element_counts(graphs: GraphSet) -> np.ndarray:
    """Atoms per element class over all graphs, length ``len(ELEMENT_CLASSES)``."""
    return np.bincount(element_classes(graphs.x), minlength=len(ELEMENT_CLASSES)).astype(np.int64)


def element_weights(counts: Sequence[float] | np.ndarray, balance: str = "inverse") -> np.ndarray:
    """Per-class loss weights from class counts.

    ``inverse``: w_c ∝ 1/count_c; ``sqrt``: w_c ∝ 1/sqrt(count_c); ``none``: w_c = 1. Classes
    with zero count get weight 0. The weights are scaled so that the count-weighted mean weight
    is 1 (Σ count_c·w_c = Σ count_c): a loss averaged over atoms keeps its size.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or np.any(c < 0):
        raise ValueError("counts must be a 1-D array of non-negative numbers")
    if balance not in BALANCES:
        raise DataError(f"Unknown balance {balance!r}; choose one of {', '.join(BALANCES)}.")
    w = np.zeros_like(c)
    nz = c > 0
    if not nz.any():
        return w
    w[nz] = {
        "inverse": lambda v: 1.0 / v,
        "sqrt": lambda v: 1.0 / np.sqrt(v),
        "none": lambda v: np.ones_like(v),
    }[balance](c[nz])
    return w * (c.sum() / float((c * w).sum()))


def mask_atoms(node_ptr: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask over all atoms of the graphs in ``node_ptr``: each atom with probability
    ``rate``, plus one uniformly chosen atom of every graph that would otherwise have none."""
    node_ptr = np.asarray(node_ptr, dtype=np.int64)
    counts = np.diff(node_ptr)
    mask = rng.random(int(node_ptr[-1])) < rate
    csum = np.concatenate([[0], np.cumsum(mask)])
    has = csum[node_ptr[1:]] - csum[node_ptr[:-1]]
    need = np.nonzero((has == 0) & (counts > 0))[0]
    if len(need):
        pick = node_ptr[need] + np.floor(rng.random(len(need)) * counts[need]).astype(np.int64)
        mask[pick] = True
    return mask


def masked_batch(batch, mask: np.ndarray | torch.Tensor):
    """A shallow copy of the PyG ``batch`` whose atoms ``mask`` have all-zero feature rows."""
    out = copy.copy(batch)
    x = batch.x.clone()
    x[torch.as_tensor(mask, dtype=torch.bool)] = 0.0
    out.x = x
    return out


# --------------------------------------------------------------------------------------------
# motif task
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _fragment_patterns() -> tuple[tuple[str, Any], ...]:
    """(name, SMARTS query) of RDKit's ``fr_*`` fragment descriptors, read from the file that
    ``rdkit.Chem.Fragments`` itself loads (names spelt as there: ``=``/``-`` -> ``_``)."""
    from rdkit import Chem
    from rdkit.Chem import Fragments

    out = []
    with open(Fragments.defaultPatternFileName, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) >= 3:
                patt = Chem.MolFromSmarts(parts[2])
                if patt is not None and patt.GetNumAtoms():
                    out.append((parts[0].replace("=", "_").replace("-", "_"), patt))
    return tuple(out)


def _bond_pairs() -> list[str]:
    """Element-bond-element names over the QM9-and-common-organic elements."""
    els = ("C", "N", "O", "F", "S", "P", "Cl", "Br", "I", "Si", "B")
    out = []
    for i, a in enumerate(els):
        for b in els[i:]:
            for sym in _BOND_SYMBOLS.values():
                out.append(f"{a}{sym}{b}")
    return out


def motif_candidates() -> list[str]:
    """All motif label names before the frequency filter, in column order."""
    return (
        [n for n, _ in _fragment_patterns()]
        + [f"ring{k}" for k in RING_SIZES]
        + [f"bond_{k.lower()}" for k in _BOND_SYMBOLS]
        + [f"pair_{p}" for p in _bond_pairs()]
    )


def _mol_motifs(mol, column: dict[str, int], patterns) -> np.ndarray:
    row = np.zeros(len(column), dtype=np.uint8)
    for j, (_, patt) in enumerate(patterns):
        if mol.HasSubstructMatch(patt):
            row[j] = 1
    for ring in mol.GetRingInfo().AtomRings():
        k = column.get(f"ring{len(ring)}")
        if k is not None:
            row[k] = 1
    for b in mol.GetBonds():
        sym = _BOND_SYMBOLS.get(str(b.GetBondType()))
        if sym is None:
            continue
        row[column[f"bond_{str(b.GetBondType()).lower()}"]] = 1
        a, c = sorted(
            (b.GetBeginAtom().GetSymbol(), b.GetEndAtom().GetSymbol()),
            key=lambda s: (_PAIR_ORDER.get(s, 99), s),
        )
        k = column.get(f"pair_{a}{sym}{c}")
        if k is not None:
            row[k] = 1
    return row


_PAIR_ORDER = {
    s: i for i, s in enumerate(("C", "N", "O", "F", "S", "P", "Cl", "Br", "I", "Si", "B"))
}


def motif_labels(smiles: Sequence[str], use_cache: bool = True) -> tuple[np.ndarray, list[str]]:
    """Motif presence matrix (n_molecules x n_candidates, uint8) and the column names
    (:func:`motif_candidates`). Unparsable SMILES give an all-zero row. Cached on disk like
    the graphs (key: the SMILES list and the candidate names)."""
    names = motif_candidates()
    key = hashlib.sha256(("\n".join(names) + "|" + smiles_hash(smiles)).encode()).hexdigest()[:32]
    path = cache_dir() / "motifs" / f"{key}.npy"
    if use_cache and path.exists():
        try:
            y = np.load(path)
            if y.shape == (len(smiles), len(names)):
                return y, names
        except (OSError, ValueError):
            pass
    column = {n: j for j, n in enumerate(names)}
    patterns = _fragment_patterns()
    y = np.zeros((len(smiles), len(names)), dtype=np.uint8)
    for i, s in enumerate(smiles):
        mol = parse_smiles_or_none(s)
        if mol is not None:
            y[i] = _mol_motifs(mol, column, patterns)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{key}.{id(y)}.tmp.npy")
            np.save(tmp, y)
            tmp.replace(path)
        except OSError:
            pass
    return y, names


def select_motifs(
    y: np.ndarray, lo: float = MOTIF_MIN_FRACTION, hi: float = MOTIF_MAX_FRACTION
) -> np.ndarray:
    """Columns of ``y`` present in a fraction of rows within ``[lo, hi]``."""
    f = y.mean(axis=0) if len(y) else np.zeros(y.shape[1])
    return np.nonzero((f >= lo) & (f <= hi))[0]


# --------------------------------------------------------------------------------------------
# input molecules
# --------------------------------------------------------------------------------------------


def read_smiles_file(
    path: str | Path, on_bad: Callable[[int, str], None] | None = None
) -> tuple[list[str], list[tuple[int, str]]]:
    """SMILES of a ``.smi`` or ``.csv`` file, read by :func:`mdxfer.inputs.read_molecules`
    (``.smi``: first word per line, ``#`` comments and a ``smiles`` header skipped; ``.csv``: a
    column named ``smiles``, any case). Lines RDKit cannot parse are skipped and returned as
    (line number, text), also passed to ``on_bad``. Raises :class:`DataError` when no line is
    usable."""
    path = Path(path)
    table = read_molecules(
        path,
        what="SMILES file",
        error=DataError,
        hint="Call the SMILES column 'smiles' in the header line (that column is read).",
    )
    rows = [(r.line, r.smiles) for r in table]
    good, bad = [], []
    for line, s in rows:
        if s and parse_smiles_or_none(s) is not None:
            good.append(s)
        else:
            bad.append((line, s))
            if on_bad is not None:
                on_bad(line, s)
    if not good:
        raise DataError(
            f"{path} holds no SMILES that RDKit can parse"
            + (f" ({len(bad)} unparsable lines, first at line {bad[0][0]})." if bad else ".")
        )
    return good, bad


# --------------------------------------------------------------------------------------------
# network heads and training
# --------------------------------------------------------------------------------------------


class PretrainHeads(nn.Module):
    """The pretraining heads (not saved with the encoder): atom classifier on the atom states,
    motif classifier on the pooled embedding."""

    def __init__(self, node_dim: int, graph_dim: int, n_motifs: int):
        super().__init__()
        self.atom = nn.Linear(node_dim, len(ELEMENT_CLASSES))
        self.motif = nn.Linear(graph_dim, n_motifs) if n_motifs else None


@dataclass
class SelfSupSettings:
    """Everything that defines a self-supervised run."""

    n: int = 20000  # QM9 molecules drawn at random (0: none)
    smiles_file: str | None = None  # extra unlabelled molecules (.smi or .csv)
    seed: int = 0
    preset: str = "default"
    arch: ModelConfig | None = None  # an explicit architecture; replaces ``preset``
    tasks: tuple[str, ...] = TASKS
    balance: str = "inverse"
    mask_rate: float = 0.15
    epochs: int = 20
    batch_size: int = 128
    lr: float | None = None  # default: the preset's
    val_fraction: float = 0.1

    def config(self) -> ModelConfig:
        return self.arch if self.arch is not None else preset(self.preset)

    def check(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise DataError(
                f"Unknown task(s) {', '.join(bad) or '(none)'}; choose from {', '.join(TASKS)}."
            )
        if self.balance not in BALANCES:
            raise DataError(
                f"Unknown balance {self.balance!r}; choose one of {', '.join(BALANCES)}."
            )
        if not 0.0 < self.mask_rate < 1.0:
            raise DataError(f"The mask rate must lie between 0 and 1, got {self.mask_rate}.")
        if not 0.0 < self.val_fraction < 1.0:
            raise DataError(
                f"The validation fraction must lie between 0 and 1, got {self.val_fraction}."
            )
        if self.n < 0 or (self.n == 0 and not self.smiles_file):
            raise DataError("No molecules: give --n > 0 (QM9) and/or --smiles FILE.")
        if self.epochs < 1 or self.batch_size < 2:
            raise DataError("Need at least 1 epoch and a batch size of at least 2.")


@dataclass
class _Data:
    smiles: list[str]
    graphs: GraphSet
    train: np.ndarray
    val: np.ndarray
    motifs: np.ndarray  # (n, n_kept) float32
    motif_names: list[str]
    counts: np.ndarray  # element counts over the training molecules
    data_hash: str
    n_qm9: int
    n_user: int
    bad_lines: list[tuple[int, str]] = field(default_factory=list)


def _load_data(s: SelfSupSettings, use_cache: bool, on_bad, log) -> _Data:
    smiles: list[str] = []
    if s.n > 0:
        smiles += list(qm9.subset(s.n, s.seed)[qm9.SMILES_COLUMN])
    n_qm9 = len(smiles)
    bad: list[tuple[int, str]] = []
    if s.smiles_file:
        user, bad = read_smiles_file(s.smiles_file, on_bad)
        smiles += user
    n = len(smiles)
    if n < 10:
        raise DataError(f"Only {n} molecules; self-supervised pretraining needs at least 10.")
    feats = cached_featurize(smiles, use_cache=use_cache)
    if feats.failed:  # cannot happen for checked input, but never train on misaligned rows
        raise DataError(
            f"RDKit could not parse {len(feats.failed)} SMILES (e.g. {smiles[feats.failed[0]]})."
        )
    perm = np.random.default_rng(s.seed + 7_000_003).permutation(n)
    n_val = max(1, int(round(s.val_fraction * n)))
    val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    y_all, names = motif_labels(smiles, use_cache=use_cache)
    keep = select_motifs(y_all[train])
    counts = element_counts(feats.graphs.subset(train))
    h = hashlib.sha256()
    for x in smiles:
        h.update(x.encode() + b"\n")
    log(
        f"data: {n} molecules ({n_qm9} QM9, {n - n_qm9} from {s.smiles_file or '-'}), "
        f"{len(train)} train / {len(val)} val, {len(keep)} of {len(names)} motif labels kept"
    )
    return _Data(
        smiles,
        feats.graphs,
        train,
        val,
        y_all[:, keep].astype(np.float32),
        [names[j] for j in keep],
        counts,
        h.hexdigest(),
        n_qm9,
        n - n_qm9,
        bad,
    )


def _weighted_ce(logits: torch.Tensor, target: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged with weights ``w[target]`` (0 if every weight is 0)."""
    per = nn.functional.cross_entropy(logits, target, reduction="none")
    wt = w[target]
    return (per * wt).sum() / wt.sum().clamp_min(1e-12)


def _batch_loss(
    encoder,
    heads: PretrainHeads,
    graphs: GraphSet,
    idx: np.ndarray,
    data: _Data,
    tasks: tuple[str, ...],
    w: torch.Tensor,
    rng: np.random.Generator,
    mask_rate: float,
) -> dict[str, Any]:
    """One mini-batch: ``loss`` (sum of the tasks'), ``atom`` and ``motif`` losses, and the
    masked atoms' ``atom_logits`` / ``atom_target`` and the ``motif_logits``."""
    batch = graphs.to_batch(idx)
    r: dict[str, Any] = {"loss": torch.zeros(())}
    if "motif" in tasks and heads.motif is not None:
        r["motif_logits"] = heads.motif(encoder(batch))
        r["motif"] = nn.functional.binary_cross_entropy_with_logits(
            r["motif_logits"], torch.from_numpy(data.motifs[idx])
        )
        r["loss"] = r["loss"] + r["motif"]
    if "atom" in tasks:
        sub_ptr = np.concatenate([[0], np.cumsum(np.diff(graphs.node_ptr)[idx])])
        mask = torch.from_numpy(mask_atoms(sub_ptr, mask_rate, rng))
        r["atom_target"] = torch.from_numpy(element_classes(batch.x[mask].numpy()))
        r["atom_logits"] = heads.atom(encoder.node_states(masked_batch(batch, mask))[mask])
        r["atom"] = _weighted_ce(r["atom_logits"], r["atom_target"], w)
        r["loss"] = r["loss"] + r["atom"]
    return r


@torch.no_grad()
def _evaluate(
    encoder,
    heads: PretrainHeads,
    data: _Data,
    tasks,
    w: torch.Tensor,
    seed: int,
    mask_rate: float,
    batch_size: int = 1024,
) -> dict[str, Any]:
    """Validation losses and metrics with a fixed seeded mask (the same every epoch)."""
    from sklearn.metrics import roc_auc_score

    encoder.eval()
    heads.eval()
    rng = np.random.default_rng(seed + 9_000_011)
    tot = atom = motif = 0.0
    wsum = 0.0
    preds, targets, motif_logits = [], [], []
    val = data.val
    for start in range(0, len(val), batch_size):
        idx = val[start : start + batch_size]
        r = _batch_loss(encoder, heads, data.graphs, idx, data, tasks, w, rng, mask_rate)
        tot += float(r["loss"]) * len(idx)
        if "atom" in r:
            wt = float(w[r["atom_target"]].sum())
            atom += float(r["atom"]) * wt
            wsum += wt
            preds.append(r["atom_logits"].argmax(1).numpy())
            targets.append(r["atom_target"].numpy())
        if "motif" in r:
            motif += float(r["motif"]) * len(idx)
            motif_logits.append(r["motif_logits"].numpy())
    encoder.train()
    heads.train()
    out: dict[str, Any] = {"val_loss": tot / len(val)}
    if preds:
        p, t = np.concatenate(preds), np.concatenate(targets)
        per = {ELEMENT_CLASSES[c]: float(np.mean(p[t == c] == c)) for c in np.unique(t)}
        support = {ELEMENT_CLASSES[c]: int(np.sum(t == c)) for c in np.unique(t)}
        majority = int(np.argmax(data.counts))
        out.update(
            val_atom_loss=atom / max(wsum, 1e-12),
            val_atom_acc=float(np.mean(p == t)),
            val_atom_balanced_acc=float(np.mean(list(per.values()))),
            val_atom_per_class_acc=per,
            val_atom_support=support,
            val_atom_majority_acc=float(np.mean(t == majority)),
            val_atom_majority_balanced_acc=1.0 / len(per),
            n_val_masked_atoms=int(len(t)),
        )
    if motif_logits:
        z = np.concatenate(motif_logits)
        y = data.motifs[val]
        aucs = {}
        for j, name in enumerate(data.motif_names):
            if 0 < y[:, j].sum() < len(y):
                aucs[name] = float(roc_auc_score(y[:, j], z[:, j]))
        out.update(
            val_motif_loss=motif / len(val),
            val_motif_auc=float(np.mean(list(aucs.values()))) if aucs else float("nan"),
            val_motif_auc_per_label=aucs,
        )
    return out


def _parse_tasks(tasks: str | Sequence[str]) -> tuple[str, ...]:
    items = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    return tuple(dict.fromkeys(t.strip().lower() for t in items if t.strip()))


def selfsup(
    out_dir: str | Path,
    settings: SelfSupSettings | None = None,
    threads: int = 1,
    resume: bool = True,
    time_limit_s: float | None = None,
    progress: bool = True,
    use_cache: bool = True,
    log: Callable[[str], None] | None = None,
    on_bad: Callable[[int, str], None] | None = None,
) -> dict[str, Any]:
    """Self-supervised pretraining; writes ``model.pt``, ``metrics.json``, ``history.csv`` and
    ``checkpoint.pt`` into ``out_dir`` and returns the metrics (see the module docstring).

    The saved encoder is the one of the epoch with the lowest validation loss. ``on_bad(line,
    text)`` hears about unparsable lines of the SMILES file.
    """
    s = settings or SelfSupSettings()
    s.tasks = _parse_tasks(s.tasks)
    s.check()
    log = log or (lambda msg: None)
    set_threads(threads)
    cfg = s.config()
    out = Path(out_dir)
    t0 = time.perf_counter()
    data = _load_data(s, use_cache, on_bad, log)
    tasks = tuple(t for t in TASKS if t in s.tasks)
    if "motif" in tasks and not data.motif_names:
        if tasks == ("motif",):
            raise DataError(
                "No motif label varies across the training molecules; use more molecules "
                "or --tasks atom."
            )
        log("no motif label varies across the training molecules; motif task dropped")
        tasks = ("atom",)
    t_data = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)

    weights = element_weights(data.counts, s.balance)
    w = torch.tensor(weights, dtype=torch.float32)
    model = build_model(cfg, seed=s.seed)  # encoder + a fresh head (saved as is)
    encoder = model.encoder
    torch.manual_seed(s.seed + 1)
    heads = PretrainHeads(
        cfg.hidden, encoder.out_dim, len(data.motif_names) if "motif" in tasks else 0
    )
    lr = s.lr if s.lr is not None else cfg.lr
    opt = torch.optim.Adam(
        list(encoder.parameters()) + list(heads.parameters()), lr=lr, weight_decay=cfg.weight_decay
    )
    run_key = {
        "data_hash": data.data_hash,
        "arch": cfg.to_dict(),
        "seed": s.seed,
        "tasks": list(tasks),
        "balance": s.balance,
        "mask_rate": s.mask_rate,
        "batch_size": s.batch_size,
        "lr": lr,
    }
    stopper = EarlyStopper(patience=None, time_limit_s=time_limit_s)
    ckpt = Checkpoint(
        out / "checkpoint.pt", run_key, {"encoder": encoder, "heads": heads, "optimizer": opt}
    )
    if resume and ckpt.resume(stopper, "other data, preset, tasks or seed"):
        log(f"resuming after epoch {stopper.epoch}")

    train_g, n_tr = data.graphs, len(data.train)

    def run_epoch(epoch: int) -> EpochResult:
        gen = torch.Generator().manual_seed(s.seed * 1_000_003 + epoch)
        rng = np.random.default_rng([s.seed, epoch])
        order = data.train[torch.randperm(n_tr, generator=gen).numpy()]
        encoder.train()
        heads.train()
        sums = {"loss": 0.0, "atom": 0.0, "motif": 0.0}
        seen = 0
        for start in range(0, n_tr, s.batch_size):
            idx = order[start : start + s.batch_size]
            if len(idx) < 2 and cfg.batch_norm:
                continue  # batch norm cannot train on a single graph
            r = _batch_loss(encoder, heads, train_g, idx, data, tasks, w, rng, s.mask_rate)
            opt.zero_grad()
            r["loss"].backward()
            opt.step()
            for k in sums:
                sums[k] += float(r[k].detach()) * len(idx) if k in r else 0.0
            seen += len(idx)
        vm = _evaluate(encoder, heads, data, tasks, w, s.seed, s.mask_rate)
        row = {
            "train_loss": sums["loss"] / max(seen, 1),
            "train_atom_loss": sums["atom"] / max(seen, 1) if "atom" in tasks else float("nan"),
            "train_motif_loss": sums["motif"] / max(seen, 1) if "motif" in tasks else float("nan"),
            **{
                k: vm.get(k, float("nan"))
                for k in (
                    "val_loss",
                    "val_atom_loss",
                    "val_motif_loss",
                    "val_atom_acc",
                    "val_atom_balanced_acc",
                    "val_motif_auc",
                )
            },
        }
        return EpochResult(vm["val_loss"], row, vm)

    def describe(r: EpochResult, st: EarlyStopper) -> str:
        info = f"loss {r.row['train_loss']:.3f}  val {r.row['val_loss']:.3f}"
        if "atom" in tasks:
            info += (
                f"  atom acc {r.row['val_atom_acc']:.3f} bal {r.row['val_atom_balanced_acc']:.3f}"
            )
        if "motif" in tasks:
            info += f"  motif AUC {r.row['val_motif_auc']:.3f}"
        return info

    stop_reason = train_epochs(
        run_epoch,
        stopper,
        s.epochs,
        encoder,
        checkpoint=ckpt,
        progress=progress,
        describe=describe,
        exhausted="epochs",
    )
    stopper.restore(encoder, "No epoch was trained (time limit 0).")
    model.eval()
    vm = stopper.best_metrics
    names = {i: ELEMENT_CLASSES[i] for i in range(len(ELEMENT_CLASSES))}
    counts = {names[i]: int(c) for i, c in enumerate(data.counts) if c}
    wdict = {names[i]: float(x) for i, x in enumerate(weights) if data.counts[i]}
    metrics: dict[str, Any] = {
        **vm,
        "tasks": list(tasks),
        "balance": s.balance,
        "preset": cfg.preset,
        "epochs_run": stopper.epoch,
        "best_epoch": stopper.best_epoch,
        "stop_reason": stop_reason,
        "train_wall_s": round(stopper.train_s, 2),
        "data_s": round(t_data, 2),
        "n_molecules": len(data.smiles),
        "n_qm9": data.n_qm9,
        "n_user": data.n_user,
        "n_train": int(len(data.train)),
        "n_val": int(len(data.val)),
        "bad_lines": len(data.bad_lines),
        "n_motifs": len(data.motif_names),
        "mask_rate": s.mask_rate,
        "batch_size": s.batch_size,
        "lr": lr,
        "threads": threads,
        "seed": s.seed,
        "data_hash": data.data_hash,
        "element_counts": counts,
        "element_weights": wdict,
    }
    heavy = data.graphs.subset(data.train).heavy_atom_counts()
    elements = sorted({1} | {int(z) for z in np.unique(data.graphs.z)})
    provenance = {
        "selfsup": {
            "tasks": list(tasks),
            "balance": s.balance,
            "n_molecules": len(data.smiles),
            "n_qm9": data.n_qm9,
            "n_user": data.n_user,
            "smiles_file": s.smiles_file,
            "data_hash": data.data_hash,
            "element_counts": counts,
            "element_weights": wdict,
            "motif_names": data.motif_names,
            "mask_rate": s.mask_rate,
            "metrics": {k: v for k, v in vm.items() if not isinstance(v, dict)},
        },
        "data": {
            "source": (f"qm9pack {qm9.qm9pack_version()}" if data.n_qm9 else "")
            + (" + " if data.n_qm9 and data.n_user else "")
            + (s.smiles_file or ""),
            "target": "self-supervised",
            "unit": "",
            "n_subset": s.n,
            "subset_seed": s.seed,
            "n_train": int(len(data.train)),
            "n_val": int(len(data.val)),
            "data_hash": data.data_hash,
            "domain": {
                "elements": elements,
                "max_heavy_atoms": int(heavy.max()) if len(heavy) else 0,
            },
        },
        "training": {
            k: metrics[k]
            for k in (
                "epochs_run",
                "best_epoch",
                "stop_reason",
                "train_wall_s",
                "threads",
                "seed",
                "batch_size",
                "lr",
            )
        },
        "environment": environment(),
    }
    GraphModel(model, TargetScaler(0.0, 1.0, "self-supervised", ""), provenance).save(
        out / "model.pt"
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_history(out / "history.csv", stopper.history)
    log(f"wrote {out / 'model.pt'}, metrics.json, history.csv")
    return metrics
