"""Simulation protocols: named presets (``paper``, ``quick``, ...), TOML overrides.

A protocol holds every number of the MD procedure; LAMMPS input text lives in ``templates/``
(package ``mdxfer.templates``) and is rendered by :func:`mdxfer.md.lammps.render` from
validated numbers and fixed file names only — no user text ever reaches a LAMMPS input.
Units: Å, fs, ps, K, atm, kcal/mol.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdxfer.errors import ProtocolError
from mdxfer.validate import check_int, check_number

#: The partner molecule every candidate is stacked against unless told otherwise: isoprene
#: (the monomer of natural rubber), as in the procedure this package reproduces.
DEFAULT_PARTNER = "CC(=C)C=C"


@dataclass(frozen=True)
class Protocol:
    """Every number of the interaction-energy procedure (see docs/protocol.md)."""

    name: str = "paper"
    # box
    n_molecules: int = 100
    box_A: tuple[float, float, float] = (30.0, 30.0, 200.0)
    min_distance_A: float = 2.0
    # dynamics
    temperature_K: float = 300.0
    timestep_fs: float = 1.0
    tdamp_fs: float = 100.0
    pressure_atm: float = 200.0
    pdamp_fs: float = 1000.0
    # stages (ps)
    minimize_steps: int = 1000
    precompress_ps: float = 20.0
    precompress_density_g_cm3: float = 0.5
    squeeze_ps: float = 0.0
    squeeze_atm: float = 2000.0
    anneal_ps: float = 0.0  # > 0: a single-species box runs this long at anneal_K (z-only
    #                                         barostat at pressure_atm) before its barostat
    #                                         stage at temperature_K, to forget its packing
    anneal_K: float = 450.0
    nvt_anneal_ps: float = 0.0  # > 0: every NVT stage (cells, partner, stack) starts at fixed
    #                                         volume with half of this at nvt_anneal_K and half
    #                                         a linear cooling to temperature_K, not sampled
    nvt_anneal_K: float = 450.0
    compress_ps: float = 100.0
    compress_chunk_ps: float = 2.0
    compress_extend_ps: float = 20.0
    compress_extra_max_ps: float = 200.0
    plateau_drift: float = 0.03
    nvt_ps: float = 100.0
    stack_compress_ps: float = 100.0
    stack_nvt_ps: float = 100.0
    stack_gap_A: float = 1.0
    # output
    thermo_every_fs: float = 100.0
    dump_every_fs: float = 1000.0
    # analysis
    compress_average_fraction: float = 0.25
    nvt_discard_fraction: float = 0.1
    # force field settings
    cutoff_A: float = 12.0
    kspace_accuracy: float = 1.0e-4
    hbond: bool = True
    charges: str = "gasteiger"
    tail_correction: bool = True
    seed: int = 12345
    # production-protocol choices (docs/protocol.md, "The production preset")
    packing: str = "random"  # "random" (seed: gas column) | "packmol" (near liquid)
    pack_density_fraction: float = 0.85  # packmol: fraction of the estimated liquid density
    min_slab_A: float = 0.0  # more molecules than n_molecules until the liquid
    #                                         slab (estimated density) is at least this thick, Å
    shake: bool = False  # SHAKE on X-H bonds (allows 2 fs)
    stack_barostat: bool = True  # False: stack at the summed NVT heights, no barostat
    stack_source: str = "nvt"  # cells stacked from their "nvt" end, or from the
    #                                         "compress" end rescaled to the NVT height (the
    #                                         stack then waits for no NVT run)
    partner_nvt_ps: float = 0.0  # partner's NVT length (0: nvt_ps); run once per campaign
    equilibration: str = "fixed"  # "fixed": discard nvt_discard_fraction; "detect": pymbar
    estimator: str = "pe_nh"  # E_int from "etotal", "pe" or "pe_nh" (see results.md)
    cross_energy: bool = True  # log the candidate-partner energy E_cross in the stack
    halves_energy: bool = True  # after each single-species cell's NVT: the energy between
    #                                         its two halves from its trajectory (E_int_unrelaxed);
    #                                         single points only, so not in any digest
    halves_splits: int = 4  # ways the cell is split for it (planes shifted by Lz/2k)
    replicas: int = 1  # independent seeds per candidate (not in the digest)
    interface_wall_A: float = 0.0  # > 0: flat-bottom walls keep each slab of the stack
    #                                         on its side of the interfaces, atoms may cross by
    #                                         this many Å (0: free interdiffusion, as published)
    interface_wall_k: float = 5.0  # force constant of those walls, kcal/mol/Å²

    def steps(self, ps: float) -> int:
        """Number of time steps in ``ps`` picoseconds."""
        return max(1, int(round(ps * 1000.0 / self.timestep_fs)))

    def every(self, fs: float) -> int:
        """An output interval of ``fs`` femtoseconds in steps (at least 1)."""
        return max(1, int(round(fs / self.timestep_fs)))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["box_A"] = list(self.box_A)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Protocol:
        """A protocol from :meth:`to_dict` output (fields unknown to this version are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "box_A" in values:
            values["box_A"] = tuple(values["box_A"])
        return cls(**values)

    def digest(self) -> str:
        """Content hash of every number (12 hex digits): keys results to their protocol.

        ``replicas`` is left out: replica k runs the protocol with ``seed`` of :meth:`replica`,
        so asking for more replicas later reuses the finished ones.
        """
        d = _without_unchanged_later_fields(self.to_dict())
        d.pop("replicas")
        d.pop("halves_energy")
        d.pop("halves_splits")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def family_digest(self) -> str:
        """The digest without the seed (12 hex digits): every replica of a protocol shares it
        (:meth:`replica` changes only the seed), so figures measured over replicas — the
        between-replica scatter of :mod:`mdxfer.md.scatter` — are keyed by it."""
        return dataclasses.replace(self, seed=0, replicas=1).digest()

    def cell_digest(self, role: str = "candidate") -> str:
        """The digest of a single-species box in ``role`` (``candidate`` or ``partner``), 12 hex
        digits: every number that box runs with — not the stack-only fields
        (:data:`STACK_ONLY_FIELDS`), and of the two NVT lengths only its own (``nvt_ps`` for a
        candidate, :attr:`partner_ps` for the partner). Protocols that differ only in how the
        stack runs (walls, stack NVT length, ...) share their cells, and the partner box is
        shared by protocols that differ only in the candidates' NVT length."""
        d = _without_unchanged_later_fields(self.to_dict())
        observations = ("halves_energy", "halves_splits")
        for name in ("replicas", *observations, "nvt_ps", "partner_nvt_ps", *STACK_ONLY_FIELDS):
            d.pop(name, None)  # a later stack-only field at its default is gone already
        d["role_nvt_ps"] = self.partner_ps if role == "partner" else self.nvt_ps
        d["role"] = role
        return hashlib.sha256(json.dumps({"cell": d}, sort_keys=True).encode()).hexdigest()[:12]

    def box_digest(self, kind: str, role: str = "candidate") -> str:
        """The digest that keys a box of ``kind``: :meth:`cell_digest` of ``role`` for a
        single-species box (``"species"``), :meth:`digest` for a stack."""
        return self.cell_digest(role) if kind == "species" else self.digest()

    def replica(self, k: int) -> Protocol:
        """The protocol of replica ``k`` (0-based): a new seed (packing, conformer, velocities).

        Replica 0 is the protocol itself.
        """
        return dataclasses.replace(self, seed=self.seed + 1009 * k, replicas=1)

    @property
    def partner_ps(self) -> float:
        """NVT length of the partner box, ps."""
        return self.partner_nvt_ps or self.nvt_ps


#: Fields that only the stack of two cells uses: not part of :meth:`Protocol.cell_digest`.
STACK_ONLY_FIELDS = (
    "stack_compress_ps",
    "stack_nvt_ps",
    "stack_gap_A",
    "stack_barostat",
    "stack_source",
    "cross_energy",
    "interface_wall_A",
    "interface_wall_k",
)

#: Fields added after results were keyed by digest: part of the digest only when changed.
_DIGEST_IF_CHANGED = {
    "interface_wall_A": 0.0,
    "interface_wall_k": 5.0,
    "anneal_ps": 0.0,
    "anneal_K": 450.0,
    "nvt_anneal_ps": 0.0,
    "nvt_anneal_K": 450.0,
}


# A temperature that no stage uses: the anneal's temperature when its length is 0.
_UNUSED_WHEN_OFF = {"anneal_K": "anneal_ps", "nvt_anneal_K": "nvt_anneal_ps"}


def _without_unchanged_later_fields(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` (a :meth:`Protocol.to_dict`) without the :data:`_DIGEST_IF_CHANGED` fields that
    hold their defaults, nor an anneal temperature whose anneal is off (length 0): digests of
    protocols written before those fields stay valid, and a number no stage runs with does not
    key a result."""
    return {
        k: v
        for k, v in d.items()
        if (k not in _DIGEST_IF_CHANGED or v != _DIGEST_IF_CHANGED[k])
        and not (k in _UNUSED_WHEN_OFF and d.get(_UNUSED_WHEN_OFF[k], 0) == 0)
    }


PRESETS: dict[str, Protocol] = {
    # The published procedure: 100 molecules in 30 x 30 x 200 Å; 200 atm along z for 100 ps (Nose-Hoover,
    # Parrinello-Rahman/MTK z-only barostat), then 100 ps NVT at 300 K, 1 fs; same for the stack.
    "paper": Protocol(),
    # Same stages, far fewer steps and molecules: for tests and demos. Does NOT reach liquid
    # density; its energies are not science.
    "quick": Protocol(
        name="quick",
        n_molecules=20,
        box_A=(20.0, 20.0, 60.0),
        minimize_steps=200,
        precompress_ps=1.0,
        pdamp_fs=100.0,
        compress_ps=3.0,
        compress_chunk_ps=1.0,
        compress_extra_max_ps=0.0,
        nvt_ps=2.0,
        stack_compress_ps=2.0,
        stack_nvt_ps=2.0,
        thermo_every_fs=20.0,
        dump_every_fs=200.0,
        cutoff_A=9.0,
    ),
    # The production preset (issue 11): packed near liquid density with packmol, slabs at least
    # twice the cut-off thick, SHAKE on X-H bonds with 2 fs steps, a short z-only barostat stage
    # with a tight plateau test, NVT with equilibration detected from the series, and the stack
    # at exactly the summed NVT heights (no stack barostat: the volume errors of the two cells
    # cancel to first order). E_int from the potential energy without the harmonic bond, angle
    # and inversion terms (their means are fixed by equipartition and cancel). The partner runs
    # once, 1 ns. Flat-bottom walls keep the slabs on their sides of the two interfaces (no
    # interdiffusion: E_cross repeats to ~1 kcal/mol instead of 11-44). NVT 30 ps (cell) and
    # 50 ps (stack): the replica scatter of E_int is the same as with 60 and 100 ps (it comes
    # from the packing, not the run length), at ~40 % less CPU. Every choice and its
    # measurement: docs/protocol.md.
    "production": Protocol(
        name="production",
        n_molecules=100,
        box_A=(30.0, 30.0, 200.0),
        packing="packmol",
        pack_density_fraction=0.85,
        min_slab_A=20.0,
        minimize_steps=500,
        precompress_ps=0.0,
        timestep_fs=2.0,
        shake=True,
        pdamp_fs=500.0,
        compress_ps=40.0,
        compress_chunk_ps=10.0,
        compress_extend_ps=20.0,
        compress_extra_max_ps=60.0,
        plateau_drift=0.005,
        compress_average_fraction=0.5,
        nvt_ps=30.0,
        stack_compress_ps=0.0,
        stack_nvt_ps=50.0,
        stack_barostat=False,
        stack_source="compress",
        stack_gap_A=0.0,
        partner_nvt_ps=1000.0,
        equilibration="detect",
        cutoff_A=10.0,
        charges="mmff94",
        thermo_every_fs=100.0,
        dump_every_fs=2000.0,
        interface_wall_A=1.0,
        interface_wall_k=5.0,
    ),
}
# The README's main job: the production route (packed liquid, fixed-volume stack, pe_nh,
# replicas-ready) on a smaller cross-section and shorter runs, about 3 minutes on 2 cores. Its
# E_int is a liquid-density number with an honest (larger) error, not a production value.
PRESETS["demo"] = dataclasses.replace(
    PRESETS["production"],
    name="demo",
    n_molecules=30,
    box_A=(20.0, 20.0, 200.0),
    min_slab_A=18.0,
    cutoff_A=9.0,
    compress_ps=20.0,
    compress_chunk_ps=5.0,
    compress_extra_max_ps=0.0,
    compress_average_fraction=0.5,
    nvt_ps=20.0,
    stack_nvt_ps=30.0,
    partner_nvt_ps=30.0,
    dump_every_fs=1000.0,
)


def _coerce(name: str, value: Any, current: Any) -> Any:
    """``value`` as the type of ``current``; numbers must be finite (NaN and inf are refused)."""
    field = f"Protocol field {name!r}"
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ProtocolError(f"{field} must be true or false, got {value!r}.")
        return value
    if isinstance(current, tuple):
        if not (isinstance(value, (list, tuple)) and len(value) == len(current)):
            raise ProtocolError(f"{field} must be a list of {len(current)} numbers, got {value!r}.")
        return tuple(
            check_number(v, f"{field} entry {k + 1}", error=ProtocolError)
            for k, v in enumerate(value)
        )
    if isinstance(current, int):
        return check_int(value, field, error=ProtocolError)
    if isinstance(current, float):
        return check_number(value, field, error=ProtocolError)
    if isinstance(current, str):
        if not isinstance(value, str):
            raise ProtocolError(f"{field} must be a string, got {value!r}.")
        return value
    return value


#: The protocol seed feeds RDKit's conformer seed (a signed 32-bit int, plus up to 5 retries)
#: and each replica adds 1009 (:meth:`Protocol.replica`).
SEED_MAX = 2**31 - 16


#: Upper bounds (inclusive) of the numeric fields: far beyond any meaningful run, but they stop
#: a typo (1e12 molecules, a 1e30 ps run, a 1e9 Å box) before it allocates or runs for ever.
MAXIMA: dict[str, tuple[float, str]] = {
    "n_molecules": (100_000, "molecules per box"),
    "temperature_K": (5000.0, "K"),
    "pressure_atm": (1e5, "atm"),
    "squeeze_atm": (1e5, "atm"),
    "anneal_K": (5000.0, "K"),
    "nvt_anneal_K": (5000.0, "K"),
    "tdamp_fs": (1e6, "fs"),
    "pdamp_fs": (1e6, "fs"),
    "minimize_steps": (10_000_000, "steps"),
    "cutoff_A": (50.0, "Å"),
    "min_distance_A": (10.0, "Å"),
    "min_slab_A": (10_000.0, "Å"),
    "stack_gap_A": (1000.0, "Å"),
    "precompress_density_g_cm3": (5.0, "g/cm³"),
    "kspace_accuracy": (0.1, "relative"),
    "thermo_every_fs": (1e8, "fs"),
    "dump_every_fs": (1e8, "fs"),
    "replicas": (1000, "replicas"),
    "halves_splits": (64, "splits"),
    "interface_wall_A": (100.0, "Å"),
    "interface_wall_k": (1000.0, "kcal/mol/Å²"),
    **{
        name: (1e6, "ps (1 µs)")
        for name in (
            "precompress_ps",
            "squeeze_ps",
            "anneal_ps",
            "nvt_anneal_ps",
            "compress_ps",
            "compress_chunk_ps",
            "compress_extend_ps",
            "compress_extra_max_ps",
            "nvt_ps",
            "stack_compress_ps",
            "stack_nvt_ps",
            "partner_nvt_ps",
        )
    },
}
BOX_MAX_A = 10_000.0


def validate(p: Protocol) -> Protocol:
    """Raise :class:`ProtocolError` for numbers that cannot give a meaningful run."""
    if p.minimize_steps < 0:
        raise ProtocolError(
            f"Protocol field 'minimize_steps' must be >= 0, got {p.minimize_steps}."
        )
    if p.precompress_ps < 0 or p.precompress_density_g_cm3 <= 0:
        raise ProtocolError("precompress_ps must be >= 0 and precompress_density_g_cm3 > 0.")
    if p.stack_compress_ps < 0 or (p.stack_barostat and p.stack_compress_ps == 0):
        raise ProtocolError("stack_compress_ps must be positive when stack_barostat is true.")
    if p.stack_gap_A < 0 or p.min_slab_A < 0 or p.partner_nvt_ps < 0:
        raise ProtocolError("stack_gap_A, min_slab_A and partner_nvt_ps must be >= 0.")
    if p.replicas < 1:
        raise ProtocolError(f"replicas must be at least 1, got {p.replicas}.")
    if p.halves_splits < 1:
        raise ProtocolError(f"halves_splits must be at least 1, got {p.halves_splits}.")
    top = SEED_MAX - 1009 * (p.replicas - 1)
    if not 0 <= p.seed <= top:
        raise ProtocolError(
            f"Protocol field 'seed' must be an integer in [0, {top}] (with "
            f"replicas = {p.replicas}), got {p.seed}."
        )
    for fld in dataclasses.fields(p):
        value = getattr(p, fld.name)
        if any(
            isinstance(x, float) and not math.isfinite(x)
            for x in (value if isinstance(value, tuple) else (value,))
        ):
            raise ProtocolError(f"Protocol field {fld.name!r} must be finite, got {value!r}.")
    choices = {
        "packing": ("random", "packmol"),
        "equilibration": ("fixed", "detect"),
        "estimator": ("etotal", "pe", "pe_nh"),
        "stack_source": ("nvt", "compress"),
    }
    for f, allowed in choices.items():
        if getattr(p, f) not in allowed:
            raise ProtocolError(f"{f} must be one of {', '.join(allowed)}; got {getattr(p, f)!r}.")
    if not 0.1 <= p.pack_density_fraction <= 1.2:
        raise ProtocolError("pack_density_fraction must be in [0.1, 1.2].")
    positive = [
        "n_molecules",
        "temperature_K",
        "timestep_fs",
        "tdamp_fs",
        "pdamp_fs",
        "compress_ps",
        "compress_chunk_ps",
        "compress_extend_ps",
        "nvt_ps",
        "stack_nvt_ps",
        "thermo_every_fs",
        "dump_every_fs",
        "cutoff_A",
        "kspace_accuracy",
        "min_distance_A",
    ]
    for f in positive:
        if not getattr(p, f) > 0:
            raise ProtocolError(f"Protocol field {f!r} must be positive, got {getattr(p, f)!r}.")
    if any(x <= 0 for x in p.box_A):
        raise ProtocolError(f"box_A must be three positive lengths, got {p.box_A}.")
    if p.interface_wall_A < 0 or p.interface_wall_k <= 0:
        raise ProtocolError("interface_wall_A must be >= 0 and interface_wall_k > 0.")
    if max(p.box_A) > BOX_MAX_A:
        raise ProtocolError(
            f"Protocol field 'box_A' (--box) must be at most {BOX_MAX_A:g} Å per "
            f"side, got {p.box_A}."
        )
    for name, (hi, unit) in MAXIMA.items():
        if getattr(p, name) > hi:
            raise ProtocolError(
                f"Protocol field {name!r} must be at most {hi:g} {unit}, got "
                f"{getattr(p, name)!r}; this looks like a typo."
            )
    if p.squeeze_ps < 0 or p.squeeze_atm <= 0:
        raise ProtocolError("squeeze_ps must be >= 0 and squeeze_atm > 0.")
    if p.anneal_ps < 0 or p.anneal_K <= 0:
        raise ProtocolError("anneal_ps must be >= 0 and anneal_K > 0.")
    if p.nvt_anneal_ps < 0 or p.nvt_anneal_K <= 0:
        raise ProtocolError("nvt_anneal_ps must be >= 0 and nvt_anneal_K > 0.")
    if p.charges not in ("gasteiger", "mmff94"):
        raise ProtocolError(f"charges must be 'gasteiger' or 'mmff94', got {p.charges!r}.")
    if p.compress_extra_max_ps < 0:
        raise ProtocolError("compress_extra_max_ps must be >= 0.")
    for f in ("compress_average_fraction", "nvt_discard_fraction", "plateau_drift"):
        if not 0 <= getattr(p, f) < 1:
            raise ProtocolError(f"Protocol field {f!r} must be in [0, 1).")
    if p.pressure_atm < 0:
        raise ProtocolError("pressure_atm must be >= 0.")
    if p.timestep_fs > 2.0:
        raise ProtocolError("timestep_fs above 2 fs is unstable with all-atom hydrogens.")
    if p.timestep_fs > 1.0 and not p.shake:
        raise ProtocolError("timestep_fs above 1 fs needs shake = true (X-H bonds constrained).")
    return p


def load_protocol(name_or_path: str = "paper", overrides: dict[str, Any] | None = None) -> Protocol:
    """A preset by name, or a TOML file (``preset = "paper"`` plus fields), plus overrides."""
    data: dict[str, Any] = {}
    base_name = name_or_path
    if name_or_path not in PRESETS:
        path = Path(name_or_path)
        if not path.is_file():
            raise ProtocolError(
                f"Unknown protocol {name_or_path!r}: use one of {', '.join(PRESETS)} or the path "
                "of a TOML file."
            )
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"Protocol file {path} is not valid TOML: {exc}.") from None
        data = dict(data.get("protocol", data))
        base_name = data.pop("preset", "paper")
        if base_name not in PRESETS:
            raise ProtocolError(f"Protocol file {path}: unknown preset {base_name!r}.")
        data.setdefault("name", f"{base_name}+{path.stem}")
    from_file = set(data) - set(overrides or {})
    data.update(overrides or {})
    base = PRESETS[base_name]
    fields = {f.name: f for f in dataclasses.fields(Protocol)}
    changes = {}
    for key, value in data.items():
        if key not in fields:
            raise ProtocolError(
                f"Unknown protocol field {key!r}. Known fields: {', '.join(sorted(fields))}."
            )
        try:
            changes[key] = _coerce(key, value, getattr(base, key))
        except ProtocolError as exc:
            if key in from_file:
                raise ProtocolError(f"Protocol file {name_or_path}: {exc}") from None
            raise
    return validate(dataclasses.replace(base, **changes))
