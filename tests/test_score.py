"""``oddsuite score``: predictions made by any tool, scored into the results folder of
``evaluate`` (trace and report work on it); ultralytics-style files name images by stem."""
import hashlib
import json
from pathlib import Path

import pytest

from oddsuite import cli
from oddsuite.evaluate import score
from oddsuite.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]
#: a tool whose classes are numbered from 1 in its own order, as ultralytics writes them
TOOL_CLASSES = {1: "person", 2: "truck", 3: "car"}


@pytest.fixture(scope="module")
def export(tiny_suite, tmp_path_factory):
    from oddsuite.training.yolo_dataset import export_yolo

    data = export_yolo(tiny_suite, tmp_path_factory.mktemp("export") / "yolo", images="all", val_fraction=0.0)
    card = json.loads((data.parent / "export.json").read_text())
    return {int(f["image_id"]): Path(f["file"]) for f in card["files"]}  # suite image id -> exported file


def ultralytics_style(tiny_suite, export):
    """A perfect tool in ultralytics' results format: every visible box found at score 0.9,
    ``image_id`` the exported file's stem, ``file_name`` its name, ``category_id`` the tool's
    class index + 1 (person 1, car 3); plus one truck (a class the suite lacks) per image."""
    gt = json.loads((tiny_suite / "annotations.json").read_text())
    tool_id = {name: i for i, name in TOOL_CLASSES.items()}
    cats = {c["id"]: c["name"] for c in gt["categories"]}
    entries = []
    for a in gt["annotations"]:
        f = export[a["image_id"]]
        entries.append({"image_id": f.stem, "file_name": f.name, "category_id": tool_id[cats[a["category_id"]]],
                        "bbox": [round(v, 3) for v in a["bbox"]], "score": 0.9})
    for iid, f in export.items():
        entries.append({"image_id": f.stem, "file_name": f.name, "category_id": 2, "bbox": [0, 0, 4, 4],
                        "score": 0.5})
    return entries


