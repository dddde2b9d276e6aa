"""Experiments that call ``evaluate``: the pre/post consistency of two detectors
(``compare``, with ``compare_draw`` for its side-by-side pictures), fault sweeps of a
detector on the simulated accelerator (``fault_sweep``), FAP+T fine-tuning for YOLO
detectors (``fapt``), the seed's MLP experiment (``mlp_experiment``) and one detector under
reduced-context inference conditions (``reduced_context``).

This is the top of the library's import chain: a study may import ``evaluate``, ``metrics``,
``models``, ``accelerator``, ``quant``, ``training``, ``suite``, ``run``, ``errors`` and
``fileio``. Nothing in the library imports a study (only ``cli`` and ``commands`` do).
Import the study module you need (``from oddsuite.studies.compare import compare_models``):
the face re-exports nothing, so that importing one study does not load the others' torch and
ultralytics.
"""
