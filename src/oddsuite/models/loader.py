"""``load_detector``: one entry point for every model file oddsuite accepts.

=====================================  =====================================================
path                                   loaded as
=====================================  =====================================================
directory with ``model.safetensors``   ultralytics model: yaml + safetensors (+ model.json)
``X.safetensors``                      ultralytics model, yaml beside it (``X.yaml``,
                                       ``model.yaml``, the card's ``arch``, or the only yaml)
``X.onnx`` (or a directory with one)   ONNX Runtime, fp32 or int8
``X.pt`` / ``X.pth``                   pickled ultralytics checkpoint: only with
                                       ``trust_pickle=True`` (unpickling runs code);
                                       ``oddsuite convert`` turns it into yaml + safetensors
``torchvision:NAME`` + ``weights``     torchvision detection model NAME built without
                                       download, its state dict read with
                                       ``torch.load(weights_only=True)`` or safetensors
``package.module:function``            a user's factory returning a Detector, called with
                                       ``weights`` (checked first) and ``model_args``
=====================================  =====================================================

Integrity: ``sha256`` pins the model whole. For a ``.safetensors`` or ``.pt`` model it is
the SHA-256 of the weights file. For an ONNX model it covers the ``.onnx`` file AND every
external data file its tensors name (``onnx.save_model(..., save_as_external_data=True)``):
with no external data the pin is the ``.onnx`` file's SHA-256; with external data it is the
SHA-256 of the canonical listing, one line ``"<sha256 hex>  <path>\n"`` per file (path
relative to the model's folder, POSIX separators; the ``sha256sum`` format), sorted by path
in byte order, UTF-8 -- for ordinary names ``LC_ALL=C sha256sum model.onnx model.onnx.data |
sort -k2 | sha256sum`` (:func:`oddsuite.models.common.files_pin`). External data outside the
model's folder is refused. A card's own ``sha256`` / ``files`` hashes are checked as well.
Every check happens before the weights are parsed (an ONNX graph is read without its
external data only to list the files), so a model that fails one is never loaded. The
loaded detector's ``info.files`` lists every file with its SHA-256 (run.json records them).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from oddsuite.errors import ModelError
from oddsuite.fileio import sha256_file
from oddsuite.models.base import Detector, model_info
from oddsuite.models.classmap import check_class_map, parse_class_map
from oddsuite.models.common import check_files_pin, check_sha256, parse_names
from oddsuite.models.factory import is_factory_ref, load_factory
from oddsuite.models.torchvision_det import load_torchvision

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
    hint = (f"; it has pickled checkpoints {pickles}: convert one (`oddsuite convert {d / pickles[0]} --out DIR "
            "--trust-pickle`), or pass it by its file path with trust_pickle=True (--trust-pickle) if you trust it"
            ) if pickles else ""
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


def _check_card_hashes(card: dict, card_path: Path | None, weights: Path, actual: Mapping[str, str],
                       paths: Mapping[str, Path]) -> None:
    """The card's own claims: top-level sha256 (of the weights) and files{name: sha256}.

    actual: SHA-256 already computed, by file name relative to the model's folder; paths:
    the model's other files by the same names (hashed here when the card names them)."""
    claims: dict[str, str] = {}
    if isinstance(card.get("files"), dict):
        claims.update({str(k): str(v) for k, v in card["files"].items()})
    if card.get("sha256"):
        claims.setdefault(weights.name, str(card["sha256"]))
        if claims[weights.name] != str(card["sha256"]):
            raise ModelError(f"{card_path}: fields 'sha256' and 'files.{weights.name}' disagree")
    by_name = {weights.name: weights, **paths}
    for name, exp in claims.items():
        p = by_name.get(name)
        if p is None:
            continue
        got = actual.get(name) or check_sha256(p, None)
        if got != exp.lower().removeprefix("sha256:"):
            raise ModelError(f"{p}: SHA-256 mismatch (model card {card_path}): expected {exp}, actual {got}; "
                             "the file was not loaded")


@dataclass(frozen=True)
class _Found:
    """A model file located on disk, with its card (``{}`` and None when it has none)."""

    weights: Path
    card: dict
    card_path: Path | None

    def classes(self) -> dict[int, str] | None:
        return _card_classes(self.card, self.card_path) if self.card_path else None

    def imgsz(self) -> int | None:
        return _card_imgsz(self.card, self.card_path) if self.card_path else None


def _locate(p: Path) -> _Found:
    if not p.exists():
        raise ModelError(f"{p}: no such model file or directory")
    if p.is_dir():
        return _Found(*_resolve_dir(p))
    return _Found(p, *_sidecar_card(p))


