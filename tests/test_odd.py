"""ODD spec parsing, errors that name file/field/line, and the samplers."""
from __future__ import annotations

from pathlib import Path

import pytest

from oddsuite.errors import SpecError
from oddsuite.odd import load_spec, parse_spec, sample_scene
from oddsuite.odd.domains import parse_domain

from conftest import TINY_SPEC


def _err(text: str, tmp_path: Path) -> str:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(SpecError) as e:
        s = load_spec(p)
        for i in range(3):
            sample_scene(s, 0, i)
    return str(e.value)


def test_shipped_specs_load_and_sample():
    specs = sorted(Path("odd_specs").glob("*.yaml"))
    assert len(specs) >= 3
    for p in specs:
        s = load_spec(p)
        sp = sample_scene(s, 1, 0)
        assert sp.camera["width"] == s.camera.width
        assert len(sp.objects) == sum(sp.counts.values())


def test_unknown_key_names_file_line_and_allowed_keys(tmp_path):
    msg = _err("name: x\nobjects:\n  car: {count: 1}\nenvironment:\n  fog_visiblity_m: 100\n", tmp_path)
    assert "bad.yaml:5" in msg and "environment.fog_visiblity_m" in msg and "unknown key" in msg
    assert "fog_visibility_m" in msg  # the expected keys are listed


def test_out_of_range_value(tmp_path):
    msg = _err("name: x\nobjects:\n  car: {count: 1}\nenvironment:\n  rain_mm_h: [0, 500]\n", tmp_path)
    assert "bad.yaml:5" in msg and "rain_mm_h" in msg and "out of range" in msg and "200" in msg


def test_unknown_class_needs_mesh_and_mesh_stays_inside(tmp_path):
    assert "give it a 'mesh:' path" in _err("name: x\nobjects:\n  horse: {count: 1}\n", tmp_path)
    msg = _err("name: x\nobjects:\n  horse: {count: 1, mesh: ../../etc/passwd.obj, size_m: 2}\n", tmp_path)
    assert "outside the spec's folder" in msg and "objects.horse.mesh" in msg


def test_bad_choice_and_yaml_syntax_and_missing(tmp_path):
    assert "expected one of: dry, wet, icy, snow" in _err(
        "name: x\nobjects:\n  car: {count: 1}\nscenery:\n  road_surface: mud\n", tmp_path)
    assert "not valid YAML" in _err("name: x\nobjects: [\n", tmp_path)
    assert "objects: required key is missing" in _err("name: x\n", tmp_path)


def test_unsatisfiable_rule_is_a_clear_error(tmp_path):
    msg = _err("name: x\nobjects:\n  car: {count: 1}\nenvironment:\n  rain_mm_h: 5\n"
               "rules:\n  - exclude: {environment.rain_mm_h: {gt: 0}}\nmax_placement_tries: 5\n", tmp_path)
    assert "rules.0" in msg and "satisfies" in msg
    assert "unknown dimension" in _err("name: x\nobjects:\n  car: {count: 1}\n"
                                       "rules:\n  - exclude: {environment.rainfall: 1}\n", tmp_path)


def test_rules_are_enforced_while_sampling():
    s = parse_spec(TINY_SPEC)
    for i in range(40):
        p = sample_scene(s, 3, i)
        assert not (p.environment["rain_mm_h"] > 0 and p.scenery["road_surface"] == "dry")


def test_same_seed_and_id_same_params_any_order():
    s = parse_spec(TINY_SPEC)
    a = [sample_scene(s, 5, i) for i in range(5)]
    b = [sample_scene(s, 5, i) for i in reversed(range(5))][::-1]
    assert a == b
    assert sample_scene(s, 6, 0) != a[0]


@pytest.mark.parametrize("sampler", ["grid", "halton"])
def test_grid_and_halton_samplers(sampler):
    text = TINY_SPEC.replace("sampler: random", f"sampler: {sampler}\ngrid_levels: 2")
    s = parse_spec(text)
    ps = [sample_scene(s, 1, i) for i in range(8)]
    elev = [p.environment["sun_elevation_deg"] for p in ps]
    assert all(20 <= e <= 60 for e in elev)
    assert len(set(round(e, 6) for e in elev)) >= 2
    if sampler == "grid":
        assert set(round(e, 6) for e in elev) <= {20.0, 60.0}


def test_domain_forms():
    assert parse_domain([1, 3], lo=0, hi=5).kind == "range"
    d = parse_domain({"choices": {"a": 1, "b": 3}}, choices=("a", "b"))
    assert d.at(0.1) == "a" and d.at(0.5) == "b"
    n = parse_domain({"normal": [10, 2], "min": 5, "max": 15}, lo=0, hi=100)
    assert 5 <= n.at(0.01) < n.at(0.5) < n.at(0.99) <= 15
    assert parse_domain({"min": 1, "max": 4}, lo=0, hi=10, integer=True).grid(10) == [1, 2, 3, 4]
