"""Class-presence influence, identifiability and conditional ranking on hand-made outcome
tables with the answers worked out here.

The planted defect of issue 13: "the detector never finds a person when a car is in the
image", in scenes with two or three cars. Under the ablation plan every instance pair
(S, S ∪ {car}) already holds another car, so §5's leave-one-out influence reads 0; the
presence contrast ({person} against {person, cars}) finds it."""
from itertools import combinations

import pandas as pd
import pytest

from oddsuite.metrics.presence import class_shapley, instance_pair_kinds, presence_pairs, shapley_values
from oddsuite.metrics.stats import wilson_interval
from oddsuite.permute.plans import subsets
from oddsuite.trace import trace_outcomes
from oddsuite.trace.influence import influence_ranking
from oddsuite.trace.presence import presence_ranking


def no_person_with_car(classes: dict[int, str], subset: tuple[int, ...], roi: int) -> bool:
    """hit? The planted defect: a person is missed whenever a car is in the image."""
    return not (classes[roi] == "person" and any(classes[r] == "car" for r in subset))


def table(scenes: dict[int, list[str]], plan: str, hit=no_person_with_car, variants=("base", "dusk"),
          mode: str = "remove") -> pd.DataFrame:
    """Outcome rows of every subset the plan renders (real ``permute.plans.subsets``) of every
    scene, under each variant, in one masking mode, plus the full-scene image (mode full)."""
    rows, image_id = [], 0
    for scene, cls in scenes.items():
        classes = dict(enumerate(cls))
        ids = list(classes)
        for variant in variants:
            images = [(tuple(ids), "full")] + [(s, mode) for s in subsets(plan, ids, k=2)]
            for sub, m in images:
                image_id += 1
                for r in sub:
                    rows.append({"image_id": image_id, "scene_id": scene, "roi_id": r, "variant": variant, "mode": m,
                                 "subset": ",".join(map(str, sub)), "subset_size": len(sub),
                                 "is_full": len(sub) == len(ids), "category": classes[r], "visible_fraction": 1.0,
                                 "ignore": False, "not_visible": False,
                                 "outcome": "hit" if hit(classes, sub, r) else "miss",
                                 "roi.x_m": 10.0 + 3 * r, "roi.y_m": float(r % 3 - 1)})
    return pd.DataFrame(rows)


# scenes 0, 1: a person (ROI 0) and three cars; scene 2: a person and two cars
REDUNDANT = {0: ["person", "car", "car", "car"], 1: ["person", "car", "car", "car"], 2: ["person", "car", "car"]}


