"""Executors that map a per-scene function over scene ids: a local process pool (default)."""
from oddsuite.run.local import LocalExecutor, TaskFailure, make_executor

__all__ = ["LocalExecutor", "TaskFailure", "make_executor"]
