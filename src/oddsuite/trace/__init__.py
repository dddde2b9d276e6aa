"""Trace failures to scene conditions and ROIs: failure slices over binned ODD dimensions
(every level shown, ranked each on what the ones above leave unexplained), heatmaps of
pairs of dimensions, readable rules from a shallow decision tree, the co-present ROIs
that break each failing ROI class (instance by instance), and the effect of a class's
presence with what the permutation plan could and could not separate. May import
``metrics``, ``suite`` (its reader), ``odd``, ``errors`` and ``fileio``; nothing above it. See
``oddsuite.trace.core``."""
from oddsuite.trace.core import (DEFAULT_MIN_SUPPORT, FORMAT, TRACE_DIR, TRACE_JSON, Trace, find_suite, load_trace,
                                 suite_plan, trace_outcomes, trace_results, write_trace)
from oddsuite.trace.dimensions import TAXONOMY, Dimension, Level, build_dimensions
from oddsuite.trace.figures import trace_figures
from oddsuite.trace.influence import influence_ranking
from oddsuite.trace.presence import presence_ranking
from oddsuite.trace.rules import decision_rules
from oddsuite.trace.slices import IMAGE_SETS, conditional_ranking, failure_rows, level_table, pair_tables, rank_slices
from oddsuite.trace.summary import summary_lines, top_causes

__all__ = [
    "DEFAULT_MIN_SUPPORT", "FORMAT", "TRACE_DIR", "TRACE_JSON", "Trace", "find_suite", "load_trace", "suite_plan",
    "trace_outcomes", "trace_results", "write_trace", "TAXONOMY", "Dimension", "Level", "build_dimensions",
    "trace_figures", "influence_ranking", "presence_ranking", "decision_rules", "IMAGE_SETS", "conditional_ranking",
    "failure_rows", "level_table", "pair_tables", "rank_slices", "summary_lines", "top_causes",
]
