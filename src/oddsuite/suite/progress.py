"""Progress of a suite being written, image by image, whatever runs the scenes.

A scene's images are written by a worker (this process, a pool process or a Ray node), each
PNG atomically: a temporary ``.NAME.*.tmp`` file, then renamed. So the finished images are
exactly the ``*.png`` files under ``SUITE/images/``, and counting them tells how far a run is
without any channel from the workers. :class:`ImageCounter` counts them, re-listing only the
scene folders that changed since the last count; :func:`watch_images` calls back from a
background thread whenever the count moves.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

#: a folder modified this recently (ns) is listed again even if its mtime looks unchanged
#: (file systems with coarse timestamps can hide a rename made in the same tick)
_FRESH_NS = 2_000_000_000


class ImageCounter:
    """Counts the finished images (``images/*/*.png``, temporary files excluded) of a suite folder."""

    def __init__(self, suite_dir: str | Path):
        self.root = Path(suite_dir) / "images"
        self._folders: dict[str, tuple[int, int]] = {}  # folder name -> (mtime_ns, png count)

    def count(self) -> int:
        try:
            entries = list(os.scandir(self.root))
        except (FileNotFoundError, NotADirectoryError):
            return 0
        now = time.time_ns()
        total = 0
        for e in entries:
            try:
                if not e.is_dir():
                    continue
                mtime = e.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            seen = self._folders.get(e.name)
            if seen is None or seen[0] != mtime or now - mtime < _FRESH_NS:
                try:
                    n = sum(1 for f in os.scandir(e.path) if f.name.endswith(".png") and not f.name.startswith("."))
                except FileNotFoundError:
                    continue
                seen = self._folders[e.name] = (mtime, n)
            total += seen[1]
        return total


@contextlib.contextmanager
def watch_images(suite_dir: str | Path, on_image: Callable[[int], None], interval_s: float = 0.5) -> Iterator[None]:
    """Call ``on_image(n)`` with the number of finished images whenever it changes, from a
    background thread every ``interval_s`` seconds while the block runs, and once more at its end."""
    counter = ImageCounter(suite_dir)
    stop = threading.Event()
    last = [-1]

    def tick() -> None:
        n = counter.count()
        if n != last[0]:
            last[0] = n
            on_image(n)

    def loop() -> None:
        while not stop.wait(interval_s):
            tick()

    tick()
    thread = threading.Thread(target=loop, name="oddsuite-image-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        tick()


def watched(items: Iterable[T], suite_dir: str | Path, on_image: Callable[[int], None] | None) -> Iterator[T]:
    """``items``, yielded while :func:`watch_images` reports on ``suite_dir`` (just ``items``
    when ``on_image`` is None)."""
    if on_image is None:
        yield from items
        return
    with watch_images(suite_dir, on_image):
        yield from items


class ImageBar:
    """A tqdm bar of the images written, for :func:`oddsuite.suite.generate_suite`'s
    ``on_start``, ``on_scene`` and ``on_image``; a context manager that closes the bar.
    ``enabled=False`` shows nothing. ``header(plan)``, when given, returns a line printed
    before the bar starts.

    The bar counts images as they are written; the scenes done show beside it
    (``scenes=3/10``). A suite's image total is known only once every scene is sampled
    (:meth:`oddsuite.suite.generate.SuitePlan.total_images`, minutes for a million scenes),
    so the bar has no total and the run starts at once."""

    def __init__(self, enabled: bool = True, desc: str = "rendering",
                 header: Callable[[object], str] | None = None):
        self.enabled, self.desc, self.header = enabled, desc, header
        self.bar = None
        self.started = False
        self.scenes_total = 0
        self.scenes_done = 0

    def on_start(self, plan) -> None:
        from tqdm.auto import tqdm

        if self.header is not None:
            print(self.header(plan), flush=True)
        self.scenes_total = plan.scenes
        self.bar = tqdm(total=None, unit="img", desc=self.desc, disable=not self.enabled)

    def on_scene(self, n_images: int) -> None:
        self.scenes_done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"scenes={self.scenes_done}/{self.scenes_total}", refresh=False)

    def on_image(self, n: int) -> None:
        if self.bar is None:
            return
        if not self.started:  # images kept from an earlier run count as the start, not as speed
            self.started = True
            self.bar.initial = self.bar.n = n
            self.bar.refresh()
        else:
            self.bar.update(n - self.bar.n)

    def __enter__(self) -> "ImageBar":
        return self

    def close(self) -> None:
        """Close the bar (once started); what ``with`` does at its end."""
        if self.bar is not None:
            self.bar.close()

    def __exit__(self, *exc) -> None:
        self.close()
