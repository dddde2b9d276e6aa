"""Inputs that once broke oddsuite (tests/cases/README.md): every one must end, through the
real CLI, in exit code 2 with ``invalid ODD spec``, the file, the line and the YAML path,
under a memory limit, with no traceback and no folder left behind."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).resolve().parent / "cases" / "specs"
#: address space for the CLI process: far below what the fault each case stands for needs
MEMORY_LIMIT = 3 << 30
#: a hang guard for the subprocess, not a speed target
HANG_S = 300

#: case file → (line, YAML path, words of the message)
EXPECTED = {
    "05_inf_count.yaml": (14, "objects.car.count", "not a finite number"),
    "08_negative_count.yaml": (14, "objects.car.count", "out of range"),
    "13_dup_top_key.yaml": (23, "environment", "first at line 8, again at line 23"),
    "15_yaml11_bool_surface.yaml": (7, "scenery.road_surface", "write 'no' in quotes"),
    "23_normal_inf_std.yaml": (14, "objects.car.distance_m.normal.1", "not a finite number"),
    "25_weight_nan.yaml": (7, "scenery.road_surface.choices.dry", "not a finite number"),
    "29_mesh_not_mesh.yaml": (15, "objects.blob.mesh", "junk.obj: cannot be read as a triangle mesh: expected a valid OBJ file"),
    "37_recursive_alias.yaml": (22, "variants.0", "anchors"),
    "39_billion_laughs_in_rules.yaml": (24, "extra_bomb.x0", "anchors"),
    "40_kSubsets_huge.yaml": (20, "permutations.k", "above permutations.max_subsets = 256"),
    "45_int_big_lanes.yaml": (6, "scenery.lanes", "out of range, expected 1 to 6"),
    "61_non_utf8.yaml": (1, "name", "not UTF-8"),
    "mesh_in_millimetres.yaml": (7, "objects.van.mesh", "van_in_millimetres.stl: a user mesh needs its scale"),
    "mesh_without_triangles.yaml": (7, "objects.tractor.mesh", "points_only.glb: holds no triangles"),
}


def test_every_case_file_is_listed():
    assert sorted(p.name for p in CASES.glob("*.yaml")) == sorted(EXPECTED)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_spec_fails_at_load_through_the_cli(name, tmp_path):
    line, path, words = EXPECTED[name]
    spec = CASES / name
    out = tmp_path / "out"
    env = {**os.environ, "PYOPENGL_PLATFORM": "egl", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "oddsuite.cli", "generate", str(spec), "--out", str(out), "--scenes", "1"],
                       capture_output=True, text=True, env=env, timeout=HANG_S, preexec_fn=_limit_memory)
    err = r.stderr
    assert r.returncode == 2, f"exit {r.returncode}\n{r.stdout}\n{err}"
    assert "Traceback" not in err and "Traceback" not in r.stdout, err
    assert "invalid ODD spec" in err
    assert f"{spec}:{line}: {path}: " in err, err
    assert words in err, err
    assert not out.exists(), "a folder was made for a spec that does not load"
