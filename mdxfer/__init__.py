"""mdxfer: choose the few molecules worth an expensive MD study.

The expensive target side (:mod:`mdxfer.molecule`, :mod:`mdxfer.forcefield`, :mod:`mdxfer.md`)
builds DREIDING-typed boxes from SMILES and computes interaction energies with LAMMPS;
:mod:`mdxfer.campaign` runs many of them through Parsl, kept in SQLite. The cheap side
(:mod:`mdxfer.learn`: featurisation, data, networks, training, transfer, shotgun, ranking)
pretrains a GCN on QM9 and transfers it to the few MD results; :mod:`mdxfer.al` (active
learning) joins the two. :mod:`mdxfer.cli` is the ``mdxfer`` command. Shared by all:
:mod:`mdxfer.errors` (every exception), :mod:`mdxfer.inputs` (the one SMILES/CSV reader, TOML
helpers), :mod:`mdxfer.tables` (target tables), :mod:`mdxfer.validate`, :mod:`mdxfer.fileio`
(atomic writes, locks), :mod:`mdxfer.db`, :mod:`mdxfer.progress`, :mod:`mdxfer.provenance`.
LAMMPS input templates are installed as ``mdxfer.templates``. The picture:
docs/architecture.md.

Importing :mod:`mdxfer` imports neither LAMMPS nor torch.
"""

__version__ = "0.1.0"
