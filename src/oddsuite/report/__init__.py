"""The HTML report: one self-contained file from a results folder (``oddsuite.report.build``),
opening with the verdicts of the spec's acceptance criteria (``verdicts``) and their GSN
argument, also written as evidence.json by ``check_results`` (``evidence``)."""
from oddsuite.report.build import SECTIONS, build_report, render_report, report_context, section_ids
from oddsuite.report.evidence import check_results
from oddsuite.report.verdicts import evaluate_acceptance
from oddsuite.report.screenshot import find_chromium, screenshot

__all__ = ["SECTIONS", "build_report", "check_results", "evaluate_acceptance", "find_chromium", "render_report",
           "report_context", "screenshot", "section_ids"]
