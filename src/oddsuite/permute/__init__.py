"""ROI subset plans, masking modes, environment variant expansion, layer compositing."""
from oddsuite.permute.plans import plan_size, subset_code, subsets

__all__ = ["CompositeRenderer", "MODES", "cutout", "plan_size", "subset_code", "subsets", "environment_of"]

_LAZY = {"CompositeRenderer": "composite", "MODES": "masking", "cutout": "masking", "environment_of": "variants"}


def __getattr__(name: str):
    """Masking and compositing import the renderer (pyrender, GL): load them on first use only,
    so that plans (and `oddsuite verify`) stay light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"oddsuite.permute.{_LAZY[name]}"), name)
    raise AttributeError(name)