def test_redundant_cars_hide_the_cause_from_leave_one_out_and_presence_finds_it():
    out = table(REDUNDANT, "ablation")
    # instance level (§5): scenes 0 and 1 (4 ROIs) give only pairs (S, S ∪ {car}) with S
    # already holding a car: {0,j,k} -> {0,1,2,3}, both misses; scene 2 (3 ROIs) is small
    # enough for ablation to render {0} and {0,1}: those pairs add the first car.
    kinds = instance_pair_kinds(out)
    person = kinds.loc[kinds["target_category"] == "person"]
    s0 = person.loc[person["scene_id"] == 0]
    assert len(s0) == 3 and (s0["n"] == 2).all() and (s0["n_first"] == 0).all()  # 1 pair x 2 variants per car
    s2 = person.loc[person["scene_id"] == 2].set_index("other_roi")
    # car 1: ({0}, {0,1}) first, ({0,2}, {0,1,2}) not first; in 2 variants
    assert (s2.loc[1, "n"], s2.loc[1, "n_first"], s2.loc[1, "influence_first"]) == (4, 2, 1.0)

    # the trace's instance rows: redundancy in scenes 0-1 only; with scene 2 the row is identifiable
    res = influence_ranking(table({0: REDUNDANT[0], 1: REDUNDANT[1]}, "ablation"), min_pairs=1)
    cars = [r for r in res["by_target_class"][0]["rows"] if r["other_category"] == "car"]  # one per relation
    assert all(r["identifiable"] is False and r["influence"] is None and r["influence_additional"] == 0.0
               and "beside another car" in r["note"] for r in cars)
    assert sum(r["n_pairs"] for r in cars) == 12  # 2 scenes x 3 cars x 2 variants

    # presence: in scenes 0-1 every context with the person and a car strips to {0} (4
    # contexts: three leave-one-car-out and the full set); in scene 2 the contexts {0,1},
    # {0,2}, {0,1,2}. Per variant: 4 + 4 + 3 = 11 pairs; 22 over both variants. Each pair is
    # a hit without the cars and a miss with them.
    pairs = presence_pairs(out)
    car = pairs.loc[(pairs["target_category"] == "person") & (pairs["other_category"] == "car")]
    assert len(car) == 22 and car["hit_without"].all() and not car["hit_with"].any()
    assert sorted(car.loc[(car["scene_id"] == 0) & (car["variant"] == "base"), "subset_with"]) == [
        "0,1,2", "0,1,2,3", "0,1,3", "0,2,3"]
    assert set(car["subset_without"]) == {"0"}
    sec = presence_ranking(out, plan="ablation", min_support=1)
    top = sec["rows"][0]
    assert (top["target_category"], top["other_category"]) == ("person", "car")
    assert top["identifiable"] and top["influence"] == 1.0 and top["n_pairs"] == 22
    # 6 units (3 scenes x 2 variants, mode remove), each breaking in every pair
    assert (top["breaks"]["value"], top["breaks"]["n"]) == (1.0, 6)
    assert top["breaks"]["ci95"] == pytest.approx(list(wilson_interval(6, 6)))
    # Shapley with one player (car): v({}) = 1, v({car}) = 0, complete in all 6 games
    assert (top["shapley"], top["n_games"], top["n_units_present"]) == (1.0, 6, 6)
    assert top["instance"]["n_first"] == 4  # only scene 2's ({0}, {0,1}) and ({0}, {0,2}), 2 variants
    # baseline: every presence pair of every class. car->car pairs never break (cars are
    # always found), person->car neither: 6 units of 1.0 and the car units at 0.
    assert top["score"] == pytest.approx(wilson_interval(6, 6)[0] - sec["baseline"]["value"])
    assert sec["baseline"]["value"] < 1.0


def test_presence_row_names_the_plan_that_would_separate_a_cause():
    # a person, two cars, a bicycle and a stop sign: under ablation no rendered context holds
    # the person without both cars unless it also lacks the bicycle or the sign, so no pair
    # differs by the cars alone
    scenes = {0: ["person", "car", "car", "bicycle", "stop sign"]}
    sec = presence_ranking(table(scenes, "ablation"), plan="ablation")
    row = next(r for r in sec["rows"] if (r["target_category"], r["other_category"]) == ("person", "car"))
    assert row["identifiable"] is False and row["influence"] is None and row["n_pairs"] == 0
    assert row["contrasts"].startswith("not identifiable with plan 'ablation': every instance pair added a car "
                                       "beside another car")
    assert "k-subsets with k = 2" in row["contrasts"] and "exhaustive" in row["contrasts"]
    assert sec["n_not_identifiable"] >= 1
    # the same scene under k-subsets (k = 2): {0} and {0, car} are rendered
    sec2 = presence_ranking(table(scenes, "k-subsets"), plan="k-subsets (k = 2)")
    row2 = next(r for r in sec2["rows"] if (r["target_category"], r["other_category"]) == ("person", "car"))
    # pairs per variant: {0,1} and {0,2} strip to {0}; the full set strips to {0,3,4}, not rendered
    assert row2["identifiable"] and row2["n_pairs"] == 4 and row2["influence"] == 1.0
    assert sec2["rows"][0] is row2