def _load_pickle(found: _Found, pin: str | None, trust_pickle: bool, **kw) -> tuple[Detector, dict[str, str]]:
    import torch

    from oddsuite.models._ultra import ultralytics_offline
    from oddsuite.models.yolo import UltralyticsDetector

    path, card = found.weights, found.card
    if not trust_pickle:
        raise ModelError(
            f"{path}: is a pickled checkpoint; unpickling runs arbitrary code from the file, so it is refused by "
            "default. Convert it to yaml + safetensors once, on a machine where you trust the file: "
            f"`oddsuite convert {path} --out DIR --trust-pickle` (then load DIR), or, for a file you trust, pass "
            "trust_pickle=True (CLI: --trust-pickle), ideally with its sha256 pinned.")
    sha = check_sha256(path, pin)
    _check_card_hashes(card, found.card_path, path, {path.name: sha}, {})
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
    classes = found.classes()
    if classes is None:
        names = getattr(model, "names", None)
        classes = parse_names(names) if names else {i: f"class{i}" for i in range(int(model.model[-1].nc))}
    imgsz = found.imgsz()
    if imgsz is None and isinstance(ckpt, dict):
        ta = ckpt.get("train_args") or {}
        v = ta.get("imgsz") if isinstance(ta, dict) else None
        imgsz = int(v) if isinstance(v, int) else None
    det = UltralyticsDetector(model, classes, imgsz or 640, name=card.get("name") or path.stem,
                              sha256=sha, source=path, **kw)
    return det, {path.name: sha}


def _load_safetensors(found: _Found, pin: str | None, trust_pickle: bool, **kw) -> tuple[Detector, dict[str, str]]:
    from oddsuite.models.yolo import load_ultralytics

    w, card = found.weights, found.card
    arch = _find_arch(w, card, found.card_path)
    sha = check_sha256(w, pin)
    _check_card_hashes(card, found.card_path, w, {w.name: sha}, {arch.name: arch})
    det = load_ultralytics(w, arch, classes=found.classes(), imgsz=found.imgsz(),
                           name=str(card.get("name") or (w.parent.name if w.name == "model.safetensors" else w.stem)),
                           sha256=sha, **kw)
    return det, {w.name: sha, arch.name: sha256_file(arch)}


def _load_onnx(found: _Found, pin: str | None, trust_pickle: bool, **kw) -> tuple[Detector, dict[str, str]]:
    from oddsuite.models.onnx_rt import OnnxDetector, model_files

    w, card = found.weights, found.card
    paths = model_files(w)
    sha, hashes = check_files_pin(paths, pin, w)
    _check_card_hashes(card, found.card_path, w, hashes, paths)
    det = OnnxDetector(w, classes=found.classes(), imgsz=found.imgsz(), name=str(card.get("name") or w.stem),
                       sha256=sha, files=hashes, **kw)
    return det, hashes


#: weights-file suffix -> (format recorded in ModelInfo, loader). A new backend is one adapter
#: module plus one line here; a loader checks every pin before the file is parsed.
LOADERS: dict[str, tuple[str, Callable[..., tuple[Detector, dict[str, str]]]]] = {
    ".safetensors": ("safetensors", _load_safetensors),
    ".onnx": ("onnx", _load_onnx),
    ".pt": ("pickle", _load_pickle),
    ".pth": ("pickle", _load_pickle),
}

#: model references that name no file, ``SCHEME:NAME`` -> (format, loader(name, weights, pin,
#: model_args, **options)); ``package.module:function`` (a user's factory) is the fallback
SCHEMES: dict[str, tuple[str, Callable[..., tuple[Detector, dict[str, str]]]]] = {
    "torchvision": ("torchvision", load_torchvision),
}


def _hashable(v: Any) -> Any:
    """A hashable stand-in of ``v``: lists as tuples, mappings as sorted (key, value) tuples."""
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, Mapping):
        return tuple(sorted((str(k), _hashable(x)) for k, x in v.items()))
    return v


@dataclass(frozen=True)
class DetectorRecipe:
    """How to re-create a detector in another process (pool or Ray workers): a picklable,
    hashable :func:`load_detector` call (``sha256`` pins the same files). Workers cache the
    loaded detector per recipe."""

    path: str
    sha256: str | None = None
    trust_pickle: bool = False
    class_map: Any = None  # a mapping is kept as sorted items, so recipes hash
    options: tuple = ()  # adapter options (batch_size, iou, ...) as sorted items
    weights: str | None = None  # the weights file of a torchvision: or factory model
    #: builder or factory arguments, handed on as given; recipes compare and hash by ``args_key``
    model_args: Mapping[str, Any] = field(default_factory=dict, compare=False)
    args_key: tuple = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.class_map, Mapping):
            object.__setattr__(self, "class_map", tuple(sorted(self.class_map.items())))
        if isinstance(self.options, Mapping):
            object.__setattr__(self, "options", tuple(sorted(self.options.items())))
        object.__setattr__(self, "model_args", dict(self.model_args))
        object.__setattr__(self, "args_key", _hashable(self.model_args))

    def load(self) -> Detector:
        cm = dict(self.class_map) if isinstance(self.class_map, tuple) else self.class_map
        return load_detector(self.path, sha256=self.sha256, trust_pickle=self.trust_pickle, class_map=cm,
                             weights=self.weights, model_args=self.model_args, **dict(self.options))


