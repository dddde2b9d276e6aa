"""Pieces shared by the YOLO-style adapters: file hashing, letterbox pre-processing, and
decoding + NMS of the raw head output back to boxes in the input image's pixels.

Both the torch (ultralytics) adapter and the ONNX Runtime adapter use exactly these
functions, so the only difference between them is the runtime that evaluates the network.
"""
from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from oddsuite.fileio import sha256_file
from oddsuite.errors import ModelError
from oddsuite.models.base import Detections

#: grey used by ultralytics to pad letterboxed images
PAD_VALUE = 114
#: NMS IoU threshold (ultralytics' default for validation)
NMS_IOU = 0.7
#: most detections kept per image (COCO evaluates at most 100; ultralytics keeps 300)
MAX_DET = 300
#: most candidate boxes handed to NMS per image
MAX_NMS = 30000

def _normalise_pin(expected: str) -> str:
    exp = expected.strip().lower()
    return exp[len("sha256:"):] if exp.startswith("sha256:") else exp


def check_sha256(path: Path, expected: str | None, what: str = "pin") -> str:
    """Hash ``path``; if ``expected`` is given and differs, raise ModelError. Returns the actual hash."""
    actual = sha256_file(path)
    if expected is not None:
        exp = _normalise_pin(expected)
        if exp != actual:
            raise ModelError(
                f"{path}: SHA-256 mismatch ({what}): expected {exp}, actual {actual}; "
                "the file was not loaded"
            )
    return actual


def files_pin(files: Mapping[str, str]) -> str:
    """The pin of a model stored in ``files`` (path relative to the model's folder, POSIX
    separators -> SHA-256 hex of the file).

    One file: its own SHA-256. Several files (an ONNX model with external data): the SHA-256
    of the canonical listing, one line ``"<sha256 hex>  <path>\n"`` per file (two spaces, the
    ``sha256sum`` format), sorted by path in byte order, UTF-8. For ordinary file names,
    ``LC_ALL=C sha256sum model.onnx model.onnx.data | sort -k2 | sha256sum`` in the model's
    folder gives the same value.
    """
    if not files:
        raise ValueError("files_pin: no files")
    if len(files) == 1:
        return next(iter(files.values()))
    listing = "".join(f"{files[name]}  {name}\n" for name in sorted(files, key=lambda n: n.encode("utf-8")))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def check_files_pin(files: Mapping[str, Path], expected: str | None, source: Path) -> tuple[str, dict[str, str]]:
    """Hash every file of a model (name -> path), check the pin ``expected`` (see :func:`files_pin`)
    and return ``(pin, {name: sha256})``; a mismatch raises ModelError naming each file's hash."""
    hashes = {name: sha256_file(p) for name, p in sorted(files.items())}
    actual = files_pin(hashes)
    if expected is not None and _normalise_pin(expected) != actual:
        listed = ", ".join(f"{n} {h}" for n, h in hashes.items())
        raise ModelError(f"{source}: SHA-256 mismatch (pin over the model's {len(hashes)} files: {listed}): "
                         f"expected {_normalise_pin(expected)}, actual {actual}; the model was not loaded")
    return actual, hashes


def normalize_imgsz(imgsz: int | Sequence[int]) -> tuple[int, int]:
    """int or (h, w) -> (h, w)."""
    if isinstance(imgsz, (int, np.integer)):
        return int(imgsz), int(imgsz)
    vals = [int(v) for v in imgsz]
    if len(vals) == 1:
        return vals[0], vals[0]
    if len(vals) != 2:
        raise ValueError(f"imgsz must be an int or (h, w), got {imgsz!r}")
    return vals[0], vals[1]


