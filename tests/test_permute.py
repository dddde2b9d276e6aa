"""ROI permutation plans, masking modes, variants, fog, and the composite fast path."""
from __future__ import annotations

import math

import numpy as np
import pytest

from oddsuite.errors import SpecError
from oddsuite.odd import parse_spec, sample_scene
from oddsuite.permute import CompositeRenderer, environment_of, plan_size, subsets
from oddsuite.render import get_renderer
from oddsuite.render.effects.fog import fog, koschmieder_transmission, range_from_depth
from oddsuite.scenes import build_scene


@pytest.mark.parametrize("plan,n,kw,expected", [
    ("exhaustive", 4, {}, 15),
    ("k-subsets", 4, {"k": 2}, 4 + 6 + 1),
    ("k-subsets", 3, {"k": 3}, 7),
    ("ablation", 4, {}, 4 + 4 + 1),
    ("ablation", 2, {}, 3),  # leave-one-out of 2 are the singletons
    ("ablation", 1, {}, 1),
    ("full", 5, {}, 1),
    ("sampled", 6, {"n_sampled": 5}, 6 + 1 + 5),
    ("sampled", 2, {"n_sampled": 50}, 3),  # capped by the 2^n - 1 subsets that exist
])
def test_plan_subset_counts(plan, n, kw, expected):
    got = subsets(plan, list(range(n)), rng=np.random.default_rng(0), **kw)
    assert len(got) == expected == plan_size(plan, n, kw.get("k", 2), kw.get("n_sampled", 16))
    assert len(set(got)) == len(got) and tuple(range(n)) in got
    if plan in ("sampled", "ablation", "k-subsets", "exhaustive"):
        assert all((i,) in got for i in range(n))  # singletons: the isolated ROIs


def test_sampled_plan_is_seeded():
    a = subsets("sampled", list(range(8)), n_sampled=10, rng=np.random.default_rng(4))
    b = subsets("sampled", list(range(8)), n_sampled=10, rng=np.random.default_rng(4))
    c = subsets("sampled", list(range(8)), n_sampled=10, rng=np.random.default_rng(5))
    assert a == b and a != c


def test_exhaustive_is_refused_past_the_cap():
    assert len(subsets("exhaustive", list(range(8)))) == 255
    with pytest.raises(SpecError, match=r"9 ROIs has 511 subsets, above permutations.max_subsets = 256"):
        subsets("exhaustive", list(range(9)))


TWO = """\
name: occlusion
camera: {fov_deg: 40, width: 160, height: 120, pitch_deg: -2, height_m: 1.5}
environment: {sun_elevation_deg: 50, cloud_cover: 0}
scenery: {road_type: rural, clutter: 0.2}
objects:
  truck: {count: 1, distance_m: 12, lateral_m: 0, heading_deg: 0}
  person: {count: 1, distance_m: 25, lateral_m: 0.3, heading_deg: 90}
"""


def test_removing_an_occluder_changes_ground_truth():
    spec = parse_spec(TWO)
    sc = build_scene(spec, sample_scene(spec, 0, 0))
    truck, person = sc.objects
    r = get_renderer(160, 120)
    env = environment_of(sc)
    both = r.render(sc, env)
    alone = r.render(sc, env, rois=[person.roi_id])
    hidden, seen = both.objects[person.roi_id], alone.objects[person.roi_id]
    assert hidden.visible_fraction < 0.2  # the truck hides the person
    assert seen.visible_fraction > 0.95 and seen.visible_px > 4 * hidden.visible_px
    assert seen.visible_box != hidden.visible_box
    assert seen.full_box == hidden.full_box  # the full box is geometry, occlusion does not change it


def test_fog_follows_koschmieder():
    V = 100.0
    assert math.isclose(float(koschmieder_transmission(V, V)), 0.02, rel_tol=1e-3)
    K = np.array([[100.0, 0, 2], [0, 100.0, 1], [0, 0, 1]])
    depth = np.array([[10.0, 50.0, 100.0, 0.0], [10.0, 50.0, 100.0, 0.0]], np.float32)
    rgb = np.zeros((2, 4, 3), np.uint8)
    out = fog(rgb, depth, K, V, airlight=1.0).astype(float) / 255
    rng_m = range_from_depth(depth, K)
    want = 1 - np.exp(-3.912 * rng_m / V)
    assert np.allclose(out[..., 0], np.where(np.isinf(rng_m), 1.0, want), atol=1 / 255)
    assert out[0, 0, 0] < out[0, 1, 0] < out[0, 2, 0] < out[0, 3, 0]  # far pixels fade more


def test_fog_darkens_far_pixels_more_in_a_render():
    spec = parse_spec(TWO)
    sc = build_scene(spec, sample_scene(spec, 0, 0))
    r = get_renderer(160, 120)
    clear = r.render(sc, environment_of(sc))
    env = environment_of(sc) | {"fog_visibility_m": 40.0}
    foggy = r.render(sc, env)
    near = (clear.depth > 0) & (clear.depth < 8)
    far = clear.depth > 30
    change = np.abs(foggy.rgb.astype(float) - clear.rgb.astype(float)).mean(-1)
    assert change[far].mean() > change[near].mean() + 20


