"""The expensive target side: boxes, LAMMPS data files, protocols, runs and interaction energies.

:func:`universe` opens a run folder in MDAnalysis with DREIDING type names, elements, species
segments and the right time step (:mod:`mdxfer.md.trajectory`; MDAnalysis is imported only
when it is called)."""

from mdxfer.md.trajectory import universe

__all__ = ["universe"]
