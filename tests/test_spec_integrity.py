"""A spec means what it says (issue #12): each kind of input that used to be read as
something else, crash, or blow up is a clear SpecError at load, naming line and path."""
from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import scipy.stats  # noqa: F401 - imported once here, not inside the first timed example
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oddsuite.errors import SpecError
from oddsuite.odd import load_spec, parse_spec, sample_scene
from oddsuite.odd.domains import parse_domain
from oddsuite.permute import subsets

BASE = """\
name: x
scenery:
  road_surface: {choices: {dry: 1, wet: 1}}
environment:
  rain_mm_h: [0, 10]
  sun_elevation_deg: [10, 60]
objects:
  car: {count: [1, 2], distance_m: [8, 30]}
  person: {count: 1}
"""
SHIPPED = sorted(Path(__file__).resolve().parents[1].glob("odd_specs/*.yaml"))


def err(text: str) -> str:
    with pytest.raises(SpecError) as e:
        parse_spec(text, source="s.yaml")
    msg = str(e.value)
    assert msg.startswith("invalid ODD spec\n"), msg
    return msg


# ----------------------------------------------------------------------------- duplicate keys

@pytest.mark.parametrize("text,line,path,first", [
    (BASE + "environment:\n  fog_visibility_m: 50\n", 10, "environment", 4),
    (BASE.replace("{dry: 1, wet: 1}", "{dry: 4, dry: 1}"), 3, "scenery.road_surface.choices.dry", 3),
    (BASE + "  car: {count: 3}\n", 10, "objects.car", 8),
    (BASE.replace("  rain_mm_h: [0, 10]\n", "  rain_mm_h: [0, 10]\n  rain_mm_h: 5\n"), 6, "environment.rain_mm_h", 5),
])
def test_duplicate_keys_at_any_level_name_both_lines(text, line, path, first):
    msg = err(text)
    assert f"s.yaml:{line}: {path}: duplicate key" in msg
    assert f"first at line {first}, again at line {line}" in msg


# ----------------------------------------------------------------------------- aliases, depth, size

def test_aliases_and_anchors_are_refused_with_their_line():
    msg = err(BASE + "variants:\n  - &v {name: base, x: [*v]}\n")
    assert "s.yaml:11: variants.0: YAML anchors (&v)" in msg
    laughs = "bomb:\n  a: &a [lol, lol]\n  b: [*a, *a]\n"
    assert "s.yaml:11: bomb.a: YAML anchors (&a)" in err(BASE + laughs)


def test_a_lone_alias_is_refused():
    assert "YAML aliases (*nowhere)" in err(BASE + "description: *nowhere\n") or "not valid YAML" in err(
        BASE + "description: *nowhere\n")


@pytest.mark.parametrize("text", [
    "name: x\ndescription: " + "[" * 1000 + "]" * 1000 + "\n",
    "name: x\ndescription:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 1000)) + "  " * 1000 + "v: 1\n",
])
def test_deep_nesting_is_a_clean_error(text):
    msg = err(text)
    assert re.search(r"s\.yaml:\d+: description[.\w]*: nested deeper than 32 levels", msg), msg


def test_two_documents_and_tags_are_refused():
    assert "a second '---'" in err(BASE + "---\nname: y\n")
    assert "YAML tags (tag:yaml.org,2002:python/object/apply:os.system)" in err(
        BASE + "description: !!python/object/apply:os.system [echo]\n")
    assert "YAML tags" in err(BASE + "description: !!set {a, b}\n")


# ----------------------------------------------------------------------------- non-finite numbers

@pytest.mark.parametrize("old,new,path", [
    ("count: [1, 2]", "count: .inf", "objects.car.count"),
    ("count: [1, 2]", "count: [1, .nan]", "objects.car.count.1"),
    ("distance_m: [8, 30]", "distance_m: {min: -.inf, max: 30}", "objects.car.distance_m.min"),
    ("distance_m: [8, 30]", "distance_m: {normal: [.nan, 3], min: 8, max: 30}", "objects.car.distance_m.normal.0"),
    ("distance_m: [8, 30]", "distance_m: {normal: [20, .inf], min: 8, max: 30}", "objects.car.distance_m.normal.1"),
    ("{dry: 1, wet: 1}", "{dry: .NaN, wet: 1}", "scenery.road_surface.choices.dry"),
    ("rain_mm_h: [0, 10]", "rain_mm_h: {choices: {.inf: 1, 0: 1}}", "environment.rain_mm_h.choices"),
    ("person: {count: 1}", "person: {count: 1, scale_jitter: .nan}", "objects.person.scale_jitter"),
    ("name: x", "name: x\nmin_visible: -.Inf", "min_visible"),
])
def test_non_finite_numbers_are_refused_everywhere(old, new, path):
    msg = err(BASE.replace(old, new))
    assert f": {path}: " in msg and "not a finite number" in msg


