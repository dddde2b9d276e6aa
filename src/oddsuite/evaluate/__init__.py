"""The evaluation loop: load a suite, run a Detector over it (resumable), score, write results;
and scoring of predictions made anywhere (a COCO results JSON from any tool)."""
from oddsuite.evaluate.classes import ClassMapping, map_classes, parse_class_map
from oddsuite.evaluate.loop import PredictionRun, compare_predictions, evaluate_suite, load_predictions, predict_suite
from oddsuite.evaluate.score import ExternalPredictions, load_external_predictions, score
from oddsuite.evaluate.suite import Suite, load_suite

__all__ = ["ClassMapping", "compare_predictions", "ExternalPredictions", "load_external_predictions", "map_classes",
           "parse_class_map", "PredictionRun", "evaluate_suite", "load_predictions", "predict_suite", "score", "Suite",
           "load_suite"]
