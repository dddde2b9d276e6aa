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
    from oddsuite.training.toy import lively_random_model

    coco = json.loads((tiny_suite / "annotations.json").read_text())
    images = [np.asarray(Image.open(tiny_suite / im["file_name"]).convert("RGB")) for im in coco["images"][:8]]
    model = lively_random_model(nc=2, images=images, imgsz=160, seed=0)
    return save_model_dir(model, tmp_path_factory.mktemp("m") / "lively", {0: "car", 1: "person"}, 160, name="lively")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread. On a shared, busy machine OpenMP threads that spin on taken
    cores make torch many times slower, and pool/Ray workers run one thread: CPU kernels give
    bit-identical floats only for the same thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_network(monkeypatch):
    """Block and record every attempt to reach another host; the test fails if one was made
    (nothing may download weights, fonts or data at run time)."""
    import socket

    attempts = []
    real_connect, real_gai = socket.socket.connect, socket.getaddrinfo

    def connect(self, addr):
        if self.family == getattr(socket, "AF_UNIX", None):
            return real_connect(self, addr)
        attempts.append(("connect", addr))
        raise OSError("network access blocked in tests")

    def getaddrinfo(host, *a, **k):
        if host in (None, "localhost", "127.0.0.1", "::1"):
            return real_gai(host, *a, **k)
        attempts.append(("getaddrinfo", host))
        raise socket.gaierror("network access blocked in tests")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    assert not attempts, f"network access attempted: {attempts}"
