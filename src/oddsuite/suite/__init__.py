"""The on-disk suite: the only writer and the only reader of its files.

``layout`` spells the file names; ``generate`` renders a suite (sharded by scene, streamed,
resumable, extensible), with ``state`` deciding what a run may do with a folder and
``lock`` keeping to one run per folder; ``reader`` reads a suite back (annotations, tables,
images, identity); ``manifest``, ``verify`` and ``sign`` say what a suite, results or model
folder holds, whether it still does and who vouches for it. May import ``permute``,
``render``, ``scenes``, ``odd`` (to generate), ``run`` (executors), ``fileio`` and
``errors``; never ``evaluate`` or anything above it.
"""
from oddsuite.suite.generate import (GenerateResult, PlanOptions, SuitePlan, generate_suite, plan_suite,
                                     render_scene)
from oddsuite.suite.lock import SuiteLock
from oddsuite.suite.manifest import identity_of, read_manifest
from oddsuite.suite.reader import Suite, load_suite, read_annotations, read_image
from oddsuite.suite.sign import generate_key, sign_folder
from oddsuite.suite.verify import VerifyReport, load_manifest, verify_folder, verify_suite

__all__ = ["GenerateResult", "PlanOptions", "SuitePlan", "generate_suite", "plan_suite", "render_scene", "SuiteLock",
           "identity_of", "read_manifest", "Suite", "load_suite", "read_annotations", "read_image", "generate_key",
           "sign_folder", "VerifyReport", "load_manifest", "verify_folder", "verify_suite"]
