"""Matching a detector's class names to a suite's categories.

By name first (exact, then ignoring case and surrounding spaces), overridden by an explicit
map ``detector name -> suite name`` (``person=pedestrian,truck=vehicle``). Detector classes
that match nothing are reported, never merged into a category silently; several detector
classes go to one category only when the explicit map says so.
"""
from __future__ import annotations

import logging
from typing import Mapping

from oddsuite.errors import ModelError

log = logging.getLogger(__name__)


def _norm(s: str) -> str:
    return " ".join(str(s).split()).casefold()


def parse_class_map(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"person=pedestrian, car=car"`` -> ``{"person": "pedestrian", "car": "car"}``.

    A mapping is returned as a plain dict; ``None`` or an empty string gives ``{}``.
    Raises ValueError for an item without ``=``, an empty side, or a detector class mapped twice.
    """
    if text is None:
        return {}
    if isinstance(text, Mapping):
        return {str(k).strip(): str(v).strip() for k, v in text.items()}
    out: dict[str, str] = {}
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        if item.count("=") != 1:
            raise ValueError(f"class map item {item!r}: expected DETECTOR_CLASS=SUITE_CATEGORY")
        det, cat = (s.strip() for s in item.split("="))
        if not det or not cat:
            raise ValueError(f"class map item {item!r}: both sides must be non-empty")
        if det in out and out[det] != cat:
            raise ValueError(f"class map: detector class {det!r} mapped twice ({out[det]!r} and {cat!r})")
        out[det] = cat
    return out


def check_class_map(class_map: Mapping[str, str], detector_classes: Mapping[int, str], source: str = "detector") -> None:
    """Every key of the explicit map must name a class of the detector (catches typos)."""
    names = {str(n) for n in detector_classes.values()}
    bad = sorted(k for k in class_map if k not in names)
    if bad:
        raise ModelError(f"{source}: class map names {bad}, which are not classes of the detector "
                         f"(its classes: {sorted(names)[:20]}{'...' if len(names) > 20 else ''})")


def map_classes(detector_classes: Mapping[int, str], suite_categories: Mapping[int, str],
                class_map: Mapping[str, str] | str | None = None) -> tuple[dict[int, int], list[str]]:
    """Map detector class indices to suite category ids.

    Returns ``(mapping det_idx -> category_id, unmatched)``, ``unmatched`` being the detector
    class names (in index order) that map to no suite category; their detections are to be
    dropped and counted, not merged. Raises ModelError when the explicit map names a
    detector class the detector does not have, or a category the suite does not have, or
    when matching by name is ambiguous (two suite categories differ only in case).
    """
    cmap = parse_class_map(class_map) if not isinstance(class_map, Mapping) else dict(class_map)
    check_class_map(cmap, detector_classes)
    cats_exact = {str(n): int(i) for i, n in suite_categories.items()}
    cats_norm: dict[str, int] = {}
    for n, i in cats_exact.items():
        k = _norm(n)
        if k in cats_norm and cats_norm[k] != i:
            raise ModelError(f"suite categories {n!r} and another differ only in case or spacing; "
                             "use an explicit class map")
        cats_norm[k] = i
    for det, cat in cmap.items():
        if cat not in cats_exact and _norm(cat) not in cats_norm:
            raise ModelError(f"class map {det}={cat}: the suite has no category {cat!r} "
                             f"(its categories: {sorted(cats_exact)})")

    mapping: dict[int, int] = {}
    unmatched: list[str] = []
    for idx in sorted(detector_classes):
        name = str(detector_classes[idx])
        if name in cmap:
            target = cmap[name]
            mapping[idx] = cats_exact.get(target, cats_norm.get(_norm(target)))
        elif name in cats_exact:
            mapping[idx] = cats_exact[name]
        elif _norm(name) in cats_norm:
            mapping[idx] = cats_norm[_norm(name)]
        else:
            unmatched.append(name)

    # by-name matches may not merge two detector classes into one category
    by_cat: dict[int, list[str]] = {}
    for idx, cid in mapping.items():
        by_cat.setdefault(cid, []).append(str(detector_classes[idx]))
    for cid, names in by_cat.items():
        implicit = [n for n in names if n not in cmap]
        if len(names) > 1 and implicit:
            raise ModelError(f"detector classes {names} would all map to suite category id {cid} by name; "
                             "merging classes needs an explicit class map entry for each")
    covered = set(mapping.values())
    missing = [n for n, i in cats_exact.items() if i not in covered]
    if missing:
        log.warning("no detector class maps to suite categories %s: every object of them will be a miss", missing)
    if unmatched:
        log.info("detector classes with no suite category (their detections are dropped): %s", unmatched)
    return mapping, unmatched
