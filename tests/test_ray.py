"""Scale-out on Ray: identical bytes to the local pool; failing tasks reported by scene id."""
from __future__ import annotations

import pytest

from oddsuite.errors import SuiteError
from oddsuite.run import LocalExecutor, TaskFailure
from oddsuite.suite import generate_suite, verify_suite

ray = pytest.importorskip("ray", reason="ray is a dev dependency (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def ray_ex():
    from oddsuite.run.ray_executor import RayExecutor

    import sys

    ex = RayExecutor(workers=2, retries=1)
    # Ray workers cannot import this test module: ship its functions by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ex
    ex.shutdown()


def _maybe_fail(i: int) -> int:
    if i == 3:
        raise RuntimeError("boom in scene 3")
    return i * i


@pytest.mark.parametrize("which", ["local", "ray"])
def test_a_raising_task_is_reported_by_id_and_the_rest_completes(which, request):
    ex = request.getfixturevalue("ray_ex") if which == "ray" else LocalExecutor(workers=2, retries=1)
    out = dict(ex.map(_maybe_fail, range(6)))
    assert {k: v for k, v in out.items() if k != 3} == {0: 0, 1: 1, 2: 4, 4: 16, 5: 25}
    assert isinstance(out[3], TaskFailure) and out[3].key == 3 and out[3].tries == 2
    assert "boom in scene 3" in out[3].error


def test_ray_suite_is_byte_identical_to_the_local_pool(ray_ex, tiny_spec, tiny_suite, tmp_path):
    out = tmp_path / "ray"
    generate_suite(tiny_spec, out, scenes=3, seed=11, executor=ray_ex)
    assert verify_suite(out).ok
    assert (out / "manifest.json").read_bytes() == (tiny_suite / "manifest.json").read_bytes()


def test_a_failing_scene_on_ray_is_named_and_finished_scenes_are_kept(ray_ex, tmp_path):
    spec = tmp_path / "spec.yaml"  # a truck, when there is one, stands where the car stands: it cannot be placed
    spec.write_text(
        "name: flaky\ncamera: {width: 96, height: 72}\nscenery: {road_type: rural}\nmax_placement_tries: 3\n"
        "objects:\n  car: {count: 1, distance_m: 12, lateral_m: 0, heading_deg: 0}\n"
        "  truck: {count: {choices: {0: 1, 1: 1}}, distance_m: 12, lateral_m: 0, heading_deg: 0}\n"
        "permutations: {plan: full}\n")
    with pytest.raises(SuiteError) as e:
        generate_suite(spec, tmp_path / "s", scenes=6, seed=0, executor=ray_ex)
    msg = str(e.value)
    from oddsuite.odd import load_spec, sample_scene

    s = load_spec(spec)
    bad = [i for i in range(6) if sample_scene(s, 0, i).counts["truck"] == 1]
    good = [i for i in range(6) if i not in bad]
    assert bad and good
    for i in bad:
        assert f"scene {i}:" in msg
    kept = sorted(int(p.stem.split("_")[1]) for p in (tmp_path / "s" / ".state").glob("scene_*.json"))
    assert kept == good  # the rest of the suite completed and is kept for the resume


def test_evaluate_on_ray_matches_in_process(ray_ex, tiny_suite, lively_model, tmp_path):
    from oddsuite.evaluate import evaluate_suite
    from oddsuite.models import DetectorRecipe
    from oddsuite.models import load_detector

    import torch

    det = load_detector(lively_model)
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # as the Ray workers: bit-identical floats need the same thread count
    try:
        evaluate_suite(tiny_suite, det, tmp_path / "a", progress=False)
    finally:
        torch.set_num_threads(n)
    evaluate_suite(tiny_suite, det, tmp_path / "b", progress=False, executor=ray_ex,
                   recipe=DetectorRecipe(str(lively_model)))
    for f in ("predictions.json", "metrics.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
