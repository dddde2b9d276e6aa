"""The suite on disk: determinism, verify, resume, COCO validity, boxes vs instance masks."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pycocotools.coco import COCO

from oddsuite.errors import SuiteError
from oddsuite.run import LocalExecutor, TaskFailure
from oddsuite.suite import generate_suite, verify_suite
from oddsuite.suite.generate import render_scene


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oddsuite.cli", *args], capture_output=True, text=True)


def test_same_spec_and_seed_give_byte_identical_suites_with_one_or_two_workers(tiny_spec, tiny_suite, tmp_path):
    out = tmp_path / "again"
    generate_suite(tiny_spec, out, scenes=3, seed=11, workers=2)
    a = sorted(p.relative_to(tiny_suite).as_posix() for p in tiny_suite.rglob("*") if p.is_file() and ".state" not in p.parts)
    b = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and ".state" not in p.parts)
    assert a == b and len(a) > 20
    for rel in a:
        assert (tiny_suite / rel).read_bytes() == (out / rel).read_bytes(), rel


def test_annotations_load_in_pycocotools_and_records_are_complete(tiny_suite):
    coco = COCO(str(tiny_suite / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["car", "person"]
    imgs = coco.loadImgs(coco.getImgIds())
    scenes = pd.read_parquet(tiny_suite / "scenes.parquet")
    assert len(scenes) == len(imgs)
    assert {"scene_id", "subset", "subset_size", "variant", "mode", "is_full", "environment.fog_visibility_m",
            "scenery.road_surface", "camera.pitch_deg", "environment.illumination"} <= set(scenes.columns)
    # variant overrides are what the rows say the image shows
    assert (scenes.loc[scenes.variant == "fog", "environment.fog_visibility_m"] == 60).all()
    assert set(scenes["mode"]) == {"full", "remove", "isolate", "cutout"}
    for a in coco.loadAnns(coco.getAnnIds()):
        assert isinstance(a["bbox"][0], float) and isinstance(a["area"], float)
        assert a["iscrowd"] == int(a["visible_fraction"] < 0.1)
    rois = pd.read_parquet(tiny_suite / "rois.parquet")
    assert set(rois.category) <= {"car", "person"} and (rois.x_m > 2).all()


def test_boxes_match_instance_masks(tiny_spec):
    """In isolate mode the object stands alone on neutral grey: its non-grey pixels are its mask."""
    from oddsuite.odd import load_spec, sample_scene
    from oddsuite.permute import environment_of
    from oddsuite.render import get_renderer
    from oddsuite.scenes import build_scene

    spec = load_spec(tiny_spec)
    sc = build_scene(spec, sample_scene(spec, 2, 0))
    r = get_renderer(160, 120)
    env = environment_of(sc, spec.variants[0]) | {"rain_mm_h": 0.0}
    full = r.render(sc, env)
    for o in sc.objects:
        alone = r.render(sc, env, rois=[o.roi_id], scenery=False)
        st = alone.objects[o.roi_id]
        assert st.visible_box is not None
        ys, xs = np.nonzero(np.abs(alone.rgb.astype(int) - 128).sum(-1) > 6)
        x, y, w, h = st.visible_box
        assert abs(xs.min() - x) <= 1 and abs(ys.min() - y) <= 1
        assert abs(xs.max() + 1 - (x + w)) <= 1 and abs(ys.max() + 1 - (y + h)) <= 1
        assert st.visible_fraction > 0.95  # alone, inside the frame: fully visible
        # in the full scene, the mask is a subset of the pixels the object covers alone
        m_full, m_alone = full.ids == o.roi_id, alone.ids == o.roi_id
        assert (m_full & ~m_alone).sum() == 0
        assert full.objects[o.roi_id].visible_px == m_full.sum()


def test_verify_catches_changed_byte_deleted_and_unexpected_file(tiny_suite, tmp_path):
    s = tmp_path / "copy"
    shutil.copytree(tiny_suite, s)
    r = _cli("verify", str(s))
    assert r.returncode == 0 and "ok:" in r.stdout
    img = sorted((s / "images").rglob("*.png"))[3]
    data = bytearray(img.read_bytes())
    data[100] ^= 1
    img.write_bytes(bytes(data))
    gone = sorted((s / "images").rglob("*.png"))[5]
    gone.unlink()
    (s / "images" / "extra.png").write_bytes(b"x")
    rep = verify_suite(s)
    assert rep.altered == [img.relative_to(s).as_posix()]
    assert rep.missing == [gone.relative_to(s).as_posix()]
    assert rep.unexpected == ["images/extra.png"]
    r = _cli("verify", str(s))
    assert r.returncode == 1 and "altered:" in r.stdout and "missing:" in r.stdout and "unexpected:" in r.stdout


class _FailOn:
    """An executor that runs scenes in-process and raises on one scene id (a crash mid-run)."""

    def __init__(self, bad: int):
        self.bad, self.calls = bad, []

    def map(self, fn, items, key=lambda x: x):
        for it in items:
            self.calls.append(key(it))
            if key(it) == self.bad:
                yield it, TaskFailure(key(it), "RuntimeError: worker crashed", 1)
            else:
                yield it, fn(it)


def test_interrupted_generate_resumes_without_redoing_scenes(tiny_spec, tiny_suite, tmp_path):
    out = tmp_path / "resume"
    ex = _FailOn(bad=1)
    with pytest.raises(SuiteError, match="scene 1: RuntimeError: worker crashed"):
        generate_suite(tiny_spec, out, scenes=3, seed=11, executor=ex)
    assert not (out / "manifest.json").exists()
    # a half-written temp file from a killed writer must not survive or be counted
    (out / "images" / "000000" / ".partial.png.tmp").write_bytes(b"half")
    ex2 = LocalExecutor(1)
    done: list[int] = []
    orig = ex2.map

    def spy(fn, items, key=lambda x: x):
        items = list(items)
        done.extend(key(i) for i in items)
        return orig(fn, items, key)

    ex2.map = spy
    res = generate_suite(tiny_spec, out, scenes=3, seed=11, executor=ex2)
    assert done == [1] and res.resumed == 2
    assert not (out / "images" / "000000" / ".partial.png.tmp").exists()  # swept: the suite verifies
    assert verify_suite(out).ok
    assert (out / "manifest.json").read_bytes() == (tiny_suite / "manifest.json").read_bytes()


def test_resume_refuses_a_different_seed(tiny_spec, tiny_suite, tmp_path):
    s = tmp_path / "copy"
    shutil.copytree(tiny_suite, s)
    with pytest.raises(SuiteError, match="another spec, seed or plan"):
        generate_suite(tiny_spec, s, scenes=3, seed=12)


def test_cli_generate_prints_count_and_bad_spec_exits_2(tmp_path, tiny_spec):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nobjects:\n  car: {count: 1, distance: 5}\n")
    r = _cli("generate", str(bad), "--out", str(tmp_path / "o"), "--scenes", "1")
    assert r.returncode == 2 and "bad.yaml:3" in r.stderr and "objects.car.distance" in r.stderr
    r = _cli("generate", str(tiny_spec), "--out", str(tmp_path / "o2"), "--scenes", "1", "--seed", "3",
             "--plan", "full", "--modes", "remove")
    assert r.returncode == 0, r.stderr
    # plan full: per variant, the full scene and its remove-mode image of the full ROI set
    assert "1 scenes, 4 images" in r.stdout
