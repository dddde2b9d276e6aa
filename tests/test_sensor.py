"""The camera's sensor effects (issue #20) on small real renders: each parameter moves the
image the way its physics says, the pipeline leaves an ideal camera's image untouched,
noise follows its model and its seed policy, variants set the sensor, scenes.parquet
records it, trace slices on it, and bad values are clear spec errors."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pandas as pd
import pytest

from oddsuite.errors import SpecError
from oddsuite.odd import effects, parse_spec, sample_scene
from oddsuite.permute import VariantFrames, environment_of
from oddsuite.render import get_renderer
from oddsuite.render.effects import apply_sensor, noise_generator
from oddsuite.render.effects.noise import snr_db
from oddsuite.render.effects.sensor import decode, encode
from oddsuite.scenes import build_scene

W, H = 128, 96
STREET = f"""\
name: street
camera: {{fov_deg: 60, width: {W}, height: {H}, pitch_deg: -3, height_m: 1.5}}
environment: {{sun_elevation_deg: 40, cloud_cover: 0.2}}
scenery: {{road_type: urban, clutter: 1.5}}
objects:
  car: {{count: 1, distance_m: 10, lateral_m: 1, heading_deg: 0}}
  person: {{count: 1, distance_m: 8, lateral_m: -2, heading_deg: 90}}
"""


@pytest.fixture(scope="module")
def street():
    """(scene, clean full render) of a small urban street with an ideal camera."""
    spec = parse_spec(STREET)
    sc = build_scene(spec, sample_scene(spec, 5, 0))
    frame = get_renderer(W, H).render(sc, environment_of(sc))
    return sc, frame.rgb


def sensed(street, **sensor) -> np.ndarray:
    sc, rgb = street
    return apply_sensor(rgb, {**environment_of(sc), **sensor}, sc.camera.intrinsics, noise_generator(sc.params))


def laplacian_var(rgb: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(cv2.PSNR(a, b))


# ----------------------------------------------------------------------------- the ideal camera

def test_the_ideal_camera_leaves_the_image_as_it_is(street):
    sc, rgb = street
    env = environment_of(sc)
    assert not any(d.name in env for d in effects.dimensions("sensor"))  # the spec has no sensor
    assert sensed(street) is rgb
    # a sensor setting that changes nothing still runs the pipeline: its round trip is exact
    assert np.array_equal(sensed(street, motion_blur_deg=30.0), rgb)
    v = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert np.array_equal(encode(decode(v)), v)


# ----------------------------------------------------------------------------- each effect, monotonically

def test_more_exposure_is_brighter(street):
    means = [sensed(street, exposure_ev=ev).mean() for ev in (-2.0, -1.0, 0.5, 1.5)]
    assert means == sorted(means) and len(set(means)) == 4
    assert means[0] < street[1].mean() < means[2]


@pytest.mark.parametrize("key,values", [("defocus_blur_px", (1.5, 3.0, 6.0, 12.0)),
                                        ("motion_blur_px", (2.0, 5.0, 10.0, 20.0))])
def test_more_blur_has_less_high_frequency_energy(street, key, values):
    energy = [laplacian_var(street[1])] + [laplacian_var(sensed(street, **{key: v})) for v in values]
    assert all(a > b for a, b in zip(energy, energy[1:])), energy


def test_motion_blur_streaks_along_its_direction(street):
    def grad_energy(rgb):
        g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
        return np.mean(np.diff(g, axis=1) ** 2), np.mean(np.diff(g, axis=0) ** 2)

    gx0, gy0 = grad_energy(street[1])
    gx_h, gy_h = grad_energy(sensed(street, motion_blur_px=12.0, motion_blur_deg=0.0))
    gx_v, gy_v = grad_energy(sensed(street, motion_blur_px=12.0, motion_blur_deg=90.0))
    assert gx_h / gx0 < gy_h / gy0  # a horizontal streak smooths along x more than along y
    assert gy_v / gy0 < gx_v / gx0


def test_lower_jpeg_quality_is_further_from_the_clean_image(street):
    clean = street[1]
    scores = [psnr(clean, sensed(street, jpeg_quality=q)) for q in (95, 70, 40, 10)]
    assert all(a > b for a, b in zip(scores, scores[1:])), scores
    assert np.array_equal(sensed(street, jpeg_quality=100), clean)  # 100: no JPEG step


def test_more_iso_is_noisier(street):
    clean = street[1].astype(np.float64)
    stds = [float((sensed(street, iso=iso).astype(np.float64) - clean).std()) for iso in (400.0, 1600.0, 6400.0, 25600.0)]
    assert all(a < b for a, b in zip(stds, stds[1:])), stds


def test_noise_follows_its_photon_and_read_noise_model():
    """A flat 18 % grey field at ISO 3200: the measured SNR of the linear values is the
    model's (shot noise + read noise), to within sampling error."""
    grey = encode(np.full((200, 200, 3), 0.18, np.float32))
    K = np.array([[100.0, 0, 100], [0, 100.0, 100], [0, 0, 1]])
    out = apply_sensor(grey, {"iso": 3200.0, "tone_mapping": "linear"}, K, np.random.default_rng(1))
    x = decode(out).astype(np.float64)
    x0 = float(decode(grey)[0, 0, 0])
    measured = 20 * math.log10(x0 / x.std())
    assert abs(measured - snr_db(3200.0, x0)) < 0.5  # quantization to 8 bits adds a little noise


