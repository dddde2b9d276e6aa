"""The local executor: a pool of worker processes (spawned, so each owns its GL context).

Work is sharded by scene: ``fn(item)`` must derive everything from ``item`` (the suite
seed and scene id), so where it runs changes no byte. Results stream back as they finish.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

log = logging.getLogger(__name__)


@dataclass
class TaskFailure:
    """A task that raised on every try."""

    key: Any
    error: str
    tries: int


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int = 1, retries: int = 1):
        self.workers = max(1, int(workers))
        self.retries = max(0, int(retries))

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], key: Callable[[Any], Any] = lambda x: x
            ) -> Iterator[tuple[Any, Any]]:
        """Yield (item, result) as tasks finish; a task that keeps raising yields (item, TaskFailure)."""
        items = list(items)
        if self.workers == 1:
            for it in items:
                yield it, self._call_with_retries(fn, it, key)
            return
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx) as pool:
            pending = {pool.submit(fn, it): (it, 1) for it in items}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    it, tries = pending.pop(fut)
                    exc = fut.exception()
                    if exc is None:
                        yield it, fut.result()
                    elif tries <= self.retries and not _is_user_error(exc):
                        log.warning("task %s failed (%s); retrying", key(it), exc)
                        pending[pool.submit(fn, it)] = (it, tries + 1)
                    else:
                        yield it, _failure(key(it), exc, tries)

    def _call_with_retries(self, fn, it, key):
        tries = 0
        while True:
            tries += 1
            try:
                return fn(it)
            except Exception as exc:  # noqa: BLE001 - reported per task
                if tries > self.retries or _is_user_error(exc):
                    return _failure(key(it), exc, tries)
                log.warning("task %s failed (%s); retrying", key(it), exc)


def _is_user_error(exc: BaseException) -> bool:
    from oddsuite.errors import OddsuiteError

    return isinstance(exc, OddsuiteError)


def _failure(k: Any, exc: BaseException, tries: int) -> TaskFailure:
    return TaskFailure(k, f"{type(exc).__name__}: {exc}", tries)


def make_executor(kind: str = "local", workers: int = 1, address: str | None = None):
    """The executor a command's ``--executor/--workers/--address`` name: a LocalExecutor of
    ``workers`` processes, or a RayExecutor (``address``: join that cluster)."""
    if kind == "ray":
        from oddsuite.run.ray_executor import RayExecutor

        return RayExecutor(workers=workers, address=address)
    if kind != "local":
        raise ValueError(f"executor must be 'local' or 'ray', got {kind!r}")
    return LocalExecutor(workers)
