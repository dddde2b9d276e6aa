"""Experiments that call ``evaluate`` or score a detector while they run: the pre/post
consistency of two detectors (``compare``, with ``compare_draw`` for its side-by-side
pictures), fault sweeps of a detector on the simulated accelerator (``fault_sweep``), FAP+T
fine-tuning for YOLO detectors (``fapt``), the seed's MLP experiment (``mlp_experiment``),
lockstep runs of one detector on two backends or twice (``lockstep``), latency distributions
of model variants (``latency``, with the variants built by ``variants``), training
determinism (``determinism``), one detector under reduced-context inference conditions
(``reduced_context``) and the falsification search (``search``: an optimiser spends the
render budget where the detector fails, and writes an ordinary suite). Each writes a results
folder (JSON, CSV, PNG) or a suite, which ``report`` reads.

This is the top of the library's import chain: a study may import ``evaluate``, ``metrics``,
``models``, ``accelerator``, ``quant``, ``training``, ``trace``, ``suite`` and what lies below
it, ``run``, ``errors`` and ``fileio``. Nothing in the library imports a study (only ``cli``
and ``commands`` do). Import the study module you need (``from oddsuite.studies.compare
import compare_models``): the face re-exports nothing, so that importing one study does not
load the others' torch and ultralytics.
"""
