"""oddsuite: ODD-driven validation suites for object detectors. This module is the Python API.

The whole flow, one function per step, each returning a small frozen result object with its
folder, its figures (paths) and its tables (pandas DataFrames, read from disk when first
asked for)::

    import oddsuite

    suite = oddsuite.generate("odd_specs/urban_day.yaml", "suites/urban", scenes=20, seed=7)
    oddsuite.verify(suite.folder).ok                          # every file against its SHA-256
    ev = oddsuite.evaluate(suite.folder, "models/default", "results/urban")   # or a Detector object
    ev.metrics["map"]["full"]["map"], ev.outcomes             # metrics.json, outcomes.parquet
    tr = oddsuite.trace(ev.folder); tr.slices                 # failure slices, ranked
    oddsuite.report(ev.folder).path                           # one self-contained HTML file

and ``score`` (predictions made by any tool), ``compare`` (two detectors, pre/post
consistency), ``quantize`` (int8) and ``faults`` (the simulated faulty accelerator).
Errors are those of :mod:`oddsuite.errors` (``SpecError``, ``SuiteError``, ``ModelError``,
``UserError``, all ``OddsuiteError``), each naming the file and the field.

``import oddsuite`` imports nothing heavy: every function imports what it needs when called
(numpy, pandas, torch, pyrender), and ``oddsuite.Detections``, ``Detector``, ``ModelInfo`` and
``load_detector`` are looked up in :mod:`oddsuite.models` on first use. This face may call
any package of oddsuite, but only from inside its functions.

Three steps share their name with a subpackage (``evaluate``, ``trace``, ``report``). Each is
both: calling ``oddsuite.trace(...)`` runs the step, and any attribute,
``oddsuite.trace.trace_outcomes``, is the subpackage's (``import oddsuite.trace`` and
``from oddsuite.trace import ...`` work as before). See :class:`_Step`.
"""
from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover - for type checkers only; nothing is imported at run time
    import pandas as pd

    from oddsuite.models.base import Detector
    from oddsuite.results import (Comparison, Evaluation, FaultSweep, Quantized, Report, Suite, Trace,
                                  Verification)

__all__ = [
    "generate", "verify", "evaluate", "score", "trace", "report", "compare", "quantize", "faults",
    "Suite", "Verification", "Evaluation", "Trace", "Report", "Comparison", "Quantized", "FaultSweep",
    "Detections", "Detector", "ModelInfo", "load_detector", "__version__",
]

