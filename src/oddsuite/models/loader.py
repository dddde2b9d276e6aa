"""``load_detector``: one entry point for every model file oddsuite accepts.

=====================================  =====================================================
path                                   loaded as
=====================================  =====================================================
directory with ``model.safetensors``   ultralytics model: yaml + safetensors (+ model.json)
``X.safetensors``                      ultralytics model, yaml beside it (``X.yaml``,
                                       ``model.yaml``, the card's ``arch``, or the only yaml)
``X.onnx`` (or a directory with one)   ONNX Runtime, fp32 or int8
``X.pt`` / ``X.pth``                   pickled ultralytics checkpoint: only with
                                       ``trust_pickle=True`` (unpickling runs code)
=====================================  =====================================================

Integrity: ``sha256`` pins the file that holds the weights (the ``.safetensors``, ``.onnx``
or ``.pt``); a card's own ``sha256`` / ``files`` hashes are checked as well. Every check
happens before the file is parsed, so a file that fails one is never loaded.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Mapping

from oddsuite.errors import ModelError
from oddsuite.models.base import Detector
from oddsuite.models.classmap import check_class_map, parse_class_map
from oddsuite.models.common import check_sha256, parse_names

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".pt", ".pth")
PICKLE_WARNING = (
    "%s: loading a pickled model (trust_pickle=True). Unpickling executes arbitrary code "
    "embedded in the file (AI supply-chain attack); load only files you made or pinned with sha256. "
    "Prefer the safetensors (yaml + model.safetensors) or ONNX form."
)


def _read_card(path: Path) -> dict:
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: cannot read the model card: {e}") from e
    if not isinstance(card, dict):
        raise ModelError(f"{path}: the model card must be a JSON object")
    return card


def _card_classes(card: dict, path: Path) -> dict[int, str] | None:
    if card.get("classes") is None:
        return None
    try:
        return parse_names(card["classes"])
    except ValueError as e:
        raise ModelError(f"{path}: field 'classes': {e}") from e


def _card_imgsz(card: dict, path: Path) -> int | None:
    v = card.get("imgsz")
    if v is None:
        return None
    if isinstance(v, list) and len(v) == 2 and v[0] == v[1]:
        v = v[0]
    if not isinstance(v, int) or isinstance(v, bool) or v < 32:
        raise ModelError(f"{path}: field 'imgsz' must be an integer >= 32, got {v!r}")
    return v


def _inside(base: Path, name: str, card_path: Path, field: str) -> Path:
    p = (base / name)
    if Path(name).is_absolute() or p.resolve().parent != base.resolve():
        raise ModelError(f"{card_path}: field '{field}' must name a file in {base}, got {name!r}")
    return p


def _sidecar_card(f: Path) -> tuple[dict, Path | None]:
    for c in (f.with_suffix(".json"), f.parent / "model.json"):
        if c.is_file() and c != f:
            card = _read_card(c)
            w = card.get("weights")
            # model.json describes the file named in it (or, without a name, any file in the folder)
            if c.name == "model.json" and w is not None and w != f.name:
                continue
            return card, c
    return {}, None


def _resolve_dir(d: Path) -> tuple[Path, dict, Path | None]:
    card_path = d / "model.json"
    card = _read_card(card_path) if card_path.is_file() else {}
    if card.get("weights"):
        w = _inside(d, str(card["weights"]), card_path, "weights")
        if not w.is_file():
            raise ModelError(f"{card_path}: field 'weights' names {w.name}, which is not in {d}")
        return w, card, (card_path if card else None)
    for cand in [d / "model.safetensors", *sorted(d.glob("*.safetensors")), d / "model.onnx", *sorted(d.glob("*.onnx"))]:
        if cand.is_file():
            return cand, card, (card_path if card else None)
    pickles = sorted(p.name for s in PICKLE_SUFFIXES for p in d.glob(f"*{s}"))
    hint = (f"; it has pickled checkpoints {pickles}: pass one by its file path with trust_pickle=True "
            "(--trust-pickle) if you trust it") if pickles else ""
    raise ModelError(f"{d}: no model.safetensors or .onnx file in this directory{hint}")


def _find_arch(w: Path, card: dict, card_path: Path | None) -> Path:
    if card.get("arch"):
        a = _inside(w.parent, str(card["arch"]), card_path or w, "arch")
        if not a.is_file():
            raise ModelError(f"{card_path}: field 'arch' names {a.name}, which is not in {w.parent}")
        return a
    for cand in (w.with_suffix(".yaml"), w.with_suffix(".yml"), w.parent / "model.yaml"):
        if cand.is_file():
            return cand
    yamls = sorted(w.parent.glob("*.yaml")) + sorted(w.parent.glob("*.yml"))
    if len(yamls) == 1:
        return yamls[0]
    raise ModelError(f"{w}: needs its architecture yaml beside it ({w.with_suffix('.yaml').name} or model.yaml)"
                     + (f"; found several: {[y.name for y in yamls]}" if yamls else ""))


def _check_card_hashes(card: dict, card_path: Path | None, files: Mapping[str, Path], actual: Mapping[str, str]) -> None:
    """The card's own claims: top-level sha256 (of the weights) and files{name: sha256}."""
    claims: dict[str, str] = {}
    if isinstance(card.get("files"), dict):
        claims.update({str(k): str(v) for k, v in card["files"].items()})
    if card.get("sha256"):
        w = files.get("weights")
        if w is not None:
            claims.setdefault(w.name, str(card["sha256"]))
            if claims[w.name] != str(card["sha256"]):
                raise ModelError(f"{card_path}: fields 'sha256' and 'files.{w.name}' disagree")
    by_name = {p.name: p for p in files.values()}
    for name, exp in claims.items():
        p = by_name.get(name)
        if p is None:
            continue
        got = actual.get(name) or check_sha256(p, None)
        if got != exp.lower().removeprefix("sha256:"):
            raise ModelError(f"{p}: SHA-256 mismatch (model card {card_path}): expected {exp}, actual {got}; "
                             "the file was not loaded")


