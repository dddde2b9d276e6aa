"""The covering sampler: 100% t-way coverage of every shipped spec with the rules kept,
values inside each level drawn from (seed, scene id), deterministic."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oddsuite.errors import SpecError
from oddsuite.odd import load_spec, parse_spec, sample_scene
from oddsuite.odd.coverage import odd_coverage
from oddsuite.odd.rules import broken_rule
from oddsuite.odd.samplers.covering import covering_rows

SPECS = sorted((Path(__file__).resolve().parents[1] / "odd_specs").glob("*.yaml"))


def covering(path: Path, strength: int = 2):
    spec = load_spec(path)
    return spec.model_copy(update={"sampler": "covering", "strength": strength})


def scene_codes(spec, seed: int, n: int) -> tuple[np.ndarray, list[dict]]:
    cov = odd_coverage(spec)
    flats = [sample_scene(spec, seed, i).flat() for i in range(n)]
    return np.array([[a.index(f[a.path]) for a in cov.axes] for f in flats]), flats


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_covering_reaches_full_two_way_coverage_with_the_rules_kept(path):
    spec = covering(path)
    cov = odd_coverage(spec)
    rows = covering_rows(spec)
    codes, flats = scene_codes(spec, 5, len(rows))
    two = cov.tuples(2)
    hit = two.counts(codes) > 0
    assert two.allowed.sum() > 0 and (hit | ~two.allowed).all(), "an allowed 2-tuple is missing"
    assert not (hit & ~two.allowed).any(), "a forbidden 2-tuple was produced"
    for f in flats:
        assert broken_rule(spec.rules, f) is None
    # every scene lies in its row's levels: the values are drawn inside them
    assert (codes == np.array(rows)).all()
    # the same spec and seed give the same scenes; another seed other values in the same levels
    assert [sample_scene(spec, 5, i).flat() for i in range(3)] == flats[:3]
    other = [sample_scene(spec, 6, i).flat() for i in range(3)]
    assert other != flats[:3] and (scene_codes(spec, 6, 3)[0] == codes[:3]).all()
    # within twice the least any 2-way covering array needs (the two largest level counts multiplied)
    sizes = sorted((len(cov.axes[a].levels) for a in cov.varying), reverse=True)
    assert sizes[0] * sizes[1] <= len(rows) <= 2 * sizes[0] * sizes[1]


def test_strength_three_covers_every_allowed_triple():
    text = """\
name: s3
sampler: covering
strength: 3
objects:
  car: {count: [0, 2]}
  person: {count: [0, 1]}
scenery:
  road_surface: {choices: [dry, wet, icy]}
  lanes: {choices: [2, 3, 4]}
environment:
  rain_mm_h: {choices: [0, 5, 20]}
rules:
  - exclude: {scenery.road_surface: icy, environment.rain_mm_h: {gt: 10}}
"""
    spec = parse_spec(text)
    cov = odd_coverage(spec)
    rows = covering_rows(spec)
    codes, flats = scene_codes(spec, 0, len(rows))
    three = cov.tuples(3)
    assert ((three.counts(codes) > 0) | ~three.allowed).all()
    assert not three.allowed.all()  # (icy, heavy, *) is forbidden and never produced
    assert all(broken_rule(spec.rules, f) is None for f in flats)
    assert len(rows) < 3 * 3 * 3 * 3 * 2  # fewer than the full product of the levels


def test_strength_and_unsatisfiable_rules_are_errors_with_lines():
    base = "name: x\nsampler: covering\nobjects:\n  car: {count: 1}\nscenery:\n  road_surface: {choices: [dry, wet]}\n"
    with pytest.raises(SpecError, match=r"<string>:7: strength: Input should be less than or equal to 3"):
        parse_spec(base + "strength: 4\n")
    with pytest.raises(SpecError, match=r"<string>:7: rules: no point of the spec's domains keeps every rule"):
        parse_spec(base + "rules:\n  - exclude: {scenery.road_surface: dry}\n  - exclude: {scenery.road_surface: wet}\n")