def test_exhaustive_plan_gives_complete_games_and_shapley_by_class():
    # person missed only when a car AND the bicycle are both present (an interaction):
    # players car, bicycle; v({}) = 1, v({car}) = 1, v({bicycle}) = 1, v({car, bicycle}) = 0
    def both(classes, sub, r):
        present = {classes[x] for x in sub if x != r}
        return not (classes[r] == "person" and {"car", "bicycle"} <= present)

    out = table({0: ["person", "car", "car", "bicycle"]}, "exhaustive", hit=both, variants=("base",))
    games = class_shapley(out)
    g = games.loc[(games["target_roi"] == 0) & (games["mode"] == "remove")].set_index("other_category")
    assert g["complete"].all() and (g["n_coalitions"] == 4).all()
    # φ_car = 1/2 (v({}) − v({car})) + 1/2 (v({bicycle}) − v({car, bicycle})) = 0 + 1/2
    assert g.loc["car", "shapley"] == pytest.approx(0.5) and g.loc["bicycle", "shapley"] == pytest.approx(0.5)
    # full mode renders only the full set: nothing to contrast, no game
    assert not (games["mode"] == "full").any()
    # under ablation the coalition {bicycle} is never rendered ({0, 3} is not in the plan)
    abl = class_shapley(table({0: ["person", "car", "car", "bicycle"]}, "ablation", hit=both, variants=("base",)))
    abl = abl.loc[abl["target_roi"] == 0]  # coalitions rendered: {}, {car}, {car, bicycle}
    assert len(abl) == 2 and not abl["complete"].any() and abl["shapley"].isna().all() and (abl["n_rendered"] == 3).all()


def test_shapley_values_worked_three_player_game():
    a, b, c = "a", "b", "c"
    v = {frozenset(): 1.0, frozenset({a}): 0.5, frozenset({b}): 1.0, frozenset({c}): 1.0,
         frozenset({a, b}): 0.0, frozenset({a, c}): 0.5, frozenset({b, c}): 1.0, frozenset({a, b, c}): 0.0}
    phi = shapley_values(v, [a, b, c])
    # φ_a = 1/3·0.5 + 1/6·1 + 1/6·0.5 + 1/3·1 = 0.75; φ_b = 1/6·0.5 + 1/3·0.5 = 0.25; φ_c = 0
    assert phi == pytest.approx({a: 0.75, b: 0.25, c: 0.0})
    assert sum(phi.values()) == pytest.approx(v[frozenset()] - v[frozenset({a, b, c})])  # efficiency
    with pytest.raises(KeyError):
        shapley_values({k: x for k, x in v.items() if k != frozenset({a, c})}, [a, b, c])


def test_shapley_values_match_shap_exact_explainer():
    shap = pytest.importorskip("shap")
    import numpy as np

    players = ["a", "b", "c", "d"]
    rng = np.random.default_rng(3)
    v = {frozenset(t): float(rng.random()) for k in range(5) for t in combinations(players, k)}

    def model(masks):  # the game as a model over presence masks
        return np.array([v[frozenset(p for p, m in zip(players, row) if m)] for row in masks])

    explainer = shap.explainers.Exact(model, shap.maskers.Independent(np.zeros((1, 4)), max_samples=1))
    sv = explainer(np.ones((1, 4))).values[0]
    ours = shapley_values(v, players)
    # shap attributes v(T ∪ {c}) − v(T); §5's sign is the opposite
    assert [ours[p] for p in players] == pytest.approx(list(-sv))


def conditional_table() -> pd.DataFrame:
    """240 full-scene ROI rows in four groups (weather, illumination, surface: rows, failures):
    A fog/day/dry 80 (all fail), B clear/day/dry 40 (2), C clear/night/icy 40 (24),
    D clear/night/dry 80 (4). 'day' overlaps the fog; 'icy' fails on its own."""
    groups = [("fog", "day", "dry", 80, 80), ("clear", "day", "dry", 40, 2), ("clear", "night", "icy", 40, 24),
              ("clear", "night", "dry", 80, 4)]
    rows, i = [], 0
    for weather, light, surface, n, k in groups:
        for j in range(n):
            i += 1
            rows.append({"image_id": i, "scene_id": i, "roi_id": 0, "variant": "base", "mode": "full", "subset": "0",
                         "subset_size": 1, "category": "car", "visible_fraction": 1.0, "ignore": False, "not_visible": False,
                         "environment.weather": weather, "environment.illumination": light,
                         "scenery.road_surface": surface, "outcome": "miss" if j < k else "hit"})
    return pd.DataFrame(rows)


