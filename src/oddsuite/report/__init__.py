"""The HTML report: one self-contained file from a results folder. See ``oddsuite.report.build``."""
from oddsuite.report.build import SECTIONS, build_report, render_report, report_context, section_ids
from oddsuite.report.screenshot import find_chromium, screenshot

__all__ = ["SECTIONS", "build_report", "render_report", "report_context", "section_ids", "find_chromium",
           "screenshot"]
