"""Data the learning side reads: :mod:`.qm9` (the source data set, from qm9pack's CSVs) and
:mod:`.targets` (the user's target and pretraining tables)."""
