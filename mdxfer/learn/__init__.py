"""The learning side: a graph network pretrained on QM9, transferred to a few MD results.

Modules, in the order a molecule meets them (each imports only modules above it):

``featurize``     SMILES -> DGL-LifeSci canonical atom/bond features packed as graphs; Morgan
                  count fingerprints; the QM9 applicability domain
``data``          ``qm9`` (the source data set, from qm9pack) and ``targets`` (the user's
                  target and pretraining tables)
``nn``            network architectures: ``graph`` (GCN/GINE encoders and presets),
                  ``fingerprint`` (fully connected networks on Morgan counts), ``head``
``models``        a trained source model (:class:`~.models.GraphModel`,
                  :class:`~.models.FingerprintModel`): one save/load path for ``model.pt``;
                  atomic torch files
``evaluation``    regression figures, parity and calibration plots
``training``      the one training loop: early stopping, time limit, resumable checkpoints
``pretrain``      ``mdxfer pretrain`` (QM9 or a table) and the fingerprint networks of a library
``selfsup``       ``mdxfer selfsup``: masked-atom and motif pretraining of the encoder
``gp``            exact Gaussian processes (Tanimoto and RBF kernels)
``ensemble``      ensemble members, ensembles and committees; :func:`~.ensemble.load_ensemble`,
                  the one loader of a model folder
``transfer``      ``mdxfer transfer``: cross-validated transfer modes, calibration
``library``       ``mdxfer library``: a library of randomly shaped source models
``shotgun``       ``mdxfer transfer --library``: transfer every library model, keep the best
``rank``          ``mdxfer rank``: rank a file of candidates with an ensemble
``heldout``       ``mdxfer benchmark``: held-out extrapolation and small-data benchmarks

Nothing here imports LAMMPS, Parsl or the campaign code (``rank`` asks :mod:`mdxfer.molecule`
which molecules MD would refuse); inputs are read by :mod:`mdxfer.inputs` and
:mod:`mdxfer.tables`, errors are :class:`mdxfer.errors.DataError`. Importing :mod:`mdxfer` does
not import this package (torch loads only when a learning module is imported). Terms:
docs/glossary.md; the whole picture: docs/architecture.md.
"""
