"""The shortened `quick` protocol the campaign and blow-up tests run (fewer steps and molecules,
never faked results), shared so every such test runs the same one.

Imported as ``from tiny_protocol import ...``: pytest puts this folder on ``sys.path`` for the
``conftest.py`` beside it (rootdir conftest, no package).
"""

from __future__ import annotations

import json

#: Overrides of the `quick` preset: 8 molecules, 1 ps per MD stage, 100 minimisation steps.
TINY: dict[str, object] = {
    "n_molecules": 8,
    "compress_ps": 1.0,
    "nvt_ps": 1.0,
    "stack_compress_ps": 1.0,
    "stack_nvt_ps": 1.0,
    "minimize_steps": 100,
}


def protocol_toml(**extra: object) -> str:
    """The ``[protocol]`` table of a campaign file: preset `quick`, :data:`TINY`, ``extra``."""
    fields = {"preset": "quick", **TINY, **extra}
    return "[protocol]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in fields.items())
