"""Every third-party module that oddsuite or its tests import is declared in pyproject.toml.

A clean clone installs only what ``pyproject.toml`` declares (``pip install -e '.[dev]'``).
A module that happens to be in a developer's venv but is not declared passes locally and
fails in CI (this happened: ``allpairspy``, the covering sampler's library). This test reads
every ``import`` in ``src/`` and ``tests/`` (also the lazy ones inside functions) with
``ast`` and maps each to the distribution that provides it in this environment.
"""
from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Modules that are imported but installed by something other than pip's resolution of
# pyproject.toml, each with the reason.
NOT_FROM_PYPROJECT = {
    "bpy": "the Cycles worker runs in .venv-cycles (make cycles-venv), not in .venv",
    "mathutils": "part of bpy, in .venv-cycles",
    "triton": "imported only to load its LLVM before the first GL context, when torch brought it",
    "pybullet_data": "ships inside the pybullet distribution",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = lambda req: _norm(re.split(r"[\s<>=!~;\[]", req.strip(), maxsplit=1)[0])  # noqa: E731
    runtime = {name(r) for r in project["dependencies"]}
    extras = {name(r) for reqs in project.get("optional-dependencies", {}).values() for r in reqs}
    return runtime, extras


def _imports(folder: Path) -> dict[str, str]:
    """Top-level module name -> first file that imports it (absolute imports only)."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for n in names:
                found.setdefault(n.split(".")[0], str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path))
    return found


def _local_modules(folder: Path) -> set[str]:
    return {p.stem for p in folder.rglob("*.py")} | {p.name for p in folder.rglob("*") if p.is_dir()}


def _undeclared(folder: Path, allowed: set[str]) -> list[str]:
    providers = md.packages_distributions()
    local = _local_modules(folder) | {"oddsuite"}
    problems = []
    for module, where in sorted(_imports(folder).items()):
        if module in sys.stdlib_module_names or module in local or module in NOT_FROM_PYPROJECT:
            continue
        dists = {_norm(d) for d in providers.get(module, [])}
        if not dists:
            problems.append(f"{where}: imports {module!r}, which no installed distribution provides")
        elif not dists & allowed:
            problems.append(f"{where}: imports {module!r} (from {sorted(dists)}), not declared in pyproject.toml")
    return problems


def test_source_imports_are_declared_dependencies():
    runtime, extras = _declared()
    # an optional extra (ray) may be imported lazily by src; everything else must be a dependency
    problems = _undeclared(ROOT / "src" / "oddsuite", runtime | extras)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("folder", ["tests", "benchmarks", "models"])
def test_test_and_tool_imports_are_declared_dependencies_or_extras(folder):
    runtime, extras = _declared()
    assert (ROOT / folder).is_dir(), folder
    problems = _undeclared(ROOT / folder, runtime | extras)
    assert not problems, "\n".join(problems)


def test_the_check_sees_an_undeclared_import(tmp_path):
    """The check itself would fail on a module that is installed but not declared."""
    (tmp_path / "m.py").write_text("def f():\n    import yaml\n    import allpairspy\n")
    providers = md.packages_distributions()
    if "allpairspy" not in providers:
        pytest.skip("allpairspy is not installed here")
    runtime, extras = _declared()
    problems = _undeclared(tmp_path, (runtime | extras) - {"allpairspy"})
    assert len(problems) == 1, problems
    assert "m.py: imports 'allpairspy'" in problems[0] and "not declared" in problems[0]
