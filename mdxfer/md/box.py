"""Systems of many molecules in an orthorhombic periodic cell, and random packing.

A :class:`System` is a flat list of atoms (positions in Å, charges in e, masses in g/mol) with
its topology and a map from parameter keys to LAMMPS type numbers. Systems are built by
:func:`pack` (random placement without overlaps under the minimum-image convention) and joined
along z by :func:`stack`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from mdxfer.errors import BoxError
from mdxfer.forcefield.parameters import MoleculeFF

AVOGADRO = 6.02214076e23


@dataclass
class System:
    """Atoms, topology and an orthorhombic cell ``[0, Lx] x [0, Ly] x [0, Lz]`` (Å).

    ``molecules`` lists the :class:`MoleculeFF` templates; ``mol_template[m]`` says which
    template molecule ``m`` (0-based) is a copy of, and ``atom_mol`` gives each atom's molecule.
    Topology arrays index atoms 0-based; ``*_keys`` are parameter keys shared with the templates.
    """

    box: np.ndarray
    molecules: list[MoleculeFF]
    mol_template: np.ndarray
    atom_mol: np.ndarray
    positions: np.ndarray
    types: list[str]
    charges: np.ndarray
    masses: np.ndarray
    bonds: np.ndarray
    bond_keys: list
    angles: np.ndarray
    angle_keys: list
    dihedrals: np.ndarray
    dihedral_keys: list
    impropers: np.ndarray
    improper_keys: list
    velocities: np.ndarray | None = None
    images: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return len(self.types)

    @property
    def n_molecules(self) -> int:
        return len(self.mol_template)

    @property
    def volume(self) -> float:
        """Cell volume, Å³."""
        return float(np.prod(self.box))

    @property
    def density(self) -> float:
        """Mass density, g/cm³."""
        return float(self.masses.sum() / AVOGADRO / (self.volume * 1e-24))

    def atom_type_labels(self) -> list[str]:
        """Sorted unique LAMMPS type labels (DREIDING types, ``.x`` for N/O/F that accept no
        hydrogen bond); LAMMPS type i+1 is label i."""
        return sorted(set(self.types))

    def type_tables(self) -> dict[str, list]:
        """Sorted unique parameter keys per interaction kind (LAMMPS type = index + 1)."""
        return {
            "atom": self.atom_type_labels(),
            "bond": sorted(set(self.bond_keys)),
            "angle": sorted(set(self.angle_keys)),
            "dihedral": sorted(set(self.dihedral_keys)),
            "improper": sorted(set(self.improper_keys)),
        }


def assemble(
    molecules: list[MoleculeFF],
    mol_template: list[int],
    coords: list[np.ndarray],
    box: np.ndarray,
) -> System:
    """Join molecule copies (template index + coordinates in Å) into one :class:`System`."""
    parts: dict[str, list] = {
        k: []
        for k in ("pos", "types", "q", "m", "amol", "b", "bk", "a", "ak", "d", "dk", "i", "ik")
    }
    offset = 0
    for m, (t, xyz) in enumerate(zip(mol_template, coords)):
        ff = molecules[t]
        parts["pos"].append(np.asarray(xyz, dtype=float))
        parts["types"] += ff.labels
        parts["q"].append(ff.charges)
        parts["m"].append(ff.masses)
        parts["amol"].append(np.full(ff.n_atoms, m))
        for arr, keys, a_name, k_name in (
            (ff.bonds, ff.bond_keys, "b", "bk"),
            (ff.angles, ff.angle_keys, "a", "ak"),
            (ff.dihedrals, ff.dihedral_keys, "d", "dk"),
            (ff.impropers, ff.improper_keys, "i", "ik"),
        ):
            parts[a_name].append(arr + offset)
            parts[k_name] += keys
        offset += ff.n_atoms

    def cat(name: str, width: int) -> np.ndarray:
        rows = [p for p in parts[name] if len(p)]
        return np.concatenate(rows).astype(int) if rows else np.zeros((0, width), dtype=int)

    return System(
        box=np.asarray(box, dtype=float),
        molecules=list(molecules),
        mol_template=np.asarray(mol_template, dtype=int),
        atom_mol=np.concatenate(parts["amol"]).astype(int),
        positions=np.concatenate(parts["pos"]),
        types=parts["types"],
        charges=np.concatenate(parts["q"]),
        masses=np.concatenate(parts["m"]),
        bonds=cat("b", 2),
        bond_keys=parts["bk"],
        angles=cat("a", 3),
        angle_keys=parts["ak"],
        dihedrals=cat("d", 4),
        dihedral_keys=parts["dk"],
        impropers=cat("i", 4),
        improper_keys=parts["ik"],
    )


def minimum_image(delta: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Apply the minimum-image convention to displacement vectors (Å) in an orthorhombic cell."""
    return delta - box * np.round(delta / box)


