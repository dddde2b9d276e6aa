"""``oddsuite convert``: a pickled ultralytics checkpoint becomes yaml + safetensors + model.json,
which loads without unpickling and detects exactly what the checkpoint does."""
from __future__ import annotations

import json

import numpy as np
import pytest

from oddsuite.cli import main
from oddsuite.errors import ModelError
from oddsuite.fileio import sha256_file
from oddsuite.models import load_detector

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An ultralytics-style checkpoint: {"model": DetectionModel, "train_args": {...}}, pickled."""
    import torch

    from oddsuite.models.yolo import random_model

    model = random_model(nc=2, seed=3)
    model.names = {0: "car", 1: "person"}
    path = tmp_path_factory.mktemp("ckpt") / "yolo-mine.pt"
    torch.save({"model": model, "train_args": {"imgsz": 96}}, path)
    return path


def test_the_refusal_names_the_command_that_converts(checkpoint):
    with pytest.raises(ModelError, match=rf"oddsuite convert {checkpoint} --out DIR --trust-pickle"):
        load_detector(checkpoint)


def test_convert_writes_the_safe_form_that_detects_the_same(checkpoint, tmp_path, capsys):
    out = tmp_path / "converted"
    sha = sha256_file(checkpoint)
    assert main(["convert", str(checkpoint), "--out", str(out)]) == 2  # unpickling needs --trust-pickle
    assert "--trust-pickle" in capsys.readouterr().err and not out.exists()
    assert main(["convert", str(checkpoint), "--out", str(out), "--sha256", "0" * 64, "--trust-pickle"]) == 2
    assert "SHA-256 mismatch" in capsys.readouterr().err and not out.exists()

    assert main(["convert", str(checkpoint), "--out", str(out), "--sha256", sha, "--trust-pickle"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors", "model.yaml"]
    card = json.loads((out / "model.json").read_text())
    assert card["converted_from"] == {"file": "yolo-mine.pt", "sha256": sha}
    assert card["classes"] == {"0": "car", "1": "person"} and card["imgsz"] == 96
    assert f"--sha256 {sha256_file(out / 'model.safetensors')}" in capsys.readouterr().out

    pickled, safe = load_detector(checkpoint, trust_pickle=True), load_detector(out)  # no pickle on this path
    assert safe.info.format == "safetensors" and safe.classes == pickled.classes and safe.imgsz == 96
    images = [np.random.default_rng(i).integers(0, 256, (72, 120, 3), dtype=np.uint8) for i in range(3)]
    for a, b in zip(pickled.predict(images), safe.predict(images)):
        assert len(a) > 0
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)

    before = (out / "model.safetensors").read_bytes()
    assert main(["convert", str(checkpoint), "--out", str(out), "--trust-pickle"]) == 0  # again: the same bytes
    assert (out / "model.safetensors").read_bytes() == before


def test_convert_refuses_a_folder_holding_something_else(checkpoint, tmp_path, capsys):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["convert", str(checkpoint), "--out", str(tmp_path / "other"), "--trust-pickle"]) == 2
    assert "not a conversion of this checkpoint" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["notes.txt"]
    assert main(["convert", str(tmp_path / "other" / "notes.txt"), "--out", str(tmp_path / "x")]) == 2