#: names served on first use (PEP 562), so that ``import oddsuite`` stays light
_LAZY = {**dict.fromkeys(("Detections", "Detector", "ModelInfo", "load_detector"), "oddsuite.models"),
         **dict.fromkeys(("Suite", "Verification", "Evaluation", "Trace", "Report", "Comparison", "Quantized",
                          "FaultSweep"), "oddsuite.results")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'oddsuite' has no attribute {name!r}")


class _Step:
    """An API step that is also the face of the subpackage of the same name.

    Calling it runs the step (``__wrapped__``); every other attribute is read from, set on or
    deleted from the subpackage, imported on first use. Python sets a subpackage as an
    attribute of its parent when it is first imported; :class:`_Face` keeps the step there, so
    ``oddsuite.evaluate(...)``, ``oddsuite.evaluate.evaluate_suite`` and ``import
    oddsuite.evaluate as ev`` all work, whichever was used first."""

    def __init__(self, fn: Callable[..., Any], package: str):
        for name, value in (("__wrapped__", fn), ("_package", package), ("__doc__", fn.__doc__),
                            ("__name__", fn.__name__), ("__qualname__", fn.__qualname__),
                            ("__module__", fn.__module__)):
            object.__setattr__(self, name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def _module(self) -> types.ModuleType:
        return importlib.import_module(self._package)

    def __getattr__(self, name: str) -> Any:  # only for names the step itself lacks
        return getattr(self._module(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._module(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._module(), name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._module())) | {"__wrapped__", "__doc__", "__name__"})

    def __repr__(self) -> str:
        return f"<oddsuite.{self.__name__}: the API step; other attributes are {self._package}'s>"


class _Face(types.ModuleType):
    """The ``oddsuite`` module: keeps a :class:`_Step` when the import system would replace it
    by the subpackage of the same name."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and isinstance(self.__dict__.get(name), _Step):
            return
        super().__setattr__(name, value)


def _step(package: str) -> Callable[[Callable[..., Any]], _Step]:
    return lambda fn: _Step(fn, package)


def _executor(executor: Any, workers: int, address: str | None, in_process: bool) -> Any:
    """An executor object from ``"local"`` / ``"ray"`` / None / an object; None when the work
    may run in this process (``in_process`` and a local run with one worker)."""
    if executor is not None and not isinstance(executor, str):
        return executor
    from oddsuite.run import make_executor

    kind = executor or "local"
    if in_process and kind == "local" and workers <= 1:
        return None
    return make_executor(kind, workers, address)


# ----------------------------------------------------------------------------- the flow


def generate(spec: str | Path, out: str | Path, *, scenes: int = 20, seed: int = 0, workers: int = 1,
             plan: str | None = None, modes: Sequence[str] | None = None, renderer: str | None = None,
             executor: Any = None, address: str | None = None, progress: bool = True) -> Suite:
    """Render a validation suite from the ODD spec ``spec`` (YAML) into ``out``; an unfinished
    ``out`` of the same spec, seed and plan is resumed (``oddsuite generate``).

    scenes: number of scenes (>= 1); seed: the suite seed (same spec and seed give identical
    bytes, with any number of workers). plan: ROI permutation plan (``full``, ``exhaustive``,
    ``k-subsets``, ``ablation``, ``sampled``; default the spec's); modes: masking modes
    (``remove``, ``isolate``, ``cutout``); renderer: ``exact`` or ``composite``. executor:
    ``"local"`` (default: a process pool of ``workers``), ``"ray"`` (``address`` joins a cluster)
    or an executor object. progress: a bar that moves per image.
    Raises SpecError (the spec, with file, line and field) or SuiteError (the folder).
    """
    from oddsuite.results import Suite
    from oddsuite.suite import generate_suite
    from oddsuite.suite.progress import ImageBar

    with ImageBar(enabled=progress) as bar:
        res = generate_suite(spec, out, scenes=scenes, seed=seed, workers=workers, plan=plan,
                             modes=tuple(modes) if modes is not None else None, renderer=renderer,
                             executor=_executor(executor, workers, address, in_process=False),
                             on_start=bar.on_start, on_scene=bar.on_scene, on_image=bar.on_image)
    return Suite(Path(res.out_dir), res.scenes, res.images, res.resumed, render=res.render)


def verify(suite: str | Path) -> Verification:
    """Recompute the SHA-256 of every file of ``suite`` against its manifest
    (``oddsuite verify``). Raises SuiteError when there is no readable manifest."""
    from oddsuite.results import Verification
    from oddsuite.suite import verify_suite

    rep = verify_suite(suite)
    return Verification(Path(suite), rep.ok, rep.checked, tuple(rep.missing), tuple(rep.altered),
                        tuple(rep.unexpected))


@_step("oddsuite.evaluate")
def evaluate(suite: str | Path, model: str | Path | Detector, out: str | Path, *, sha256: str | None = None,
             trust_pickle: bool = False, weights: str | Path | None = None,
             model_args: Mapping[str, Any] | None = None, class_map: Mapping[str, str] | str | None = None,
             iou: float = 0.5, conf: float = 0.25, batch: int = 8, workers: int = 1, executor: Any = None,
             address: str | None = None, progress: bool = True,
             inference: str | Sequence[str] | None = None) -> Evaluation:
    """Run a detector over every image of ``suite`` and score it into ``out``
    (``oddsuite evaluate``; a partial run in ``out`` is resumed).

    model: a Detector object (anything with ``name``, ``classes`` and ``predict``: see
    :class:`oddsuite.models.base.Detector`), or what :func:`oddsuite.models.load_detector`
    loads: a model file or folder, ``"torchvision:NAME"`` with ``weights``, or
    ``"package.module:function"`` (a factory; ``weights`` and ``model_args`` are passed to it).
    sha256 pins the model file (of ``weights`` for torchvision and factory models).
    class_map: detector class -> suite category (``{"person": "pedestrian"}``). iou: IoU for
    ROI outcomes; conf: operating score threshold (mAP uses every score >= 0.001); batch:
    images per ``predict`` call. workers > 1 or ``executor="ray"``: inference sharded by scene,
    each worker re-creating the detector from its recipe (``info.recipe``; a plain object has
    none: run it with one worker). inference: reduced-context conditions
    (``"reference,scale:0.5,tiles:2x2:0.2,crop:0.6"`` or a list; README "Reduced context"),
    each scored in its own subfolder of ``out`` and compared with the reference in
    metrics.json's ``reduced_context`` section. Raises ModelError (model, pin, classes),
    SuiteError (suite), OddsuiteError (a condition that does not parse).
    """
    from oddsuite.results import evaluation_of
    from oddsuite.evaluate import evaluate_suite
    from oddsuite.models import load_detector

    if isinstance(model, (str, Path)):
        model = load_detector(model, sha256=sha256, trust_pickle=trust_pickle, weights=weights,
                              model_args=model_args)
    options = dict(iou=iou, conf=conf, batch=batch, class_map=class_map, progress=progress,
                   executor=_executor(executor, workers, address, in_process=True))
    if inference:
        from oddsuite.studies.reduced_context import evaluate_conditions

        evaluate_conditions(suite, model, out, inference, **options)
    else:
        evaluate_suite(suite, model, out, **options)
    return evaluation_of(Path(out))


def score(suite: str | Path, predictions: str | Path | Sequence[Mapping[str, Any]], out: str | Path, *,
          class_map: Mapping[str, str] | str | None = None, drop_unmapped: bool = False, name: str | None = None,
          iou: float = 0.5, conf: float = 0.25) -> Evaluation:
    """Score predictions made by any tool (``oddsuite score``): a COCO results JSON file or list
    (``{"image_id", "category_id", "bbox": [x, y, w, h] in pixels, "score"}``; image_id the
    suite's id or a file name of the image) into the results folder ``out``. class_map: tool
    category id -> suite category (``{"1": "person"}``); drop_unmapped: drop (and count) the
    ids it leaves out instead of stopping. Raises SuiteError naming the file and the entry."""
    from oddsuite.results import evaluation_of
    from oddsuite.evaluate import score as score_predictions

    score_predictions(suite, predictions, out, iou=iou, conf=conf, class_map=class_map, drop_unmapped=drop_unmapped,
                      name=name)
    return evaluation_of(Path(out))


@_step("oddsuite.trace")
def trace(results: str | Path, *, suite: str | Path | None = None, out: str | Path | None = None,
          images: str = "full", min_support: int = 20, max_depth: int = 3, seed: int = 0, top_pairs: int = 4,
          bins: Mapping[str, Sequence[float]] | None = None) -> Trace:
    """Trace the failures of a results folder to scene conditions and ROIs (``oddsuite trace``);
    writes trace.json and its figures into ``out`` (default ``RESULTS/trace``).

    images: ``full``, ``permutation`` or ``all``; min_support: slices with fewer ROI rows are
    marked small n (and the rule tree's fewest rows per leaf); max_depth: 1..3; bins: bin edges
    per numeric column (``{"environment.fog_visibility_m": [100, 500]}``). suite: default the
    path in run.json. Raises OddsuiteError when outcomes.parquet is missing or unreadable."""
    from oddsuite.results import Trace
    from oddsuite.trace import trace_results
    from oddsuite.trace.core import TRACE_DIR

    folder = Path(out) if out is not None else Path(results) / TRACE_DIR
    t = trace_results(results, suite_dir=suite, out_dir=folder, image_set=images, min_support=min_support,
                      max_depth=max_depth, seed=seed, top_pairs=top_pairs,
                      bins={k: list(v) for k, v in bins.items()} if bins else None)
    return Trace(folder, t.data, tuple(folder / n for n in sorted(t.figures)))


@_step("oddsuite.report")
def report(results: str | Path, out: str | Path | None = None, *, suite: str | Path | None = None,
           compare: Sequence[str | Path] | None = None, faults: Sequence[str | Path] | None = None,
           examples: int = 2) -> Report:
    """Write one self-contained HTML report of a results folder (``oddsuite report``) to ``out``
    (default ``RESULTS/report.html``), with compare and fault folders (default:
    ``RESULTS/compare*``, ``RESULTS/fault*``) and ``examples`` example scenes per slice."""
    from oddsuite.results import Report
    from oddsuite.report import build_report

    path = build_report(results, out, suite_dir=suite, compare=compare, faults=faults, n_examples=examples)
    return Report(Path(path), Path(results))


def compare(suite: str | Path, model_a: str | Path | Detector, model_b: str | Path | Detector,
            out: str | Path, *, sha256_a: str | None = None, sha256_b: str | None = None,
            trust_pickle: bool = False, iou: float = 0.5, conf: float = 0.25, top: int = 12, batch: int = 8,
            layer_images: int = 4, seed: int = 0, threads: int | None = None, progress: bool = True) -> Comparison:
    """Compare detector B (e.g. int8) with A (the reference, e.g. fp32) on ``suite``
    (``oddsuite compare``): each evaluated under ``out/a`` and ``out/b``, their pre/post
    consistency (agreement, flips, score drift, mAP delta) overall and per scene condition,
    the ``top`` images with the most flips drawn, and, with ``layer_images`` > 0 and both
    models ONNX or exportable, the per-tensor SQNR of B against A. Models as in :func:`evaluate`."""
    from oddsuite.results import Comparison, pngs
    from oddsuite.studies.compare import compare_models

    data = compare_models(suite, model_a, model_b, out, iou=iou, conf=conf, top=top, batch=batch,
                          layer_images=layer_images, seed=seed, sha256_a=sha256_a, sha256_b=sha256_b,
                          trust_pickle=trust_pickle, threads=threads, progress=progress)
    folder = Path(out)
    return Comparison(folder, data, pngs(folder / "flips") + pngs(folder, "layers.png"))


def quantize(model: str | Path, calib_suite: str | Path, out: str | Path, *, calib_images: int = 64, seed: int = 0,
             method: str = "minmax", keep_float: str | Sequence[str] | None = "decode+stem",
             activations: str = "quint8", per_channel: bool = True, sha256: str | None = None,
             trust_pickle: bool = False, percentile: float = 99.999, reduce_range: bool | None = None,
             share_concat_scales: float | None = None) -> Quantized:
    """Quantize ``model`` to int8 (ONNX Runtime, static QDQ) calibrated on ``calib_images``
    seeded images of ``calib_suite``; writes ``out`` (``*.onnx``) and ``out.json``
    (``oddsuite quantize``). The defaults are the deployment recipe
    (``oddsuite.quant.quantize.DEFAULTS``: min-max calibration, only the head's decoding tail
    and the stem float; 7-bit weights on x86 CPUs without VNNI or AMX-INT8, 8-bit elsewhere:
    ``reduce_range`` True or False chooses for another target; ``share_concat_scales``: see
    ``quantize_model``). Raises ModelError for a bad method, activation type, widening or file."""
    from oddsuite.results import Quantized
    from oddsuite.quant.quantize import quantize_model

    res = quantize_model(model, calib_suite, out, calib_images=calib_images, seed=seed, method=method,
                         keep_float=keep_float, activations=activations, per_channel=per_channel, sha256=sha256,
                         trust_pickle=trust_pickle, percentile=percentile, reduce_range=reduce_range,
                         share_concat_scales=share_concat_scales)
    return Quantized(Path(res.path), res.record["output"]["sha256"], Path(res.record_path), res.record)


def faults(suite: str | Path, model: str | Path | None, out: str | Path, *, array: str = "256x256",
           fault: str = "stuck-at", faulty_pes: Sequence[int] | None = None,
           error_rates: Sequence[float] | None = None, mitigations: Sequence[str] | None = None,
           maps: int = 5, seed: int = 0, bits: Sequence[int] | None = None, keep_bits: int = 16,
           train_data: str | Path | None = None, ft_epochs: int = 3, calib: int = 16, batch: int = 8,
           requant: str = "saturate", sha256: str | None = None, trust_pickle: bool = False, workers: int = 1, executor: Any = None,
           address: str | None = None, progress: bool = True) -> FaultSweep:
    """Score a detector on the simulated int8 systolic array ``array`` (``"RxC"``) with seeded
    faults (``oddsuite faults``): ``fault`` ``"stuck-at"`` over ``faulty_pes`` (default 0,1,4,16;
    mitigations none, fap, fap+t with ``train_data``) or ``"timing"`` over per-MAC
    ``error_rates`` (default 1e-6,1e-5; mitigations none, te-drop), ``maps`` fault maps per
    point. ``requant``: how each layer's input is requantised, ``"saturate"`` (a deployed int8
    pipeline), ``"wrap"`` or ``"none"`` (the seed's fixed-point carry); results.json records it
    with ``findings`` (null where not measured). ``suite == "mlp-digits"`` runs the seed paper's
    MLP experiment instead (no model).
    Raises UserError for options that do not fit (the option named), ModelError for a model
    that is not torch-backed."""
    from oddsuite.results import FaultSweep, pngs
    from oddsuite.accelerator import SystolicArray
    from oddsuite.errors import UserError

    try:
        arr = SystolicArray.parse(array) if isinstance(array, str) else array
    except ValueError as e:
        raise UserError(str(e)) from None
    folder = Path(out)
    if str(suite) == "mlp-digits":
        from oddsuite.studies.mlp_experiment import mlp_config, run_mlp_experiment

        default_mit = ["none", "fap"] if fault == "stuck-at" else ["none", "te-drop"]
        try:
            cfg = mlp_config(fault, arr.rows, arr.cols, faulty_pes=list(faulty_pes) if faulty_pes is not None
                             else [0, 1, 4, 16], mitigations=list(mitigations or default_mit),
                             rates=list(error_rates) if error_rates is not None else [1e-6, 1e-5], maps=maps,
                             seed=seed, keep_bits=keep_bits, bits=list(bits) if bits else None, requant=requant)
        except ValueError as e:
            raise UserError(str(e)) from None
        data = run_mlp_experiment(folder, cfg, progress=progress)
        return FaultSweep(folder, data, pngs(folder))
    from oddsuite.studies.fault_sweep import SweepSpec, sweep_model

    if model is None:
        raise UserError("faults: a model is required (or suite='mlp-digits' for the built-in MLP experiment)")
    spec = SweepSpec.for_fault(fault, faulty_pes=faulty_pes, error_rates=error_rates, mitigations=mitigations,
                               train_data=train_data, maps=maps, seed=seed, bits=bits, keep_bits=keep_bits,
                               batch=batch, ft_epochs=ft_epochs, requant=requant)
    try:
        spec.validate(arr)
    except ValueError as e:
        raise UserError(str(e)) from None
    data = sweep_model(Path(suite), model, folder, arr, spec, sha256=sha256, trust_pickle=trust_pickle, calib=calib,
                       progress=progress, executor=_executor(executor, workers, address, in_process=True))
    return FaultSweep(folder, data, pngs(folder))


sys.modules[__name__].__class__ = _Face