def test_variants_are_deterministic_and_differ():
    text = TWO.replace("environment: {sun_elevation_deg: 50, cloud_cover: 0}",
                       "environment: {sun_elevation_deg: 50, cloud_cover: 0, rain_mm_h: 20}")
    spec = parse_spec(text)
    sc = build_scene(spec, sample_scene(spec, 0, 0))
    r = get_renderer(160, 120)
    env = environment_of(sc)
    a = r.render(sc, env, rng=sc.params.rng("weather:base"))
    b = r.render(sc, env, rng=sc.params.rng("weather:base"))
    c = r.render(sc, env, rng=sc.params.rng("weather:other"))
    assert np.array_equal(a.rgb, b.rgb) and not np.array_equal(a.rgb, c.rgb)


def _psnr(a, b, mask=None):
    d = (a.astype(float) - b.astype(float)) ** 2
    mse = d[mask].mean() if mask is not None else d.mean()
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def test_composite_agrees_with_exact_remove_rendering():
    spec = parse_spec(TWO.replace("count: 1, distance_m: 25, lateral_m: 0.3", "count: 2, distance_m: [15, 30], lateral_m: [-4, 4]"))
    sc = build_scene(spec, sample_scene(spec, 1, 0))
    r = get_renderer(160, 120)
    env = environment_of(sc)
    comp = CompositeRenderer(r, sc, env)
    ids = [o.roi_id for o in sc.objects]
    for sub in ([ids[0]], ids[1:], ids):
        exact = r.render(sc, env, rois=sub)
        fast = comp.frame(sub)
        assert np.array_equal(exact.ids, fast.ids)  # same instance masks, so the same ground truth
        assert {k: v.visible_box for k, v in exact.objects.items()} == {k: v.visible_box for k, v in fast.objects.items()}
        overlap = sum(comp.shadow_mask(i).astype(int) for i in sub) >= 2
        assert _psnr(exact.rgb, fast.rgb, ~overlap) >= 35.0


def test_masking_modes_are_dispatched_in_permute():
    from oddsuite.permute import MODES, VariantFrames, cutout

    spec = parse_spec(TWO)
    sc = build_scene(spec, sample_scene(spec, 0, 0))
    r = get_renderer(160, 120)
    env = environment_of(sc)
    v = VariantFrames(r, sc, env, lambda: sc.params.rng("weather:base"))
    ids = v.all_ids
    assert set(MODES) == {"remove", "isolate", "cutout"}
    assert v.frame("remove", ids) is v.full
    assert np.array_equal(v.frame("isolate", ids[:1]).rgb, r.render(sc, env, ids[:1], False).rgb)
    assert np.array_equal(v.frame("cutout", ids[1:]).rgb, cutout(v.full, ids[1:]).rgb)
    with pytest.raises(SpecError, match="unknown masking mode 'blur'; expected one of: remove, isolate, cutout"):
        v.frame("blur", ids)


def test_no_silent_fixed_seed_fallbacks():
    # the sampled plan and every drawing effect need the scene's own Generator
    with pytest.raises(ValueError, match="rng=params.rng"):
        subsets("sampled", list(range(5)), n_sampled=3)
    text = TWO.replace("environment: {sun_elevation_deg: 50, cloud_cover: 0}",
                       "environment: {sun_elevation_deg: 50, cloud_cover: 0, rain_mm_h: 20}")
    spec = parse_spec(text)
    sc = build_scene(spec, sample_scene(spec, 0, 0))
    r = get_renderer(160, 120)
    with pytest.raises(ValueError, match="weather Generator"):
        r.render(sc, environment_of(sc))
    with pytest.raises(ValueError, match="weather Generator"):
        CompositeRenderer(r, sc, environment_of(sc)).frame([0])


def test_variants_read_the_effect_declarations():
    from oddsuite.odd import effects
    from oddsuite.odd.spec import overrides_model

    assert list(overrides_model().model_fields) == effects.overridable() == [
        "sun_elevation_deg", "sun_azimuth_deg", "cloud_cover", "fog_visibility_m", "rain_mm_h", "snow_mm_h",
        "road_surface", "shadows", "headlights"]
    spec = parse_spec(TWO + "variants:\n  - name: base\n  - {name: night, sun_elevation_deg: -20}\n"
                            "  - {name: dark_no_lights, sun_elevation_deg: -20, headlights: false}\n")
    sc = build_scene(spec, sample_scene(spec, 0, 0))
    base, night, dark = (environment_of(sc, v) for v in spec.variants)
    assert base["headlights"] is False and night["headlights"] is True and dark["headlights"] is False
    assert base["road_surface"] == "dry" and base["shadows"] is True
    with pytest.raises(SpecError, match=r"variants\.1\.fog: unknown key \(expected one of: name, sun_elevation_deg"):
        parse_spec(TWO + "variants:\n  - name: base\n  - {name: x, fog: 3}\n")
