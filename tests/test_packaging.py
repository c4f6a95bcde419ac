"""``pip install .`` (not editable) must carry the whole tree: every package with an
``__init__.py``, the LAMMPS templates and the data files the code reads at run time."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOL = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _source_dir(package: str) -> Path:
    for name, folder in TOOL.get("package-dir", {}).items():
        if package == name:
            return ROOT / folder
    return ROOT.joinpath(*package.split("."))


def test_every_package_of_the_tree_is_listed():
    on_disk = {
        ".".join(f.parent.relative_to(ROOT).parts) for f in (ROOT / "mdxfer").rglob("__init__.py")
    }
    listed = set(TOOL["packages"])
    assert on_disk <= listed, sorted(on_disk - listed)
    assert listed - on_disk == {"mdxfer.templates"}
    assert (ROOT / "templates" / "__init__.py").is_file()


def test_every_data_file_of_a_package_is_included():
    missing = []
    for package in TOOL["packages"]:
        folder = _source_dir(package)
        patterns = TOOL.get("package-data", {}).get(package, [])
        for f in folder.iterdir():
            if f.is_file() and f.suffix not in (".py", ".pyc") and not f.name.startswith("."):
                if not any(fnmatch.fnmatch(f.name, p) for p in patterns):
                    missing.append(str(f.relative_to(ROOT)))
    assert not missing, missing
    assert "mdxfer.templates" in TOOL["package-data"]
