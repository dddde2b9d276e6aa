"""Evaluation sharded by scene over an executor gives the same bytes as in-process."""
from __future__ import annotations

import pytest

from oddsuite.errors import OddsuiteError
from oddsuite.evaluate import evaluate_suite
from oddsuite.models import DetectorRecipe
from oddsuite.models import load_detector
from oddsuite.run import LocalExecutor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_local_pool_sharding_matches_in_process(tiny_suite, lively_model, tmp_path):
    det = load_detector(lively_model)
    evaluate_suite(tiny_suite, det, tmp_path / "a", progress=False)
    evaluate_suite(tiny_suite, det, tmp_path / "b", progress=False, executor=LocalExecutor(2),
                   recipe=DetectorRecipe(str(lively_model)))
    for f in ("predictions.json", "metrics.json", "outcomes.parquet"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


class _Broken:
    """A recipe whose detector cannot be built in scene 1's worker (a bad node)."""

    def __init__(self, path):
        self.path = path

    def __hash__(self):
        return hash(self.path)

    def __eq__(self, other):
        return isinstance(other, _Broken) and other.path == self.path

    def load(self):
        return load_detector(self.path)


def test_a_failing_scene_is_named_and_the_rest_is_kept(tiny_suite, lively_model, tmp_path):
    det = load_detector(lively_model)

    class FailScene1(LocalExecutor):
        def map(self, fn, items, key=lambda x: x):
            from oddsuite.run import TaskFailure

            for it in items:
                yield (it, TaskFailure(1, "RuntimeError: node lost", 2)) if key(it) == 1 else (it, fn(it))

    with pytest.raises(OddsuiteError, match="scene 1: RuntimeError: node lost"):
        evaluate_suite(tiny_suite, det, tmp_path / "r", progress=False, executor=FailScene1(1),
                       recipe=_Broken(str(lively_model)))
    chunks = list((tmp_path / "r" / ".state" / "predictions").glob("chunk-*.jsonl"))
    assert len(chunks) == 2  # scenes 0 and 2 kept
    m = evaluate_suite(tiny_suite, det, tmp_path / "r", progress=False)  # resume predicts scene 1 only
    ref = evaluate_suite(tiny_suite, det, tmp_path / "ref", progress=False)
    assert m == ref


def test_resume_refuses_another_model_file_of_the_same_name(tiny_suite, lively_model, tmp_path):
    """The resume key holds the model's SHA-256: two different weights named alike never mix."""
    import shutil

    from oddsuite.models import save_model_dir
    from oddsuite.models.yolo import random_model

    other = save_model_dir(random_model(nc=2, seed=5), tmp_path / "other", {0: "car", 1: "person"}, 160, name="lively")
    a, b = load_detector(lively_model), load_detector(other)
    assert a.name == b.name and a.info.sha256 != b.info.sha256
    out = tmp_path / "res"
    evaluate_suite(tiny_suite, a, out, progress=False)
    shutil.rmtree(out / ".state" / "predictions")  # as if interrupted before any batch of a second run
    (out / ".state" / "predictions").mkdir()
    with pytest.raises(OddsuiteError, match="partial predictions of another run.*model_sha256"):
        evaluate_suite(tiny_suite, b, out, progress=False)
