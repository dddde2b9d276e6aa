"""The file protocol between oddsuite and its Cycles worker, ``oddsuite-cycles/2``.

The worker (``blender/worker.py``) runs in a separate Python that has Blender's ``bpy``
(and NumPy 1.x, which ``bpy`` 5.0 is built against); it imports nothing from oddsuite.
The main process talks to it over the worker's stdin/stdout, one JSON object per line:

- ``{"op": "hello", "device": "auto"|"cpu"|"gpu", "threads": N}`` →
  ``{"ok", "protocol", "blender", "device", "threads"}`` (the device actually used, e.g.
  ``"CPU"`` or ``"OPTIX: NVIDIA H200"``);
- ``{"op": "load", "path": SCENE.npz}`` → ``{"ok", "objects", "triangles"}``: builds the
  Blender scene from a scene file (below), replacing the previous one;
- ``{"op": "render", "env": {...}, "rois": [ids] | null, "scenery": bool, "samples": N,
  "denoise": bool, "seed": S, "out": PATH.png}`` → ``{"ok", "seconds"}``: renders the loaded
  scene with only ``rois`` (all when null) and with or without the scenery, under the
  environment ``env`` (``environment``: the scene state the declared effects decide,
  ``render.effects.scene_pass``, the same state the rasterizer draws), and writes an 8-bit
  RGBA PNG (alpha 0 where nothing is hit when ``scenery`` is false: the caller composites
  the neutral background);
- a failure answers ``{"ok": false, "error": "...", "traceback": "..."}``.

A scene file is a NumPy ``.npz`` (no pickles) with ``header``, a UTF-8 JSON document as
uint8 bytes, and per object ``i``: ``v{i}`` (V×3 float32 vertices in the object's frame,
metres), ``f{i}`` (F×3 int32 triangles) and ``m{i}`` (F int32 material indices). The
header holds ``protocol``, ``camera`` (``pose``: 4×4 camera-to-world, row-major, looking
along −z with y up; ``yfov`` radians; ``width``, ``height`` pixels; ``znear``, ``zfar``
metres), ``materials`` (``role``, ``color`` RGBA, ``metallic``, ``roughness``; roles are
``scenes.assets.MATERIALS``), ``objects`` (``name``, ``roi_id`` or null for scenery,
``asset``, ``pose`` 4×4 row-major object-to-world) and ``lights`` (the headlamps: spot
lights with ``pose``, ``color`` and ``inner``/``outer`` cone half-angles in radians; their
intensity comes with each render, from the headlights effect).

Version 2 moved every environment formula out of the worker: it receives the effects'
scene state and maps it onto Blender (version 1 sent the raw environment and repeated
the daylight, headlight and snow-cover rules).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from oddsuite.render.effects import SceneState
from oddsuite.render.renderer import HEADLAMP_CONE, headlamp_poses
from oddsuite.scenes.scene import Scene

PROTOCOL = "oddsuite-cycles/2"


def environment(state: SceneState) -> dict[str, Any]:
    """The ``env`` of a render request: the scene state of the declared effects
    (``render.effects.scene_pass``) as plain JSON values, in the rasterizer's units.

    ``sun_direction`` (unit vector to the sun, world frame: x forward, y left, z up) with
    ``sun_elevation_deg``/``sun_azimuth_deg`` (the same direction, for the sky model),
    ``sun_intensity`` and ``sun_color`` (the rasterizer's directional light), ``shadows``,
    ``headlights`` (candela per low beam, 0 when off), ``day`` (0 night … 1 day), ``cloud``
    (fraction), ``road_state`` (dry, wet, icy, snow), ``markings_snow`` and
    ``terrain_snow`` (snow lies on the lane markings / on terrain, pavement and kerbs)."""
    to = np.asarray(state.sun_to, dtype=float)
    to = to / np.linalg.norm(to)
    horizontal = math.hypot(float(to[0]), float(to[1]))
    return {
        "sun_direction": [float(v) for v in to],
        "sun_elevation_deg": math.degrees(math.atan2(float(to[2]), horizontal)),
        "sun_azimuth_deg": math.degrees(math.atan2(float(to[1]), float(to[0]))) % 360.0 if horizontal > 1e-9 else 0.0,
        "sun_intensity": float(state.sun_intensity),
        "sun_color": [float(v) for v in state.sun_color],
        "shadows": bool(state.shadows),
        "headlights": float(state.headlights),
        "day": float(state.day),
        "cloud": float(state.cloud),
        "road_state": str(state.road_state),
        "markings_snow": state.markings_cover is not None,
        "terrain_snow": state.terrain_cover is not None,
    }


def scene_document(scene: Scene) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and the arrays of ``scene``'s file (see the module doc)."""
    materials: list[dict[str, Any]] = []
    index: dict[tuple, int] = {}
    objects: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    items = [(f"scenery/{i}", None, p.asset, p.pose) for i, p in enumerate(scene.scenery)]
    items += [(f"roi/{o.roi_id}", o.roi_id, o.asset, o.pose) for o in scene.objects]
    for i, (name, roi_id, asset, pose) in enumerate(items):
        verts, faces, mats, base = [], [], [], 0
        for part in asset.parts:
            key = (part.material, tuple(round(float(c), 6) for c in part.color), round(float(part.metallic), 6),
                   round(float(part.roughness), 6))
            if key not in index:
                index[key] = len(materials)
                materials.append({"role": key[0], "color": list(key[1]), "metallic": key[2], "roughness": key[3]})
            m = part.mesh
            verts.append(np.asarray(m.vertices, dtype=np.float32))
            faces.append(np.asarray(m.faces, dtype=np.int32) + base)
            mats.append(np.full(len(m.faces), index[key], dtype=np.int32))
            base += len(m.vertices)
        arrays[f"v{i}"] = np.concatenate(verts)
        arrays[f"f{i}"] = np.concatenate(faces)
        arrays[f"m{i}"] = np.concatenate(mats)
        objects.append({"name": name, "roi_id": roi_id, "asset": asset.name,
                        "pose": np.asarray(pose, dtype=float).ravel().tolist()})
    cam = scene.camera
    header = {
        "protocol": PROTOCOL,
        "camera": {"pose": np.asarray(cam.pose, dtype=float).ravel().tolist(), "yfov": float(cam.yfov),
                   "width": int(cam.width), "height": int(cam.height), "znear": 0.1, "zfar": 1000.0},
        "materials": materials,
        "objects": objects,
        "lights": [{"type": "spot", "pose": T.ravel().tolist(), "color": [1.0, 0.97, 0.9], "inner": HEADLAMP_CONE[0],
                    "outer": HEADLAMP_CONE[1]} for T in headlamp_poses(cam.pose)],
    }
    return header, arrays


def write_scene(scene: Scene, path: Path) -> dict[str, Any]:
    """Write ``scene``'s file to ``path`` (an .npz); returns the header."""
    header, arrays = scene_document(scene)
    blob = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, header=blob, **arrays)
    return header
