"""ROI subset plans, masking modes, environment variant expansion."""
from oddsuite.permute.plans import plan_size, subset_code, subsets

__all__ = ["plan_size", "subset_code", "subsets"]
