"""Generate a suite on disk: every scene as its full self and as ROI permutations under
environment variants (docs/FORMAT.md describes the files).

Work is sharded by scene. A scene's worker re-derives everything from the spec text, the
suite seed and the scene id, writes its PNGs atomically, then its record in
``.state/scene_NNNNNN.json``; the driver assembles ``annotations.json``,
``scenes.parquet``, ``rois.parquet`` and ``manifest.json`` from those records in scene
order. An interrupted run resumes: scenes whose record and images exist are not redone.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from oddsuite import __version__
from oddsuite.errors import RenderError, SpecError, SuiteError
from oddsuite.odd import OddSpec, SceneParams, parse_spec, sample_scene
from oddsuite.permute.plans import plan_size, subset_code, subsets
from oddsuite.suite.io import atomic_write_bytes, atomic_write_json, dumps_json, parquet_bytes, png_bytes, sha256_file

log = logging.getLogger(__name__)

FORMAT = "oddsuite-suite/1"
STATE = ".state"
#: the first columns of scenes.parquet; every scene parameter follows, sorted by name
RECORD_COLUMNS = ("image_id", "file_name", "scene_id", "subset", "subset_size", "n_rois", "variant", "mode", "is_full")


@dataclass(frozen=True)
class PlanOptions:
    """How ROIs are permuted: from the spec, optionally overridden on the command line."""

    plan: str
    modes: tuple[str, ...]
    k: int = 2
    n: int = 16
    max_subsets: int = 256
    renderer: str = "exact"  # how remove-mode subsets are made: exact re-render or composite

    @staticmethod
    def from_spec(spec: OddSpec, plan: Optional[str] = None, modes: Optional[tuple[str, ...]] = None,
                  renderer: Optional[str] = None) -> "PlanOptions":
        p = spec.permutations
        bad = [m for m in (modes or ()) if m not in ("remove", "isolate", "cutout")]
        if bad:
            raise SpecError(f"unknown masking mode(s) {bad}; expected remove, isolate or cutout")
        if renderer not in (None, "exact", "composite"):
            raise SpecError(f"unknown renderer {renderer!r}; expected exact or composite")
        if (renderer or p.renderer) == "composite" and spec.render.engine != "raster":
            raise SpecError(f"{spec.source_path}: permutations.renderer: composite is refused with render.engine "
                            f"{spec.render.engine} (under global illumination an object also lights and reflects in "
                            f"its surroundings, which layers cannot remove); use exact")
        return PlanOptions(plan or p.plan, tuple(modes) if modes is not None else tuple(p.modes), p.k, p.n,
                           p.max_subsets, renderer or p.renderer)

    def subsets_of(self, params: SceneParams, where: str = "") -> list[tuple[int, ...]]:
        return subsets(self.plan, [o.roi_id for o in params.objects], k=self.k, n_sampled=self.n,
                       max_subsets=self.max_subsets, rng=params.rng("subsets"), where=where)

    def as_dict(self) -> dict[str, Any]:
        return {"plan": self.plan, "modes": list(self.modes), "k": self.k, "n": self.n, "max_subsets": self.max_subsets,
                "renderer": self.renderer}


@dataclass(frozen=True)
class SceneJob:
    """Everything a worker needs for one scene (picklable)."""

    spec_text: str
    spec_path: str
    seed: int
    scene_id: int
    out_dir: str
    plan: PlanOptions


def illumination(sun_elevation_deg: float) -> str:
    """ISO 34503-style illumination class from the sun elevation (civil twilight at ±6°)."""
    if sun_elevation_deg > 6:
        return "day"
    if sun_elevation_deg >= -6:
        return "dusk"
    return "night"


def images_per_scene(spec: OddSpec, params: SceneParams, plan: PlanOptions) -> int:
    n_sub = len(plan.subsets_of(params, where=f"{spec.source_path}: permutations: "))
    return len(spec.variants) * (1 + len(plan.modes) * n_sub)


# ----------------------------------------------------------------------------- worker

def _annotations(frame, subset: tuple[int, ...], scene, min_visible: float) -> list[dict[str, Any]]:
    by_id = {o.roi_id: o for o in scene.objects}
    anns = []
    for rid in subset:
        st = frame.objects.get(rid)
        if st is None or st.visible_box is None:
            continue
        o = by_id[rid]
        anns.append({
            "category_id": o.category_id,
            "bbox": [round(v, 3) for v in st.visible_box],
            "area": float(st.visible_px),
            "iscrowd": int(st.visible_fraction < min_visible),
            "roi_id": rid,
            "visible_fraction": round(st.visible_fraction, 6),
            "truncation": round(st.truncation, 6),
            "full_bbox": [round(v, 3) for v in st.full_box],
        })
    return anns




def render_scene(job: SceneJob) -> dict[str, Any]:
    """Render every image of one scene and write them; returns (and saves) the scene record."""
    from oddsuite.permute import CompositeRenderer, cutout, environment_of
    from oddsuite.render import get_engine
    from oddsuite.scenes import build_scene

    spec = parse_spec(job.spec_text, source=job.spec_path)
    params = sample_scene(spec, job.seed, job.scene_id)
    scene = build_scene(spec, params)
    out = Path(job.out_dir)
    sub_list = job.plan.subsets_of(params)
    n = len(scene.objects)
    r = get_engine(spec.render, spec.camera.width, spec.camera.height)
    frames0, seconds0 = r.frames, r.seconds
    images: list[dict[str, Any]] = []
    files: dict[str, str] = {}
    folder = f"images/{job.scene_id:06d}"

    def emit(frame, variant: str, mode: str, subset: tuple[int, ...], env: dict[str, Any]) -> None:
        name = f"{folder}/{variant}_{mode}_{subset_code(subset, n) if n else 'empty'}.png"
        data = png_bytes(frame.rgb)
        atomic_write_bytes(out / name, data)
        files[name] = hashlib.sha256(data).hexdigest()
        images.append({
            "file_name": name, "width": spec.camera.width, "height": spec.camera.height,
            "scene_id": job.scene_id, "subset": list(subset), "n_rois": n, "variant": variant, "mode": mode,
            "is_full": len(subset) == n,
            "env": {**{f"environment.{k}": v for k, v in env.items() if k != "road_surface"},
                    "scenery.road_surface": env["road_surface"],
                    "environment.illumination": illumination(env["sun_elevation_deg"])},
            "annotations": _annotations(frame, subset, scene, spec.min_visible),
        })

    all_ids = tuple(o.roi_id for o in scene.objects)
    for variant in spec.variants:
        env = environment_of(scene, variant)
        wrng = lambda: params.rng(f"weather:{variant.name}")  # noqa: E731 - same streaks in every image
        full = r.render(scene, env, None, True, wrng())
        comp = None
        emit(full, variant.name, "full", all_ids, env)
        for mode in job.plan.modes:
            for sub in sub_list:
                if mode == "remove" and sub == all_ids:
                    fr = full
                elif mode == "remove" and job.plan.renderer == "composite":
                    if comp is None:
                        comp = CompositeRenderer(r, scene, env)
                    fr = comp.frame(sub, wrng())
                elif mode == "remove":
                    fr = r.render(scene, env, sub, True, wrng())
                elif mode == "isolate":
                    fr = r.render(scene, env, sub, False, wrng())
                elif mode == "cutout":
                    fr = cutout(full, sub)
                else:
                    raise SpecError(f"unknown masking mode {mode!r}; expected remove, isolate or cutout")
                emit(fr, variant.name, mode, sub, env)

    rois = [{"scene_id": job.scene_id, "roi_id": o.roi_id, "category": o.category, "category_id": o.category_id,
             "asset": o.asset.name, "distance_m": o.distance_m, "lateral_m": o.lateral_m,
             "heading_deg": o.heading_deg, "scale": o.scale, "x_m": float(o.pose[0, 3]), "y_m": float(o.pose[1, 3]),
             "placement_tries": o.tries} for o in scene.objects]
    record = {"scene_id": job.scene_id, "params": _jsonable(params.flat()), "rois": rois, "images": images,
              "files": files, "render": {**r.describe(), "frames": r.frames - frames0, "seconds": r.seconds - seconds0}}
    atomic_write_json(out / STATE / f"scene_{job.scene_id:06d}.json", record)
    return record


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in d.items()}


# ----------------------------------------------------------------------------- driver

@dataclass
class GenerateResult:
    out_dir: Path
    scenes: int
    images: int
    resumed: int  # scenes found finished from an earlier run
    failures: list = field(default_factory=list)


def plan_suite(spec: OddSpec, seed: int, scenes: int, plan: PlanOptions) -> int:
    """Sample every scene's parameters and count the images (refuses plans past the cap)."""
    return sum(images_per_scene(spec, sample_scene(spec, seed, i), plan) for i in range(scenes))


