"""pybullet, imported without its build-time banner.

pybullet's C module prints ``pybullet build time: ...`` with C ``printf`` when it is imported.
It bypasses ``sys.stdout`` and lands in the middle of a progress bar (or, with stdout a pipe,
at the end of the run). :func:`c_output_silenced` points the process's file descriptors 1
and 2 at ``/dev/null`` around the import and flushes C's stdio buffers before restoring them,
so the banner goes nowhere and nothing else is touched.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys


@contextlib.contextmanager
def c_output_silenced():
    """Silence C-level writes to fd 1 and 2 inside the block (Python's own streams are flushed
    first). Does nothing when the descriptors cannot be duplicated."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        try:
            ctypes.CDLL(None).fflush(None)  # the banner may sit in C's stdout buffer when stdout is a pipe
        except (OSError, AttributeError):
            pass
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


with c_output_silenced():
    import pybullet as pb  # noqa: E402

__all__ = ["pb", "c_output_silenced"]
