"""The evaluation loop: load a suite, run a Detector over it (resumable), score, write results."""
from oddsuite.evaluate.classes import ClassMapping, map_classes, parse_class_map
from oddsuite.evaluate.loop import (PredictionRun, compare_predictions, evaluate_suite, load_predictions,
                                    predict_suite, score)
from oddsuite.evaluate.suite import Suite, load_suite

__all__ = ["ClassMapping", "compare_predictions", "map_classes", "parse_class_map", "PredictionRun", "evaluate_suite",
           "load_predictions", "predict_suite", "score", "Suite", "load_suite"]
