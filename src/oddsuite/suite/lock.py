"""The lock of a suite folder: one ``generate`` run at a time writes it.

``fcntl.flock`` on ``.state/lock``: the kernel holds the lock for the open file and drops
it when the process ends in any way (SIGKILL included), so a killed run never leaves a
stale lock; the file stays, with the pid, host and start time of the last holder, only so
that a refused run can say who holds it. Linux and macOS (``fcntl``). Imports ``errors``
and ``suite.layout`` only.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from oddsuite.errors import SuiteError
from oddsuite.suite.layout import LOCK


class SuiteLock:
    """Context manager: hold the folder's lock, or raise SuiteError naming the holder."""

    def __init__(self, folder: str | Path, what: str = "generate"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> "SuiteLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(fd)
            os.close(fd)
            raise SuiteError(f"{self.folder}: locked by another {self.what} run{holder}; two runs on one folder "
                             f"would mix their files: wait for it to end (or stop it), then run again") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.what,
                "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError:  # the lock holds without its note (a full disk, say): the run says so later
            pass
        return self

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "SuiteLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f" (pid {info['pid']} on {info['host']}, started {info['started_utc']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""
