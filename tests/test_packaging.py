"""What kdtune imports is what pyproject.toml declares, and the version is one string."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

import kdtune

tomllib = pytest.importorskip("tomllib")  # the standard library from Python 3.11

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imports() -> set[str]:
    mods: set[str] = set()
    for path in (ROOT / "kdtune").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods.add(node.module.split(".")[0])
    return {m for m in mods if m not in sys.stdlib_module_names and m != "kdtune"}


def test_declared_dependencies_match_the_imports():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    optional = {_name(r) for rs in project["optional-dependencies"].values() for r in rs}
    dists = metadata.packages_distributions()
    imported: dict[str, str] = {}
    for module in _imports():
        names = {d.lower().replace("_", "-") for d in dists.get(module, [])}
        assert names, f"kdtune imports {module!r}, which no installed distribution provides"
        declared = names & (core | optional)
        assert declared, f"kdtune imports {module!r} ({sorted(names)}) but pyproject.toml does not declare it"
        imported[module] = declared.pop()
    unused = core - set(imported.values())
    assert not unused, f"declared but never imported by kdtune: {sorted(unused)}"


def test_one_version_string():
    assert metadata.version("kdtune") == kdtune.__version__
    assert 'dynamic = ["version"]' in (ROOT / "pyproject.toml").read_text()
    assert (ROOT / "LICENSE").is_file()
