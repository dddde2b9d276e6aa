"""A PNG of a report page, taken with headless Chromium (for docs and tests).

Debian: ``apt-get install -y chromium`` (its dependencies bring the fonts). Chromium runs
with a throw-away profile and every network feature off; the report loads nothing anyway.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from oddsuite.errors import OddsuiteError

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def find_chromium() -> Path | None:
    for p in CHROMIUM_PATHS:
        if Path(p).is_file():
            return Path(p)
    return None


def screenshot(html: str | Path, png: str | Path, *, width: int = 1280, height: int = 2000,
               chromium: str | Path | None = None, timeout: float = 120) -> Path:
    """Render ``html`` in headless Chromium and save the top ``width`` x ``height`` pixels as ``png``."""
    exe = Path(chromium) if chromium is not None else find_chromium()
    if exe is None or not exe.is_file():
        raise OddsuiteError(f"headless Chromium not found (looked for {', '.join(CHROMIUM_PATHS)}); "
                            f"on Debian: apt-get install -y chromium")
    png = Path(png).resolve()
    profile = tempfile.mkdtemp(prefix="oddsuite-chromium-")
    try:
        cmd = [str(exe), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={width},{height}",
               Path(html).resolve().as_uri()]
        r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if r.returncode != 0 or not png.is_file():
        tail = (r.stderr or b"").decode("utf-8", "replace").strip().splitlines()[-3:]
        raise OddsuiteError(f"chromium could not screenshot {html} (exit {r.returncode}): {' | '.join(tail)}")
    return png
