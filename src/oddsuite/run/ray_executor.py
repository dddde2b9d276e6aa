"""The Ray executor: the same per-scene tasks on a Ray cluster (or a local Ray runtime).

``RayExecutor(workers=N)`` starts a local Ray with N CPUs; ``address="auto"`` (or a
``ray://…`` / ``host:port`` address) joins an existing cluster. Each task re-derives its
scene from the suite seed and the scene id, so where it runs changes no byte; results
stream back to the driver, which merges them (mAP is never averaged across shards).
Application errors are retried ``retries`` times (user errors, such as an impossible
spec, are not), then reported per task as a TaskFailure; finished tasks are kept.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Iterable, Iterator

from oddsuite.run.local import _failure, _no_retry

log = logging.getLogger(__name__)


class RayExecutor:
    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None, retries: int = 1):
        try:
            import ray
        except ImportError as e:  # pragma: no cover - ray is a declared dependency
            from oddsuite.errors import OddsuiteError

            raise OddsuiteError("--executor ray needs the 'ray' package: pip install 'ray>=2.9'") from e
        self.ray = ray
        self.retries = max(0, int(retries))
        if not ray.is_initialized():
            env = {"env_vars": {"PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "egl")}}
            if address:
                ray.init(address=address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(num_cpus=max(1, int(workers)), include_dashboard=False, runtime_env=env,
                         log_to_driver=False, configure_logging=False)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], key: Callable[[Any], Any] = lambda x: x
            ) -> Iterator[tuple[Any, Any]]:
        ray = self.ray
        task = ray.remote(num_cpus=1, max_retries=0)(_run)
        items = iter(items)
        pending: dict[Any, tuple[Any, int]] = {}
        most = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))  # items are pulled as CPUs free up

        def fill() -> None:
            for it in items:
                pending[task.remote(fn, it)] = (it, 1)
                if len(pending) >= most:
                    return

        fill()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            it, tries = pending.pop(ref)
            try:
                ok, value = ray.get(ref)
            except Exception as exc:  # a worker died (system error): retry like an app error
                ok, value = False, exc
            if ok:
                yield it, value
            elif tries <= self.retries and not _no_retry(value):
                log.warning("task %s failed (%s); retrying", key(it), value)
                pending[task.remote(fn, it)] = (it, tries + 1)
            else:
                yield it, _failure(key(it), value, tries)
            fill()

    def shutdown(self) -> None:
        self.ray.shutdown()


def _run(fn: Callable[[Any], Any], item: Any) -> tuple[bool, Any]:
    """Run one task; return (ok, result or the exception) so errors come back as values."""
    try:
        return True, fn(item)
    except Exception as exc:  # noqa: BLE001 - reported per task by the driver
        return False, exc
