"""Trace on hand-made outcome tables whose failure conditions are planted, with the answers
worked out here: the planted condition must come out as the top slice with the right
counts, and the rule tree must name it."""
import json

import numpy as np
import pandas as pd
import pytest

from oddsuite.errors import OddsuiteError
from oddsuite.metrics.stats import wilson_interval
from oddsuite.trace import build_dimensions, failure_rows, trace_outcomes, trace_results
from oddsuite.trace.influence import influence_ranking

CLASSES = ["car", "car", "person"]  # ROI 0, 1, 2 of every scene


def fog_of(scene: int, variant: str) -> float:
    """fogA: 30 m in even scenes, 500 m in odd ones; fogB: 120 m / 30 m; base: no fog.
    So fog < 50 m falls on half of each fog variant, never on one variant alone."""
    if variant == "base":
        return 10000.0
    if variant == "fogA":
        return 30.0 if scene % 2 == 0 else 500.0
    return 120.0 if scene % 2 == 0 else 30.0


def outcome_table(fails, n_scenes: int = 40, with_permutations: bool = True) -> pd.DataFrame:
    """Full-scene rows (mode full) of every (scene, variant, ROI), failing where
    ``fails(scene, variant, roi, fog)``; plus isolated permutation rows, all hits, and one
    ignore row per scene that is a miss (neither may change the full-scene trace)."""
    rng = np.random.default_rng(0)
    rows = []
    image_id = 0
    for s in range(n_scenes):
        sun = float(rng.uniform(10, 60))
        surface = "wet" if s % 3 == 0 else "dry"
        for v in ("base", "fogA", "fogB"):
            fog = fog_of(s, v)
            scene = {"scene_id": s, "variant": v, "visible_fraction": 1.0, "ignore": False, "not_visible": False,
                     "environment.fog_visibility_m": fog, "environment.sun_elevation_deg": sun,
                     "scenery.road_surface": surface}

            def roi(r):
                return {"roi_id": r, "category": CLASSES[r], "category_id": 1 if CLASSES[r] == "car" else 2,
                        "roi.distance_m": 8.0 + (7 * s + 13 * r) % 30, "roi.x_m": 8.0 + (7 * s + 13 * r) % 30,
                        "roi.y_m": float((s + 2 * r) % 5 - 2)}

            image_id += 1
            for r in range(3):
                rows.append({**scene, **roi(r), "image_id": image_id, "subset": "0,1,2", "subset_size": 3,
                             "mode": "full", "is_full": True, "outcome": "miss" if fails(s, v, r, fog) else "hit"})
            if v == "base":  # an ignore region (barely visible) that is missed: must not count
                rows.append({**rows[-1], "roi_id": 3, "visible_fraction": 0.05, "ignore": True, "outcome": "miss"})
            if with_permutations:
                for r in range(3):
                    image_id += 1
                    rows.append({**scene, **roi(r), "image_id": image_id, "subset": str(r), "subset_size": 1,
                                 "mode": "isolate", "is_full": False, "outcome": "hit"})
    return pd.DataFrame(rows)


def fog_misses(s, v, r, fog):
    return fog < 50


def test_planted_fog_condition_is_the_top_slice_with_exact_counts():
    out = outcome_table(fog_misses)
    data = trace_outcomes(out)
    # full-scene rows: 40 scenes x 3 variants x 3 ROIs = 360; fog < 50 m in 20 + 20 scene-variants
    assert data["overall"]["n"] == 360
    assert data["overall"]["failures"] == 120
    top = data["slices"][0]
    assert top["dimension"] == "environment.fog_visibility_m"
    assert top["condition"] == "fog_visibility_m < 50 m"
    assert top["level"] == "dense fog (< 50 m)"
    assert (top["n"], top["failures"], top["misses"], top["mislabels"]) == (120, 120, 120, 0)
    assert top["rate"]["value"] == 1.0
    assert top["rate"]["ci95"] == pytest.approx(list(wilson_interval(120, 120)))
    assert top["share_of_failures"] == 1.0
    assert top["diff"] == pytest.approx(1 - 1 / 3)
    assert top["score"] == pytest.approx(wilson_interval(120, 120)[0] - 1 / 3)
    # each fog variant holds half of the failures, at a lower rate: ranked below
    fog_a = next(s for s in data["slices"] if s["dimension"] == "variant" and s["level"] == "fogA")
    assert (fog_a["n"], fog_a["failures"], fog_a["share_of_failures"]) == (120, 60, 0.5)
    assert data["slices"].index(fog_a) > 0
    # the examples of the top slice are failing rows of the slice, from distinct scenes
    ex = top["examples"]
    assert 1 <= len(ex) <= 3 and len({e["scene_id"] for e in ex}) == len(ex)
    assert all(e["outcome"] == "miss" and e["mode"] == "full" and fog_of(e["scene_id"], e["variant"]) < 50 for e in ex)


