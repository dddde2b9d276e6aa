"""Import ultralytics offline.

ultralytics reaches for the network in a few places: a DNS probe at import (skipped when
``YOLO_OFFLINE`` is set), telemetry and update checks (skipped when offline), and
``check_font``, which sends an HTTP HEAD for ``Arial.ttf`` whenever the font is not in its
config folder — even offline — every time a detection data set is checked for training.
Everything in oddsuite that needs ultralytics imports it through :func:`ultralytics_offline`,
which sets the environment before the first import and replaces ``check_font`` with a
local-only lookup (a font matplotlib already has). No model weights are ever fetched: models
are built from their yaml and weights come from local files.
"""
from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)


def set_offline_env() -> None:
    """Set the environment ultralytics reads at import: offline, quiet unless asked otherwise."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    # no auto-install of missing packages, ever
    os.environ["YOLO_AUTOINSTALL"] = "False"


@lru_cache(maxsize=None)
def _local_font(font: str = "Arial.ttf") -> Path | None:
    """A font file already on this machine (never downloaded): the requested one if matplotlib knows it, else DejaVu Sans."""
    from matplotlib import font_manager

    name = Path(str(font)).name
    for f in font_manager.fontManager.ttflist:
        if name in f.fname and os.path.exists(f.fname):
            return Path(f.fname)
    try:
        return Path(font_manager.findfont("DejaVu Sans", fallback_to_default=True))
    except Exception:  # pragma: no cover - matplotlib always ships DejaVu
        return None


def _check_font_offline(font: str = "Arial.ttf") -> Path | None:
    return _local_font(str(font))


@lru_cache(maxsize=None)
def ultralytics_offline():
    """Import and return the ``ultralytics`` package with every network path closed."""
    import sys

    already = "ultralytics" in sys.modules
    set_offline_env()
    import ultralytics
    import ultralytics.utils as uu
    import ultralytics.utils.checks as checks

    if already:
        # imported before us: the import-time online probe has run; make sure later checks see offline
        log.debug("ultralytics was imported before oddsuite set YOLO_OFFLINE; forcing ONLINE=False")
    for mod_name in ("ultralytics.utils", "ultralytics.utils.checks", "ultralytics.utils.events",
                     "ultralytics.utils.downloads", "ultralytics.hub", "ultralytics.hub.utils"):
        mod = sys.modules.get(mod_name)
        if mod is not None:
            for flag in ("ONLINE", "AUTOINSTALL"):
                if hasattr(mod, flag):
                    setattr(mod, flag, False)
    checks.check_font = _check_font_offline
    for mod_name in ("ultralytics.data.utils", "ultralytics.utils.plotting"):
        try:
            mod = __import__(mod_name, fromlist=["check_font"])
        except Exception:  # pragma: no cover - optional parts of ultralytics
            continue
        if hasattr(mod, "check_font"):
            mod.check_font = _check_font_offline
    # telemetry and crash reports are opt-out settings; turn them off for this process only
    # and so are the experiment-tracker integrations (mlflow, ray tune, ...), which would log or connect.
    # dict.__setitem__ bypasses JSONDict's save, so the user's settings file is not rewritten.
    for key in ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb"):
        if key in uu.SETTINGS:
            dict.__setitem__(uu.SETTINGS, key, False)
    return ultralytics
