"""The between-replica scatter of E_int and E_cross, measured per protocol, and the error bars
it implies.

A replica's in-run standard error (from the time series of its NVT runs) sees only the noise
that decorrelates within those runs. Replicas of the ``production`` preset (new packing, new
velocities) scatter by several times more (docs/results.md): slow modes — the packing a cell
keeps, the interface a stack forms — are frozen for the length of a run, so one run cannot see
them. That extra scatter, σ_between, is measured on the oracle panel (``benchmarks/
bench_oracle.py calibrate``) and stored here per protocol family digest
(:meth:`~mdxfer.md.protocol.Protocol.family_digest`: the digest without the seed, which every
replica of a protocol shares):

    σ_between² = Σ_c (n_c − 1) (SD_c² − ⟨se_run²⟩_c) / Σ_c (n_c − 1),

pooled over the panel's candidates c (n_c replicas each; SD_c their sample SD, se_run their
in-run stderrs), floored at 0. A replica then reports
``E_int_stderr = sqrt(se_run² + σ_between²)`` (kcal/mol) and keeps ``E_int_stderr_run``; the
same for ``E_cross`` with its own σ (:data:`QUANTITIES`). A protocol without a measurement
(another digest: any changed number) reports the in-run stderr with a warning.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from typing import Any

FILE = "replica_scatter.json"
#: The calibrated quantities: result field -> its σ_between's key in :data:`FILE`.
QUANTITIES = {
    "E_int": "sigma_between_kcal",
    "E_cross": "sigma_between_cross_kcal",
    "E_int_unrelaxed": "sigma_between_unrelaxed_kcal",
}


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, Any]]:
    """{protocol digest: {"sigma_between_kcal": float, "protocol": name, ...}} shipped with
    mdxfer (empty if the file is absent)."""
    try:
        text = resources.files("mdxfer.md").joinpath(FILE).read_text()
    except FileNotFoundError:
        return {}
    return json.loads(text)


def between_replica_sd(digest: str, quantity: str = "E_int") -> float | None:
    """σ_between of ``quantity`` (a key of :data:`QUANTITIES`, kcal/mol) measured for the protocol
    with this digest, or None if unmeasured."""
    value = (_table().get(digest) or {}).get(QUANTITIES[quantity])
    return None if value is None else float(value)


def measurement(digest: str) -> dict[str, Any] | None:
    """The stored measurement for ``digest`` (σ, panel size, source), or None."""
    return _table().get(digest)


def calibrated_stderr(
    run_stderr: float | None, digest: str, quantity: str = "E_int"
) -> float | None:
    """sqrt(se_run² + σ_between²) of ``quantity`` (kcal/mol); ``run_stderr`` unchanged when its
    σ is unmeasured."""
    sigma = between_replica_sd(digest, quantity)
    if run_stderr is None or sigma is None:
        return run_stderr
    return float(math.hypot(run_stderr, sigma))


def pooled_between_sd(groups: list[tuple[list[float], list[float]]]) -> tuple[float, int]:
    """(σ_between, degrees of freedom) from [(values, in-run stderrs)] per candidate.

    Candidates with fewer than two replicas carry no information and are skipped.
    """
    num, dof = 0.0, 0
    for values, ses in groups:
        n = len(values)
        if n < 2:
            continue
        mean = sum(values) / n
        var = sum((v - mean) ** 2 for v in values) / (n - 1)
        num += (n - 1) * (var - sum(s * s for s in ses) / n)
        dof += n - 1
    if dof == 0:
        return float("nan"), 0
    return float(math.sqrt(max(num / dof, 0.0))), dof