def test_conditional_ranking_drops_an_overlapping_slice_below_an_independent_one():
    data = trace_outcomes(conditional_table())
    by = {s["condition"]: s for s in data["slices"]}
    fog, day, icy = by["weather = fog"], by["illumination = day"], by["road_surface = icy"]
    overall = 110 / 240
    # marginally, 'day' (82 of 120) outranks 'icy' (24 of 40), whose lower bound is under
    # the overall rate that the fog drives up
    assert day["score"] == pytest.approx(wilson_interval(82, 120)[0] - overall)
    assert icy["score"] == pytest.approx(wilson_interval(24, 40)[0] - overall)
    assert day["score"] > 0 > icy["score"]
    # conditionally: fog first; then, on the 160 rows outside the fog (30 failures), icy
    # keeps all its rows (24 of 40) while day keeps only B (2 of 40)
    assert data["slices"][0] is fog and fog["rank"] == 1
    assert data["slices"][1] is icy and icy["rank"] == 2
    c = icy["conditional"]
    assert (c["n"], c["failures"], c["base_rate"]) == (40, 24, 30 / 160)
    assert c["score"] == pytest.approx(wilson_interval(24, 40)[0] - 30 / 160)
    # after fog and icy, B and D are left (120 rows, 6 failures): day is B alone
    d = day["conditional"]
    assert (d["n"], d["failures"], d["base_rate"]) == (40, 2, 6 / 120)
    assert d["score"] == pytest.approx(wilson_interval(2, 40)[0] - 6 / 120) and d["score"] < 0
    assert day["rank"] > icy["rank"]
    from oddsuite.trace.summary import summary_lines

    lines = summary_lines(data)
    assert lines[2].startswith("  1. weather = fog") and lines[3].startswith("  2. road_surface = icy")
    assert "outside the slices above: 0.60" in lines[3]


def test_small_slices_are_shown_and_ranked_by_their_lower_bound():
    # 300 ROI rows: 285 cars failing 10% (29 of them, rounded up), 15 persons all missed
    rows = []
    for i in range(300):
        person = i >= 285
        rows.append({"image_id": i, "scene_id": i, "roi_id": 0, "variant": "base", "mode": "full", "subset": "0",
                     "subset_size": 1, "category": "person" if person else "car", "visible_fraction": 1.0,
                     "ignore": False, "not_visible": False, "outcome": "miss" if person or i % 10 == 0 else "hit"})
    data = trace_outcomes(pd.DataFrame(rows), min_support=20)
    top = data["slices"][0]
    assert (top["condition"], top["n"], top["failures"], top["small_n"]) == ("class = person", 15, 15, True)
    assert top["rate"]["ci95"][0] == pytest.approx(wilson_interval(15, 15)[0])  # 0.796
    car = next(s for s in data["slices"] if s["condition"] == "class = car")
    assert car["small_n"] is False and data["n_small_slices"] == 1


def test_cli_prints_presence_and_roi_influence(tmp_path, capsys):
    from oddsuite import cli

    res = tmp_path / "res"
    res.mkdir()
    table(REDUNDANT, "ablation").to_parquet(res / "outcomes.parquet", index=False)
    assert cli.main(["trace", str(res)]) == 0
    printed = capsys.readouterr().out
    assert "class presence (any ROI of the class present vs none):" in printed
    assert "car present → person: influence +1.00, break rate 1.00" in printed
    assert "ROI influence (instance by instance):" in printed
    assert "car (" in printed.split("ROI influence")[1]  # scene 2's first-car pairs are identifiable
    # scenes 0-1 alone: no instance pair adds the first car; the CLI says so instead of a zero
    table({0: REDUNDANT[0], 1: REDUNDANT[1]}, "ablation").to_parquet(res / "outcomes.parquet", index=False)
    assert cli.main(["trace", str(res)]) == 0
    printed = capsys.readouterr().out
    assert "car → person: not separable instance by instance over 12 image pairs (every image pair added a car " \
           "beside another car" in printed


def test_report_glance_names_the_top_presence_cause_and_the_unseparated():
    from oddsuite.report.build import _presence_glance

    data = trace_outcomes(table(REDUNDANT, "ablation"), plan="ablation")
    lines = _presence_glance(data)
    assert lines[0].startswith("Top class-presence cause: car present → person: influence +1.00")
    hidden = trace_outcomes(table({0: ["person", "car", "car", "bicycle", "stop sign"]}, "ablation"), plan="ablation")
    assert any(line.startswith("Not separable by this suite's plan") and "k-subsets with k = 2" in line
               for line in _presence_glance(hidden))
