"""The results of the Python API (:mod:`oddsuite`): small frozen values with a folder, figures
(paths) and tables (pandas DataFrames, read from the folder when first asked for).

Imports no other package of oddsuite; pandas is imported when a table is first read.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["Suite", "Verification", "Evaluation", "Trace", "Report", "Comparison", "Quantized", "FaultSweep",
           "evaluation_of", "pngs"]


def _read_parquet(path: Path) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(path)


def _read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Suite:
    """A generated suite (docs/FORMAT.md). ``folder``: the suite folder; ``n_scenes``,
    ``n_images``; ``n_resumed``: scenes kept from an earlier run into the same folder.
    Tables: :attr:`scenes` (scenes.parquet: one row per image, every ODD parameter in
    effect, in physical units), :attr:`rois` (rois.parquet: one row per scene and ROI);
    :attr:`manifest` (manifest.json). ``render``: the engine that drew it (the manifest's
    ``render`` block: engine, version, device, settings, frames) and ``seconds_per_frame``,
    the mean wall time per render measured by the run (not in the manifest: it varies)."""

    folder: Path
    n_scenes: int
    n_images: int
    n_resumed: int = 0
    figures: tuple[Path, ...] = ()
    render: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def scenes(self) -> pd.DataFrame:
        return _read_parquet(self.folder / "scenes.parquet")

    @functools.cached_property
    def rois(self) -> pd.DataFrame:
        return _read_parquet(self.folder / "rois.parquet")

    @functools.cached_property
    def manifest(self) -> dict[str, Any]:
        return _read_json(self.folder / "manifest.json")


@dataclass(frozen=True)
class Verification:
    """A suite checked against its manifest: ``ok`` when no file is ``missing``, ``altered``
    (its SHA-256 differs) or ``unexpected``; ``checked``: files hashed."""

    folder: Path
    ok: bool
    checked: int
    missing: tuple[str, ...] = ()
    altered: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evaluation:
    """A results folder (``evaluate`` or ``score``): ``metrics`` (metrics.json: every score with
    its count ``n``; a rate over nothing is None), ``run`` (run.json: detector, model pin and
    files, suite hash, settings). Tables: :attr:`outcomes` (outcomes.parquet: one row per
    image and ROI, hit / mislabel / miss, with every scene and ROI parameter),
    :attr:`predictions` (predictions.json as a table: ``image_id, category_id, x, y, w, h``
    in pixels, ``score``)."""

    folder: Path
    metrics: Mapping[str, Any]
    run: Mapping[str, Any]
    figures: tuple[Path, ...] = ()

    @functools.cached_property
    def outcomes(self) -> pd.DataFrame:
        return _read_parquet(self.folder / "outcomes.parquet")

    @functools.cached_property
    def predictions(self) -> pd.DataFrame:
        import pandas as pd

        rows = [(p["image_id"], p["category_id"], *p["bbox"], p["score"])
                for p in _read_json(self.folder / "predictions.json")]
        return pd.DataFrame(rows, columns=["image_id", "category_id", "x", "y", "w", "h", "score"])


def _table(records: Any, drop: Sequence[str] = ()) -> pd.DataFrame:
    """JSON records as a table, nested objects flattened with dots (``rate.value``, ``rate.ci95``)."""
    import pandas as pd

    rows = [{k: v for k, v in r.items() if k not in drop} for r in (records or [])]
    return pd.json_normalize(rows) if rows else pd.DataFrame()


@dataclass(frozen=True)
class Trace:
    """Failures traced to scene conditions and ROIs: ``data`` (trace.json), ``figures`` (its
    PNG heatmaps and bar charts). Tables: :attr:`slices` (one row per failure slice in ranked
    order: ``rank``, ``dimension``, ``level``, ``n``, ``failures``, ``rate``, ``ci95``,
    ``score``, ``conditional``...), :attr:`rules` (decision-tree leaves), :attr:`presence`
    (class-presence influence rows)."""

    folder: Path
    data: Mapping[str, Any]
    figures: tuple[Path, ...] = ()

    @functools.cached_property
    def slices(self) -> pd.DataFrame:
        return _table(self.data.get("slices"), drop=("examples",))

    @functools.cached_property
    def rules(self) -> pd.DataFrame:
        return _table(self.data.get("rules"), drop=("examples",))

    @functools.cached_property
    def presence(self) -> pd.DataFrame:
        return _table((self.data.get("presence") or {}).get("rows"))


@dataclass(frozen=True)
class Report:
    """``path``: the self-contained HTML report; ``folder``: the results folder it reports."""

    path: Path
    folder: Path
    figures: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Comparison:
    """Two detectors on one suite: ``data`` (consistency.json), ``figures`` (the flip images,
    layers.png). Tables: :attr:`slices` (consistency.csv: agreement, flips, score drift and
    mAP per scene condition), :attr:`a` and :attr:`b` (each model's :class:`Evaluation`)."""

    folder: Path
    data: Mapping[str, Any]
    figures: tuple[Path, ...] = ()

    @functools.cached_property
    def slices(self) -> pd.DataFrame:
        import pandas as pd

        return pd.read_csv(self.folder / "consistency.csv")

    @property
    def a(self) -> Evaluation:
        return evaluation_of(self.folder / "a")

    @property
    def b(self) -> Evaluation:
        return evaluation_of(self.folder / "b")


@dataclass(frozen=True)
class Quantized:
    """An int8 ONNX model: ``path``, its SHA-256, and ``record`` (``<path>.json``: source and
    output hashes, calibration images, settings, versions) at ``record_path``."""

    path: Path
    sha256: str
    record_path: Path
    record: Mapping[str, Any]
    figures: tuple[Path, ...] = ()


@dataclass(frozen=True)
class FaultSweep:
    """A fault-injection sweep: ``data`` (results.json), ``figures`` (faults.png or
    mlp_faults.png). Tables: :attr:`rows` (one row per sweep point: fault count or rate, map
    seed, mitigation, full-scene mAP@[.5:.95] or, for ``mlp-digits``, accuracy),
    :attr:`summary` (median and min-max over maps per point)."""

    folder: Path
    data: Mapping[str, Any]
    figures: tuple[Path, ...] = ()

    @functools.cached_property
    def rows(self) -> pd.DataFrame:
        return _table(self.data.get("rows"))

    @functools.cached_property
    def summary(self) -> pd.DataFrame:
        d = self.data
        return _table(d["summary"] if "summary" in d else
                      [*d.get("stuck_at_summary", []), *d.get("timing_summary", [])])


def evaluation_of(folder: Path) -> Evaluation:
    """The :class:`Evaluation` of a results folder (metrics.json and run.json read)."""
    return Evaluation(folder, _read_json(folder / "metrics.json"), _read_json(folder / "run.json"))


def pngs(folder: Path, pattern: str = "*.png") -> tuple[Path, ...]:
    """The figures matching ``pattern`` in ``folder``, sorted."""
    return tuple(sorted(Path(folder).glob(pattern)))