def parse_names(value) -> dict[int, str]:
    """Class names from a dict, a list, or their str()/JSON text (ultralytics writes ``str(dict)``)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError) as e:
                raise ValueError(f"cannot parse class names {text[:80]!r}") from e
    if isinstance(value, (list, tuple)):
        return {i: str(n) for i, n in enumerate(value)}
    if isinstance(value, dict):
        return {int(k): str(v) for k, v in sorted(value.items(), key=lambda kv: int(kv[0]))}
    raise ValueError(f"class names must be a dict or list, got {type(value).__name__}")


@dataclass(frozen=True)
class Letterbox:
    """How one image was fitted into the network input: scale, then pad."""

    gain: float
    pad_x: float  # left pad (pixels of the network input)
    pad_y: float  # top pad
    width: int  # original image size
    height: int


def letterbox(img: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad to ``size_hw`` (ultralytics' LetterBox, centred, no auto-stride)."""
    import cv2

    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB, got {img.dtype}")
    h, w = img.shape[:2]
    th, tw = size_hw
    r = min(th / h, tw / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    if (nw, nh) != (w, h):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dw, dh = (tw - nw) / 2, (th - nh) / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    if top or bottom or left or right:
        img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT,
                                 value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    return img, Letterbox(gain=r, pad_x=left, pad_y=top, width=w, height=h)


def preprocess(images: Sequence[np.ndarray], size_hw: tuple[int, int]) -> tuple[np.ndarray, list[Letterbox]]:
    """Letterbox a batch: returns float32 NCHW in [0, 1] (RGB) and each image's Letterbox."""
    batch = np.empty((len(images), 3, size_hw[0], size_hw[1]), np.float32)
    boxes = []
    for i, im in enumerate(images):
        im = np.asarray(im)
        lb_img, lb = letterbox(im, size_hw)
        batch[i] = lb_img.transpose(2, 0, 1)
        boxes.append(lb)
    batch *= 1.0 / 255.0
    return batch, boxes


def _unletterbox(xyxy: np.ndarray, lb: Letterbox) -> np.ndarray:
    out = xyxy.astype(np.float32, copy=True)
    out[:, [0, 2]] = (out[:, [0, 2]] - lb.pad_x) / lb.gain
    out[:, [1, 3]] = (out[:, [1, 3]] - lb.pad_y) / lb.gain
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, lb.width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, lb.height)
    return out


def postprocess(raw: np.ndarray, nc: int, lbs: Sequence[Letterbox], conf: float,
                iou: float = NMS_IOU, max_det: int = MAX_DET, agnostic: bool = False) -> list[Detections]:
    """Raw head output -> Detections in original image pixels.

    Accepts the two YOLO output layouts: ``(B, 4 + nc, N)`` (xywh + class scores, YOLOv8/11
    style; we run class-aware NMS) and ``(B, K, 6)`` (xyxy, score, class; end-to-end heads that
    already did their own selection).
    """
    import torch
    from torchvision.ops import batched_nms

    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 3 or raw.shape[0] != len(lbs):
        raise ModelError(f"unexpected detector output shape {raw.shape} for a batch of {len(lbs)}")
    out: list[Detections] = []
    if raw.shape[1] == 4 + nc:
        for b, lb in enumerate(lbs):
            p = raw[b].T  # (N, 4+nc)
            scores_all = p[:, 4:]
            cls = scores_all.argmax(1)
            score = scores_all[np.arange(len(p)), cls]
            keep = score >= conf
            if not keep.any():
                out.append(Detections.empty())
                continue
            xywh, score, cls = p[keep, :4], score[keep], cls[keep]
            if len(score) > MAX_NMS:
                top = np.argpartition(-score, MAX_NMS)[:MAX_NMS]
                xywh, score, cls = xywh[top], score[top], cls[top]
            xyxy = np.empty_like(xywh)
            xyxy[:, :2] = xywh[:, :2] - xywh[:, 2:] / 2
            xyxy[:, 2:] = xywh[:, :2] + xywh[:, 2:] / 2
            tb, ts = torch.from_numpy(xyxy), torch.from_numpy(score)
            tc = torch.zeros(len(cls), dtype=torch.int64) if agnostic else torch.from_numpy(cls.astype(np.int64))
            k = batched_nms(tb, ts, tc, iou)[:max_det].numpy()
            out.append(_in_image(_unletterbox(xyxy[k], lb), score[k], cls[k]))
    elif raw.shape[2] == 6:
        for b, lb in enumerate(lbs):
            p = raw[b]
            p = p[p[:, 4] >= conf][:max_det]
            out.append(_in_image(_unletterbox(p[:, :4], lb), p[:, 4], p[:, 5].round().astype(np.int64)))
    else:
        raise ModelError(f"unexpected detector output shape {raw.shape}: expected (B, {4 + nc}, N) or (B, K, 6)")
    return out


def _in_image(xyxy: np.ndarray, score: np.ndarray, cls: np.ndarray) -> Detections:
    """Detections whose box keeps an area after clipping to the image. A box wholly outside
    the image clips to zero area: it can match nothing (IoU 0, even with itself), so it is no
    detection at all."""
    keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    return Detections(xyxy[keep], score[keep], cls[keep])


def predict_batched(det, images: Sequence[np.ndarray], conf: float) -> list[Detections]:
    """The adapters' predict: letterbox in batches of ``det.batch_size``, run ``det.raw``,
    decode and NMS in original image pixels."""
    out: list[Detections] = []
    for part in chunks(list(images), det.batch_size):
        batch, lbs = preprocess(part, det.input_hw)
        out.extend(postprocess(det.raw(batch), det.nc, lbs, conf, det.iou, det.max_det))
    return out


def chunks(seq: Sequence, n: int):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]
