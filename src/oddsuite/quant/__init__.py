"""int8 post-training quantization with ONNX Runtime (``quantize``: QDQ, calibrated on a
suite's images, recorded) and the layer-level divergence of two ONNX models (``debug``: per
tensor SQNR, ONNX Runtime's quantization-debugger measurement).

This package may import ``oddsuite.models`` (loading, export to ONNX, the adapters'
pre-processing), ``suite`` (reading calibration images), ``errors`` and ``fileio``; it sits
beside ``evaluate`` and never imports it (nor ``studies``, ``trace`` or ``report``).
"""
from oddsuite.quant.debug import layer_divergence, plot_layers, sqnr_db
from oddsuite.quant.quantize import QuantizeResult, calibration_sample, quantize_model, read_record

__all__ = ["QuantizeResult", "calibration_sample", "layer_divergence", "plot_layers", "quantize_model", "read_record",
           "sqnr_db"]
