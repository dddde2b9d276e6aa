"""The Cycles worker: run as a script by the Blender Python (``.venv-cycles/bin/python``).

It speaks protocol ``oddsuite-cycles/2`` (see ``oddsuite/render/cycles/protocol.py``) on
stdin/stdout, one JSON object per line, and imports only ``bpy``, NumPy and ``shading``
(beside it). Blender's own console output is redirected to stderr so that stdout carries
answers only. It holds no rule of the environment: each render brings the scene state the
declared effects decided in oddsuite (sun, headlights, road surface, snow cover,
shadows), and the worker only maps it onto Blender, in the units below.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback

_ANSWERS = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # everything Blender prints goes to stderr

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from mathutils import Matrix, Vector  # noqa: E402

import shading  # noqa: E402
from shading import assign  # noqa: E402

PROTOCOL = "oddsuite-cycles/2"
#: rasterizer candela → Blender spot power (W), and the sun strength (W/m²) per unit of the
#: rasterizer's directional intensity: chosen by eye so that the two engines' images have a
#: similar mean brightness (urban_day scene 2 at 320x240: day 142 vs 132, night with
#: headlamps on a wet road 50 vs 51, of 255)
CANDELA_TO_WATT = 14.0
SUN_SCALE = 2.4
#: strength of the sky texture (multiple scattering is in physical units: scaled to the sun)
SKY_STRENGTH = 0.03
#: the film: Blender's AgX view transform (a camera-like highlight roll-off)
VIEW_TRANSFORM, LOOK, EXPOSURE = "AgX", "AgX - Medium High Contrast", 0.0
#: smooth shading below this angle between faces (rad)
SMOOTH_ANGLE = math.radians(35.0)

#: the loaded scene. Two Blender scenes share its objects: ``main`` (scenery and ROIs) and
#: ``iso`` (ROIs only, transparent film). Each has its own persistent render session, so a
#: session never sees the scenery or the film toggled: with persistent data, toggling them
#: and back changes the next image's noise (measured), and the same request must give
#: the same bytes whatever was rendered before.
STATE: dict = {"objects": {}, "scenery": [], "materials": [], "sun": None, "lamps": [], "world": None,
               "scenes": {}, "loads": 0, "device": "CPU", "threads": 0}


# ----------------------------------------------------------------------------- hello

def hello(req: dict) -> dict:
    want = req.get("device", "auto")
    chosen = "CPU"
    if want != "cpu":
        prefs = bpy.context.preferences.addons["cycles"].preferences
        for kind in ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"):
            try:
                prefs.compute_device_type = kind
            except TypeError:  # not built into this bpy
                continue
            prefs.get_devices()
            gpus = [d for d in prefs.devices if d.type == kind]
            if gpus:
                for d in prefs.devices:
                    d.use = d.type == kind
                chosen = f"{kind}: {gpus[0].name}"
                break
        if want == "gpu" and chosen == "CPU":
            raise RuntimeError("render.device is gpu but this bpy finds no CUDA, OptiX, HIP, oneAPI or Metal device")
    STATE["device"], STATE["threads"] = chosen, int(req.get("threads", 0))
    sc = _new_scene("probe")
    threads = sc.render.threads
    bpy.data.scenes.remove(sc)
    return {"protocol": PROTOCOL, "blender": bpy.app.version_string, "device": chosen, "threads": threads}


def _new_scene(name: str) -> bpy.types.Scene:
    """A Cycles scene with the device and thread count of ``hello``."""
    sc = bpy.data.scenes.new(name)
    sc.render.engine = "CYCLES"
    sc.cycles.device = "CPU" if STATE["device"] == "CPU" else "GPU"
    sc.render.threads_mode = "FIXED" if STATE["threads"] > 0 else "AUTO"
    if STATE["threads"] > 0:
        sc.render.threads = STATE["threads"]
    return sc


# ----------------------------------------------------------------------------- load

def _clear() -> None:
    for sc in STATE["scenes"].values():  # frees their render sessions
        bpy.data.scenes.remove(sc)
    for coll in (bpy.data.objects, bpy.data.meshes, bpy.data.materials, bpy.data.lights, bpy.data.cameras,
                 bpy.data.worlds, bpy.data.images):
        for item in list(coll):
            coll.remove(item)
    STATE.update(objects={}, scenery=[], materials=[], sun=None, lamps=[], world=None, scenes={})


def _matrix(flat) -> Matrix:
    a = np.asarray(flat, dtype=float).reshape(4, 4)
    return Matrix([list(r) for r in a])


def _mesh(name: str, v: np.ndarray, f: np.ndarray, m: np.ndarray) -> bpy.types.Mesh:
    me = bpy.data.meshes.new(name)
    me.vertices.add(len(v))
    me.vertices.foreach_set("co", v.astype(np.float32).ravel())
    me.loops.add(3 * len(f))
    me.loops.foreach_set("vertex_index", f.astype(np.int32).ravel())
    me.polygons.add(len(f))
    me.polygons.foreach_set("loop_start", np.arange(0, 3 * len(f), 3, dtype=np.int32))
    me.update(calc_edges=True)
    me.polygons.foreach_set("material_index", m.astype(np.int32))
    me.polygons.foreach_set("use_smooth", np.ones(len(f), dtype=bool))
    me.set_sharp_from_angle(angle=SMOOTH_ANGLE)
    me.validate()
    return me


def _link(obj, isolate_too: bool = True) -> None:
    STATE["scenes"]["main"].collection.objects.link(obj)
    if isolate_too:
        STATE["scenes"]["iso"].collection.objects.link(obj)


def load(req: dict) -> dict:
    _clear()
    STATE["loads"] += 1  # fresh scene names: fresh render sessions
    STATE["scenes"] = {k: _new_scene(f"{k}{STATE['loads']}") for k in ("main", "iso")}
    with np.load(req["path"], allow_pickle=False) as z:
        header = json.loads(bytes(z["header"]).decode())
        if header.get("protocol") != PROTOCOL:
            raise ValueError(f"scene file speaks {header.get('protocol')!r}, this worker {PROTOCOL!r}")
        mats = [shading.material(i, m) for i, m in enumerate(header["materials"])]
        STATE["materials"] = mats
        tris = 0
        for i, ob in enumerate(header["objects"]):
            v, f, m = z[f"v{i}"], z[f"f{i}"], z[f"m{i}"]
            used = sorted(set(int(x) for x in np.unique(m)))
            local = np.searchsorted(used, m)
            me = _mesh(ob["name"], v, f, local)
            for k in used:
                me.materials.append(mats[k].material)
            obj = bpy.data.objects.new(ob["name"], me)
            obj.matrix_world = _matrix(ob["pose"])
            _link(obj, isolate_too=ob["roi_id"] is not None)
            tris += len(f)
            if ob["roi_id"] is None:
                STATE["scenery"].append(obj)
            else:
                STATE["objects"][int(ob["roi_id"])] = obj
    cam = header["camera"]
    cd = bpy.data.cameras.new("camera")
    cd.sensor_fit = "VERTICAL"
    cd.sensor_height = 24.0
    cd.lens = 0.5 * cd.sensor_height / math.tan(cam["yfov"] / 2)
    cd.clip_start, cd.clip_end = cam["znear"], cam["zfar"]
    co = bpy.data.objects.new("camera", cd)
    co.matrix_world = _matrix(cam["pose"])
    _link(co)
    sun = bpy.data.lights.new("sun", "SUN")
    sun.angle = math.radians(0.53)
    so = bpy.data.objects.new("sun", sun)
    _link(so)
    STATE["sun"] = so
    for k, light in enumerate(header["lights"]):
        ld = bpy.data.lights.new(f"headlamp{k}", "SPOT")
        ld.color = light["color"]
        ld.spot_size = 2 * light["outer"]
        ld.spot_blend = 1 - light["inner"] / light["outer"]
        ld.shadow_soft_size = 0.05
        lo = bpy.data.objects.new(f"headlamp{k}", ld)
        lo.matrix_world = _matrix(light["pose"])
        _link(lo)
        STATE["lamps"].append(lo)
    STATE["world"] = shading.world()
    for k, sc in STATE["scenes"].items():
        sc.camera = co
        sc.world = STATE["world"].world
        sc.render.resolution_x, sc.render.resolution_y = cam["width"], cam["height"]
        sc.render.resolution_percentage = 100
        sc.render.pixel_aspect_x = sc.render.pixel_aspect_y = 1.0
        sc.render.film_transparent = k == "iso"
    return {"objects": len(header["objects"]), "triangles": tris}


# ----------------------------------------------------------------------------- render

def _settings(sc: bpy.types.Scene, req: dict) -> None:
    cy = sc.cycles
    im = sc.render.image_settings
    denoise = bool(req["denoise"])
    for obj, attr, value in (
        (cy, "samples", int(req["samples"])),
        (cy, "use_adaptive_sampling", False),  # a fixed sample count: the same work, the same bytes
        (cy, "seed", int(req["seed"])),
        (cy, "use_animated_seed", False),
        (cy, "use_denoising", denoise),
        (cy, "denoiser", "OPENIMAGEDENOISE"),
        (cy, "denoising_input_passes", "RGB_ALBEDO_NORMAL"),
        (cy, "denoising_prefilter", "ACCURATE"),
        (cy, "max_bounces", 6), (cy, "diffuse_bounces", 3), (cy, "glossy_bounces", 4),
        (cy, "transmission_bounces", 4), (cy, "transparent_max_bounces", 4),
        (cy, "caustics_reflective", False), (cy, "caustics_refractive", False),
        (cy, "blur_glossy", 1.0),
        (sc.render, "use_persistent_data", True),
        (sc.render, "dither_intensity", 0.0),  # no noise added when quantising to 8 bit
        (sc.view_settings, "view_transform", VIEW_TRANSFORM),
        (sc.view_settings, "look", LOOK),
        (sc.view_settings, "exposure", EXPOSURE),
        (sc.view_settings, "gamma", 1.0),
        (im, "file_format", "PNG"), (im, "color_mode", "RGBA"), (im, "color_depth", "8"), (im, "compression", 15),
    ):
        assign(obj, attr, value)


def _environment(env: dict) -> None:
    """Map the effects' scene state (protocol ``environment``) onto the Blender scene."""
    sun_dir = Vector(env["sun_direction"]).normalized()
    so = STATE["sun"]
    assign(so, "rotation_mode", "QUATERNION")
    assign(so, "rotation_quaternion", sun_dir.to_track_quat("Z", "Y"))
    direct = float(env["sun_intensity"])  # the rasterizer's directional intensity
    assign(so.data, "energy", SUN_SCALE * direct)
    assign(so.data, "color", tuple(float(c) for c in env["sun_color"]))
    assign(so, "hide_render", direct <= 0)
    assign(so.data, "use_shadow", bool(env["shadows"]))
    beam = float(env["headlights"])  # candela per low beam, 0 when off
    for lo in STATE["lamps"]:
        assign(lo.data, "energy", CANDELA_TO_WATT * beam)
        assign(lo, "hide_render", beam <= 0)
    STATE["world"].set(float(env["sun_elevation_deg"]), float(env["sun_azimuth_deg"]), float(env["cloud"]),
                       float(env["day"]), SKY_STRENGTH)
    for m in STATE["materials"]:
        m.set(road=env["road_state"], markings_snow=bool(env["markings_snow"]),
              terrain_snow=bool(env["terrain_snow"]), night=1.0 if float(env["day"]) <= 0 else 0.0,
              lamps=1.0 if beam > 0 else 0.0)


def render(req: dict) -> dict:
    if not STATE["scenes"]:
        raise RuntimeError("render before load")
    isolate = not req["scenery"]
    sc = STATE["scenes"]["iso" if isolate else "main"]
    _settings(sc, req)
    show = None if req["rois"] is None else set(int(r) for r in req["rois"])
    for rid, obj in STATE["objects"].items():
        assign(obj, "hide_render", show is not None and rid not in show)
    _environment(req["env"])
    assign(sc.render, "filepath", req["out"])
    t0 = time.perf_counter()
    bpy.ops.render.render(write_still=True, scene=sc.name)
    return {"seconds": time.perf_counter() - t0}


OPS = {"hello": hello, "load": load, "render": render}


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            out = OPS[req["op"]](req)
            out["ok"] = True
        except Exception as e:  # noqa: BLE001 - every failure is answered, the worker lives on
            out = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        _ANSWERS.write(json.dumps(out) + "\n")
        _ANSWERS.flush()


if __name__ == "__main__":
    main()
