"""The LAMMPS force-field include file (``forcefield.lmp``) of a :class:`System`.

Every i-j LJ pair is written explicitly (no ``pair_modify mix``): LAMMPS' mixing under
``pair_style hybrid/overlay`` gave wrong Coulomb energies (LAMMPS issue #3030), and the
DREIDING cross terms are then visible in the file. Hydrogen bonds use ``hbond/dreiding/lj``
between every donor type (N/O/F bearing an ``H___A``) and every acceptor type (N/O/F).
"""

from __future__ import annotations

import numpy as np

from mdxfer.forcefield.parameters import (
    MoleculeFF,
    angle_params,
    bond_params,
    lj_pair,
    load_table,
)
from mdxfer.md.box import System
from mdxfer.md.datafile import angle_label, bond_label
from mdxfer.md.lammps import render
from mdxfer.md.protocol import Protocol


def hbond_pairs(system: System) -> list[tuple[str, str]]:
    """(donor type, acceptor type) pairs present in ``system``; empty without any H___A."""
    table = load_table()["hbond"]
    donors, acceptors = set(), set()
    for ff in system.molecules:
        donors |= {t for t in ff.donor_types if t.split("_")[0] in table["donor_elements"]}
        acceptors |= ff.acceptor_types
    if "H___A" not in system.types:
        return []
    return sorted((d, a) for d in donors for a in acceptors)


def cross_hbonds(a: MoleculeFF, b: MoleculeFF) -> bool:
    """Whether a DREIDING hydrogen bond can join a molecule ``a`` to a molecule ``b``: a donor
    (an atom of the table's donor elements carrying ``H___A``) on one and an acceptor on the
    other."""
    elements = set(load_table()["hbond"]["donor_elements"])

    def donors(m: MoleculeFF) -> set[str]:
        return {t for t in m.donor_types if t.split("_")[0] in elements}

    return bool((donors(a) and b.acceptor_types) or (donors(b) and a.acceptor_types))


def tail_command(protocol: Protocol, hybrid: bool) -> str:
    """``pair_modify ... tail yes`` for barostat stages when the protocol asks for it.

    The long-range LJ tail correction changes only the energy and the pressure, never the
    forces. It is switched on while compressing (so the barostat sees the right pressure and the
    liquid reaches the right density) and left off in NVT, where it would add a constant that
    assumes a homogeneous fluid — wrong for the stacked, two-liquid cell, and a bias in E_int.
    """
    if not protocol.tail_correction:
        return "# no LJ tail correction (tail_correction = false)"
    if hybrid:
        return "pair_modify     pair lj/cut/coul/long tail yes"
    return "pair_modify     tail yes"


def forcefield_include(system: System, protocol: Protocol) -> str:
    """Text of ``forcefield.lmp`` for ``system`` under ``protocol`` (cut-off, H-bonds).

    ``hybrid/overlay`` with ``hbond/dreiding/lj`` is used exactly when ``protocol.hbond`` and
    :func:`hbond_pairs` is not empty.
    """
    tables = system.type_tables()
    labels = tables["atom"]
    num = {t: i + 1 for i, t in enumerate(labels)}
    hb = hbond_pairs(system) if protocol.hbond else []
    rc = protocol.cutoff_A
    hbt = load_table()["hbond"]
    charged = bool(np.any(system.charges != 0.0))
    # A cell without any charge (an alkane with MMFF94 charges) has no Coulomb energy at all;
    # PPPM refuses an uncharged system, so it runs plain LJ (the same energy, term by term).
    lj_style = "lj/cut/coul/long" if charged else "lj/cut"
    kspace = (
        f"kspace_style pppm {protocol.kspace_accuracy:g}"
        if charged
        else "# no charges in this cell: no long-range Coulomb (PPPM needs charges)"
    )
    if hb:
        pair_style = (
            f"hybrid/overlay {lj_style} {rc:g} hbond/dreiding/lj {hbt['n']} "
            f"{hbt['r_inner']:g} {hbt['r_outer']:g} {hbt['angle_cutoff']:g}"
        )
        sub = f" {lj_style}"
    else:
        pair_style, sub = f"{lj_style} {rc:g}", ""
    pair_lines = []
    for i, ti in enumerate(labels):
        for tj in labels[i:]:
            eps, sig = lj_pair(ti, tj)
            pair_lines.append(
                f"pair_coeff {num[ti]} {num[tj]}{sub} {eps:.6f} {sig:.6f}  # {ti} {tj}"
            )
    for donor, acc in hb:
        i, j = sorted((num[donor], num[acc]))
        flag = "i" if num[donor] == i else "j"
        pair_lines.append(
            f"pair_coeff {i} {j} hbond/dreiding/lj {num['H___A']} {flag} {hbt['D_hb']:g} "
            f"{hbt['R_hb']:g} {hbt['n']}  # donor {donor}, acceptor {acc}"
        )
    pair_modify = "# no long-range LJ tail correction here (see tail_command: barostat stages only)"
    bond_lines = []
    for n, key in enumerate(tables["bond"], 1):
        k, r0 = bond_params(*key)
        bond_lines.append(f"bond_coeff {n} {k:.4f} {r0:.4f}  # {bond_label(key)}")
    angle_lines = []
    for n, key in enumerate(tables["angle"], 1):
        k, th = angle_params(key)
        angle_lines.append(f"angle_coeff {n} {k:.4f} {th:.4f}  # {angle_label(key)}")
    dihedral_lines = [
        f"dihedral_coeff {n} {k:.6f} {d} {m}" for n, (k, d, m) in enumerate(tables["dihedral"], 1)
    ]
    improper_lines = [
        f"improper_coeff {n} {k:.6f} {w0:.4f}" for n, (k, w0) in enumerate(tables["improper"], 1)
    ]
    return render(
        "forcefield.lmp",
        pair_style=pair_style,
        pair_coeffs="\n".join(pair_lines),
        pair_modify=pair_modify,
        bond_coeffs="\n".join(bond_lines),
        angle_coeffs="\n".join(angle_lines),
        dihedral_coeffs="\n".join(dihedral_lines),
        improper_coeffs="\n".join(improper_lines),
        kspace_command=kspace,
    )


