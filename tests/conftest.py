"""Shared fixtures: small real runs (a few scenes at low resolution)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("YOLO_OFFLINE", "1")

TINY_SPEC = """\
name: tiny
sampler: random
scenery:
  road_type: urban
  lanes: 2
  road_surface: {choices: {dry: 1, wet: 1}}
environment:
  sun_elevation_deg: [20, 60]
  rain_mm_h: {choices: {0: 1, 5: 1}}
camera:
  fov_deg: 60
  width: 160
  height: 120
objects:
  car: {count: [1, 2], distance_m: [8, 25], lateral_m: [-3, 3], heading_deg: {choices: [0, 180]}}
  person: {count: [1, 1], distance_m: [6, 15], lateral_m: [-5, 5]}
rules:
  - exclude: {environment.rain_mm_h: {gt: 0}, scenery.road_surface: dry}
permutations:
  plan: ablation
  modes: [remove, isolate, cutout]
variants:
  - name: base
  - name: fog
    fog_visibility_m: 60
"""


@pytest.fixture
def tiny_spec(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY_SPEC)
    return p


@pytest.fixture(scope="session")
def tiny_suite(tmp_path_factory) -> Path:
    """One small real suite shared by read-only tests."""
    from oddsuite.suite import generate_suite

    d = tmp_path_factory.mktemp("suite")
    spec = d / "tiny.yaml"
    spec.write_text(TINY_SPEC)
    generate_suite(spec, d / "suite", scenes=3, seed=11, workers=1)
    return d / "suite"


@pytest.fixture(scope="session")
def lively_model(tiny_suite, tmp_path_factory) -> Path:
    """A small real YOLO (random weights made lively on the suite's images) for the suite's classes."""
    import json

    import numpy as np
    from PIL import Image

    from oddsuite.models import save_model_dir
    from oddsuite.models.toy import lively_random_model

    coco = json.loads((tiny_suite / "annotations.json").read_text())
    images = [np.asarray(Image.open(tiny_suite / im["file_name"]).convert("RGB")) for im in coco["images"][:8]]
    model = lively_random_model(nc=2, images=images, imgsz=160, seed=0)
    return save_model_dir(model, tmp_path_factory.mktemp("m") / "lively", {0: "car", 1: "person"}, 160, name="lively")
