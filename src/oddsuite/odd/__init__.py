"""The ODD spec: its schema (``spec``, pydantic), domains over the unit interval
(``domains``), safe YAML reading and the checks at load (``reader``, ``load``, ``rules``,
``meshes``), the effect declarations the schema is built from (``effects``), the
samplers (``samplers``: one class per file over the unit cube) and one scene's parameters
(``sampling``). This is the bottom of the import chain: it imports only ``errors`` and
third-party libraries, never another oddsuite package."""
from oddsuite.odd.domains import Domain, parse_domain
from oddsuite.odd.load import load_spec, parse_spec
from oddsuite.odd.sampling import ObjectParams, SceneParams, global_dimensions, sample_scene
from oddsuite.odd.spec import OddSpec, Variant

__all__ = ["Domain", "parse_domain", "ObjectParams", "SceneParams", "global_dimensions", "sample_scene",
           "OddSpec", "Variant", "load_spec", "parse_spec"]
