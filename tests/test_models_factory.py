"""A user's own detector, named by its factory's import path: the README's Detector example,
written as ``my_pkg/detectors.py`` in the test folder, pinned and hashed into run.json, and
re-created in each worker of the process pool."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from oddsuite.errors import ModelError
from oddsuite.fileio import sha256_file
from oddsuite.models import load_detector

ROOT = Path(__file__).resolve().parents[1]
REF = "my_pkg.detectors:make_detector"
pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: the network the README example imports (``from my_pkg.net import MyNet``): a real, tiny one
NET = '''
import torch


class MyNet(torch.nn.Module):
    """A score per class for every 8x8 cell of the image; each cell is a box."""

    def __init__(self, num_classes: int = 2):
        super().__init__()
        self.cells = torch.nn.Conv2d(3, num_classes, kernel_size=8, stride=8)

    def forward(self, x):  # (3, H, W) in [0, 1]
        s = self.cells(x[None])[0].sigmoid()  # (C, h, w)
        c, h, w = s.shape
        cls, gy, gx = torch.meshgrid(torch.arange(c), torch.arange(h), torch.arange(w), indexing="ij")
        boxes = torch.stack([gx * 8, gy * 8, gx * 8 + 8, gy * 8 + 8], -1).reshape(-1, 4).float()
        return boxes, s.reshape(-1), cls.reshape(-1)
'''


def readme_detector_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Your own detector\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)[0]


@pytest.fixture
def my_pkg(tmp_path, monkeypatch):
    """(package folder, weights file): my_pkg with the README's detectors.py, on sys.path."""
    import torch
    from safetensors.torch import save_file

    pkg = tmp_path / "pkgs" / "my_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "net.py").write_text(NET)
    (pkg / "detectors.py").write_text(readme_detector_example())
    (pkg / "broken.py").write_text("def not_a_detector(**kw):\n    return object()\n"
                                   "def counted(weights=None):\n    open(weights + '.called', 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))  # spawned pool workers inherit sys.path
    for name in [m for m in sys.modules if m == "my_pkg" or m.startswith("my_pkg.")]:  # an earlier test's
        monkeypatch.delitem(sys.modules, name)

    torch.manual_seed(0)
    spec = {}
    exec(NET, spec)
    weights = tmp_path / "net.safetensors"
    save_file(spec["MyNet"]().state_dict(), weights)
    return pkg, weights


def test_the_factory_is_called_with_its_pinned_weights(my_pkg):
    pkg, weights = my_pkg
    sha = sha256_file(weights)
    det = load_detector(REF, sha256=sha, weights=weights)
    assert det.name == "my-net" and det.classes == {0: "car", 1: "person"}
    info = det.info
    assert info.sha256 == sha and info.format == "factory" and info.source == str(weights.resolve())
    assert info.files == {"my_pkg/detectors.py": sha256_file(pkg / "detectors.py"), "net.safetensors": sha}
    assert (info.recipe.path, info.recipe.weights) == (REF, str(weights.resolve()))
    import numpy as np

    d = det.predict([np.zeros((16, 24, 3), np.uint8)])[0]
    assert len(d) == 2 * 2 * 3 and d.boxes.max() == 24  # 2 classes x 2 x 3 cells of 8 px


def test_what_is_refused(my_pkg, tmp_path):
    pkg, weights = my_pkg
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        load_detector("my_pkg.broken:counted", sha256="0" * 64, weights=weights)
    assert not Path(str(weights.resolve()) + ".called").exists()  # the pin is checked before the factory runs
    with pytest.raises(ModelError, match="returned object, not a Detector"):
        load_detector("my_pkg.broken:not_a_detector")
    with pytest.raises(ModelError, match="no callable 'nowhere'"):
        load_detector("my_pkg.broken:nowhere")
    with pytest.raises(ModelError, match="module 'no_such_pkg' is not importable"):
        load_detector("no_such_pkg.detectors:make")
    with pytest.raises(ModelError, match="sha256 pins the weights file"):
        load_detector(REF, sha256="0" * 64)
    with pytest.raises(ModelError, match=r"calling it with \['size', 'weights'\] failed"):
        load_detector(REF, weights=weights, model_args={"size": 3})


def test_a_factory_detector_on_the_pool(my_pkg, tiny_suite, tmp_path):
    """--workers 2: each worker imports my_pkg and calls the factory again; same bytes as here."""
    from oddsuite.cli import main
    from oddsuite.evaluate import evaluate_suite

    pkg, weights = my_pkg
    sha = sha256_file(weights)
    evaluate_suite(tiny_suite, load_detector(REF, sha256=sha, weights=weights), tmp_path / "here", progress=False)
    rc = main(["evaluate", str(tiny_suite), "--model", REF, "--weights", str(weights), "--sha256", sha,
               "--workers", "2", "--out", str(tmp_path / "pool"), "--no-progress"])
    assert rc == 0
    for f in ("predictions.json", "outcomes.parquet", "metrics.json"):
        assert (tmp_path / "here" / f).read_bytes() == (tmp_path / "pool" / f).read_bytes(), f
    assert len(json.loads((tmp_path / "pool" / "predictions.json").read_text())) > 0
    model = json.loads((tmp_path / "pool" / "run.json").read_text())["detector"]["model"]
    assert model["files"] == {"my_pkg/detectors.py": sha256_file(pkg / "detectors.py"), "net.safetensors": sha}
    assert model["sha256"] == sha and model["format"] == "factory"


@pytest.mark.slow
def test_a_factory_detector_on_ray(my_pkg, tiny_suite, tmp_path, monkeypatch):
    """Ray workers import my_pkg from PYTHONPATH (they do not inherit the driver's sys.path)."""
    import os

    pytest.importorskip("ray")
    from oddsuite.evaluate import evaluate_suite
    from oddsuite.run.ray_executor import RayExecutor

    pkg, weights = my_pkg
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pkg.parent), os.environ.get("PYTHONPATH", "")]))
    det = load_detector(REF, weights=weights)
    evaluate_suite(tiny_suite, det, tmp_path / "here", progress=False)
    ex = RayExecutor(workers=2)
    try:
        evaluate_suite(tiny_suite, det, tmp_path / "ray", progress=False, executor=ex)
    finally:
        ex.shutdown()
    assert (tmp_path / "here" / "predictions.json").read_bytes() == (tmp_path / "ray" / "predictions.json").read_bytes()