def test_rule_tree_names_the_planted_condition():
    data = trace_outcomes(outcome_table(fog_misses))
    rules = data["rules"]
    assert [r["text"] for r in rules] == ["fog_visibility_m < 50 m", "fog_visibility_m ≥ 50 m"]
    first = rules[0]
    assert (first["n"], first["failures"], first["share_of_failures"], first["above_overall"]) == (120, 120, 1.0, True)
    assert rules[1]["failures"] == 0 and not rules[1]["above_overall"]
    assert data["tree"]["importance"] == {"environment.fog_visibility_m": 1.0}
    assert first["summary"] == "fog_visibility_m < 50 m: failure rate 1.00 [0.97, 1.00], n = 120, 100% of all failures"


def test_conjunction_rule_fog_and_class():
    # persons fail in fog under 200 m; everything else is detected
    data = trace_outcomes(outcome_table(lambda s, v, r, fog: fog < 200 and CLASSES[r] == "person"))
    top = data["rules"][0]
    texts = {c["text"] for c in top["conditions"]}
    assert texts == {"fog_visibility_m < 200 m", "class = person"}
    # persons in fog < 200 m: 40 scenes x (fogA even: 30 m, fogB: 120 m / 30 m) = 20 + 40 scene-variants
    assert (top["n"], top["failures"]) == (60, 60)
    assert top["share_of_failures"] == 1.0
    assert "fog_visibility_m < 200 m" in top["text"] and "class = person" in top["text"]
    # the top heatmap pairs the two planted dimensions; its cells carry counts and intervals
    pair = data["pairs"][0]
    assert set(pair["dimensions"]) == {"environment.fog_visibility_m", "category"}
    cells = {(pair["levels"][0][c["a"]], pair["levels"][1][c["b"]]): c for c in pair["cells"]}
    if pair["dimensions"][0] == "category":
        cells = {(b, a): c for (a, b), c in cells.items()}
    c = cells[("dense fog (< 50 m)", "person")]
    assert (c["n"], c["failures"]) == (40, 40)
    assert cells[("no fog (≥ 10 km)", "person")]["failures"] == 0
    # the heatmap's cells are slices too: the two failing cells come first, each explaining
    # its own failures (the second on the 320 rows outside the first, 20 failures there)
    first, second = data["slices"][:2]
    assert (first["kind"], first["condition"], first["n"], first["failures"]) == (
        "conjunction", "fog_visibility_m < 50 m and class = person", 40, 40)
    assert (second["condition"], second["conditional"]["n"], second["conditional"]["base_rate"]) == (
        "50 ≤ fog_visibility_m < 200 m and class = person", 20, 20 / 320)
    assert all((s["conditional"]["score"] or 0) <= 0 for s in data["slices"][2:])


def test_image_sets_and_ignore_rows():
    out = outcome_table(fog_misses)
    full = failure_rows(out, "full")
    assert len(full) == 360 and not full["ignore"].any()
    perm = failure_rows(out, "permutation")
    assert len(perm) == 360 and perm["failure"].sum() == 0
    assert len(failure_rows(out, "all")) == 720
    data = trace_outcomes(out, image_set="all")
    assert (data["overall"]["n"], data["overall"]["failures"]) == (720, 120)
    assert data["settings"]["image_set"] == "all"
    with pytest.raises(ValueError, match="image set"):
        failure_rows(out, "some")


def test_small_slices_are_listed_and_marked_not_hidden():
    out = outcome_table(fog_misses, n_scenes=6, with_permutations=False)  # 54 rows
    data = trace_outcomes(out, min_support=20)
    every = [lv for d in data["dimensions"] for lv in d["table"]]
    # every level of every dimension is a slice (or folded into one with the same rows), whatever its n
    shown = {s["condition"] for s in data["slices"]} | {c for s in data["slices"] for c in s["same_rows"]}
    assert {lv["condition"] for lv in every} <= shown
    assert sum(s["kind"] == "level" for s in data["slices"]) + sum(
        c in {lv["condition"] for lv in every} for s in data["slices"] for c in s["same_rows"]) == len(every)
    small = [s for s in data["slices"] if s["n"] < 20]
    assert small and all(s["small_n"] for s in small) and not any(s["small_n"] for s in data["slices"] if s["n"] >= 20)
    assert data["n_small_slices"] == sum(1 for lv in every if lv["n"] < 20)
    # the planted fog (< 50 m: 2 fog variants x 3 of 6 scenes x 3 ROIs = 18 rows, all misses) is
    # small and still first: its lower bound 0.82 beats every larger slice
    top = data["slices"][0]
    assert (top["condition"], top["n"], top["failures"], top["small_n"]) == ("fog_visibility_m < 50 m", 18, 18, True)


