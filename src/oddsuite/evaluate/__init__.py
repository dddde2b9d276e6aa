"""The evaluation loop: run a Detector over a suite (read with ``oddsuite.suite``), resumably,
score, write results."""
from oddsuite.evaluate.classes import ClassMapping, map_classes, parse_class_map
from oddsuite.evaluate.loop import (PredictionRun, compare_predictions, evaluate_suite, load_predictions,
                                    predict_suite, score)

__all__ = ["ClassMapping", "compare_predictions", "map_classes", "parse_class_map", "PredictionRun", "evaluate_suite",
           "load_predictions", "predict_suite", "score"]
