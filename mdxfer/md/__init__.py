"""The expensive target side: boxes, LAMMPS data files, protocols, runs and interaction energies.

:func:`universe` opens a run folder in MDAnalysis with DREIDING type names, elements, species
segments and the right time step (:mod:`mdxfer.md.trajectory`; it and NumPy are imported on
first use, so that ``mdxfer.md.protocol`` stays light for the command line)."""

__all__ = ["universe"]


def __getattr__(name: str):
    if name == "universe":
        from mdxfer.md.trajectory import universe

        return universe
    raise AttributeError(f"module 'mdxfer.md' has no attribute {name!r}")
