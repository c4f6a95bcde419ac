"""mdxfer: choose the few molecules worth an expensive MD study.

The expensive target side (``mdxfer.molecule``, ``mdxfer.forcefield``, ``mdxfer.md``) builds
DREIDING-typed boxes from SMILES and computes interaction energies with LAMMPS; the cheap side
(:mod:`mdxfer.learn`: featurisation, networks, training, transfer, ranking) pretrains a GCN on
QM9 and transfers it to the few MD results. Importing :mod:`mdxfer` imports neither LAMMPS nor
torch.
"""

__version__ = "0.1.0"