def _state_ok(out: Path, scene_id: int) -> Optional[dict[str, Any]]:
    p = out / STATE / f"scene_{scene_id:06d}.json"
    if not p.is_file():
        return None
    try:
        rec = json.loads(p.read_text())
    except ValueError:
        return None
    if all((out / f).is_file() for f in rec["files"]):
        return rec
    return None


def generate_suite(spec_path: str | Path, out_dir: str | Path, *, scenes: int, seed: int, workers: int = 1,
                   plan: Optional[str] = None, modes: Optional[tuple[str, ...]] = None,
                   renderer: Optional[str] = None, executor: Any = None,
                   on_start: Optional[Callable[[int, int], None]] = None,
                   on_scene: Optional[Callable[[int], None]] = None) -> GenerateResult:
    """Generate (or resume) a suite. ``on_start(n_scenes, n_images)`` is called once the
    work is counted; ``on_scene(n_images)`` after each scene finishes."""
    from oddsuite.odd import load_spec

    spec = load_spec(spec_path)
    if scenes < 1:
        raise SpecError(f"--scenes must be at least 1, got {scenes}")
    opts = PlanOptions.from_spec(spec, plan, modes, renderer)
    if spec.render.engine == "cycles":  # fail before any work, not once per scene
        from oddsuite.render.cycles import cycles_unavailable

        why = cycles_unavailable()
        if why:
            raise RenderError(f"{spec_path}: render.engine cycles: {why}")
    out = Path(out_dir)
    _check_out_dir(out, spec, seed, opts)
    n_images = plan_suite(spec, seed, scenes, opts)
    if on_start:
        on_start(scenes, n_images)
    (out / STATE).mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / STATE / "job.json", {"spec_sha256": spec.sha256, "seed": seed, "plan": opts.as_dict()})

    records: dict[int, dict[str, Any]] = {}
    todo = []
    for i in range(scenes):
        rec = _state_ok(out, i)
        if rec is not None:
            records[i] = rec
            if on_scene:
                on_scene(len(rec["images"]))
        else:
            todo.append(SceneJob(spec.source_text or "", str(spec_path), seed, i, str(out), opts))
    resumed = len(records)
    if executor is None:
        from oddsuite.run import LocalExecutor

        executor = LocalExecutor(workers)
    from oddsuite.run import TaskFailure

    failures = []
    for job, rec in executor.map(render_scene, todo, key=lambda j: j.scene_id):
        if isinstance(rec, TaskFailure):
            failures.append(rec)
            log.error("scene %s failed: %s", rec.key, rec.error)
            continue
        records[job.scene_id] = json.loads(dumps_json(rec))  # the same form a resumed record has
        if on_scene:
            on_scene(len(rec["images"]))
    if failures:
        raise SuiteError(
            f"{len(failures)} scene(s) failed: " + "; ".join(f"scene {f.key}: {f.error}" for f in failures[:5])
            + f". Finished scenes are kept in {out}; fix the cause and run the same command to resume."
        )
    _assemble(out, spec, seed, scenes, opts, [records[i] for i in range(scenes)])
    return GenerateResult(out, scenes, sum(len(r["images"]) for r in records.values()), resumed)