def min_intermolecular_distance(system: System) -> float:
    """Smallest minimum-image distance (Å) between atoms of different molecules."""
    from scipy.spatial import cKDTree

    pos = np.mod(system.positions, system.box)
    tree = cKDTree(pos, boxsize=system.box)
    pairs = tree.query_pairs(r=6.0, output_type="ndarray")
    pairs = pairs[system.atom_mol[pairs[:, 0]] != system.atom_mol[pairs[:, 1]]]
    if len(pairs) == 0:
        return float("inf")
    d = minimum_image(pos[pairs[:, 0]] - pos[pairs[:, 1]], system.box)
    return float(np.sqrt((d * d).sum(axis=1)).min())


def molecule_extent(coords: np.ndarray) -> float:
    """Largest interatomic distance in one molecule, Å."""
    if len(coords) < 2:
        return 0.0
    d = coords[:, None, :] - coords[None, :, :]
    return float(np.sqrt((d * d).sum(-1)).max())


def pack(
    molecule: MoleculeFF,
    count: int,
    box: tuple[float, float, float] = (30.0, 30.0, 200.0),
    min_distance: float = 2.0,
    seed: int = 0,
    max_attempts: int = 2000,
) -> System:
    """Place ``count`` randomly rotated copies of ``molecule`` at random in ``box`` (Å).

    No two atoms of different molecules come closer than ``min_distance`` (Å) under the
    minimum-image convention. Raises :class:`BoxError` saying why when they cannot fit.
    """
    box_arr = np.asarray(box, dtype=float)
    if count < 1:
        raise BoxError(f"The number of molecules must be at least 1 (got {count}).")
    if np.any(box_arr <= 0):
        raise BoxError(f"Box lengths must be positive, got {tuple(box_arr)} Å.")
    centred = molecule.coords - molecule.coords.mean(axis=0)
    extent = molecule_extent(centred)
    if extent + min_distance > box_arr.min():
        raise BoxError(
            f"{molecule.smiles!r} is {extent:.1f} Å long, which does not fit into the "
            f"{box_arr.min():.1f} Å side of the {box_arr[0]:g} x {box_arr[1]:g} x {box_arr[2]:g} Å "
            "cell without touching its own periodic image: enlarge the box (--box) or choose a "
            "smaller molecule."
        )
    mol_volume = count * molecule.mass / AVOGADRO / 1.0e-24  # Å³ at 1 g/cm³
    if mol_volume > 0.9 * np.prod(box_arr):
        raise BoxError(
            f"{count} copies of {molecule.smiles!r} ({molecule.mass:.1f} g/mol) need about "
            f"{mol_volume:.0f} Å³ even at 1 g/cm³, more than the {np.prod(box_arr):.0f} Å³ cell: "
            "use fewer molecules or a larger box."
        )
    rng = np.random.default_rng(seed)
    placed: list[np.ndarray] = []
    all_pos = np.zeros((0, 3))
    min_d2 = min_distance**2
    for k in range(count):
        for _ in range(max_attempts):
            rot = Rotation.random(random_state=rng)
            trial = rot.apply(centred) + rng.uniform(0.0, 1.0, 3) * box_arr
            if len(all_pos):
                d = minimum_image(trial[:, None, :] - all_pos[None, :, :], box_arr)
                if (d * d).sum(-1).min() < min_d2:
                    continue
            placed.append(trial)
            all_pos = np.concatenate([all_pos, trial])
            break
        else:
            raise BoxError(
                f"Could place only {k} of {count} copies of {molecule.smiles!r} in the "
                f"{box_arr[0]:g} x {box_arr[1]:g} x {box_arr[2]:g} Å cell after {max_attempts} "
                f"random tries for the next one (minimum distance {min_distance} Å): the cell is "
                "too crowded. Use fewer molecules or a larger box."
            )
    system = assemble([molecule], [0] * count, placed, box_arr)
    system.meta.update({"seed": seed, "min_distance_A": min_distance})
    return system


