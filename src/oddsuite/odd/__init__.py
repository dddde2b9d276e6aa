"""ODD spec schema (pydantic) and seeded samplers over its dimensions."""
from oddsuite.odd.domains import Domain, parse_domain
from oddsuite.odd.load import load_spec, parse_spec
from oddsuite.odd.sampling import ObjectParams, SceneParams, global_dimensions, sample_scene
from oddsuite.odd.spec import OddSpec, Variant

__all__ = ["Domain", "parse_domain", "ObjectParams", "SceneParams", "global_dimensions", "sample_scene",
           "OddSpec", "Variant", "load_spec", "parse_spec"]
