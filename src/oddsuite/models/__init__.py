"""Detectors: the Detector protocol (``base``), adapters, safe loading, class mapping, and the
YOLO data-set export / training used to make a detector for an ODD.

Everything heavy (torch, ultralytics, onnxruntime) is imported lazily, on first use.
"""
from __future__ import annotations

from oddsuite.models._ultra import set_offline_env

set_offline_env()  # before anything in the process imports ultralytics

from oddsuite.models.base import MAP_CONF_FLOOR, Detections, Detector  # noqa: E402
from oddsuite.models.classmap import map_classes, parse_class_map  # noqa: E402
from oddsuite.models.loader import load_detector  # noqa: E402

__all__ = [
    "MAP_CONF_FLOOR",
    "Detections",
    "Detector",
    "load_detector",
    "map_classes",
    "parse_class_map",
    "export_onnx",
    "export_yolo",
    "train_detector",
    "UltralyticsDetector",
    "OnnxDetector",
    "random_model",
    "save_model_dir",
]


def __getattr__(name: str):
    if name == "export_onnx":
        from oddsuite.models.onnx_rt import export_onnx
        return export_onnx
    if name == "OnnxDetector":
        from oddsuite.models.onnx_rt import OnnxDetector
        return OnnxDetector
    if name == "export_yolo":
        from oddsuite.models.yolo_dataset import export_yolo
        return export_yolo
    if name == "train_detector":
        from oddsuite.models.train import train_detector
        return train_detector
    if name in ("UltralyticsDetector", "random_model", "save_model_dir"):
        from oddsuite.models import yolo
        return getattr(yolo, name)
    raise AttributeError(f"module 'oddsuite.models' has no attribute {name!r}")
