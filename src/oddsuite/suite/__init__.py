"""On-disk suite format, manifest with SHA-256, verify, resume."""
from oddsuite.suite.generate import GenerateResult, PlanOptions, generate_suite, plan_suite, render_scene
from oddsuite.suite.verify import VerifyReport, load_manifest, verify_suite

__all__ = ["GenerateResult", "PlanOptions", "generate_suite", "plan_suite", "render_scene", "VerifyReport",
           "load_manifest", "verify_suite"]
