"""A user's own detector, made by a factory named by its import path.

``load_detector("my_pkg.detectors:make_detector", weights="w.pt", model_args={"size": 320})``
(CLI: ``--model my_pkg.detectors:make_detector --weights w.pt --model-arg size=320``) imports
``my_pkg.detectors``, calls ``make_detector(weights="/abs/w.pt", size=320)`` and checks that
the result is a :class:`~oddsuite.models.base.Detector`. Naming the factory is the user's
decision to run its code; no pickle is involved.

Integrity: ``--weights`` is hashed (and checked against ``sha256``) *before* the factory
runs, and recorded in ``info.files`` with the factory module's own source file. A detector
that reads other files declares them in its ``info.files`` (path -> SHA-256;
:func:`hash_files` computes that mapping), and those are recorded too. The loader's recipe
re-creates the detector in each pool or Ray worker by importing the module again: it must
be importable there (pool workers inherit ``sys.path``; on Ray, install the package on every
node or put it on ``PYTHONPATH``).
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from oddsuite.errors import ModelError
from oddsuite.fileio import sha256_file
from oddsuite.models.base import Detector, ModelInfo, model_info

#: ``package.module:function``
FACTORY_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def is_factory_ref(text: str) -> bool:
    """Whether ``text`` reads as ``package.module:function``."""
    return bool(FACTORY_RE.match(text))


def hash_files(paths: Iterable[str | Path]) -> dict[str, str]:
    """``{path: SHA-256}`` of each file, for a detector's ``info.files``."""
    return {str(p): sha256_file(p) for p in paths}


def _import(module_name: str, ref: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise ModelError(f"{ref}: module {e.name!r} is not importable from this Python (sys.path: "
                             f"{sys.path[:4]}...); install the package or add its folder to PYTHONPATH") from e
        raise ModelError(f"{ref}: importing {module_name} failed: {e}") from e
    except Exception as e:
        raise ModelError(f"{ref}: importing {module_name} failed: {type(e).__name__}: {e}") from e


def _module_file(module) -> tuple[str, str] | None:
    """(path relative to its sys.path root, SHA-256) of the module's source file, when it has one."""
    f = getattr(module, "__file__", None)
    if not f or not Path(f).is_file():
        return None
    depth = module.__name__.count(".") + (1 if Path(f).name == "__init__.py" else 0)
    root = Path(f).resolve().parents[depth]
    return Path(f).resolve().relative_to(root).as_posix(), sha256_file(f)


def load_factory(ref: str, weights: Path | None, pin: str | None, model_args: Mapping[str, Any],
                 **options) -> tuple[Detector, dict[str, str]]:
    """Call the factory ``ref`` (``module:function``) with ``weights`` (as an absolute path string,
    after its pin is checked) and ``model_args`` plus ``options`` as keyword arguments.
    Returns the detector and its files (name -> SHA-256)."""
    from oddsuite.models.common import check_sha256

    module_name, _, func_name = ref.partition(":")
    files: dict[str, str] = {}
    kwargs = {**dict(model_args), **options}
    sha = None
    if weights is not None:
        weights = Path(weights).expanduser()
        if not weights.is_file():
            raise ModelError(f"{weights}: no such weights file (for {ref})")
        sha = check_sha256(weights, pin)
        files[weights.name] = sha
        kwargs["weights"] = str(weights.resolve())
    elif pin is not None:
        raise ModelError(f"{ref}: sha256 pins the weights file; give the weights (--weights FILE) it pins")
    module = _import(module_name, ref)
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise ModelError(f"{ref}: {module_name} has no callable {func_name!r}")
    try:
        det = factory(**kwargs)
    except TypeError as e:
        raise ModelError(f"{ref}: calling it with {sorted(kwargs)} failed: {e}") from e
    if not isinstance(det, Detector):
        missing = [a for a in ("name", "classes", "predict") if not hasattr(det, a)]
        raise ModelError(f"{ref}: returned {type(det).__name__}, not a Detector (missing {missing}; see the "
                         "Detector protocol in oddsuite.models.base)")
    src = _module_file(module)
    if src is not None:
        files[src[0]] = src[1]
    own = model_info(det)
    info = ModelInfo(sha256=sha if sha is not None else own.sha256, files={**own.files, **files},
                     source=own.source or (str(weights.resolve()) if weights is not None else ref),
                     format=own.format, precision=own.precision, input_hw=own.input_hw, class_map=own.class_map)
    try:
        det.info = info
    except AttributeError as e:
        raise ModelError(f"{ref}: the detector must allow setting its 'info' attribute (ModelInfo)") from e
    return det, dict(info.files)
