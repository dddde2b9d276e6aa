"""Scenes: assets (built-in shapes, pybullet_data meshes, user meshes), placement with
pybullet, and the immutable ``Scene`` value built from an ``OddSpec`` and one
``SceneParams``. It may import ``odd`` (and ``errors``), nothing above it."""
from oddsuite.scenes.scene import Scene, SceneObject, build_scene

__all__ = ["Scene", "SceneObject", "build_scene"]