@pytest.mark.parametrize("raw", [
    math.inf, [0, math.nan], {"min": 0, "max": math.inf}, {"normal": [math.nan, 1], "min": 0, "max": 5},
    {"normal": [1, math.inf], "min": 0, "max": 5}, {"choices": {"a": math.nan, "b": 1}}, {"choices": {"a": 1e308, "b": 1e308}},
])
def test_domains_built_in_python_refuse_non_finite_numbers(raw):
    with pytest.raises(ValueError):
        parse_domain(raw, lo=0, hi=10, choices=("a", "b") if isinstance(raw, dict) and "choices" in raw else None)


def test_a_normal_with_no_mass_in_its_range_is_refused():
    with pytest.raises(ValueError, match="no usable probability"):
        parse_domain({"normal": [1e10, 1e-300], "min": 0, "max": 5}, lo=0, hi=10)


def test_huge_integers_are_out_of_range_not_whole_number_errors():
    msg = err(BASE.replace("person: {count: 1}", "person: {count: 99999999999999999999999999}"))
    assert "objects.person.count: value: 99999999999999999999999999 is out of range, expected 0 to 20" in msg


# ----------------------------------------------------------------------------- rules

@pytest.mark.parametrize("rule,path,words", [
    ("{environment.rain_mm_h: {gt: heavy}}", "rules.0.exclude.environment.rain_mm_h.gt", "'heavy' is not a number"),
    ("{scenery.road_surface: {gt: 3}}", "rules.0.exclude.scenery.road_surface.gt", "gt compares numbers"),
    ("{scenery.road_surface: mud}", "rules.0.exclude.scenery.road_surface", "'mud' can never match"),
    ("{scenery.road_surface: icy}", "rules.0.exclude.scenery.road_surface", "takes dry, wet in this spec"),
    ("{scenery.road_surface: [wet, snow]}", "rules.0.exclude.scenery.road_surface.1", "'snow' can never match"),
    ("{environment.rain_mm_h: {gt: 50}}", "rules.0.exclude.environment.rain_mm_h", "can never match"),
    ("{environment.rain_mm_h: {gt: 5, lt: 2}}", "rules.0.exclude.environment.rain_mm_h", "can never match"),
    ("{objects.car.count: 3}", "rules.0.exclude.objects.car.count", "takes 1, 2 in this spec"),
    ("{objects.car.count: {ge: 2.5}}", "rules.0.exclude.objects.car.count", "can never match"),
    ("{environment.rain_mm_h: {above: 1}}", "rules.0.exclude.environment.rain_mm_h", "unknown operator(s) ['above']"),
    ("{environment.rainfall: 1}", "rules.0.exclude.environment.rainfall", "unknown dimension"),
    ("{environment.rain_mm_h: []}", "rules.0.exclude.environment.rain_mm_h", "empty list"),
    ("{environment.rain_mm_h: yes}", "rules.0.exclude.environment.rain_mm_h", "write 'yes' in quotes"),
])
def test_rules_are_type_checked_at_load_with_lines(rule, path, words):
    msg = err(BASE + f"rules:\n  - exclude: {rule}\n")
    assert f"s.yaml:11: {path}: " in msg and words in msg, msg


def test_require_rules_are_checked_on_both_sides():
    msg = err(BASE + "rules:\n  - require:\n      if: {environment.snow_mm_h: {gt: 0}}\n"
                     "      then: {scenery.road_surface: wet}\n")
    assert "s.yaml:12: rules.0.require.if.environment.snow_mm_h: " in msg and "can never match" in msg


def test_rules_that_can_match_load_and_hold():
    s = parse_spec(BASE + "rules:\n  - exclude: {environment.rain_mm_h: {gt: 0}, scenery.road_surface: dry}\n"
                          "  - require: {if: {objects.car.count: 2}, then: {environment.sun_elevation_deg: {ge: 20}}}\n")
    for i in range(20):
        p = sample_scene(s, 0, i)
        assert not (p.environment["rain_mm_h"] > 0 and p.scenery["road_surface"] == "dry")
        assert p.counts["car"] < 2 or p.environment["sun_elevation_deg"] >= 20


# ----------------------------------------------------------------------------- plan sizes