def shake_command(protocol: Protocol) -> str:
    """``fix shake`` on every bond to a hydrogen (mass < 1.1 g/mol) when ``protocol.shake``.

    Constraining the fastest vibrations allows 2 fs steps; LAMMPS removes the constrained
    degrees of freedom from the temperature. Defined after any minimisation.
    """
    if not protocol.shake:
        return "# no constraints (shake = false)"
    return "fix             rigid_h all shake 0.0001 20 0 m 1.1"


def interface_wall_commands(bottom_molecules: int, lc: float, tolerance: float, k: float) -> str:
    """Flat-bottom walls that keep each slab of a stack on its side of its two interfaces.

    The stack is the candidate cell (molecules 1..N, z in [0, lc]) under the partner cell
    (z in [lc, Lz]); periodic in z, so the interfaces are z = lc and z = 0 ≡ Lz. An atom that
    crosses the nearer interface by more than ``tolerance`` Å is pushed back with the force
    k·(depth − tolerance) (kcal/mol/Å), along z only (``fix addforce``; its energy is not part of
    the potential energy LAMMPS reports). Interdiffusion stops; the interface stays sharp.
    """
    n = int(bottom_molecules)
    return "\n".join(
        [
            f"group           wcand molecule <> 1 {n}",
            "group           wpart subtract all wcand",
            f"variable        wlc equal {lc:.6f}",
            f"variable        wd equal {tolerance:g}",
            f"variable        wk equal {k:g}",
            'variable        wtop atom "(z-v_wlc)<(lz-z)"',
            'variable        wbot atom "z<(v_wlc-z)"',
            'variable        wc atom "gmask(wcand)*(z>v_wlc+v_wd)*(z<lz-v_wd)*'
            '(-v_wk*(z-v_wlc-v_wd)*v_wtop+v_wk*(lz-v_wd-z)*(1-v_wtop))"',
            'variable        wp atom "gmask(wpart)*(z>v_wd)*(z<v_wlc-v_wd)*'
            '(-v_wk*(z-v_wd)*v_wbot+v_wk*(v_wlc-v_wd-z)*(1-v_wbot))"',
            "variable        wfz atom v_wc+v_wp",
            "fix             iwall all addforce 0.0 0.0 v_wfz",
        ]
    )


def cross_commands(bottom_molecules: int, kspace: bool = True) -> tuple[str, str]:
    """(commands, thermo keyword) logging the energy between molecules 1..N and the rest.

    ``compute group/group`` with ``pair yes kspace yes``: the pair (LJ, real-space Coulomb,
    hydrogen-bond) and long-range Coulomb energy between the candidate slab (the stack's first
    ``bottom_molecules`` molecules) and the partner slab, kcal/mol. ``kspace`` False for a
    system without charges (no PPPM: LAMMPS refuses ``kspace yes`` then).
    """
    n = int(bottom_molecules)
    lines = [
        f"group           cand molecule <> 1 {n}",
        "group           partner subtract all cand",
        f"compute         cross cand group/group partner pair yes kspace {_yes(kspace)}",
    ]
    return "\n".join(lines), "c_cross"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def has_kspace(forcefield_text: str) -> bool:
    """True when a ``forcefield.lmp`` text sets a k-space style (the system carries charges)."""
    return any(line.split()[:1] == ["kspace_style"] for line in forcefield_text.splitlines())
