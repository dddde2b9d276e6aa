"""The HTML report: one self-contained file from a results folder. See ``oddsuite.report.build``."""
from oddsuite.report.build import SECTIONS, build_report, render_report, report_context, section_ids

__all__ = ["SECTIONS", "build_report", "render_report", "report_context", "section_ids"]
