"""Adding a weather effect or a sampler is one new file plus one registration line (#14):
the toys in tests/toy_effect.py and tests/toy_sampler.py, registered here, work end to end."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oddsuite.errors import SpecError
from oddsuite.odd import effects, parse_spec, sample_scene
from oddsuite.odd.samplers import SAMPLERS, register
from oddsuite.render.effects import IMPLEMENTATIONS, implement, withdraw

import toy_effect
from toy_sampler import HIGH, CornerSampler

SPEC = """\
name: toy
sampler: {sampler}
scenery: {{road_type: rural, clutter: 0.5}}
environment:
  sun_elevation_deg: [30, 60]
{env}camera: {{width: 96, height: 72}}
objects:
  car: {{count: 1, distance_m: [10, 20], lateral_m: [-2, 2]}}
permutations: {{plan: full, modes: [remove]}}
variants:
  - name: base
{variants}"""


@pytest.fixture
def tint():
    implement(effects.declare(toy_effect.TINT), image=toy_effect.image, order=150)  # the registration line
    yield toy_effect.TINT
    withdraw("tint")


@pytest.fixture
def corners():
    register(CornerSampler)  # the registration line
    yield CornerSampler
    SAMPLERS.pop("corners")


def test_toy_effect_is_unknown_until_registered():
    with pytest.raises(SpecError, match="environment.tint: unknown key"):
        parse_spec(SPEC.format(sampler="random", env="  tint: 0.5\n", variants=""))
    assert "tint" not in effects.EFFECTS and "tint" not in IMPLEMENTATIONS


def test_toy_effect_end_to_end(tint, tmp_path):
    from oddsuite.suite import generate_suite
    from oddsuite.trace import TAXONOMY, build_dimensions

    text = SPEC.format(sampler="random", env="  tint: [0, 0.2]\n", variants="  - {name: veiled, tint: 0.9}\n")
    spec_file = tmp_path / "toy.yaml"
    spec_file.write_text(text)
    # the spec takes the dimension (with its range) and a variant may override it
    spec = parse_spec(text)
    assert ("environment.tint", spec.environment.tint) in spec.dimensions()
    assert spec.variants[1].get("tint") == 0.9
    with pytest.raises(SpecError, match=r"environment.tint: max: 2 is out of range, expected 0 to 1 fraction"):
        parse_spec(text.replace("tint: [0, 0.2]", "tint: [0, 2]"))
    with pytest.raises(SpecError, match="variants.1.tint"):
        parse_spec(text.replace("tint: 0.9", "tint: -1"))

    # a render applies it: the veiled variant is the base image dimmed by 0.9 on top of its own tint
    generate_suite(spec_file, tmp_path / "suite", scenes=1, seed=4, workers=1)
    scenes = pd.read_parquet(tmp_path / "suite" / "scenes.parquet")
    from PIL import Image

    img = {r.variant: np.asarray(Image.open(tmp_path / "suite" / r.file_name), dtype=float)
           for r in scenes.itertuples() if r.is_full}
    base_t = float(scenes.loc[scenes.variant == "base", "environment.tint"].iloc[0])
    assert 0 <= base_t <= 0.2
    assert set(scenes.loc[scenes.variant == "veiled", "environment.tint"]) == {0.9}  # recorded as rendered
    assert abs(img["veiled"].mean() - 0.1 / (1 - base_t) * img["base"].mean()) < 2.0

    # trace's taxonomy knows its bins
    assert any(b.key == "tint" for b in TAXONOMY)
    table = pd.DataFrame({"environment.tint": [0.0, 0.05, 0.3, 0.9], "failure": [0, 0, 1, 1]})
    dims, _ = build_dimensions(table)
    d = next(x for x in dims if x.column == "environment.tint")
    assert d.source == "toy: veil darkness classes"
    assert d.labels() == ["clear (< 0.1)", "tinted (0.1–0.5)", "dark (≥ 0.5)"]


def test_a_declared_effect_without_an_implementation_is_refused(tmp_path):
    from oddsuite.render.effects import scene_pass

    effects.declare(toy_effect.TINT)
    try:
        with pytest.raises(RuntimeError, match=r"\['tint'\] have no implementation"):
            scene_pass({})
    finally:
        effects.withdraw("tint")


def test_toy_sampler_generates_a_suite(corners, tmp_path):
    from oddsuite.suite import generate_suite

    text = SPEC.format(sampler="corners", env="", variants="")
    spec = parse_spec(text)
    names = [p for p, _ in spec.dimensions()]
    i = names.index("environment.sun_elevation_deg")
    assert [sample_scene(spec, 0, s).environment["sun_elevation_deg"] for s in (0, 1 << i)] == \
        [30.0, spec.environment.sun_elevation_deg.at(HIGH)]
    spec_file = tmp_path / "corners.yaml"
    spec_file.write_text(text)
    res = generate_suite(spec_file, tmp_path / "suite", scenes=2, seed=0, workers=1)
    assert res.scenes == 2
    scenes = pd.read_parquet(tmp_path / "suite" / "scenes.parquet")
    first = scenes[scenes.scene_id == 0].iloc[0]
    assert first["environment.sun_elevation_deg"] == 30.0 and first["scenery.lanes"] == 2


def test_unknown_sampler_names_the_registered_ones():
    with pytest.raises(SpecError, match="sampler: unknown sampler 'corners'; expected one of: random, grid, halton"):
        parse_spec(SPEC.format(sampler="corners", env="", variants=""))