def test_vignetting_darkens_the_corners_by_its_strength():
    flat = np.full((90, 120, 3), 200, np.uint8)
    K = np.array([[100.0, 0, 60], [0, 100.0, 45], [0, 0, 1]])
    ratios = []
    for v in (0.2, 0.4, 0.7):
        lin = decode(apply_sensor(flat, {"vignetting": v}, K)).astype(np.float64)
        corner, centre = lin[0, 0, 0], lin[45, 60, 0]
        ratios.append(corner / centre)
        assert corner / centre == pytest.approx(1 - v, abs=0.02)  # light lost at the corner
    assert ratios == sorted(ratios, reverse=True)


def test_tone_curves_roll_highlights_off_instead_of_clipping(street):
    def clipped(rgb):
        return float((rgb == 255).any(-1).mean())

    linear = sensed(street, exposure_ev=2.5)
    assert clipped(linear) > 0.2
    for curve in ("reinhard", "aces"):
        out = sensed(street, exposure_ev=2.5, tone_mapping=curve)
        assert clipped(out) < clipped(linear) / 2, curve


# ----------------------------------------------------------------------------- the render path and the seed policy

ABLATION, FULL = "plan: ablation, modes: [remove, cutout]", "plan: full"
SUITE = """\
name: camera
sampler: random
scenery: {{road_type: urban, lanes: 2, clutter: 0}}
environment: {{sun_elevation_deg: [25, 50]}}
camera: {{fov_deg: 60, width: 96, height: 72}}
{sensor}objects:
  car: {{count: 1, distance_m: [8, 14], lateral_m: [-2, 2], heading_deg: 0}}
  person: {{count: 1, distance_m: [6, 10], lateral_m: [-3, 3]}}
permutations: {{{perm}}}
variants:
  - name: base
  - {{name: cheap_camera, iso: 6400, jpeg_quality: 30}}
"""