def _load_pickle(path: Path, card: dict, card_path: Path | None, sha: str, **kw):
    import torch

    from oddsuite.models._ultra import ultralytics_offline
    from oddsuite.models.yolo import UltralyticsDetector

    ultralytics_offline()  # the pickle references ultralytics classes
    log.warning(PICKLE_WARNING, path)
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    except ModuleNotFoundError as e:
        raise ModelError(f"{path}: the pickle needs module {e.name!r}, which is not installed "
                         "(oddsuite never installs packages on load)") from e
    except Exception as e:
        raise ModelError(f"{path}: cannot unpickle the checkpoint: {type(e).__name__}: {e}") from e
    model = ckpt
    if isinstance(ckpt, dict):
        model = ckpt.get("ema") or ckpt.get("model")
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "model"):
        raise ModelError(f"{path}: not an ultralytics detection checkpoint (no 'model' / 'ema' DetectionModel)")
    model = model.float().eval()
    classes = _card_classes(card, card_path) if card_path else None
    if classes is None:
        names = getattr(model, "names", None)
        classes = parse_names(names) if names else {i: f"class{i}" for i in range(int(model.model[-1].nc))}
    imgsz = _card_imgsz(card, card_path) if card_path else None
    if imgsz is None and isinstance(ckpt, dict):
        ta = ckpt.get("train_args") or {}
        v = ta.get("imgsz") if isinstance(ta, dict) else None
        imgsz = int(v) if isinstance(v, int) else None
    return UltralyticsDetector(model, classes, imgsz or 640, name=card.get("name") or path.stem,
                               sha256=sha, source=path, **kw)


def load_detector(path: str | Path, sha256: str | None = None, trust_pickle: bool = False,
                  class_map: Mapping[str, str] | str | None = None, **options) -> Detector:
    """Load a detector from a local model file or directory (see the module doc for what is accepted).

    sha256: pin of the weights file; a mismatch raises ModelError naming file, expected and
    actual hash, and nothing is loaded. trust_pickle: allow pickled ``.pt`` checkpoints
    (arbitrary code execution on load; a warning is logged). class_map: explicit
    ``detector class -> suite category`` names (dict or ``"a=b,c=d"``); checked against the
    detector's classes and kept as ``detector.class_map`` for :func:`map_classes`.
    options: passed to the adapter (batch_size, iou, max_det; threads/providers for ONNX).

    The returned detector has ``name``, ``classes``, ``predict``, plus ``sha256`` (of the
    weights file), ``source``, ``imgsz`` and ``class_map``; ultralytics ones have ``torch_model``.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(f"{p}: no such model file or directory")
    if p.is_dir():
        w, card, card_path = _resolve_dir(p)
    else:
        w = p
        card, card_path = _sidecar_card(p)
    suffix = w.suffix.lower()

    if suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise ModelError(
                f"{w}: is a pickled checkpoint; unpickling runs arbitrary code from the file, so it is refused by "
                "default. Convert it to yaml + safetensors or ONNX, or, for a file you trust, pass "
                "trust_pickle=True (CLI: --trust-pickle), ideally with its sha256 pinned.")
        sha = check_sha256(w, sha256)
        _check_card_hashes(card, card_path, {"weights": w}, {w.name: sha})
        det = _load_pickle(w, card, card_path, sha, **options)
    elif suffix == ".safetensors":
        from oddsuite.models.yolo import load_ultralytics

        arch = _find_arch(w, card, card_path)
        sha = check_sha256(w, sha256)
        _check_card_hashes(card, card_path, {"weights": w, "arch": arch}, {w.name: sha})
        det = load_ultralytics(w, arch, classes=_card_classes(card, card_path) if card_path else None,
                               imgsz=_card_imgsz(card, card_path) if card_path else None,
                               name=str(card.get("name") or (w.parent.name if w.name == "model.safetensors" else w.stem)),
                               sha256=sha, **options)
    elif suffix == ".onnx":
        from oddsuite.models.onnx_rt import OnnxDetector

        sha = check_sha256(w, sha256)
        _check_card_hashes(card, card_path, {"weights": w}, {w.name: sha})
        det = OnnxDetector(w, classes=_card_classes(card, card_path) if card_path else None,
                           imgsz=_card_imgsz(card, card_path) if card_path else None,
                           name=str(card.get("name") or w.stem), sha256=sha, **options)
    else:
        raise ModelError(f"{w}: unsupported model file type {suffix or '(none)'!r}; expected a directory, "
                         ".safetensors (with its yaml), .onnx, or a trusted .pt")

    if class_map:
        try:
            cm = parse_class_map(class_map)
        except ValueError as e:
            raise ModelError(f"class map: {e}") from e
        check_class_map(cm, det.classes, str(w))
        det.class_map = cm
    return det
