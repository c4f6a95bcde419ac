"""The tested-versions file that scripts/setup.sh installs with (issue 16 item 6)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def test_every_dependency_is_pinned_within_its_declared_range():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    pinned = pins()
    for text in declared:
        req = Requirement(text)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name == "torch":  # pinned apart (MDXFER_TORCH), CPU build
            continue
        assert name in pinned, f"{name} is not in constraints.txt"
        assert Version(pinned[name]) in req.specifier, f"{name}=={pinned[name]} vs {req}"


def test_the_environment_is_the_locked_one():
    """The tests run on what constraints.txt says (a stale lock fails here, not on a user).
    A pin of a package that nothing installed is only a constraint and is left alone; every
    declared dependency must be installed at its pinned version."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.sub(r"[-_.]+", "-", Requirement(t).name).lower()
        for t in project["dependencies"] + project["optional-dependencies"]["test"]
    }
    stale = []
    for name, version in pins().items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name in declared:
                stale.append(f"{name} not installed")
            continue
        if Version(have) != Version(version):
            stale.append(f"{name} {have} (lock {version})")
    assert not stale, "; ".join(stale) + " — run scripts/setup.sh (or --relock after testing)"
