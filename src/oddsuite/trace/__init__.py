"""Trace failures to scene conditions and ROIs: failure slices over binned ODD dimensions,
heatmaps of pairs of dimensions, readable rules from a shallow decision tree, and the
co-present ROIs that break each failing ROI class. See ``oddsuite.trace.core``."""
from oddsuite.trace.core import (DEFAULT_MIN_SUPPORT, FORMAT, TRACE_DIR, TRACE_JSON, Trace, find_suite, load_trace,
                                 trace_outcomes, trace_results, write_trace)
from oddsuite.trace.dimensions import TAXONOMY, Dimension, Level, build_dimensions
from oddsuite.trace.figures import trace_figures
from oddsuite.trace.influence import influence_ranking
from oddsuite.trace.rules import decision_rules
from oddsuite.trace.slices import IMAGE_SETS, failure_rows, level_table, pair_tables, rank_slices

__all__ = [
    "DEFAULT_MIN_SUPPORT", "FORMAT", "TRACE_DIR", "TRACE_JSON", "Trace", "find_suite", "load_trace", "trace_outcomes",
    "trace_results", "write_trace", "TAXONOMY", "Dimension", "Level", "build_dimensions", "trace_figures",
    "influence_ranking", "decision_rules", "IMAGE_SETS", "failure_rows", "level_table", "pair_tables", "rank_slices",
]