def test_every_permutation_gets_the_full_scenes_sensor_and_noise():
    """Cutout keeps the subset's pixels of the full render; with pointwise sensor effects
    and one noise field per scene, those pixels are equal after the sensor too."""
    spec = parse_spec(SUITE.format(sensor="sensor: {iso: 3200, exposure_ev: 0.5}\n", perm=ABLATION))
    params = sample_scene(spec, 3, 0)
    sc = build_scene(spec, params)
    env = environment_of(sc, spec.variants[0])
    assert env["iso"] == 3200 and env["jpeg_quality"] == 100
    v = VariantFrames(get_renderer(96, 72), sc, env, lambda: params.rng("weather:base"))
    assert not np.array_equal(v.full.rgb, v.scene_full.rgb)  # the sensor ran on the full scene
    sub = (sc.objects[0].roi_id,)
    cut = v.frame("cutout", sub)
    keep = cut.ids == sub[0]
    assert keep.sum() > 20
    assert np.array_equal(cut.rgb[keep], v.full.rgb[keep])
    assert not (cut.rgb[~keep] == 128).all()  # the grey mask is recorded by the camera too, noise and all
    removed = v.frame("remove", sub)
    before = v.renderer.render(sc, env, sub, True, params.rng("weather:base")).rgb
    same = (before == v.scene_full.rgb).all(-1)  # pixels equal before the sensor …
    assert np.array_equal(removed.rgb[same], v.full.rgb[same])  # … are equal after it


def _gen(folder, text, name, seed=7, scenes=1):
    from oddsuite.suite import generate_suite

    spec = folder / f"{name}.yaml"
    spec.write_text(text)
    generate_suite(spec, folder / name, scenes=scenes, seed=seed, workers=1)
    return folder / name


SENSOR_SUITE = SUITE.format(sensor="sensor: {iso: [100, 1600], exposure_ev: [-1, 1], defocus_blur_px: 1.5}\n",
                            perm="plan: ablation, modes: [cutout]")


@pytest.fixture(scope="module")
def sensor_suite(tmp_path_factory):
    """Three scenes with a sampled sensor, two variants (the second a cheap camera), cutout."""
    return _gen(tmp_path_factory.mktemp("sensor"), SENSOR_SUITE, "suite", scenes=3)


def test_sensor_suite_is_deterministic_and_records_the_sensor_by_variant(sensor_suite, tmp_path):
    again = _gen(tmp_path, SENSOR_SUITE, "again", scenes=1)  # scene 0 alone, in another run
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (sensor_suite, again))
    scene0 = {f: h for f, h in mb["files"].items() if f.startswith("images/")}
    assert len(scene0) == 2 * (1 + 3) and all(ma["files"][f] == h for f, h in scene0.items())  # noise included
    assert "opencv" in ma["packages"]
    df = pd.read_parquet(sensor_suite / "scenes.parquet")
    cols = [c for c in df.columns if c.startswith("sensor.")]
    assert sorted(cols) == sorted(f"sensor.{d.name}" for d in effects.dimensions("sensor"))
    base, cheap = df[df.variant == "base"], df[df.variant == "cheap_camera"]
    assert (base["sensor.jpeg_quality"] == 100).all() and (cheap["sensor.jpeg_quality"] == 30).all()
    assert (cheap["sensor.iso"] == 6400).all() and base["sensor.iso"].between(100, 1600).all()
    assert base["sensor.iso"].nunique() == 3 and base["sensor.exposure_ev"].nunique() == 3  # sampled per scene
    assert (df["sensor.defocus_blur_px"] == 1.5).all() and (df["sensor.tone_mapping"] == "linear").all()
    assert "scenery.road_surface" in df.columns and "environment.fog_visibility_m" in df.columns


def test_a_variant_alone_brings_the_sensor_and_a_spec_without_one_records_none(tmp_path):
    with_variant = parse_spec(SUITE.format(sensor="", perm=FULL))
    assert with_variant.sensor_given
    p = sample_scene(with_variant, 1, 0)
    assert p.sensor["jpeg_quality"] == 100 and p.flat()["sensor.iso"] == 0
    plain = parse_spec(SUITE.format(sensor="", perm=FULL).split("variants:")[0] + "variants:\n  - name: base\n")
    assert not plain.sensor_given and sample_scene(plain, 1, 0).sensor == {}
    assert all(not path.startswith("sensor.") for path, _ in plain.dimensions())
    d = _gen(tmp_path, SUITE.format(sensor="", perm=FULL), "variant_only")
    df = pd.read_parquet(d / "scenes.parquet")
    assert df.groupby("variant")["sensor.iso"].agg(set).to_dict() == {"base": {0}, "cheap_camera": {6400}}
    assert df.groupby("variant")["sensor.jpeg_quality"].agg(set).to_dict() == {"base": {100}, "cheap_camera": {30}}
    files = json.loads((d / "manifest.json").read_text())["files"]
    base_png = next(f for f in sorted(files) if "/base_full_" in f)
    assert files[base_png] != files[base_png.replace("/base_full_", "/cheap_camera_full_")]