def _reference(model: str) -> tuple[str, Callable[..., tuple[Detector, dict[str, str]]], str] | None:
    """(format, loader, name) of a model reference that names no file, or None for a path."""
    scheme, sep, rest = model.partition(":")
    if not sep or Path(model).expanduser().exists():
        return None
    if scheme in SCHEMES:
        fmt, loader = SCHEMES[scheme]
        return fmt, loader, rest
    if is_factory_ref(model):
        return "factory", load_factory, model
    return None


def load_detector(path: str | Path, sha256: str | None = None, trust_pickle: bool = False,
                  class_map: Mapping[str, str] | str | None = None, *, weights: str | Path | None = None,
                  model_args: Mapping[str, Any] | None = None, **options) -> Detector:
    """Load a detector from a local model file or directory, a torchvision model by name, or a
    user's factory (see the module doc for what is accepted).

    path: a file or folder; ``"torchvision:NAME"`` (with ``weights``); or
    ``"package.module:function"``, a factory returning a Detector. sha256: the model's pin; a
    mismatch raises ModelError naming the files, expected and actual hash, and nothing is
    loaded. The pin of a safetensors or pickled model, and of a torchvision or factory model's
    ``weights``, is the SHA-256 of its weights file; of an ONNX model, of the ``.onnx`` file
    when it is the only file, and with external data the canonical hash over the ``.onnx`` and
    every external data file (:func:`oddsuite.models.common.files_pin`: SHA-256 of the sorted
    ``"<sha256>  <path>"`` lines, as ``sha256sum`` prints them). trust_pickle: allow pickled
    ``.pt`` checkpoints (arbitrary code execution on load; a warning is logged). class_map:
    explicit ``detector class -> suite category`` names (dict or ``"a=b,c=d"``); checked
    against the detector's classes. weights / model_args: the weights file and the builder's
    (torchvision) or factory's keyword arguments. options: passed to the adapter (batch_size,
    iou, max_det; threads/providers for ONNX; batch_size/threads for torchvision; to a factory
    as keyword arguments).

    The returned detector's ``info`` (ModelInfo) holds the pin, every file's SHA-256, the
    source, format, precision, input size, the class map and a recipe (:class:`DetectorRecipe`)
    that re-creates it in a worker; ultralytics ones are :class:`TorchDetector`.
    """
    model_args = dict(model_args or {})
    ref = _reference(str(path))
    if ref is not None:
        fmt, loader, name = ref
        if loader is not load_factory and weights is None:
            raise ModelError(f"{path}: needs its weights file (weights=..., CLI: --weights FILE); "
                             "nothing is downloaded")
        det, files = loader(name, Path(weights) if weights is not None else None, sha256, model_args, **options)
        where = str(path)
        recipe_path = str(path)
    else:
        if weights is not None or model_args:
            raise ModelError(f"{path}: weights and model arguments apply to torchvision:NAME and "
                             "package.module:function models; a model file or folder carries its own")
        found = _locate(Path(path).expanduser())
        suffix = found.weights.suffix.lower()
        if suffix not in LOADERS:
            raise ModelError(f"{found.weights}: unsupported model file type {suffix or '(none)'!r}; expected a "
                             "directory, .safetensors (with its yaml), .onnx, a trusted .pt, torchvision:NAME "
                             "with --weights, or package.module:function")
        fmt, loader = LOADERS[suffix]
        det, files = loader(found, sha256, trust_pickle, **options)
        where = str(found.weights)
        recipe_path = str(Path(path).expanduser().resolve())
    cm = None
    if class_map:
        try:
            cm = parse_class_map(class_map)
        except ValueError as e:
            raise ModelError(f"class map: {e}") from e
        check_class_map(cm, det.classes, where)
    recipe = DetectorRecipe(recipe_path, model_info(det).sha256, trust_pickle, cm, options,
                            str(Path(weights).expanduser().resolve()) if weights is not None else None, model_args)
    det.info = replace(model_info(det), files=dict(sorted(files.items())), format=model_info(det).format or fmt,
                       class_map=cm or None, recipe=recipe)
    return det
