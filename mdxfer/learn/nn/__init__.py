"""Network architectures: :mod:`.graph` (graph convolutions on DGL-LifeSci features),
:mod:`.fingerprint` (fully connected networks on Morgan counts), :mod:`.head` (the fully
connected head both share). Every network is an ``encoder`` followed by a ``head``."""
