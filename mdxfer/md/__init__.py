"""The expensive target side: boxes, LAMMPS data files, protocols, runs and interaction energies."""