def test_score_an_ultralytics_style_stems_file(tiny_suite, export, tmp_path, capsys):
    entries = ultralytics_style(tiny_suite, export)
    assert all(isinstance(e["image_id"], str) and not e["image_id"].isnumeric() for e in entries)
    path = tmp_path / "predictions_ultra.json"
    path.write_text(json.dumps(entries))
    out = tmp_path / "res"
    code = cli.main(["score", str(tiny_suite), "--predictions", str(path), "--out", str(out),
                     "--class-map", "1=person,3=car", "--drop-unmapped", "--name", "a-tool"])
    text = capsys.readouterr().out
    assert code == 0, text
    for f in ("predictions.json", "outcomes.parquet", "metrics.json", "run.json"):
        assert (out / f).is_file(), f
    assert "full-scene mAP" in text and f"{len(entries)} entries" in text

    suite = load_suite(tiny_suite)
    gt = suite.gt
    preds = json.loads((out / "predictions.json").read_text())
    # in suite ids: every annotation of the suite, at its own image and category
    assert sorted((p["image_id"], p["category_id"], tuple(p["bbox"])) for p in preds) == \
        sorted((a["image_id"], a["category_id"], tuple(round(v, 3) for v in a["bbox"])) for a in gt["annotations"])
    m = json.loads((out / "metrics.json").read_text())
    assert m["map"]["full"]["map"] == 1.0 and m["map"]["permutation"]["map"] == 1.0  # a perfect tool
    assert m["outcomes"]["full"]["hit"]["value"] == 1.0
    n_images = len(gt["images"])
    assert m["dropped_classes"]["by_class"] == {"category_id 2": {"n": n_images, "n_above_conf": n_images}}
    run = json.loads((out / "run.json").read_text())
    src = run["predictions_source"]
    assert src["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and src["path"] == str(path.resolve())
    assert src["image_id_forms"] == {"file name": len(entries)}
    assert src["class_map"] == {"1": "person", "3": "car"} and src["drop_unmapped"] is True
    assert run["detector"]["name"] == "a-tool" and run["engine"]["name"] == "hotcoco"
    assert run["predictions_sha256"] == hashlib.sha256((out / "predictions.json").read_bytes()).hexdigest()
    assert run["suite"]["manifest_sha256"] == suite.manifest_sha256

    # the same through the Python API, and trace and report work on the folder
    again = score(tiny_suite, entries, class_map={"1": "person", "3": "car"}, drop_unmapped=True)
    assert again == m
    assert cli.main(["trace", str(out), "--min-support", "2"]) == 0
    assert cli.main(["report", str(out), "--out", str(tmp_path / "report.html")]) == 0
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "a-tool" in html and src["sha256"] in html


def test_score_names_the_file_and_entry_of_an_unknown_image_or_class(tiny_suite, export, tmp_path, capsys):
    entries = ultralytics_style(tiny_suite, export)
    path = tmp_path / "bad.json"
    bad = entries[:3] + [dict(entries[3], image_id="000999_base_full_all", file_name="000999_base_full_all.png")]
    path.write_text(json.dumps(bad))
    code = cli.main(["score", str(tiny_suite), "--predictions", str(path), "--out", str(tmp_path / "r1"),
                     "--class-map", "1=person,3=car", "--drop-unmapped"])
    err = capsys.readouterr().err
    assert code == 2 and f"{path}: [3].image_id" in err and "000999_base_full_all" in err
    assert not (tmp_path / "r1" / "metrics.json").exists()
    # an integer id the suite lacks
    path.write_text(json.dumps([dict(entries[0], image_id=99999)]))
    assert cli.main(["score", str(tiny_suite), "--predictions", str(path), "--out", str(tmp_path / "r2"),
                     "--class-map", "1=person,3=car"]) == 2
    assert "[0].image_id: 99999 is no image id of the suite" in capsys.readouterr().err
    # a stem that fits an image in every scene folder is refused, not guessed
    path.write_text(json.dumps([dict(entries[0], image_id="base_full_all", file_name="base_full_all.png")]))
    assert cli.main(["score", str(tiny_suite), "--predictions", str(path), "--out", str(tmp_path / "r3"),
                     "--class-map", "1=person,3=car"]) == 2
    assert "fits 3 suite images" in capsys.readouterr().err
    # classes: the tool's ids without a class map, and a class the map leaves out
    path.write_text(json.dumps(entries))
    assert cli.main(["score", str(tiny_suite), "--predictions", str(path), "--out", str(tmp_path / "r4")]) == 2
    err = capsys.readouterr().err
    assert f"{path}: [" in err and "].category_id: 3 is no suite category (1=car, 2=person)" in err
    assert cli.main(["score", str(tiny_suite), "--predictions", str(path), "--out", str(tmp_path / "r5"),
                     "--class-map", "1=person,3=car"]) == 2
    assert "].category_id: 2 is not in the class map (1=person, 3=car)" in capsys.readouterr().err
    assert cli.main(["score", str(tiny_suite), "--predictions", str(path), "--out", str(tmp_path / "r6"),
                     "--class-map", "1=person,3=lorry"]) == 2
    assert "'lorry' is no suite category" in capsys.readouterr().err


def test_image_ids_by_suite_path_and_by_suite_id(tiny_suite):
    gt = json.loads((tiny_suite / "annotations.json").read_text())
    a = gt["annotations"][0]
    im = next(i for i in gt["images"] if i["id"] == a["image_id"])
    base = {"category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
    by_path = score(tiny_suite, [dict(base, image_id=im["file_name"])])
    by_id = score(tiny_suite, [dict(base, image_id=im["id"])])
    by_stem = score(tiny_suite, [dict(base, image_id=str(Path(im["file_name"]).with_suffix("")))])
    assert by_path == by_id == by_stem and by_id["counts"]["predictions"] == 1


def test_score_a_real_ultralytics_val_save_json(tiny_suite, tmp_path, one_torch_thread):
    """ultralytics' own val(save_json=True) of the shipped detector on an export of the suite: its
    predictions.json names images by stem and numbers the 6 model classes from 1."""
    from ultralytics import YOLO

    from oddsuite.models import load_detector
    from oddsuite.training.yolo_dataset import export_yolo

    det = load_detector(ROOT / "models" / "default")
    data = export_yolo(tiny_suite, tmp_path / "export", images="full", val_fraction=0.0)
    y = YOLO("yolov8n.yaml", task="detect")
    y.model = det.torch_model
    y.model.names = dict(det.classes)
    y.val(data=str(data), save_json=True, imgsz=det.imgsz, plots=False, batch=4, device="cpu", workers=0,
          project=str(tmp_path / "val"), name="v", exist_ok=True, verbose=False, conf=0.001)
    path = tmp_path / "val" / "v" / "predictions.json"
    entries = json.loads(path.read_text())
    assert entries and isinstance(entries[0]["image_id"], str)
    ids = {n: i + 1 for i, n in det.classes.items()}  # ultralytics: model class index + 1
    class_map = f"{ids['car']}=car,{ids['person']}=person"
    out = tmp_path / "res"
    assert cli.main(["score", str(tiny_suite), "--predictions", str(path), "--out", str(out),
                     "--class-map", class_map, "--drop-unmapped", "--name", "ultralytics-val"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["predictions_source"]["image_id_forms"] == {"file name": len(entries)}
    m = json.loads((out / "metrics.json").read_text())
    assert m["counts"]["predictions"] + m["dropped_classes"]["n"] == len(entries)
    n_full = sum(im["mode"] == "full" for im in json.loads((tiny_suite / "annotations.json").read_text())["images"])
    assert run["predictions_source"]["images_with_predictions"] <= n_full == m["map"]["full"]["n_images"]
