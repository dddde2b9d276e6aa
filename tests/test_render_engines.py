"""Render engines: the spec's render block, raster supersampling, and the Cycles engine at
tiny resolution and few samples: identical labels across engines, the same bytes twice,
exact remove and isolate re-renders, the manifest's record of engine, device and
settings (and the measured time per frame beside it), and the Cycles worker drawing the
scene state of the declared effects (``render.effects``), not rules of its own.

The Cycles tests need the Blender Python (``make cycles-venv``; ``make test`` creates it);
without it they skip and say why."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from oddsuite.errors import RenderError, SpecError
from oddsuite.odd import parse_spec, sample_scene
from oddsuite.odd.spec import Render
from oddsuite.permute import environment_of
from oddsuite.render import get_engine
from oddsuite.render.cycles import cycles_unavailable
from oddsuite.scenes import build_scene
from oddsuite.suite import generate_suite, verify_suite
from oddsuite.suite.generate import PlanOptions

WHY = cycles_unavailable()
needs_cycles = pytest.mark.skipif(WHY is not None, reason=f"Cycles engine not installed here: {WHY}")

SPEC = """\
name: engines
sampler: random
scenery: {road_type: urban, lanes: 2, road_surface: wet}
environment: {sun_elevation_deg: 35, sun_azimuth_deg: 200, cloud_cover: 0.2}
camera: {fov_deg: 60, width: 64, height: 48, pitch_deg: -2}
objects:
  car: {count: 1, distance_m: [9, 12], lateral_m: [-1.5, 1.5], heading_deg: 0}
  person: {count: 1, distance_m: [6, 8], lateral_m: [-2.5, 2.5]}
permutations: {plan: ablation, modes: [remove, isolate]}
variants:
  - {name: fog, fog_visibility_m: 40}
