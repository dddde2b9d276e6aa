"""The local executor: a pool of worker processes (spawned, so each owns its GL context).

Work is sharded by scene: ``fn(item)`` must derive everything from ``item`` (the suite
seed and scene id), so where it runs changes no byte. Results stream back as they finish.
Items are pulled from their iterable only as workers free up (at most two per worker in
flight), so a million scenes are never listed up front.

Workers die with their driver: each asks the kernel for SIGKILL when its parent ends
(Linux ``prctl(PR_SET_PDEATHSIG)``) and also watches its parent's pid from a thread
(every other platform, and the moment between spawn and ``prctl``), so a driver killed
with SIGKILL leaves no worker rendering on.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

log = logging.getLogger(__name__)

#: how often a worker checks that its driver is still alive (seconds)
PARENT_POLL_S = 0.5
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class TaskFailure:
    """A task that raised on every try. ``disk_full``: it failed writing to a full disk
    (ENOSPC, EDQUOT) or past the file-size limit (EFBIG): the driver stops early."""

    key: Any
    error: str
    tries: int
    disk_full: bool = False


def watch_parent(parent_pid: int) -> None:
    """Worker initializer: end this process as soon as ``parent_pid`` is gone."""
    import signal

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc symbol: the thread below still watches
            pass
    if os.getppid() != parent_pid:  # the driver died before prctl took effect
        os._exit(1)

    def poll() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=poll, name="oddsuite-parent-watch", daemon=True).start()


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int = 1, retries: int = 1):
        self.workers = max(1, int(workers))
        self.retries = max(0, int(retries))

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], key: Callable[[Any], Any] = lambda x: x
            ) -> Iterator[tuple[Any, Any]]:
        """Yield (item, result) as tasks finish; a task that keeps raising yields (item, TaskFailure).
        Closing the iterator early cancels the tasks not yet started."""
        items = iter(items)
        if self.workers == 1:
            for it in items:
                yield it, self._call_with_retries(fn, it, key)
            return
        ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=watch_parent,
                                   initargs=(os.getpid(),))
        pending: dict[Any, tuple[Any, int]] = {}

        def fill() -> None:
            while len(pending) < 2 * self.workers:
                it = next(items, _END)
                if it is _END:
                    return
                pending[pool.submit(fn, it)] = (it, 1)

        try:
            fill()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    it, tries = pending.pop(fut)
                    exc = fut.exception()
                    if exc is None:
                        yield it, fut.result()
                    elif tries <= self.retries and not _no_retry(exc):
                        log.warning("task %s failed (%s); retrying", key(it), exc)
                        pending[pool.submit(fn, it)] = (it, tries + 1)
                    else:
                        yield it, _failure(key(it), exc, tries)
                fill()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _call_with_retries(self, fn, it, key):
        tries = 0
        while True:
            tries += 1
            try:
                return fn(it)
            except Exception as exc:  # noqa: BLE001 - reported per task
                if tries > self.retries or _no_retry(exc):
                    return _failure(key(it), exc, tries)
                log.warning("task %s failed (%s); retrying", key(it), exc)


_END = object()


def _is_user_error(exc: BaseException) -> bool:
    from oddsuite.errors import OddsuiteError

    return isinstance(exc, OddsuiteError)


def _no_retry(exc: BaseException) -> bool:
    """User errors and a full disk fail the same way on every try."""
    from oddsuite.fileio import is_disk_full

    return _is_user_error(exc) or is_disk_full(exc)


def _failure(k: Any, exc: BaseException, tries: int) -> TaskFailure:
    from oddsuite.fileio import is_disk_full

    return TaskFailure(k, f"{type(exc).__name__}: {exc}", tries, disk_full=is_disk_full(exc))


def make_executor(kind: str = "local", workers: int = 1, address: str | None = None):
    """The executor a command's ``--executor/--workers/--address`` name: a LocalExecutor of
    ``workers`` processes, or a RayExecutor (``address``: join that cluster)."""
    if kind == "ray":
        from oddsuite.run.ray_executor import RayExecutor

        return RayExecutor(workers=workers, address=address)
    if kind != "local":
        raise ValueError(f"executor must be 'local' or 'ray', got {kind!r}")
    return LocalExecutor(workers)