def _check_out_dir(out: Path, spec: OddSpec, seed: int, opts: PlanOptions) -> None:
    """Resume only into a suite of the same spec, seed and plan; never mix two suites."""
    job = out / STATE / "job.json"
    if job.is_file():
        prev = json.loads(job.read_text())
        now = {"spec_sha256": spec.sha256, "seed": seed, "plan": opts.as_dict()}
        if prev != now:
            raise SuiteError(
                f"{out}: holds an unfinished suite of another spec, seed or plan ({prev}); "
                f"use another --out or delete the folder"
            )
    elif (out / "manifest.json").is_file():
        man = json.loads((out / "manifest.json").read_text())
        if man.get("spec", {}).get("sha256") != spec.sha256 or man.get("seed") != seed or man.get("plan") != opts.as_dict():
            raise SuiteError(f"{out}: holds a finished suite of another spec, seed or plan; use another --out")
    elif out.exists() and any(out.iterdir()):
        raise SuiteError(f"{out}: exists and is not an oddsuite suite; use an empty or new folder")


def _assemble(out: Path, spec: OddSpec, seed: int, n_scenes: int, opts: PlanOptions,
              records: list[dict[str, Any]]) -> None:
    cats = [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(spec.class_names)]
    images, anns, rows, rois = [], [], [], []
    for rec in records:
        rois.extend(rec["rois"])
        for im in rec["images"]:
            iid = len(images) + 1
            images.append({k: im[k] for k in ("file_name", "width", "height", "scene_id", "subset", "n_rois",
                                              "variant", "mode", "is_full")} | {"id": iid})
            for a in im["annotations"]:
                anns.append({**a, "id": len(anns) + 1, "image_id": iid})
            row = {"image_id": iid, "file_name": im["file_name"], "scene_id": im["scene_id"],
                   "subset": ",".join(str(s) for s in im["subset"]), "subset_size": len(im["subset"]),
                   "n_rois": im["n_rois"], "variant": im["variant"], "mode": im["mode"], "is_full": im["is_full"]}
            row.update(rec["params"])
            row.update(im["env"])
            rows.append(row)
    coco = {"info": {"description": f"oddsuite suite of {spec.name}", "version": FORMAT, "suite_seed": seed,
                     "min_visible": spec.min_visible},
            "licenses": [], "categories": cats, "images": images, "annotations": anns}
    atomic_write_bytes(out / "annotations.json", dumps_json(coco))
    df = pd.DataFrame(rows)
    fixed = list(RECORD_COLUMNS)
    df = df[fixed + sorted(c for c in df.columns if c not in fixed)]
    atomic_write_bytes(out / "scenes.parquet", parquet_bytes(df))
    roi_cols = ["scene_id", "roi_id", "category", "category_id", "asset", "distance_m", "lateral_m", "heading_deg",
                "scale", "x_m", "y_m", "placement_tries"]
    atomic_write_bytes(out / "rois.parquet", parquet_bytes(pd.DataFrame(rois, columns=roi_cols)))
    atomic_write_bytes(out / "spec.yaml", (spec.source_text or "").encode())
    files = {}
    for rec in records:
        files.update(rec["files"])
    for name in ("annotations.json", "scenes.parquet", "rois.parquet", "spec.yaml"):
        files[name] = sha256_file(out / name)
    manifest = {
        "format": FORMAT,
        "spec": {"name": spec.name, "file": Path(spec.source_path or "spec.yaml").name, "sha256": spec.sha256},
        "seed": seed,
        "scenes": n_scenes,
        "images": len(images),
        "plan": opts.as_dict(),
        "variants": [v.name for v in spec.variants],
        "categories": [c["name"] for c in cats],
        "packages": package_versions(),
        "render": render_summary(records),
        "files": dict(sorted(files.items())),
    }
    atomic_write_json(out / "manifest.json", manifest)


def render_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's ``render`` block: engine, version, device(s) and settings, and the
    measured ``seconds_per_frame`` (the one field that varies from run to run)."""
    runs = [r["render"] for r in records if "render" in r]
    if not runs:
        return {}
    frames = sum(r["frames"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    out = {k: runs[0][k] for k in ("engine", "version", "settings")}
    out["device"] = "; ".join(sorted({r["device"] for r in runs}))
    out["frames"] = frames
    out["seconds_per_frame"] = round(seconds / frames, 4) if frames else None
    return out


def package_versions() -> dict[str, str]:
    """Versions of what shapes the pixels; a suite is reproducible under the same set."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"oddsuite": __version__}
    for p in ("numpy", "scipy", "trimesh", "pybullet", "pyrender", "PyOpenGL", "pillow", "pyarrow", "pandas"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "absent"
    return out
