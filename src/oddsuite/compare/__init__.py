"""Pre/post consistency of two detectors on a suite (metrics.md §6): ``compare_models``.

See :mod:`oddsuite.compare.core` for the results folder it writes.
"""
from oddsuite.compare.core import FORMAT, compare_layers, compare_models, consistency_table, per_class, slice_columns

__all__ = ["FORMAT", "compare_layers", "compare_models", "consistency_table", "per_class", "slice_columns"]
