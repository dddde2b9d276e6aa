"""Making a detector for an ODD: a suite exported as an ultralytics (YOLO txt) data set
(``yolo_dataset``), the offline, seeded training run that saves a model directory
(``train``), the training suites and data set behind ``oddsuite train`` (``suite_data``), and
small synthetic fixtures for tests and benchmarks (``toy``).

This package may import ``oddsuite.models`` (building and saving detectors), ``suite`` and
``odd`` (generating a training suite from a spec), ``run``, ``errors`` and ``fileio``; it
never imports ``evaluate``, ``studies``, ``trace`` or ``report``.
"""
from oddsuite.training.train import MAX_TRAIN_SEED, is_training_seed, run_training, train_detector, training_suite_seed
from oddsuite.training.suite_data import TrainingData, build_training_data, class_list, train_on
from oddsuite.training.yolo_dataset import EXPORT_CARD, export_yolo, exported_from

__all__ = ["EXPORT_CARD", "MAX_TRAIN_SEED", "TrainingData", "build_training_data", "class_list", "export_yolo",
           "exported_from", "is_training_seed", "run_training", "train_detector", "train_on", "training_suite_seed"]
