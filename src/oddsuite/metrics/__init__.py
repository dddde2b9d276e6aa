"""Scores of metrics.md: COCO mAP per slice and the TIDE error breakdown (hotcoco as the
engine), ROI outcomes, context accuracy, context-induced false positives, false positives
on full scenes, ROI influence, pre/post consistency, reduced context (crop ground truth, tile
cut, context retention). Inputs are plain COCO dicts and pandas
tables; nothing here reads files or knows about detectors. Imports only numpy, pandas,
scipy, hotcoco and its own modules."""
from oddsuite.metrics.coco import MAP_SCORE_FLOOR, SliceEvaluator, engine_info
from oddsuite.metrics.consistency import consistency, consistency_tables, match_sets
from oddsuite.metrics.context import (context_accuracy, context_false_positives, context_pairs,
                                      influence_summary, roi_influence)
from oddsuite.metrics.false_positives import full_scene_false_positives
from oddsuite.metrics.matching import (DEFAULT_CONF, DEFAULT_IOU, RoiTruth, image_table, iou_xywh, match_image,
                                       outcome_tables)
from oddsuite.metrics.reduced_context import clip_ground_truth, context_retention, tile_cut
from oddsuite.metrics.stats import bootstrap_mean, json_clean, rate, wilson_interval
from oddsuite.metrics.summary import Scores, score_predictions
from oddsuite.metrics.tables import slice_labels, with_parameters

__all__ = [
    "MAP_SCORE_FLOOR", "DEFAULT_CONF", "DEFAULT_IOU", "SliceEvaluator", "engine_info", "consistency",
    "consistency_tables", "match_sets", "context_accuracy", "context_false_positives", "context_pairs",
    "full_scene_false_positives",
    "influence_summary", "roi_influence", "RoiTruth", "image_table", "iou_xywh", "match_image", "outcome_tables",
    "json_clean", "bootstrap_mean", "rate", "wilson_interval", "Scores", "score_predictions", "slice_labels",
    "with_parameters", "clip_ground_truth", "context_retention", "tile_cut",
]
