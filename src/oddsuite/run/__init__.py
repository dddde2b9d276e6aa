"""Executors that map a per-scene function over scene ids: a local process pool (default)
or Ray (``ray_executor``, imported on demand). Imports ``errors`` only."""
from oddsuite.run.local import LocalExecutor, TaskFailure, make_executor

__all__ = ["LocalExecutor", "TaskFailure", "make_executor"]
