"""Convert a pickled ultralytics checkpoint (``.pt``) into the safe form: model.yaml (the
architecture) + model.safetensors (the weights) + model.json (the card), the folder
``load_detector`` reads without unpickling anything.

Unpickling the checkpoint runs code from the file, so conversion needs ``trust_pickle=True``
(CLI: ``--trust-pickle``) and is best done once, with the file's ``sha256`` pinned; the
folder it writes is what you ship and pin from then on. The card records where the weights
came from (``converted_from``: file name and SHA-256). The converted model is loaded back and
must give the same detections as the checkpoint on a seeded probe image, or nothing is kept.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from oddsuite.errors import ModelError
from oddsuite.models.loader import PICKLE_SUFFIXES, load_detector
from oddsuite.models.yolo import CARD_NAME, UltralyticsDetector, save_model_dir

log = logging.getLogger(__name__)

#: what a conversion writes into its folder
WRITTEN = ("model.yaml", "model.safetensors", CARD_NAME)


def _probe(det, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(det.imgsz, det.imgsz, 3), dtype=np.uint8)
    d = det.predict([img])[0]
    return [d.boxes.tolist(), d.scores.tolist(), d.class_ids.tolist()]


def _check_out(out: Path, sha: str) -> None:
    if not out.exists() or not any(out.iterdir()):
        return
    card = out / CARD_NAME
    prev = None
    if card.is_file():
        try:
            prev = (json.loads(card.read_text()).get("converted_from") or {}).get("sha256")
        except (OSError, json.JSONDecodeError, AttributeError):
            prev = None
    if prev != sha:
        raise ModelError(f"{out}: exists and is not a conversion of this checkpoint; use a new or empty folder")


def convert_checkpoint(path: str | Path, out_dir: str | Path, *, sha256: str | None = None,
                       trust_pickle: bool = False, name: str | None = None) -> Path:
    """Write ``out_dir``/model.yaml + model.safetensors + model.json from the ultralytics
    checkpoint ``path`` (``.pt`` / ``.pth``; pinned by ``sha256``; needs ``trust_pickle``).
    Returns ``out_dir``. ModelError when the file is not a pickled ultralytics detection
    checkpoint, the pin fails, ``out_dir`` holds something else, or the converted model does
    not reproduce the checkpoint's detections."""
    src = Path(path).expanduser()
    if src.suffix.lower() not in PICKLE_SUFFIXES:
        raise ModelError(f"{src}: convert reads a pickled ultralytics checkpoint ({', '.join(PICKLE_SUFFIXES)}); "
                         "safetensors and ONNX models load as they are")
    det = load_detector(src, sha256=sha256, trust_pickle=trust_pickle)
    if not isinstance(det, UltralyticsDetector):
        raise ModelError(f"{src}: not an ultralytics detection checkpoint")
    sha = det.info.sha256
    out = Path(out_dir)
    _check_out(out, sha)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        staged = save_model_dir(det.torch_model, Path(tmp) / "m", det.classes, det.imgsz, name=name or det.name,
                                extra={"converted_from": {"file": src.name, "sha256": sha}})
        back = load_detector(staged)
        if _probe(back) != _probe(det):
            raise ModelError(f"{src}: the converted model does not reproduce the checkpoint's detections; "
                             "nothing was written")
        out.mkdir(parents=True, exist_ok=True)
        for f in WRITTEN:
            shutil.copyfile(staged / f, out / f".{f}.tmp")
            (out / f".{f}.tmp").replace(out / f)
    log.info("%s -> %s (sha256 of the weights %s)", src, out, back.info.sha256)
    return out
