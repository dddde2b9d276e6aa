"""The evaluation loop: run a Detector over a suite (read with ``oddsuite.suite``), resumably,
in this process or on an executor, score the predictions, write the results folder; and
scoring of predictions made anywhere (a COCO results JSON from any tool).

This package may import ``oddsuite.models`` (the Detector protocol, class mapping),
``metrics`` (scoring), ``suite`` and what lies below it (``permute``, ``render``, ``scenes``,
``odd``), ``run``, ``errors`` and ``fileio``. Only ``studies``, ``trace``, ``report`` and the
commands import it; ``models``, ``accelerator`` and ``quant`` never do.
"""
from oddsuite.evaluate.classes import ClassMapping, map_classes, parse_class_map
from oddsuite.evaluate.loop import (PredictionLoop, PredictionRun, compare_predictions, evaluate_suite,
                                    load_predictions, predict_suite)
from oddsuite.evaluate.score import ExternalPredictions, load_external_predictions, score

__all__ = ["ClassMapping", "compare_predictions", "ExternalPredictions", "load_external_predictions", "map_classes",
           "parse_class_map", "PredictionLoop", "PredictionRun", "evaluate_suite", "load_predictions", "predict_suite",
           "score"]
