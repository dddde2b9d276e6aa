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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import pandas as pd

from oddsuite import __version__
from oddsuite.errors import OddsuiteError, RenderError, SpecError, SuiteError
from oddsuite.fileio import atomic_write_bytes, is_disk_full, json_bytes, sha256_file, write_json
from oddsuite.odd import OddSpec, SceneParams, effects, parse_spec, sample_scene
from oddsuite.odd.samplers.search import scene_scope
from oddsuite.permute.plans import subset_code, subsets
from oddsuite.suite.io import parquet_bytes, png_bytes
from oddsuite.suite.layout import (ANNOTATIONS, ANNOTATIONS_FULL, FORMAT, IMAGES, JOB, LOCK, MANIFEST, MAX_SCENES, ROIS,
                                   SCENES, SPEC, STATE, TABLES, scene_folder, scene_record)
from oddsuite.suite.lock import SuiteLock
from oddsuite.suite.progress import watched
from oddsuite.suite.state import decide, inspect_folder, job_key, sweep_temporaries, withdraw_manifest

log = logging.getLogger(__name__)

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
        if renderer == "composite" and spec.render.engine != "raster":  # the spec's own choice is checked at load
            raise SpecError(f"--renderer composite is refused with render.engine {spec.render.engine} in "
                            f"{spec.source_path} (under global illumination an object also lights and reflects in "
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
    variants, modes = scene_scope(spec, params.scene_id, plan.modes)
    return len(variants) * (1 + len(modes) * n_sub)


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
    from oddsuite.permute import VariantFrames, environment_of
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
    folder = scene_folder(job.scene_id)

    def emit(frame, variant: str, mode: str, subset: tuple[int, ...], env: dict[str, Any]) -> None:
        name = f"{folder}/{variant}_{mode}_{subset_code(subset, n) if n else 'empty'}.png"
        data = png_bytes(frame.rgb)
        atomic_write_bytes(out / name, data)
        files[name] = hashlib.sha256(data).hexdigest()
        images.append({
            "file_name": name, "width": spec.camera.width, "height": spec.camera.height,
            "scene_id": job.scene_id, "subset": list(subset), "n_rois": n, "variant": variant, "mode": mode,
            "is_full": len(subset) == n,
            "env": {**{effects.column(k): v for k, v in env.items()},  # each in its declared group
                    "environment.illumination": illumination(env["sun_elevation_deg"])},
            "annotations": _annotations(frame, subset, scene, spec.min_visible),
        })

    all_ids = tuple(o.roi_id for o in scene.objects)
    variants, modes = scene_scope(spec, job.scene_id, job.plan.modes)  # a search suite's passing scenes: full only
    for variant in variants:
        env = environment_of(scene, variant)
        wrng = lambda: params.rng(f"weather:{variant.name}")  # noqa: E731 - same streaks in every image
        frames = VariantFrames(r, scene, env, wrng, composite=job.plan.renderer == "composite")
        emit(frames.full, variant.name, "full", all_ids, env)
        for mode in modes:
            for sub in sub_list:
                emit(frames.frame(mode, sub), variant.name, mode, sub, env)

    rois = [{"scene_id": job.scene_id, "roi_id": o.roi_id, "category": o.category, "category_id": o.category_id,
             "asset": o.asset.name, "distance_m": o.distance_m, "lateral_m": o.lateral_m,
             "heading_deg": o.heading_deg, "scale": o.scale, "x_m": float(o.pose[0, 3]), "y_m": float(o.pose[1, 3]),
             "placement_tries": o.tries} for o in scene.objects]
    record = {"scene_id": job.scene_id, "params": _jsonable(params.flat()), "rois": rois, "images": images,
              "files": files, "render": {**r.describe(), "frames": r.frames - frames0, "seconds": r.seconds - seconds0}}
    write_json(out / scene_record(job.scene_id), record)
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
    status: str = "generated"  # generated, resumed, extended or unchanged (a finished suite, nothing to do)
    #: the manifest's ``render`` block plus ``seconds_per_frame``, the engine's mean wall time
    #: per render (labels included) over every scene of the suite: measured, so kept out of
    #: the manifest, whose bytes are the suite's identity
    render: dict = field(default_factory=dict)


#: seeds are non-negative integers below 2**64 (numpy's SeedSequence takes any non-negative
#: integer; a manifest's seed must fit every JSON reader's 64-bit integers)
MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class SuitePlan:
    """What a suite holds: scenes ``0 .. scenes-1`` of ``spec`` under ``seed``, each as its
    full self and its ROI permutations under every variant (``options``).

    Nothing is sampled when the plan is made: a scene's image count is known once that
    scene is sampled (:meth:`images_of`, about 10 ms), so a plan of a million scenes costs
    nothing until it is walked."""

    spec: OddSpec
    seed: int
    scenes: int
    options: PlanOptions

    def images_of(self, scene_id: int) -> int:
        """Number of images of one scene (samples it; refuses permutation plans past the cap)."""
        if not 0 <= scene_id < self.scenes:
            raise IndexError(f"scene {scene_id} is not in a plan of {self.scenes} scenes")
        return images_per_scene(self.spec, sample_scene(self.spec, self.seed, scene_id), self.options)

    def image_counts(self, start: int = 0, stop: Optional[int] = None) -> Iterator[tuple[int, int]]:
        """(scene id, image count) of scenes ``start .. stop-1``, computed one by one as iterated."""
        for i in range(start, self.scenes if stop is None else min(stop, self.scenes)):
            yield i, self.images_of(i)

    def total_images(self) -> int:
        """Images of the whole suite (samples every scene: minutes for a million scenes)."""
        return sum(n for _, n in self.image_counts())


def check_size(scenes: int, seed: int) -> None:
    """OddsuiteError unless 1 <= scenes <= MAX_SCENES and 0 <= seed <= MAX_SEED."""
    if isinstance(scenes, bool) or not isinstance(scenes, (int, np.integer)) or not 1 <= scenes <= MAX_SCENES:
        raise OddsuiteError(f"--scenes: expected an integer from 1 to {MAX_SCENES:,} (scene ids have six digits), "
                            f"got {scenes}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise OddsuiteError(f"--seed: expected an integer from 0 to 2**64-1 (numpy SeedSequence entropy), got {seed}")


def plan_suite(spec: OddSpec, seed: int, scenes: int, plan: PlanOptions) -> SuitePlan:
    """The plan of a suite (see :class:`SuitePlan`); OddsuiteError for a scene count or seed out of range."""
    check_size(scenes, seed)
    return SuitePlan(spec, int(seed), int(scenes), plan)


def _state_ok(out: Path, scene_id: int) -> Optional[dict[str, Any]]:
    """The record of a finished scene (its images all present), or None."""
    p = out / scene_record(scene_id)
    if not p.is_file():
        return None
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
        if all((out / f).is_file() for f in rec["files"]):
            return rec
    except (ValueError, KeyError, TypeError):
        pass
    return None


@contextmanager
def _writing(out: Path, what: str) -> Iterator[None]:
    """Turn an OSError of the driver's writes into a SuiteError that says what to do."""
    try:
        yield
    except OSError as e:
        if is_disk_full(e):
            raise SuiteError(f"{out}: disk full (or the file-size limit reached) while writing {what}: {e}. The "
                             f"suite is not finished (verify refuses it); free space and run the same command to "
                             f"resume") from e
        raise SuiteError(f"{out}: cannot write {what}: {e}") from e


def generate_suite(spec_path: str | Path | OddSpec, out_dir: str | Path, *, scenes: int, seed: int, workers: int = 1,
                   plan: Optional[str] = None, modes: Optional[tuple[str, ...]] = None,
                   renderer: Optional[str] = None, executor: Any = None,
                   on_start: Optional[Callable[[SuitePlan], None]] = None,
                   on_scene: Optional[Callable[[int], None]] = None,
                   on_image: Optional[Callable[[int], None]] = None, lock_as: str = "generate") -> GenerateResult:
    """Generate, resume or extend a suite (see ``oddsuite.suite.state`` for what a folder
    may hold and which runs are refused). One run at a time holds the folder's lock; its note
    names the command as ``lock_as`` (``oddsuite search`` renders its suite as "search").

    ``on_start(plan)`` is called once the run is planned (at once: scenes are sampled as
    they are rendered, never all up front); ``on_scene(n_images)`` after each scene is done
    or found done by an earlier run; ``on_image(n)`` with the number of images finished so
    far, as they are written, on any executor (:func:`oddsuite.suite.progress.watch_images`). Raises SuiteError when scenes failed (finished ones
    are kept: the same command resumes) or the disk is full. ``spec_path`` may be a parsed spec
    (its ``source_path`` resolves user meshes), as ``oddsuite search`` passes."""
    from oddsuite.odd import load_spec

    spec = spec_path if isinstance(spec_path, OddSpec) else load_spec(spec_path)
    spec_path = spec.source_path or SPEC
    opts = PlanOptions.from_spec(spec, plan, modes, renderer)
    if spec.render.engine == "cycles":  # fail before any work, not once per scene
        from oddsuite.render.cycles import cycles_unavailable

        why = cycles_unavailable()
        if why:
            raise RenderError(f"{spec_path}: render.engine cycles: {why}")
    if spec.sampler == "search":  # refuse before anything is written: a scene past the search cannot be made
        searched = len((spec.search or {}).get("points") or ())
        if scenes > searched:
            raise SuiteError(f"{spec_path}: a search suite's spec holds {searched} searched scenes; --scenes {scenes} "
                             f"asks for more: use --scenes {searched} (or fewer)")
    the_plan = plan_suite(spec, seed, scenes, opts)
    out = Path(out_dir)
    key = job_key(spec.sha256, seed, opts.as_dict())
    decide(out, inspect_folder(out), key, scenes)  # refuse before anything is written
    the_plan.images_of(0)  # a spec whose scenes cannot be sampled or permuted fails here, before a folder exists
    existed, fresh = out.exists(), not out.exists() or not any(out.iterdir())
    with _writing(out, LOCK):
        lock = SuiteLock(out, lock_as).acquire()
    try:
        state = inspect_folder(out)  # again, now that no other run can change it
        action = decide(out, state, key, scenes)
        if action == "unchanged":
            log.info("%s: already a finished suite of %d scenes; nothing to do", out, scenes)
            return GenerateResult(out, scenes, int(state.images or 0), scenes, status="unchanged")
        if on_start:
            on_start(the_plan)
        with _writing(out, JOB):
            write_json(out / JOB, {**key, "scenes": scenes})
            if action == "extend":
                log.info("%s: extending a finished suite of %s scenes to %d", out, state.scenes, scenes)
                withdraw_manifest(out)
        resumed = _render(out, spec, str(spec_path), seed, scenes, opts, executor, workers, on_scene, on_image)
        with _writing(out, "the suite's tables and manifest"):
            n_images, render = _assemble(out, spec, seed, scenes, opts)
        status = "extended" if action == "extend" else "resumed" if resumed else "generated"
        return GenerateResult(out, scenes, n_images, resumed, status=status, render=render)
    except BaseException:
        if fresh and not any((out / STATE).glob("scene_*.json")):
            _remove_what_we_made(out, existed)  # nothing finished: leave no half-made folder behind
        raise
    finally:
        lock.release()


def _remove_what_we_made(out: Path, keep_folder: bool) -> None:
    """Remove a folder this run created (or the contents it gave an empty folder)."""
    import shutil

    if not keep_folder:
        shutil.rmtree(out, ignore_errors=True)
        return
    for p in list(out.iterdir()):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _render(out: Path, spec: OddSpec, spec_path: str, seed: int, scenes: int, opts: PlanOptions, executor: Any,
            workers: int, on_scene: Optional[Callable[[int], None]],
            on_image: Optional[Callable[[int], None]] = None) -> int:
    """Render every scene without a record, streamed through the executor; returns how many
    scenes an earlier run had finished."""
    from oddsuite.run import LocalExecutor, TaskFailure

    resumed = 0

    def jobs() -> Iterator[SceneJob]:
        nonlocal resumed
        for i in range(scenes):
            rec = _state_ok(out, i)
            if rec is not None:
                resumed += 1
                if on_scene:
                    on_scene(len(rec["images"]))
                continue
            with _writing(out, scene_folder(i)):
                sweep_temporaries(out / scene_folder(i))  # left by a writer killed in an earlier run
            yield SceneJob(spec.source_text or "", spec_path, seed, i, str(out), opts)

    if executor is None:
        executor = LocalExecutor(workers)
    failures: list[TaskFailure] = []
    mapped = executor.map(render_scene, jobs(), key=lambda j: j.scene_id)
    results = watched(mapped, out, on_image)
    try:
        for _, rec in results:
            if isinstance(rec, TaskFailure):
                failures.append(rec)
                log.error("scene %s failed: %s", rec.key, rec.error)
                if rec.disk_full:
                    break  # every other scene would fail the same way
                continue
            if on_scene:
                on_scene(len(rec["images"]))
    finally:
        results.close()  # stops the image watcher
        close = getattr(mapped, "close", None)
        if close:
            close()
    full = [f for f in failures if f.disk_full]
    if full:
        raise SuiteError(f"{out}: disk full (or the file-size limit reached) while rendering scene {full[0].key} "
                         f"({full[0].error}). The suite is not finished (verify refuses it); finished scenes are "
                         f"kept: free space and run the same command to resume")
    if failures:
        raise SuiteError(
            f"{len(failures)} scene(s) failed: " + "; ".join(f"scene {f.key}: {f.error}" for f in failures[:5])
            + f". Finished scenes are kept in {out}; fix the cause and run the same command to resume."
        )
    return resumed


def _records(out: Path, n_scenes: int) -> Iterator[dict[str, Any]]:
    for i in range(n_scenes):
        p = out / scene_record(i)
        try:
            yield json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise SuiteError(f"{p}: the record of a finished scene is unreadable ({e}); delete it and run the same "
                             f"command to render the scene again") from e


def _assemble(out: Path, spec: OddSpec, seed: int, n_scenes: int, opts: PlanOptions) -> tuple[int, dict[str, Any]]:
    """Write annotations.json, scenes.parquet, rois.parquet and spec.yaml from the scene
    records, then the manifest (last: a suite without one is unfinished). Returns the image
    count and the render summary with its timing (``render_summary``)."""
    for folder, recursive in ((out, False), (out / STATE, False), (out / IMAGES, True)):
        sweep_temporaries(folder, recursive)  # left by writers killed in earlier runs
    cats = [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(spec.class_names)]
    images, anns, rows, rois = [], [], [], []
    files: dict[str, str] = {}
    renders: list[dict[str, Any]] = []
    for rec in _records(out, n_scenes):
        rois.extend(rec["rois"])
        if "render" in rec:
            renders.append(rec["render"])
        files.update(rec["files"])
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
    atomic_write_bytes(out / ANNOTATIONS, json_bytes(coco))
    full_ids = {im["id"] for im in images if im["mode"] == "full"}  # path 1 only, for plain COCOeval (#15)
    atomic_write_bytes(out / ANNOTATIONS_FULL, json_bytes({
        **coco, "images": [im for im in images if im["id"] in full_ids],
        "annotations": [a for a in anns if a["image_id"] in full_ids]}))
    df = pd.DataFrame(rows)
    fixed = list(RECORD_COLUMNS)
    df = df[fixed + sorted(c for c in df.columns if c not in fixed)]
    atomic_write_bytes(out / SCENES, parquet_bytes(df))
    roi_cols = ["scene_id", "roi_id", "category", "category_id", "asset", "distance_m", "lateral_m", "heading_deg",
                "scale", "x_m", "y_m", "placement_tries"]
    atomic_write_bytes(out / ROIS, parquet_bytes(pd.DataFrame(rois, columns=roi_cols)))
    atomic_write_bytes(out / SPEC, (spec.source_text or "").encode())
    summary = render_summary(renders)
    for name in TABLES:
        files[name] = sha256_file(out / name)
    manifest = {
        "format": FORMAT,
        "spec": {"name": spec.name, "file": Path(spec.source_path or SPEC).name, "sha256": spec.sha256},
        "seed": seed,
        "scenes": n_scenes,
        "images": len(images),
        "plan": opts.as_dict(),
        "variants": [v.name for v in spec.variants],
        "categories": [c["name"] for c in cats],
        "packages": package_versions(spec.sensor_given),
        "render": {k: v for k, v in summary.items() if k != "seconds_per_frame"},
        "files": dict(sorted(files.items())),
    }
    write_json(out / MANIFEST, manifest)
    return len(images), summary


def render_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The render block of a suite from its scenes' records: engine, version, device(s),
    settings and ``frames`` (what the manifest records), plus ``seconds_per_frame``, the
    measured mean wall time per render (over the scenes of earlier runs too when a run
    resumed). The manifest leaves the time out: its bytes name the suite, and the same
    spec and seed must give the same identity."""
    if not runs:
        return {}
    frames = sum(r["frames"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    out = {k: runs[0][k] for k in ("engine", "version", "settings")}
    out["device"] = "; ".join(sorted({r["device"] for r in runs}))
    out["frames"] = frames
    out["seconds_per_frame"] = round(seconds / frames, 4) if frames else None
    return out


def package_versions(sensor: bool = False) -> dict[str, str]:
    """Versions of what shapes the pixels; a suite is reproducible under the same set.
    ``sensor``: the suite's spec has sensor effects (``OddSpec.sensor_given``), whose
    filters and JPEG codec are opencv's; opencv is listed then only (it shapes no pixel
    otherwise, and a manifest without it keeps the identity it had before sensors)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"oddsuite": __version__}
    for p in ("numpy", "scipy", "trimesh", "pybullet", "pyrender", "PyOpenGL", "pillow", "pyarrow", "pandas"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "absent"
    if sensor:
        import cv2

        out["opencv"] = cv2.__version__  # the module's own: several opencv wheels provide it
    return out
