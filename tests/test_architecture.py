"""The shape of the house, checked: one import name, every package installed, no import circles
(function-level imports included, so none can hide one), small modules, and no family named
outside its folder."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ("market", "mechanisms", "strategies", "agents")


def _modules() -> dict[str, Path]:
    """genmarket module name -> file, for every .py file of the package."""
    out = {"genmarket": ROOT / "__init__.py"}
    for top in SOURCE:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(("genmarket", *parts))] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported genmarket module, line) for every import in the file, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
            out += [(f"{node.module}.{a.name}", node.lineno) for a in node.names
                    if f"{node.module}.{a.name}" in MODULES]
    return out


def test_every_package_is_installed_under_genmarket():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    assert packages == listed, f"pyproject.toml packages differ: {sorted(packages ^ listed)}"


def test_nothing_imports_the_folders_as_top_level_modules():
    bad = [f"{p.relative_to(ROOT)}:{line} imports {name}" for p in MODULES.values()
           for name, line in _imports(p) if name.split(".")[0] in SOURCE]
    assert not bad, bad


def test_no_import_circles_even_through_function_level_imports():
    graph = nx.DiGraph()
    for name, path in MODULES.items():
        for target, _ in _imports(path):
            if target in MODULES and target != name:
                graph.add_edge(name, target)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, [" -> ".join(c) for c in cycles[:5]]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_over_400_lines(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= 400, f"{MODULES[name].relative_to(ROOT)} has {lines} lines"


def test_no_family_is_named_outside_mechanisms():
    families = re.compile(r"mosaic|diffusion|token_auction", re.IGNORECASE)
    named = [str(p.relative_to(ROOT)) for top in ("market", "agents", "strategies")
             for p in (ROOT / top).rglob("*.py") if families.search(p.read_text())]
    assert not named, named