@pytest.mark.parametrize("perm,path", [
    ("{plan: k-subsets, k: 16}", "permutations.k"),
    ("{plan: exhaustive}", "permutations.plan"),
    ("{plan: sampled, n: 5000}", "permutations.n"),
    ("{plan: ablation, max_subsets: 10}", "permutations.plan"),
])
def test_every_plan_is_bounded_at_load(perm, path):
    text = BASE.replace("person: {count: 1}", "person: {count: 20}\n  truck: {count: [0, 20]}") + f"permutations: {perm}\n"
    msg = err(text)
    assert f": {path}: a scene can hold up to 42 ROIs" in msg and "above permutations.max_subsets" in msg


def test_subsets_are_counted_before_they_are_built():
    with pytest.raises(SpecError, match="k-subsets plan: a scene with 40 ROIs has 147437500478 subsets"):
        subsets("k-subsets", list(range(40)), k=16, max_subsets=256, rng=np.random.default_rng(0))
    with pytest.raises(SpecError, match="sampled plan: a scene with 40 ROIs has 1041 subsets"):
        subsets("sampled", list(range(40)), n_sampled=1000, max_subsets=256, rng=np.random.default_rng(0))


def test_grid_size_is_bounded_at_load():
    text = BASE.replace("name: x", "name: x\nsampler: grid\ngrid_levels: 64") + \
        "camera: {height_m: [1, 2], pitch_deg: [-5, 0], fov_deg: [40, 80]}\n"
    assert "s.yaml:2: sampler: the grid has" in err(text)


# ----------------------------------------------------------------------------- user meshes

VAN = Path(__file__).resolve().parent / "cases" / "specs" / "meshes" / "van_in_millimetres.stl"


def _mesh_spec(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "meshes").mkdir(exist_ok=True)
    (tmp_path / "meshes" / "van.stl").write_bytes(VAN.read_bytes())
    p = tmp_path / "van.yaml"
    p.write_text("name: van\ncamera: {width: 160, height: 120}\nscenery: {clutter: 0}\n"
                 f"objects:\n  van: {{count: 1, distance_m: 12, lateral_m: 0, heading_deg: 0, mesh: meshes/van.stl{extra}}}\n")
    return p


@pytest.mark.parametrize("extra,words", [
    ("", "a user mesh needs its scale: its longest side is 4500 file units (4.5 m if they are mm"),
    (", units: m", "longest side is 4500 m = 4500 m, outside the 0.05 to 50 m of a road object"),
    (", units: mm, size_m: 4", "not both"),
])
def test_user_mesh_scale_is_required_and_plausible(tmp_path, extra, words):
    with pytest.raises(SpecError) as e:
        load_spec(_mesh_spec(tmp_path, extra))
    msg = str(e.value)
    assert "van.yaml:5: objects.van" in msg and words in msg


def test_a_mesh_in_millimetres_renders_at_its_size(tmp_path):
    from oddsuite.scenes import build_scene

    spec = load_spec(_mesh_spec(tmp_path, ", units: mm"))
    sc = build_scene(spec, sample_scene(spec, 0, 0))
    ext = np.ptp(sc.objects[0].world_vertices(), axis=0) / sc.objects[0].scale
    assert np.isclose(ext.max(), 4.5)


def test_size_m_without_a_mesh_is_refused():
    assert "objects.car: size_m and units scale a user mesh" in err(BASE.replace("count: [1, 2],", "count: [1, 2], size_m: 3,"))


# ----------------------------------------------------------------------------- recorded = rendered

def _roadside(clutter: float) -> int:
    from oddsuite.scenes import build_scene

    spec = parse_spec(BASE.replace("scenery:\n", f"scenery:\n  clutter: {clutter}\n  road_type: urban\n"))
    sc = build_scene(spec, sample_scene(spec, 0, 0))
    return sum(p.asset.name in ("scenery/building", "scenery/pole", "scenery/tree") for p in sc.scenery)


def test_clutter_is_rendered_as_recorded():
    # 0 used to render as 0.2: the scenes table said 0 while buildings and poles stood there
    assert _roadside(0) == 0
    assert 0 < _roadside(0.05) < _roadside(0.2) < _roadside(1.0)


def test_heavier_rain_and_snow_render_heavier():
    from oddsuite.render.effects.rain import intensity, rain
    from oddsuite.render.effects.snow import snow

    rgb = np.full((60, 80, 3), 120, np.uint8)
    assert intensity(25, 25) == 1.0 and intensity(10, 25) == 0.4
    ks = [intensity(r, 25) for r in (10, 25, 40, 100, 200)]
    assert ks == sorted(ks) and len(set(ks)) == len(ks) and ks[-1] < 2
    r40, r25 = rain(rgb, 40, np.random.default_rng(1), 0.8), rain(rgb, 25, np.random.default_rng(1), 0.8)
    assert r40.mean() < r25.mean()  # darker, as heavier rain should be; it was clamped to 25 mm/h
    assert not np.array_equal(snow(rgb, 20, np.random.default_rng(1), 0.8), snow(rgb, 5, np.random.default_rng(1), 0.8))


