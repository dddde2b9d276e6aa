"""User meshes named in a spec: loaded and checked when the spec loads.

A mesh must be readable by trimesh, hold triangles whose indices point at its vertices,
have finite coordinates and a non-zero extent, and, scaled as the spec says, be a
plausible road object (``PLAUSIBLE_M``). The scale is either ``size_m`` (the longest
side becomes that many metres) or ``units`` (what one unit of the file is). The scenes
package builds its assets from the same ``load_mesh``.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

#: the longest side of a scaled user mesh must lie in this range (metres)
PLAUSIBLE_M = (0.05, 50.0)
#: larger files are refused before they are read
MAX_MESH_BYTES = 256 << 20
SUFFIXES = (".obj", ".glb", ".gltf", ".stl", ".ply")
#: metres per unit of a user mesh file
UNITS_M = {"mm": 0.001, "cm": 0.01, "m": 1.0}


def load_mesh(path: Path):
    """The mesh at ``path`` as one ``trimesh.Trimesh`` (cached per file version).
    Raises ValueError saying what is wrong with the file."""
    st = path.stat()
    return _load(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=32)
def _load(path: str, mtime_ns: int, size: int):
    import trimesh

    if size > MAX_MESH_BYTES:
        raise ValueError(f"the file is {size} bytes, above the {MAX_MESH_BYTES} bytes a user mesh may have")
    try:
        m = trimesh.load(path, force="mesh")
    except Exception as e:  # noqa: BLE001 - trimesh raises many kinds on a bad file
        # the parser's own exception says where it stopped (kept, after what was expected)
        raise ValueError(f"cannot be read as a triangle mesh: expected a valid {Path(path).suffix.upper().lstrip('.')} "
                         f"file with vertices and faces (the reader stopped: {type(e).__name__}: {e})") from None
    if not isinstance(m, trimesh.Trimesh) or len(m.faces) == 0:
        raise ValueError("holds no triangles (points or lines only?); export it as a triangle mesh")
    v, f = np.asarray(m.vertices), np.asarray(m.faces)
    if f.min() < 0 or f.max() >= len(v):
        raise ValueError("has faces that name vertices it does not have")
    if not np.isfinite(v).all():
        raise ValueError("has non-finite vertex coordinates")
    if float(max(m.extents)) <= 0:
        raise ValueError("has zero extent (every vertex at one point)")
    return m


def mesh_problem(path: Path, size_m: Optional[float], units: Optional[str]) -> Optional[str]:
    """What is wrong with a user mesh and its scale, or None."""
    if not path.is_file():
        return f"file {path} does not exist"
    if path.suffix.lower() not in SUFFIXES:
        return f"{path}: expected an OBJ/GLB/GLTF/STL/PLY file"
    try:
        m = load_mesh(path)
    except (OSError, ValueError) as e:
        return f"{path}: {e}"
    longest = float(max(m.extents))
    if units is not None:
        metres = longest * UNITS_M[units]
        lo, hi = PLAUSIBLE_M
        if not lo <= metres <= hi:
            return (f"{path}: its longest side is {longest:g} {units} = {metres:g} m, outside the {lo:g} to {hi:g} m "
                    f"of a road object; check units (mm, cm or m), or give size_m instead")
    elif size_m is None:
        guess = ", ".join(f"{longest * f:g} m if they are {u}" for u, f in UNITS_M.items()
                          if PLAUSIBLE_M[0] <= longest * f <= PLAUSIBLE_M[1])
        return (f"{path}: a user mesh needs its scale: its longest side is {longest:g} file units"
                f"{' (' + guess + ')' if guess else ''}; give units (mm, cm or m: the unit the file is written "
                f"in) or size_m (the longest side in metres)")
    return None


def mesh_scale(path: Path, size_m: Optional[float], units: Optional[str]) -> float:
    """The factor that turns the file's coordinates into metres."""
    if units is not None:
        return UNITS_M[units]
    return float(size_m) / float(max(load_mesh(path).extents))  # type: ignore[arg-type]
