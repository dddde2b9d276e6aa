"""Detector class names -> suite categories, for the evaluation loop.

The matching rules live in ``oddsuite.models.classmap.map_classes`` (by name, exact then
ignoring case; an explicit ``class_map`` such as ``{"person": "pedestrian"}`` overrides;
classes the suite lacks are dropped, never merged). This module keeps its result as one
value the loop and run.json use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from oddsuite.errors import ModelError
from oddsuite.models.classmap import map_classes as _map_classes
from oddsuite.models.classmap import parse_class_map

__all__ = ["ClassMapping", "map_classes", "parse_class_map"]


@dataclass(frozen=True)
class ClassMapping:
    """to_suite: detector class index -> suite category id; names: detector name -> suite
    name for the kept classes; dropped: detector class index -> name (no suite category)."""

    to_suite: dict[int, int]
    names: dict[str, str]
    dropped: dict[int, str]


def map_classes(detector_classes: Mapping[int, str], categories: Mapping[int, str],
                class_map: Mapping[str, str] | str | None = None) -> ClassMapping:
    """Resolve the mapping (ModelError for an unknown name in ``class_map`` or an implicit merge)."""
    to_suite, _unmatched = _map_classes(detector_classes, categories, class_map)
    if not to_suite:
        raise ModelError(f"no detector class matches a suite category (detector: "
                         f"{sorted(set(map(str, detector_classes.values())))[:20]}, suite: "
                         f"{sorted(categories.values())}); give a class map such as person=pedestrian")
    names = {str(detector_classes[i]): str(categories[c]) for i, c in sorted(to_suite.items())}
    dropped = {int(i): str(n) for i, n in sorted(detector_classes.items()) if int(i) not in to_suite}
    return ClassMapping({int(i): int(c) for i, c in to_suite.items()}, names, dropped)
