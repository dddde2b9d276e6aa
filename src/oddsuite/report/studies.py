"""Report sections of the studies, each a self-contained builder of plain values for its own
template block (``templates/studies.html``):

- :func:`faults_findings`: of a fault-injection folder (``oddsuite faults``), the requantisation
  mode it ran under (the default stated) and the seed's stuck-at finding with its numbers —
  whether a few faulty PEs wreck the result, the medians per fault count and the threshold;
  ``undefined`` where the run measured no stuck-at point;
- :func:`lockstep_sections`: of each ``lockstep*`` folder (``oddsuite lockstep``), the
  bit-identical count, the divergence size, the false-positive overlap, where divergences
  cluster and the first divergences;
- :func:`latency_sections`: of each ``latency*`` folder (``oddsuite latency``), the latency
  distribution per variant (best, median, p99, worst, stability) with the machine, and its
  histogram figure.

Files are read defensively: a folder without its JSON gives a problem line, never an error.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from oddsuite.report.extras import find_extra_dirs
from oddsuite.report.images import png_data_uri

log = logging.getLogger(__name__)

#: what the faults findings say about the requantisation modes
REQUANT_TEXT = {
    "saturate": "saturating int8 requantisation between layers (the default: a deployed int8 pipeline clips "
                "a corrupted accumulator to the int8 range before the next layer)",
    "wrap": "wrapping int8 requantisation (an overflowing int8 register: a corrupted value wraps around)",
    "none": "the seed's fixed-point arithmetic (no saturation: a corrupted accumulator reaches the next "
            "layer unbounded)",
}


def _read_json(path: Path, problems: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{path.name}: missing")
    except (OSError, ValueError) as e:
        problems.append(f"{path.name}: not readable JSON ({e})")
    return None


def _png(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return png_data_uri(data) if data[:8] == b"\x89PNG\r\n\x1a\n" else None


# --------------------------------------------------------------------------- faults


def faults_findings(folder: str | Path) -> dict[str, Any] | None:
    """The requantisation mode and the seed's stuck-at finding of one faults folder (None when
    its results.json has no findings: e.g. an older sweep)."""
    folder = Path(folder)
    problems: list[str] = []
    res = _read_json(folder / "results.json", problems)
    if not isinstance(res, dict) or not isinstance(res.get("findings"), dict):
        return None
    f = res["findings"]
    requant = str(res.get("requant") or f.get("requant") or "saturate")
    base = f.get("int8_accuracy", f.get("clean_map"))
    medians = f.get("median_by_faulty_pes") or {}
    return {
        "name": folder.name, "requant": requant, "requant_text": REQUANT_TEXT.get(requant, requant),
        "is_default": requant == "saturate",
        "metric": f.get("metric", "accuracy"), "base": base, "threshold": f.get("collapse_threshold"),
        "few_faults_collapse": f.get("few_faults_collapse"),
        "collapse_at": f.get("none_collapse_at_faulty_pes"),
        "medians": [{"faulty_pes": int(n), "median": v, "ratio": (v / base) if base else None}
                    for n, v in sorted(medians.items(), key=lambda kv: int(kv[0]))],
        "fault": res.get("fault", "stuck-at" if medians else None),
    }


# --------------------------------------------------------------------------- lockstep and latency


def _study_sections(results_dir, folders, prefix: str, json_name: str, build) -> list[dict[str, Any]]:
    """One entry per study folder (default: ``RESULTS_DIR/<prefix>*``): ``build(folder, data)``
    of its JSON, or the folder's problems when the JSON cannot be read."""
    dirs = [Path(p) for p in folders] if folders else find_extra_dirs(Path(results_dir), prefix)
    out = []
    for d in dirs:
        problems: list[str] = []
        r = _read_json(d / json_name, problems)
        entry = {"name": d.name, "path": str(d), "problems": problems}
        out.append({**entry, **build(d, r)} if isinstance(r, dict) else entry)
    return out


def lockstep_sections(results_dir: str | Path, folders: Sequence[str | Path] | None = None) -> list[dict[str, Any]]:
    """One entry per lockstep folder (default: ``RESULTS_DIR/lockstep*``)."""
    return _study_sections(results_dir, folders, "lockstep", "lockstep.json", lambda d, r: {
        "models": r.get("models", {}), "n_images": r.get("n_images"), "identical": r.get("identical_images"),
        "bit_identical": r.get("bit_identical"), "diverged": r.get("diverged"), "size": r.get("size", {}),
        "changed_at_conf": r.get("changed_at_conf"),
        "clusters_at_conf": [c for c in r.get("clusters_at_conf", []) if c.get("above_overall")][:8],
        "map": r.get("map", {}), "fp": r.get("false_positives", {}),
        "clusters": [c for c in r.get("clusters", []) if c.get("above_overall")][:8],
        "first": r.get("first_divergences", [])[:8], "first_what": r.get("first_what", {}),
        "extra": r.get("extra", {}), "png": _png(d / "lockstep.png")})


def latency_sections(results_dir: str | Path, folders: Sequence[str | Path] | None = None) -> list[dict[str, Any]]:
    """One entry per latency folder (default: ``RESULTS_DIR/latency*``)."""
    return _study_sections(results_dir, folders, "latency", "latency.json", lambda d, r: {
        "machine": r.get("machine", {}), "settings": r.get("settings", {}), "variants": r.get("variants", []),
        "png": _png(d / "latency.png")})