def test_fog_above_ten_km_is_refused_not_rendered_as_clear():
    assert "expected 5 to 10000 m (10000 m means no fog)" in err(BASE.replace("rain_mm_h: [0, 10]", "fog_visibility_m: 50000"))
    assert "variants.0.fog_visibility_m" in err(BASE + "variants:\n  - {name: base, fog_visibility_m: 20000}\n")


# ----------------------------------------------------------------------------- YAML 1.1

@pytest.mark.parametrize("old,new,path,hint", [
    ("{choices: {dry: 1, wet: 1}}", "no", "scenery.road_surface", "the unquoted no as the boolean false; write 'no' in quotes"),
    ("{choices: {dry: 1, wet: 1}}", "{choices: [dry, off]}", "scenery.road_surface", "the unquoted off as the boolean false"),
    ("name: x", "name: on", "name", "the unquoted on as the boolean true"),
    ("name: x", "name: 2024-01-05", "name", "as a date"),
    ("name: x", "name: 1:30", "name", "reads the unquoted 1:30 as the number 90"),
])
def test_yaml_11_surprises_say_to_quote(old, new, path, hint):
    msg = err(BASE.replace(old, new, 1))
    assert f": {path}: " in msg and hint in msg, msg


def test_quoted_values_are_text():
    s = parse_spec(BASE.replace("{choices: {dry: 1, wet: 1}}", "'wet'").replace("name: x", "name: 'on'"))
    assert s.name == "on" and s.scenery.road_surface.value == "wet"


# ----------------------------------------------------------------------------- property test

TOKENS = [".nan", ".inf", "-.inf", "no", "yes", "on", "~", "", "&a x", "*a", "[", "]", "{", "}", "- ", ": ", "!!binary x",
          "!!python/name:os.system", "1e400", "-1", "0", "99999999999999999999999", "'q'", '"\\x00"', "1:30", "2024-01-01",
          "{choices: {a: 1}}", "{normal: [1, 0]}", "[1, 2, 3]", "\t", "#", "%YAML 1.1", "---", "\x85", "\ufeff", "é"]


def _check_loads_or_spec_error(text: str) -> None:
    try:
        parse_spec(text, source="m.yaml")
    except SpecError as e:
        assert re.match(r"invalid ODD spec\n  |m\.yaml", str(e)), str(e)


@settings(max_examples=150, deadline=timedelta(seconds=10), suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SHIPPED), st.data())
def test_mutated_shipped_specs_load_or_raise_spec_error(path, data):
    lines = path.read_text().splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        how = data.draw(st.sampled_from(["token", "delete", "duplicate", "indent", "splice"]))
        if how == "token":
            line = lines[i]
            j = data.draw(st.integers(0, len(line)))
            k = data.draw(st.integers(j, min(len(line), j + 12)))
            lines[i] = line[:j] + data.draw(st.sampled_from(TOKENS) | st.text(max_size=6)) + line[k:]
        elif how == "delete":
            del lines[i]
        elif how == "duplicate":
            lines.insert(i, lines[i])
        elif how == "indent":
            lines[i] = " " * data.draw(st.integers(0, 6)) + lines[i].lstrip()
        else:
            lines.insert(i, lines[data.draw(st.integers(0, len(lines) - 1))])
        if not lines:
            lines = [""]
    _check_loads_or_spec_error("\n".join(lines) + "\n")


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True),
                     st.text(max_size=8), st.sampled_from(["dry", "wet", "urban", "gt", "remove", "grid", "base"]))
_VALUES = st.recursive(_SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(_SCALARS.filter(
    lambda x: x is None or isinstance(x, (str, int, float))), c, max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=timedelta(seconds=10), suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SHIPPED), st.data())
def test_shipped_specs_with_a_value_replaced_load_or_raise_spec_error(path, data):
    doc = yaml.safe_load(path.read_text())
    node = doc
    for _ in range(data.draw(st.integers(1, 3))):
        if isinstance(node, dict) and node:
            key = data.draw(st.sampled_from(sorted(node, key=str)))
        elif isinstance(node, list) and node:
            key = data.draw(st.integers(0, len(node) - 1))
        else:
            break
        if not isinstance(node[key], (dict, list)) or data.draw(st.booleans()):
            node[key] = data.draw(_VALUES)
            break
        node = node[key]
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return
    _check_loads_or_spec_error(text)
