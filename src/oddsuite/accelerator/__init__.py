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
- :mod:`.formats` — number formats (GoldenEye's pattern): :class:`NumberFormat` (quantize,
  dequantize, bits, bit flips, accumulator width) with :class:`IntFormat` subclasses ``INT8``
  (the default) and ``INT4``; the requantisation modes ``saturate`` / ``wrap`` / ``none``.
- :mod:`.quant` — the int8 case as free functions: weights symmetric per output channel,
  activations per tensor (calibrated), int32 accumulators, requantisation.
- :mod:`.systolic` — :class:`SystolicArray` ``(rows, cols)``: ``W[k, j]`` in PE
  ``(k mod R, j mod C)``, partial sums flow down PE rows, K tiles summed. A clean product is
  one fast exact matmul; a faulty one replays only the faulty columns from their first faulty
  row down (cost about ``1 + F/C`` clean runs for ``F`` faulty PEs).
- :mod:`.faults` — the fault settings: :class:`FaultMap` (seeded, nested, JSON round trip) of
  stuck-at-0/1 faults on one bit of a PE's 32-bit partial sum; :class:`TimingErrors` (per-MAC
  failure probability, ``"propagate"`` = result with its top bits lost, or ``"te-drop"``).
- :mod:`.fault_models` — the fault models the array asks what to do, one class each
  (:class:`StuckAt`, :class:`TimingErrorPropagation`, :class:`TransientFlips`, and the
  mitigated :class:`FapBypass`, :class:`TimingErrorDrop`); a new one registers with
  :func:`register_fault_model`.
- :mod:`.wrap` — :func:`accelerate` (a torch module in, a copy with every Conv2d/Linear on
  the array out), :func:`accelerator_of`, :class:`Accelerator` (configure faults, calibrate).
- :mod:`.detector` — :class:`AcceleratorDetector`: wraps any Detector that exposes its
  network as a settable ``torch_model`` attribute which its ``predict`` uses on every call;
  the evaluation loop runs on it unchanged. Its ``info`` (ModelInfo) is the wrapped
  detector's, in int8, with an :class:`AcceleratorRecipe` that re-creates it, calibrated,
  configured and with its requantisation mode, in a pool or Ray worker.
- :mod:`.mitigation` — :class:`FAP` and :class:`TEDrop` over the fault-model interface, FAP
  masks and FAP+T (fine-tuning with the pruning mask held fixed).

Example::

    det = AcceleratorDetector(UltralyticsDetector(...), SystolicArray(256, 256),
                              calibration_images=imgs[:16])
    det.configure(FaultMap.random(256, 256, 16, seed=0), mitigation="fap")
    evaluate_suite(suite, det, out)
    det.configure(FaultMap.random(256, 256, 4, seed=0), requant="none")  # the seed's fixed point

A new fault model is one class (:class:`ColumnSegmentFault` or :class:`MacEventFault`, or
any :class:`FaultModel`) passed as ``configure(models=[...])``, registered with
:func:`register_fault_model`; a new number format one :class:`NumberFormat` subclass given to
``SystolicArray(rows, cols, number_format=...)``.
"""
from .detector import AcceleratorDetector, AcceleratorRecipe
from .fault_models import (ColumnSegmentFault, FapBypass, FaultModel, MacEventFault, StuckAt, TimingErrorDrop,
                           TimingErrorPropagation, TransientFlips, register_fault_model)
from .faults import (Fault, FaultMap, FaultMapError, TimingErrors, TimingEvents, flip_bits_int8,
                     sample_timing_events)
from .formats import INT4, INT8, IntFormat, NumberFormat
from .mitigation import FAP, Mitigation, TEDrop, fap_masks, fault_models, fine_tune_with_masks
from .quant import dequantize_acc, quantize_activation, quantize_weight, requantize
from .systolic import RunStats, SystolicArray
from .wrap import REQUANT_MODES, Accelerator, AccelConv2d, AccelLinear, accelerate, accelerator_of

__all__ = [
    "Accelerator", "AccelConv2d", "AccelLinear", "AcceleratorDetector", "AcceleratorRecipe", "ColumnSegmentFault",
    "FAP", "FapBypass", "Fault", "FaultMap", "FaultMapError", "FaultModel", "INT4", "INT8", "IntFormat",
    "MacEventFault", "Mitigation", "NumberFormat", "REQUANT_MODES", "RunStats", "StuckAt", "SystolicArray", "TEDrop",
    "TimingErrorDrop", "TimingErrorPropagation", "TimingErrors", "TimingEvents", "TransientFlips", "accelerate",
    "accelerator_of", "dequantize_acc", "fap_masks", "fault_models", "fine_tune_with_masks", "flip_bits_int8",
    "quantize_activation", "quantize_weight", "register_fault_model", "requantize", "sample_timing_events",
]
