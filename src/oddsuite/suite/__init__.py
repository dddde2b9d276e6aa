"""The on-disk suite: the only writer and the only reader of its files.

``layout`` spells the file names; ``generate`` renders a suite (sharded by scene,
resumable); ``reader`` reads it back (annotations, tables, images, identity); ``manifest``
and ``verify`` say what a folder holds and whether it still does. May import ``permute``,
``render``, ``scenes``, ``odd`` (to generate), ``run`` (executors), ``fileio`` and
``errors``; never ``evaluate`` or anything above it.
"""
from oddsuite.suite.generate import (GenerateResult, PlanOptions, SuitePlan, generate_suite, plan_suite,
                                     render_scene)
from oddsuite.suite.reader import Suite, load_suite, read_annotations, read_image
from oddsuite.suite.verify import VerifyReport, load_manifest, verify_suite

__all__ = ["GenerateResult", "PlanOptions", "SuitePlan", "generate_suite", "plan_suite", "render_scene", "Suite",
           "load_suite", "read_annotations", "read_image", "VerifyReport", "load_manifest", "verify_suite"]