def whole_molecules(system: System) -> np.ndarray:
    """Positions (Å) with every molecule made whole and its centre of mass wrapped in the cell.

    Uses image flags when present (unwrapped = x + image * L), else bond-walk minimum images.
    """
    pos = system.positions.copy()
    if system.images is not None:
        pos = pos + system.images * system.box
    out = np.empty_like(pos)
    for m in range(system.n_molecules):
        idx = np.flatnonzero(system.atom_mol == m)
        xyz = pos[idx]
        # re-join with minimum images relative to the first atom (molecules << box)
        xyz = xyz[0] + minimum_image(xyz - xyz[0], system.box)
        com = np.average(xyz, axis=0, weights=system.masses[idx])
        shift = np.floor(com / system.box) * system.box
        out[idx] = xyz - shift
    return out


def stack(bottom: System, top: System, gap: float = 1.0, top_shift: float = 0.0) -> System:
    """Join two cells along z: ``bottom`` at 0 <= z < Lz_b, ``top`` above it (Å).

    Both cells must share Lx and Ly (the z-only barostat keeps them). Molecules are kept whole
    (by centre of mass); ``gap`` (Å) is added between the slabs and at the top so that atoms
    sticking out of a slab do not overlap the other one before minimisation. A fully periodic
    stack has two interfaces (at z = Lz_b and at z = 0). ``top_shift`` (Å) translates the top
    cell along z before it is cut at its periodic boundary (any translation of a periodic liquid
    is the same liquid; it moves where the cut runs, i.e. which molecules face the interface).
    """
    if not np.allclose(bottom.box[:2], top.box[:2], atol=1e-3):
        raise BoxError(
            f"Cannot stack cells with different cross-sections: {bottom.box[:2]} vs "
            f"{top.box[:2]} Å. Both must come from the same x-y box."
        )
    pos_b = whole_molecules(bottom)
    if top_shift:
        top = dataclasses.replace(top, positions=top.positions + np.array([0.0, 0.0, top_shift]))
    pos_t = whole_molecules(top)
    pos_t = pos_t + np.array([0.0, 0.0, bottom.box[2] + gap])
    templates = bottom.molecules + top.molecules
    n_b = len(bottom.molecules)
    mol_template = list(bottom.mol_template) + [t + n_b for t in top.mol_template]
    coords = [pos_b[bottom.atom_mol == m] for m in range(bottom.n_molecules)]
    coords += [pos_t[top.atom_mol == m] for m in range(top.n_molecules)]
    box = np.array([bottom.box[0], bottom.box[1], bottom.box[2] + top.box[2] + 2 * gap])
    out = assemble(templates, mol_template, coords, box)
    if bottom.velocities is not None and top.velocities is not None:
        out.velocities = np.concatenate([bottom.velocities, top.velocities])
    out.meta.update(
        {
            "stack_interfaces": 2,
            "bottom_Lz_A": float(bottom.box[2]),
            "top_Lz_A": float(top.box[2]),
            "gap_A": gap,
            "top_shift_A": top_shift,
        }
    )
    return out


def rescale_z(system: System, lz: float) -> System:
    """A copy of ``system`` with cell height ``lz`` (Å): each molecule is made whole and moved
    rigidly so that its centre of mass keeps its fractional z; velocities are kept."""
    import dataclasses

    pos = whole_molecules(system)
    mass_z = np.bincount(system.atom_mol, weights=system.masses * pos[:, 2])
    com_z = mass_z / np.bincount(system.atom_mol, weights=system.masses)
    pos[:, 2] += (lz / float(system.box[2]) - 1.0) * com_z[system.atom_mol]
    return dataclasses.replace(
        system,
        positions=pos,
        images=None,
        box=np.array([system.box[0], system.box[1], lz]),
        meta=dict(system.meta, rescaled_from_lz_A=float(system.box[2])),
    )
