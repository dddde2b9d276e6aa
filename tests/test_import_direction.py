"""Imports run one way (ARCHITECTURE.md): studies -> evaluate -> suite -> permute -> render ->
scenes -> odd; models, accelerator and quant sit beside evaluate and never import it; metrics,
trace and report follow evaluate in the flow; only cli and commands may import anything.

This walks every module of ``src/oddsuite`` with ``ast`` (lazy imports inside functions
included) and fails on any import of an ``oddsuite`` package that the table below does not
allow for the importing package.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "oddsuite"

#: shared by every layer: the error types, the atomic writer, and the root package (its version)
BASE = {"errors", "fileio", ""}
_GEN = {"odd", "scenes", "render", "permute", "suite", "run"}

#: package -> the oddsuite packages it may import (besides itself and BASE)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "fileio": set(),
    "odd": set(),
    "scenes": {"odd"},
    "render": {"scenes", "odd"},
    "permute": {"render", "scenes", "odd"},
    "run": set(),
    "suite": {"permute", "render", "scenes", "odd", "run"},
    "metrics": set(),
    "models": set(),
    "accelerator": {"models", "suite"},  # calibration images through the suite's one reader
    "quant": {"models", "suite"},
    "training": {"models"} | _GEN,
    "evaluate": {"models", "metrics"} | _GEN,
    "trace": {"evaluate", "metrics", "models"} | _GEN,
    "report": {"trace", "evaluate", "metrics", "models"} | _GEN,
    "studies": {"evaluate", "metrics", "models", "accelerator", "quant", "training", "trace", "report"} | _GEN,
    "results": set(),  # the Python API's result values (oddsuite/__init__.py builds them)
}
#: may import anything
TOP = {"cli", "commands"}
#: The top-level face (``oddsuite/__init__.py``, package ``""``) is the Python API: it may call
#: every package, but only from inside its functions (test below), so that ``import oddsuite``
#: stays light and every layer may import the root package (for ``__version__``) without a cycle.


def _package_of(module: str) -> str:
    """``oddsuite.evaluate.loop`` -> ``evaluate``; ``oddsuite.errors`` -> ``errors``; ``oddsuite`` -> ``""``."""
    parts = module.split(".")
    assert parts[0] == "oddsuite", module
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path, src: Path = SRC) -> str:
    rel = path.relative_to(src.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, src: Path = SRC) -> list[tuple[int, str]]:
    """(line, absolute module) of every oddsuite import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path, src).split(".")
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "oddsuite"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_pkg else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "oddsuite":
                continue
            if mod == "oddsuite":  # from oddsuite import x: x may be a subpackage
                out += [(node.lineno, f"oddsuite.{a.name}" if (src / a.name).exists()
                         or (src / f"{a.name}.py").exists() else "oddsuite") for a in node.names]
            else:
                out.append((node.lineno, mod))
    return out


def back_imports(src: Path = SRC) -> list[str]:
    bad = []
    for path in sorted(src.rglob("*.py")):
        pkg = _package_of(_module_name(path, src))
        if pkg in TOP or pkg == "":
            continue
        allowed = ALLOWED.get(pkg)
        if allowed is None:
            bad.append(f"{path.relative_to(src)}: package {pkg!r} is not in the layer table of this test")
            continue
        for line, mod in _imports(path, src):
            target = _package_of(mod)
            if target != pkg and target not in BASE and target not in allowed:
                bad.append(f"{path.relative_to(src)}:{line}: {pkg} imports {mod}")
    return bad


def test_no_import_runs_back_up_the_chain():
    bad = back_imports()
    assert not bad, "imports against ARCHITECTURE.md's direction:\n" + "\n".join(bad)


def test_models_accelerator_and_quant_never_import_evaluate():
    for pkg in ("models", "accelerator", "quant", "training"):
        assert not ALLOWED[pkg] & {"evaluate", "studies", "trace", "report"}


def test_the_walker_sees_a_back_import(tmp_path):
    """The check itself works: a module of models that imports evaluate (lazily, in a function,
    and relatively) is reported."""
    pkg = tmp_path / "oddsuite"
    (pkg / "models").mkdir(parents=True)
    (pkg / "evaluate").mkdir()
    for d in (pkg, pkg / "models", pkg / "evaluate"):
        (d / "__init__.py").write_text("")
    (pkg / "models" / "bad.py").write_text(
        "from oddsuite.errors import ModelError\n"
        "def f():\n    from oddsuite.evaluate import evaluate_suite\n"
        "from ..evaluate import loop\n")
    bad = sorted(back_imports(pkg))
    assert bad == ["models/bad.py:3: models imports oddsuite.evaluate",
                   "models/bad.py:4: models imports oddsuite.evaluate"]


@pytest.mark.parametrize("face", ["models", "accelerator", "quant", "training", "studies", "evaluate"])
def test_package_faces_reexport_their_own_package_and_say_what_they_may_import(face):
    init = SRC / face / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree) or ""
    assert "import" in doc, f"{face}/__init__.py: the docstring must say what the package may import"
    assert not any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body), \
        f"{face}/__init__.py: no lazy __getattr__ loader"
    for _, mod in _imports(init):
        assert _package_of(mod) == face, f"{face}/__init__.py re-exports {mod}, another package"


def test_the_top_level_face_imports_packages_only_inside_its_functions():
    tree = ast.parse((SRC / "__init__.py").read_text(encoding="utf-8"))
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = [a.name if isinstance(n, ast.Import) else n.module or "" for n in top_level for a in n.names]
    assert {m.split(".")[0] for m in modules} <= {"__future__", "importlib", "sys", "types", "pathlib",
                                                  "typing"}, modules
    lazy = [mod for _, mod in _imports(SRC / "__init__.py")]
    assert {_package_of(m) for m in lazy} >= {"suite", "evaluate", "trace", "report", "models"}
