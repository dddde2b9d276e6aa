"""The simulated TPU-like accelerator: an int8 weight-stationary systolic array with faults.

This package holds the number format, the array, the fault models, the mitigations (FAP
masks, TE-Drop) and the accelerated Detector. It may import ``oddsuite.models`` (the
Detector it wraps), ``errors`` and ``fileio``; it never imports ``evaluate``, ``studies``,
``trace`` or ``report``: the experiments that score it on a suite (fault sweeps, the MLP
experiment, FAP+T fine-tuning) live in ``oddsuite.studies``.

Spec: ``shared/spec/accelerator.md``; seed ``002`` section 2 (stuck-at and timing faults,
FAP, FAP+T, TE-Drop).

Pieces
------
- :mod:`.quant` — int8 quantisation: weights symmetric per output channel, activations per
  tensor (calibrated), int32 accumulators, requantisation.
- :mod:`.systolic` — :class:`SystolicArray` ``(rows, cols)``: ``W[k, j]`` in PE
  ``(k mod R, j mod C)``, partial sums flow down PE rows, K tiles summed. A clean product is
  one fast exact matmul; a faulty one replays only the faulty columns from their first faulty
  row down (cost about ``1 + F/C`` clean runs for ``F`` faulty PEs).
- :mod:`.faults` — :class:`FaultMap` (seeded, nested, JSON round trip) of stuck-at-0/1 faults
  on one bit of a PE's 32-bit partial sum; :class:`TimingErrors` (per-MAC failure probability,
  ``"propagate"`` = result with its top bits lost, or ``"te-drop"``); transient bit flips.
- :mod:`.wrap` — :func:`accelerate` (a torch module in, a copy with every Conv2d/Linear on
  the array out), :func:`accelerator_of`, :class:`Accelerator` (configure faults, calibrate).
- :mod:`.detector` — :class:`AcceleratorDetector`: wraps any Detector that exposes its
  network as a settable ``torch_model`` attribute which its ``predict`` uses on every call;
  the evaluation loop runs on it unchanged. Its ``info`` (ModelInfo) is the wrapped
  detector's, in int8, with an :class:`AcceleratorRecipe` that re-creates it, calibrated and
  configured, in a pool or Ray worker.
- :mod:`.mitigation` — FAP masks and FAP+T (fine-tuning with the pruning mask held fixed).

Example::

    det = AcceleratorDetector(UltralyticsDetector(...), SystolicArray(256, 256),
                              calibration_images=imgs[:16])
    det.configure(FaultMap.random(256, 256, 16, seed=0), mitigation="fap")
    evaluate_suite(suite, det, out)
"""
from .detector import AcceleratorDetector, AcceleratorRecipe
from .faults import (Fault, FaultMap, FaultMapError, TimingErrors, TimingEvents, flip_bits_int8,
                     sample_timing_events)
from .mitigation import fap_masks, fine_tune_with_masks
from .quant import dequantize_acc, quantize_activation, quantize_weight, requantize
from .systolic import RunStats, SystolicArray
from .wrap import Accelerator, AccelConv2d, AccelLinear, TransientFlips, accelerate, accelerator_of

__all__ = [
    "Accelerator", "AccelConv2d", "AccelLinear", "AcceleratorDetector", "AcceleratorRecipe", "Fault", "FaultMap", "FaultMapError",
    "RunStats", "SystolicArray", "TimingErrors", "TimingEvents", "TransientFlips", "accelerate",
    "accelerator_of", "dequantize_acc", "fap_masks", "fine_tune_with_masks", "flip_bits_int8",
    "quantize_activation", "quantize_weight", "requantize", "sample_timing_events",
]
