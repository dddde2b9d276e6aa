"""oddsuite: ODD-driven validation suites for object detectors."""
__version__ = "0.1.0"
