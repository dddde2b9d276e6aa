"""Experiments that call ``evaluate`` or score a detector while they run: the falsification
search (``search``: an optimiser spends the render budget where the detector fails, and
writes an ordinary suite).

This is the top of the library's import chain: a study may import ``evaluate``,
``metrics``, ``models``, ``trace``, ``suite`` and what lies below it, ``run``, ``errors``
and ``fileio``. Nothing in the library imports a study (only ``cli`` and ``commands`` do).
Import the study module you need (``from oddsuite.studies.search import search_suite``):
the face re-exports nothing, so that importing one study does not load another's torch.
"""
