"""Detectors: the Detector protocol and its optional ModelInfo (``base``), the adapters
(ultralytics in torch: ``yolo``; ONNX Runtime, fp32 or int8: ``onnx_rt``; torchvision detection
models by name: ``torchvision_det``; a user's own factory: ``factory``), safe loading with
pins (``loader``), pickle-to-safetensors conversion (``convert``), class-name mapping
(``classmap``) and the reduced-context inference conditions, each a Detector around another
(``conditions``).

This package may import only ``errors`` and ``fileio``: it sits beside ``evaluate`` and never
imports it (nor ``suite``, ``studies``, ``trace`` or ``report``). Training, quantization and
the simulated accelerator, which build on a Detector, live in ``oddsuite.training``,
``oddsuite.quant`` and ``oddsuite.accelerator``. Everything heavy (torch, ultralytics,
onnxruntime) is imported on first use.
"""
from __future__ import annotations

from oddsuite.models._ultra import set_offline_env

set_offline_env()  # before anything in the process imports ultralytics

from oddsuite.models.base import (MAP_CONF_FLOOR, Detections, Detector, ModelInfo, TorchDetector,  # noqa: E402
                                  is_torch_detector, model_info)
from oddsuite.models.classmap import map_classes, parse_class_map  # noqa: E402
from oddsuite.models.convert import convert_checkpoint  # noqa: E402
from oddsuite.models.factory import hash_files  # noqa: E402
from oddsuite.models.conditions import (ConditionDetector, ConditionRecipe, InferenceCondition,  # noqa: E402
                                        parse_condition, parse_conditions)
from oddsuite.models.loader import DetectorRecipe, load_detector  # noqa: E402
from oddsuite.models.onnx_rt import OnnxDetector, export_onnx  # noqa: E402
from oddsuite.models.torchvision_det import TorchvisionDetector  # noqa: E402
from oddsuite.models.yolo import UltralyticsDetector, random_model, save_model_dir  # noqa: E402

__all__ = [
    "MAP_CONF_FLOOR",
    "Detections",
    "Detector",
    "DetectorRecipe",
    "ModelInfo",
    "TorchDetector",
    "convert_checkpoint",
    "hash_files",
    "ConditionDetector",
    "ConditionRecipe",
    "InferenceCondition",
    "parse_condition",
    "parse_conditions",
    "is_torch_detector",
    "load_detector",
    "model_info",
    "map_classes",
    "parse_class_map",
    "export_onnx",
    "UltralyticsDetector",
    "OnnxDetector",
    "TorchvisionDetector",
    "random_model",
    "save_model_dir",
]