def test_trace_slices_on_sensor_columns(sensor_suite):
    """Outcomes planted on a sensor condition (misses only in the cheap camera's images)
    over the real scenes.parquet of a sensor suite: trace's top slice names it."""
    from oddsuite.metrics.tables import with_parameters
    from oddsuite.trace import build_dimensions, trace_outcomes

    scenes = pd.read_parquet(sensor_suite / "scenes.parquet")
    full = scenes[scenes["mode"] == "full"]
    rows = [{"image_id": int(r.image_id), "scene_id": int(r.scene_id), "roi_id": roi, "category": cat,
             "outcome": "miss" if r.variant == "cheap_camera" else "hit", "ignore": False, "not_visible": False,
             "visible_fraction": 1.0} for r in full.itertuples() for roi, cat in ((0, "car"), (1, "person"))]
    table = with_parameters(pd.DataFrame(rows), scenes)
    dims, _ = build_dimensions(table)
    names = {dim.name for dim in dims}
    assert {"jpeg_quality", "iso", "exposure_ev"} <= names  # short names, like the environment's
    data = trace_outcomes(table, min_support=2)
    top = data["slices"][0]
    assert top["dimension"] in ("sensor.jpeg_quality", "sensor.iso", "variant"), top  # all three say the same
    assert top["rate"]["value"] == 1.0 and top["share_of_failures"] == 1.0
    assert (top["n"], top["failures"]) == (6, 6)  # 3 scenes x 2 ROIs of the cheap camera
    sliced = {d["column"] for d in data["dimensions"]}
    assert {"sensor.jpeg_quality", "sensor.iso", "sensor.exposure_ev"} <= sliced


# ----------------------------------------------------------------------------- spec errors

@pytest.mark.parametrize("yaml_text,line,path,words", [
    ("sensor: {iso: 200000}\n", 6, "sensor.iso", "200000 is out of range, expected 0 to 102400 ISO"),
    ("sensor:\n  tone_mapping: gamma\n", 7, "sensor.tone_mapping", "expected one of: linear, reinhard, aces"),
    ("sensor:\n  jpeg_quality: 55.5\n", 7, "sensor.jpeg_quality", "expected a whole number"),
    ("sensor:\n  isso: 100\n", 7, "sensor.isso", "unknown key (expected one of: defocus_blur_px"),
    ("sensor: {vignetting: [0.1, 1.5]}\n", 6, "sensor.vignetting", "light lost at the image corners"),
])
def test_bad_sensor_values_are_spec_errors(tmp_path, yaml_text, line, path, words):
    text = SUITE.format(sensor=yaml_text, perm=FULL)
    with pytest.raises(SpecError) as e:
        parse_spec(text, source="cam.yaml")
    msg = str(e.value)
    assert f"cam.yaml:{line}: {path}: " in msg and words in msg, msg


def test_bad_sensor_value_in_a_variant_is_a_spec_error():
    text = SUITE.format(sensor="", perm=FULL).replace("jpeg_quality: 30", "jpeg_quality: 0")
    with pytest.raises(SpecError) as e:
        parse_spec(text, source="cam.yaml")
    msg = str(e.value)
    assert "cam.yaml:12: variants.1.jpeg_quality: " in msg and "greater than or equal to 1" in msg, msg
