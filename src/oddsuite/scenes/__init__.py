"""Assets, physical placement with pybullet, and the Scene value."""
from oddsuite.scenes.scene import Scene, SceneObject, build_scene

__all__ = ["Scene", "SceneObject", "build_scene"]
