"""The COCO engine on real suites: the shipped default detector (models/default) evaluated on
rendered suites; every one of the 12 figures of every slice metrics.json reports EQUALS
pycocotools run on that slice alone (==, no tolerance), and so do the per-class APs."""
import json
from pathlib import Path

import pytest

from coco_reference import per_class_reference, pycocotools_alone, suite_slices
from oddsuite.metrics.coco import STAT_NAMES, SliceEvaluator

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "default"


def _groups(gt: dict) -> dict[tuple[str, str | None], list[int]]:
    """(metrics.json map section, slice name) -> image ids, as summary.score_predictions cuts them."""
    out: dict[tuple[str, str | None], list[int]] = {}
    full = [im for im in gt["images"] if im["mode"] == "full"]
    perm = [im for im in gt["images"] if im["mode"] != "full"]
    out[("full", None)] = [im["id"] for im in full]
    out[("permutation", None)] = [im["id"] for im in perm]
    out[("isolated", None)] = [im["id"] for im in perm if len(im["subset"]) == 1]
    for section, ims, key in (("full_by_variant", full, lambda im: im["variant"]),
                              ("permutation_by_variant", perm, lambda im: im["variant"]),
                              ("permutation_by_mode", perm, lambda im: im["mode"]),
                              ("permutation_by_subset_size", perm, lambda im: str(len(im["subset"])))):
        for im in ims:
            out.setdefault((section, key(im)), []).append(im["id"])
    return out


def check_results_folder(suite: Path, res: Path) -> int:
    gt = json.loads((suite / "annotations.json").read_text())
    preds = json.loads((res / "predictions.json").read_text())
    metrics = json.loads((res / "metrics.json").read_text())
    assert preds, "the detector found nothing: the check would be empty"
    checked = 0
    for (section, name), ids in _groups(gt).items():
        fig = metrics["map"][section] if name is None else metrics["map"][section][name]
        want, _, ev = pycocotools_alone(gt, preds, ids)
        assert {s: fig[s] for s in STAT_NAMES} == want, (section, name)  # exact, through JSON
        checked += len(STAT_NAMES)
        if "per_class" in fig:
            assert {k: (v["ap"], v["ap50"]) for k, v in fig["per_class"].items()} == per_class_reference(ev)
    ev = SliceEvaluator(gt, preds)
    for name, ids in suite_slices(gt).items():
        want, _, _ = pycocotools_alone(gt, preds, ids)
        assert {s: ev.stats(ids)[s] for s in STAT_NAMES} == want, name
        checked += len(STAT_NAMES)
    return checked


@pytest.fixture(scope="module")
def default_detector():
    from oddsuite.models import load_detector

    return load_detector(MODEL)


def test_tiny_suite_with_the_default_detector_equals_pycocotools(tiny_suite, default_detector, tmp_path,
                                                                  one_torch_thread):
    from oddsuite.evaluate import evaluate_suite

    res = tmp_path / "res"
    evaluate_suite(tiny_suite, default_detector, res, progress=False)
    assert check_results_folder(tiny_suite, res) >= 12 * 10
    run = json.loads((res / "run.json").read_text())
    assert run["engine"]["name"] == "hotcoco" and run["engine"]["version"] == run["versions"]["hotcoco"]


def test_annotations_full_json_gives_the_full_scene_map_in_plain_pycocotools(tiny_suite, tmp_path):
    """annotations_full.json holds the full-scene images only (same ids as annotations.json):
    plain COCOeval on it and a predictions.json is the full-scene mAP of metrics.json."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from oddsuite.evaluate import score
    from oddsuite.suite import verify_suite

    everything = json.loads((tiny_suite / "annotations.json").read_text())
    full = json.loads((tiny_suite / "annotations_full.json").read_text())
    assert full["images"] == [im for im in everything["images"] if im["mode"] == "full"]
    ids = {im["id"] for im in full["images"]}
    assert full["annotations"] == [a for a in everything["annotations"] if a["image_id"] in ids]
    assert full["categories"] == everything["categories"] and full["info"] == everything["info"]
    manifest = json.loads((tiny_suite / "manifest.json").read_text())
    assert "annotations_full.json" in manifest["files"] and verify_suite(tiny_suite).ok
    # a detector that finds every second box, on every image of the suite
    preds = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
              "score": 0.5 + a["id"] % 7 / 20} for a in everything["annotations"] if a["id"] % 2]
    (tmp_path / "predictions.json").write_text(json.dumps(preds))
    metrics = score(tiny_suite, tmp_path / "predictions.json")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tiny_suite / "annotations_full.json"))
        ev = COCOeval(coco, coco.loadRes([p for p in preds if p["image_id"] in ids]), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert [metrics["map"]["full"][s] for s in STAT_NAMES] == [None if v < 0 else float(v) for v in ev.stats]


@pytest.mark.slow
def test_shipped_spec_at_low_resolution_equals_pycocotools(default_detector, tmp_path, one_torch_thread):
    from oddsuite.evaluate import evaluate_suite
    from oddsuite.suite import generate_suite

    text = (ROOT / "odd_specs" / "urban_day.yaml").read_text()
    assert "  width: 640\n" in text and "  height: 480\n" in text
    spec = tmp_path / "urban_day.yaml"
    spec.write_text(text.replace("  width: 640\n", "  width: 224\n").replace("  height: 480\n", "  height: 168\n"))
    generate_suite(spec, tmp_path / "suite", scenes=2, seed=5, workers=1)
    evaluate_suite(tmp_path / "suite", default_detector, tmp_path / "res", progress=False)
    assert check_results_folder(tmp_path / "suite", tmp_path / "res") >= 12 * 10