"""
CYCLES = "render: {engine: cycles, samples: 4, denoise: true, threads: 2}\n"


def _spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# ----------------------------------------------------------------------------- the render block

@pytest.mark.parametrize("block, field, expect", [
    ("render: {engine: vulkan}\n", "render.engine", "'raster' or 'cycles'"),
    ("render: {engine: cycles, samples: 0}\n", "render.samples", "greater than or equal to 1"),
    ("render: {supersample: 9}\n", "render.supersample", "less than or equal to 4"),
    ("render: {engine: cycles, supersample: 2}\n", "render", "cycles anti-aliases through its samples"),
    ("render:\n  engine: cycles\n  sample: 8\n", "render.sample", "unknown key (expected one of: engine, samples"),
])
def test_render_block_errors_name_the_line_and_field(block, field, expect):
    text = SPEC + block
    line = SPEC.count("\n") + 1 + (2 if "sample: 8" in block else 0)
    with pytest.raises(SpecError) as e:
        parse_spec(text, source="s.yaml")
    msg = str(e.value)
    assert f"s.yaml:{line}: {field}: " in msg and expect in msg, msg


def test_render_block_defaults_to_the_rasterizer():
    spec = parse_spec(SPEC, source="s.yaml")
    assert spec.render == Render() and spec.render.engine == "raster" and spec.render.supersample == 1
    cy = parse_spec(SPEC + CYCLES, source="s.yaml").render
    assert (cy.engine, cy.samples, cy.denoise, cy.threads) == ("cycles", 4, True, 2)


def test_composite_permutations_are_refused_for_cycles():
    spec = parse_spec(SPEC + CYCLES, source="s.yaml")
    with pytest.raises(SpecError, match="composite is refused with render.engine cycles"):
        PlanOptions.from_spec(spec, renderer="composite")
    assert PlanOptions.from_spec(spec).renderer == "exact"
    # asked for in the spec itself: refused when the spec loads, with the line
    text = SPEC.replace("modes: [remove, isolate]}", "modes: [remove, isolate], renderer: composite}") + CYCLES
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "renderer: composite" in ln)
    with pytest.raises(SpecError, match=rf"s.yaml:{line}: permutations.renderer: composite is refused with "
                                        rf"render.engine: cycles"):
        parse_spec(text, source="s.yaml")
    assert parse_spec(text.replace(CYCLES, ""), source="s.yaml").permutations.renderer == "composite"


# ----------------------------------------------------------------------------- one set of effects

def test_the_cycles_request_is_the_scene_state_of_the_declared_effects():
    """What the worker is asked to draw comes from ``render.effects.scene_pass``, the state
    the rasterizer draws too: a change to an effect (or a new scene effect) reaches both."""
    from oddsuite.odd import effects
    from oddsuite.odd.effects import Dimension, Effect
    from oddsuite.render.cycles.protocol import environment
    from oddsuite.render.effects import headlights, implement, scene_pass, withdraw
    from oddsuite.render.effects.daylight import day_factor

    spec = parse_spec(SPEC, source="s.yaml")
    sc = build_scene(spec, sample_scene(spec, 5, 0))
    base = environment_of(sc)
    env = environment(scene_pass(base))
    assert json.loads(json.dumps(env)) == env  # plain JSON, as the protocol sends it
    assert np.isclose(env["sun_elevation_deg"], 35) and np.isclose(env["sun_azimuth_deg"], 200)
    assert env["road_state"] == "wet" and not env["markings_snow"] and not env["terrain_snow"]
    assert env["shadows"] and env["headlights"] == 0 and env["day"] == day_factor(35)

    night = environment(scene_pass(base | {"sun_elevation_deg": -20.0, "headlights": True, "road_surface": "snow"}))
    assert night["headlights"] == headlights.BEAM and night["day"] == 0 and night["sun_intensity"] == 0
    assert night["road_state"] == "snow" and night["markings_snow"] and night["terrain_snow"]
    assert environment(scene_pass(base | {"snow_mm_h": 3.0}))["terrain_snow"]  # snowfall covers the terrain
    assert not environment(scene_pass(base | {"shadows": False}))["shadows"]

    glare = effects.declare(Effect("glare", "toy: a brighter sun", dims=(Dimension("glare", "environment", 0.0),)))
    implement(glare, scene=lambda state, e: setattr(state, "sun_intensity", state.sun_intensity * 2), order=5)
    try:
        assert np.isclose(environment(scene_pass(base))["sun_intensity"], 2 * env["sun_intensity"])
    finally:
        withdraw("glare")


# ----------------------------------------------------------------------------- raster supersampling

def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def test_supersampling_approaches_the_reference_and_keeps_the_labels():
    spec = parse_spec(SPEC.replace("width: 64, height: 48", "width: 96, height: 72"), source="s.yaml")
    sc = build_scene(spec, sample_scene(spec, 3, 0))
    env = environment_of(sc) | {"fog_visibility_m": 10000.0}
    frames = {k: get_engine(Render(supersample=k), 96, 72).render(sc, env, rng=np.random.default_rng(0))
              for k in (1, 2, 4)}
    ref = frames[4].rgb
    assert _psnr(frames[2].rgb, ref) > _psnr(frames[1].rgb, ref) + 1.0
    for k in (2, 4):  # labels come from the native-resolution ID pass whatever k is
        assert np.array_equal(frames[k].ids, frames[1].ids)
        assert frames[k].objects == frames[1].objects
        assert frames[k].rgb.shape == (72, 96, 3)


# ----------------------------------------------------------------------------- Cycles

def test_the_scene_file_carries_every_part_with_its_role_pose_and_the_camera(tmp_path):
    from oddsuite.render.cycles.protocol import PROTOCOL, write_scene

    spec = parse_spec(SPEC, source="s.yaml")
    sc = build_scene(spec, sample_scene(spec, 5, 0))
    write_scene(sc, tmp_path / "scene.npz")
    with np.load(tmp_path / "scene.npz", allow_pickle=False) as z:
        header = json.loads(bytes(z["header"]).decode())
        assert header["protocol"] == PROTOCOL
        items = list(sc.scenery) + list(sc.objects)
        assert len(header["objects"]) == len(items)
        roles = {m["role"] for m in header["materials"]}
        assert {"asphalt", "lane_paint", "facade", "car_paint", "glass", "tyre", "skin", "cloth"} <= roles
        for i, item in enumerate(items):
            v, f, m = z[f"v{i}"], z[f"f{i}"], z[f"m{i}"]
            assert len(v) == sum(len(p.mesh.vertices) for p in item.asset.parts)
            assert f.min() >= 0 and f.max() < len(v) and len(m) == len(f) and m.max() < len(header["materials"])
            assert np.allclose(np.reshape(header["objects"][i]["pose"], (4, 4)), item.pose)
        rois = [o["roi_id"] for o in header["objects"] if o["roi_id"] is not None]
        assert rois == [o.roi_id for o in sc.objects]
        cam = header["camera"]
        assert (cam["width"], cam["height"]) == (64, 48) and np.isclose(cam["yfov"], sc.camera.yfov)
        assert np.allclose(np.reshape(cam["pose"], (4, 4)), sc.camera.pose)
        assert len(header["lights"]) == 2 and all(lt["type"] == "spot" for lt in header["lights"])


def test_a_missing_blender_python_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ODDSUITE_CYCLES_PYTHON", str(tmp_path / "nope" / "python"))
    spec = _spec(tmp_path, SPEC + CYCLES)
    with pytest.raises(RenderError, match="ODDSUITE_CYCLES_PYTHON=.*nope/python: no such file"):
        generate_suite(spec, tmp_path / "out", scenes=1, seed=5)


@pytest.fixture(scope="module")
def both_suites(tmp_path_factory):
    """The same spec and seed as a raster suite, and twice as a Cycles suite."""
    if WHY is not None:
        pytest.skip(f"Cycles engine not installed here: {WHY}")
    d = tmp_path_factory.mktemp("engines")
    out: dict = {"render": {}}
    for name, text in (("raster", SPEC), ("cycles", SPEC + CYCLES), ("cycles_again", SPEC + CYCLES)):
        spec = _spec(d, text, f"{name}.yaml")
        out["render"][name] = generate_suite(spec, d / name, scenes=1, seed=5, workers=1).render
        out[name] = d / name
    return out


@needs_cycles  # in the default run: CI checks the engines' labels and determinism
def test_labels_are_identical_across_engines(both_suites):
    r, c = both_suites["raster"], both_suites["cycles"]
    for name in ("annotations.json", "scenes.parquet", "rois.parquet"):
        assert (r / name).read_bytes() == (c / name).read_bytes(), name
    anns = json.loads((c / "annotations.json").read_text())
    assert {im["mode"] for im in anns["images"]} == {"full", "remove", "isolate"}
    assert len(anns["annotations"]) >= 4  # both ROIs labelled in several images


@needs_cycles  # in the default run: CI checks the engines' labels and determinism
def test_cycles_suite_is_the_same_bytes_twice_and_verifies(both_suites):
    a, b = both_suites["cycles"], both_suites["cycles_again"]
    ma, mb = (json.loads((x / "manifest.json").read_text()) for x in (a, b))
    assert ma["files"] == mb["files"]  # every image, label and table: the same SHA-256
    assert verify_suite(a).ok and verify_suite(b).ok
    raster = json.loads((both_suites["raster"] / "manifest.json").read_text())
    pngs = [k for k in ma["files"] if k.endswith(".png")]
    assert pngs and all(ma["files"][k] != raster["files"][k] for k in pngs)  # a different engine drew them


@pytest.mark.slow
@needs_cycles
def test_both_engines_see_the_same_geometry_through_the_same_camera(tmp_path):
    """Cycles' coverage (alpha of an isolate render) matches the rasterizer's instance mask."""
    from PIL import Image

    from oddsuite.render.cycles.protocol import environment
    from oddsuite.render.effects import scene_pass

    spec = parse_spec(SPEC + CYCLES, source="s.yaml")
    sc = build_scene(spec, sample_scene(spec, 5, 0))
    env = environment_of(sc)
    eng = get_engine(spec.render, 64, 48)
    eng.render(sc, env, scenery=False)  # loads the scene into the worker
    out = tmp_path / "iso.png"
    eng.worker.call({"op": "render", "env": environment(scene_pass(env)), "rois": None, "scenery": False, "samples": 4, "denoise": False, "seed": 1, "out": str(out)})
    alpha = np.asarray(Image.open(out))[..., 3] > 127
    mask = eng.labels.labels(sc, None, False)[1] >= 0
    iou = (alpha & mask).sum() / (alpha | mask).sum()
    assert mask.sum() > 20 and iou > 0.85, iou


@pytest.mark.slow
@needs_cycles
def test_cycles_bytes_do_not_depend_on_the_thread_count():
    spec = parse_spec(SPEC + CYCLES, source="s.yaml")
    sc = build_scene(spec, sample_scene(spec, 5, 0))
    env = environment_of(sc)
    one, two = (get_engine(Render(engine="cycles", samples=4, threads=t), 64, 48) for t in (1, 2))
    assert one.describe()["settings"]["threads"] == 1 and two.describe()["settings"]["threads"] == 2
    assert one.render(sc, env).rgb.tobytes() == two.render(sc, env).rgb.tobytes()


@needs_cycles  # in the default run: CI checks the engines' labels and determinism
def test_the_manifest_records_engine_device_settings_and_the_run_its_time(both_suites):
    man = json.loads((both_suites["cycles"] / "manifest.json").read_text())
    r = man["render"]
    assert r["engine"] == "cycles" and r["version"].startswith("5.0")
    assert r["device"] == "CPU" or r["device"].split(":")[0] in ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")
    assert r["settings"]["samples"] == 4 and r["settings"]["denoise"] is True and r["settings"]["threads"] == 2
    assert r["frames"] == 6  # full, 2 removes, 3 isolates
    # the time is measured anew by every run: reported by the run, kept out of the manifest (its identity)
    assert "seconds_per_frame" not in r and both_suites["render"]["cycles"]["seconds_per_frame"] > 0
    assert {k: v for k, v in both_suites["render"]["cycles"].items() if k != "seconds_per_frame"} == r
    raster = json.loads((both_suites["raster"] / "manifest.json").read_text())["render"]
    assert raster["engine"] == "raster" and raster["settings"]["supersample"] == 1


@pytest.mark.slow
@needs_cycles
def test_cycles_remove_and_isolate_rerender_exactly():
    spec = parse_spec(SPEC + CYCLES, source="s.yaml")
    sc = build_scene(spec, sample_scene(spec, 5, 0))
    env = environment_of(sc) | {"fog_visibility_m": 10000.0}
    eng = get_engine(spec.render, 64, 48)
    full = eng.render(sc, env)
    (a, b) = [o.roi_id for o in sc.objects]
    gone = eng.render(sc, env, rois=[a])
    where_b = full.ids == b
    assert where_b.sum() > 5 and not (gone.ids == b).any()
    diff = np.abs(full.rgb.astype(int) - gone.rgb.astype(int)).sum(-1)
    assert diff[where_b].mean() > 20  # the removed object's pixels now show what was behind it
    iso = eng.render(sc, env, rois=[b], scenery=False)
    bg = ~binary_dilation(iso.ids == b, iterations=2)  # the pixel filter spreads edges by ~1.5 px
    assert np.abs(iso.rgb[bg].astype(int) - 128).max() <= 1  # neutral background, as the rasterizer's
    assert np.abs(iso.rgb[iso.ids == b].astype(int) - 128).sum(-1).mean() > 10  # the object itself is drawn
    assert eng.render(sc, env).rgb.tobytes() == full.rgb.tobytes()  # and re-rendering is exact


@needs_cycles
def test_a_worker_failure_is_reported_with_its_cause():
    from oddsuite.render.cycles import get_worker

    with pytest.raises(RenderError, match="KeyError"):
        get_worker("cpu", 2).call({"op": "no-such-op"})
