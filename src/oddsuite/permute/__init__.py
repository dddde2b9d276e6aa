"""ROI permutations of a scene: subset plans (``plans``), masking modes and their dispatch
(``masking``: remove, isolate, cutout), environment variant expansion (``variants``) and
layer compositing (``composite``). It may import render, scenes and odd (and errors),
nothing above; masking, variants and compositing load the renderer, so they are loaded on
first use and plans (and ``oddsuite verify``) stay light."""
from oddsuite.permute.plans import plan_size, subset_code, subsets

__all__ = ["CompositeRenderer", "MODES", "VariantFrames", "cutout", "plan_size", "subset_code", "subsets",
           "environment_of"]

_LAZY = {"CompositeRenderer": "composite", "MODES": "masking", "VariantFrames": "masking", "cutout": "masking",
         "environment_of": "variants"}


def __getattr__(name: str):
    """Masking and compositing import the renderer (pyrender, GL): load them on first use only."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"oddsuite.permute.{_LAZY[name]}"), name)
    raise AttributeError(name)