def test_default_bins_and_condition_texts():
    t = pd.DataFrame({
        "environment.rain_mm_h": [0.0, 1.0, 2.5, 12.0, 60.0, 0.0],
        "environment.sun_elevation_deg": [-10.0, -6.0, 5.9, 6.0, 30.0, 20.0],
        "subset_size": [1, 2, 3, 1, 2, 3],
        "scenery.road_surface": ["dry", "wet", "icy", "dry", "wet", "icy"],
        "environment.cloud_cover": np.linspace(0, 1, 6) + 0.001,
        "camera.width": [640] * 6,
        "roi.visible_fraction_x": [1.0] * 6,
    })
    dims, skipped = build_dimensions(t, quantile_bins=2, max_levels=4)
    by = {d.column: d for d in dims}
    rain = by["environment.rain_mm_h"]
    assert rain.labels() == ["none (0)", "light (< 2.5 mm/h)", "moderate (2.5–10 mm/h)", "heavy (10–50 mm/h)",
                             "violent (≥ 50 mm/h)"]
    assert rain.codes.tolist() == [0, 1, 2, 3, 4, 0]
    assert rain.level_text(0) == "rain_mm_h = 0"
    assert rain.condition_text([2, 3, 4]) == "rain_mm_h ≥ 2.5 mm/h"
    assert rain.condition_text([0, 1]) == "rain_mm_h < 2.5 mm/h"
    assert rain.condition_text([1, 2]) == "0 < rain_mm_h < 10 mm/h"
    sun = by["environment.sun_elevation_deg"]
    assert sun.codes.tolist() == [0, 1, 1, 2, 3, 3]
    assert sun.condition_text([0, 1]) == "sun_elevation_deg < 6°"
    size = by["subset_size"]
    assert size.kind == "ordinal" and size.condition_text([0, 1]) == "subset_size ≤ 2"
    surface = by["scenery.road_surface"]
    assert surface.kind == "nominal"
    assert surface.condition_text([0, 2]) == "road_surface ≠ icy"
    assert surface.labels() == ["dry", "icy", "wet"] and surface.condition_text([1]) == "road_surface = icy"
    clouds = by["environment.cloud_cover"]
    assert clouds.kind == "interval" and clouds.source.startswith("quantiles")
    assert "camera.width" in skipped and "roi.visible_fraction_x" in skipped
    user, _ = build_dimensions(t, bins={"rain_mm_h": [5]})
    rain_u = next(d for d in user if d.column == "environment.rain_mm_h")
    assert rain_u.labels() == ["< 5 mm/h", "≥ 5 mm/h"] and rain_u.codes.tolist() == [0, 0, 0, 1, 1, 0]
    with pytest.raises(KeyError, match="not condition columns"):
        build_dimensions(t, bins={"nonsense": [1]})


