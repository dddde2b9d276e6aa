"""Make the README's figures: one rendered scene, that scene as a grid of ROI subsets,
masking modes and environment variants, and the same scene drawn by both engines
(raster and Cycles, which needs .venv-cycles). Run: .venv/bin/python docs/make_figures.py
[--only grid|engines]"""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from oddsuite.odd import load_spec, sample_scene
from oddsuite.odd.spec import Render, Variant
from oddsuite.permute import cutout, environment_of
from oddsuite.render import get_engine, get_renderer
from oddsuite.scenes import build_scene

ROOT = Path(__file__).resolve().parents[1]


def label(img: np.ndarray, text: str, boxes=None) -> Image.Image:
    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    for b in boxes or []:
        x, y, w, h = b
        d.rectangle([x, y, x + w, y + h], outline=(255, 230, 0), width=2)
    d.rectangle([0, 0, 8 * len(text) + 8, 16], fill=(0, 0, 0))
    d.text((4, 2), text, fill=(255, 255, 255))
    return im


def main() -> None:
    spec = load_spec(ROOT / "odd_specs" / "urban_day.yaml")
    sc = build_scene(spec, sample_scene(spec, 7, 2))
    r = get_renderer(640, 480)
    base = environment_of(sc)
    rng = lambda: sc.params.rng("weather:doc")  # noqa: E731
    full = r.render(sc, base, rng=rng())
    Image.fromarray(full.rgb).save(ROOT / "docs" / "scene.png")
    ids = [o.roi_id for o in sc.objects]
    names = {o.roi_id: o.category for o in sc.objects}
    tiles = [label(full.rgb, "full scene", [s.visible_box for s in full.objects.values() if s.visible_box])]
    for sub in ([ids[0]], ids[:2], ids[1:]):
        f = r.render(sc, base, rois=sub, rng=rng())
        tiles.append(label(f.rgb, "remove: " + "+".join(names[i] for i in sub)))
    iso = r.render(sc, base, rois=[ids[1]], scenery=False, rng=rng())
    tiles.append(label(iso.rgb, f"isolate: {names[ids[1]]}"))
    tiles.append(label(cutout(full, (ids[0],)).rgb, f"cutout: {names[ids[0]]}"))
    for v in (Variant(name="dusk", sun_elevation_deg=2), Variant(name="night", sun_elevation_deg=-20),
              Variant(name="fog", fog_visibility_m=60), Variant(name="rain", rain_mm_h=30, road_surface="wet"),
              Variant(name="snow", snow_mm_h=4, road_surface="snow"), Variant(name="noshadow", shadows=False)):
        env = environment_of(sc, v)
        tiles.append(label(r.render(sc, env, rng=sc.params.rng(f"weather:{v.name}")).rgb, v.name))
    W, H = 320, 240
    grid = Image.new("RGB", (4 * W, 3 * H))
    for k, t in enumerate(tiles):
        grid.paste(t.resize((W, H)), ((k % 4) * W, (k // 4) * H))
    grid.save(ROOT / "docs" / "grid.png")


def engines(samples: int = 32) -> None:
    """docs/engines.png: one scene by day and at night on a wet road, raster left, Cycles right."""
    spec = load_spec(ROOT / "odd_specs" / "urban_day.yaml")
    sc = build_scene(spec, sample_scene(spec, 7, 2))
    raster = get_engine(Render(), 640, 480)
    cycles = get_engine(Render(engine="cycles", samples=samples, denoise=True), 640, 480)
    rows = []
    for v in (None, Variant(name="night_wet", sun_elevation_deg=-20, headlights=True, road_surface="wet")):
        env = environment_of(sc, v)
        name = v.name if v else "day"
        a = raster.render(sc, env, rng=sc.params.rng(f"weather:{name}")).rgb
        b = cycles.render(sc, env, rng=sc.params.rng(f"weather:{name}")).rgb
        rows.append(np.concatenate([np.asarray(label(a, f"raster, {name}")),
                                    np.asarray(label(b, f"cycles {samples} spp + denoise, {name}"))], 1))
    Image.fromarray(np.concatenate(rows, 0)).save(ROOT / "docs" / "engines.png")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["grid", "engines"])
    a = ap.parse_args()
    if a.only != "engines":
        main()
    if a.only != "grid":
        engines()