def test_influence_names_the_occluding_roi_in_front():
    # scene 0: person (ROI 0, 20 m) is hit alone and next to the stop sign (ROI 2), but missed
    # whenever the car (ROI 1, 10 m, in front, its box over the person's) is in the image
    rows = []
    image_id = 0
    subsets = [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    cats = {0: "person", 1: "car", 2: "stop sign"}
    pos = {0: (20.0, 0.0), 1: (10.0, 0.5), 2: (25.0, -5.0)}
    for variant in ("base", "dusk"):
        for sub in subsets:
            image_id += 1
            for r in sub:
                hit = not (r == 0 and 1 in sub)
                rows.append({"image_id": image_id, "scene_id": 0, "roi_id": r,
                             "subset": ",".join(map(str, sub)), "subset_size": len(sub), "variant": variant,
                             "mode": "remove", "is_full": len(sub) == 3,
                             "category": cats[r], "visible_fraction": 1.0, "ignore": False, "not_visible": False,
                             "outcome": "hit" if hit else "miss", "roi.x_m": pos[r][0], "roi.y_m": pos[r][1]})
    out = pd.DataFrame(rows)
    boxes = {(0, 0): (50.0, 40.0, 10.0, 30.0), (0, 1): (45.0, 45.0, 40.0, 25.0), (0, 2): (5.0, 30.0, 8.0, 8.0)}
    res = influence_ranking(out, boxes=boxes, min_pairs=1)
    assert res["source"] == "computed from outcomes.parquet"
    person = res["by_target_class"][0]
    assert person["target_category"] == "person" and person["failures"] == 4  # 2 images with the car x 2 variants
    top = person["rows"][0]
    assert (top["other_category"], top["depth"], top["overlap"]) == ("car", "in front", "overlapping")
    assert top["side"] == "right"  # box centre 65 > 55
    assert top["influence"] == 1.0
    # pairs (S, S+car) with the person in S: ({0}, {0,1}) and ({0,2}, {0,1,2}), in 2 variants
    assert top["n_pairs"] == 4
    # co-presence in context pairs (person hit alone): with the car in {0,1} and {0,1,2}, broken
    # every time; with the stop sign in {0,2} (hit) and {0,1,2} (missed, the car is there too)
    assert (top["breaks"]["k"], top["breaks"]["n"]) == (4, 4)
    ex = top["example"]
    assert (ex["target_roi"], ex["other_roi"], ex["subset_without"], ex["subset_with"]) == (0, 1, [0], [0, 1])
    stop = next(r for r in person["rows"] if r["other_category"] == "stop sign")
    assert stop["influence"] == 0.0 and stop["overlap"] == "apart" and stop["depth"] == "behind"
    assert (stop["n_pairs"], stop["breaks"]["k"], stop["breaks"]["n"]) == (4, 2, 4)
    assert res["per_roi"][0]["others"][0]["other_category"] == "car"
    # without boxes: side from the ground plane (+y is left), overlap unknown
    res2 = influence_ranking(out, min_pairs=1)
    top2 = res2["by_target_class"][0]["rows"][0]
    assert (top2["side"], top2["overlap"]) == ("left", "unknown")


def test_cli_trace_writes_json_and_figures(tmp_path, capsys):
    from oddsuite import cli

    res = tmp_path / "res"
    res.mkdir()
    outcome_table(fog_misses, n_scenes=20).to_parquet(res / "outcomes.parquet", index=False)
    code = cli.main(["trace", str(res), "--min-support", "10", "--bins", "fog_visibility_m=50,1000"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "fog_visibility_m < 50 m" in printed
    data = json.loads((res / "trace" / "trace.json").read_text())
    assert data["format"] == "oddsuite-trace/1"
    assert data["slices"][0]["condition"] == "fog_visibility_m < 50 m"
    assert data["settings"]["bins"] == {"fog_visibility_m": [50.0, 1000.0]}
    assert data["suite_dir"] is None  # no run.json: positions from the ground plane
    for name in data["figures"]:
        png = (res / "trace" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "slices.png" in data["figures"] and any(f.startswith("heatmap_") for f in data["figures"])
    assert cli.main(["trace", str(tmp_path / "nothing")]) == 2
    assert cli.main(["trace", str(res), "--bins", "nonsense=1"]) == 2


def test_trace_results_reports_a_missing_outcome_table(tmp_path):
    (tmp_path / "r").mkdir()
    with pytest.raises(OddsuiteError, match="outcomes.parquet: missing"):
        trace_results(tmp_path / "r")


def test_a_variant_that_fixes_the_fog_is_stated_as_the_fog():
    # variant "fog" is exactly the images with fog < 50 m: slice and rule name the ODD dimension,
    # and the variant's identical slice is folded into it
    out = outcome_table(fog_misses, n_scenes=30, with_permutations=False)
    out["variant"] = np.where(out["environment.fog_visibility_m"] < 50, "fog", "clear")
    data = trace_outcomes(out)
    top = data["slices"][0]
    assert top["condition"] == "fog_visibility_m < 50 m" and top["same_rows"] == ["variant = fog"]
    assert not any(s["condition"] == "variant = fog" for s in data["slices"])
    assert data["rules"][0]["text"] == "fog_visibility_m < 50 m"


def test_conjunctions_state_a_level_by_its_plainest_equivalent():
    from oddsuite.trace.slices import equivalent_levels

    t = pd.DataFrame({"category": ["car", "car", "person", "person"],
                      "roi.asset": ["car/sedan", "car/suv", "person/walking", "person/walking"],
                      "environment.fog_visibility_m": [30.0, 30.0, 30.0, 10000.0],
                      "variant": ["fog", "fog", "fog", "base"]})
    dims, _ = build_dimensions(t)
    plain = equivalent_levels(dims)
    d, i = plain[("roi.asset", 2)]  # person/walking holds the same rows as class = person (fewer levels)
    assert d.level_text(i) == "class = person"
    d, i = plain[("variant", 1)]  # variant = fog: the same rows as the fog taxonomy's level, which wins
    assert d.level_text(i) == "fog_visibility_m < 50 m"
    d, i = plain[("roi.asset", 0)]  # car/sedan has no equivalent
    assert d.level_text(i) == "asset = car/sedan"
