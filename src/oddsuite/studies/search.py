"""Falsification search: spend the render budget where the detector fails (#19).

Uniform sampling (random, grid, halton) spends most renders where a detector already
works. ``search_suite`` lets an optimiser choose the scenes instead, then writes an
ordinary suite of them, so that ``evaluate``, ``trace`` and ``report`` explain the
failures it found with the permutation flow as usual.

The search, step by step:

1. **Space.** Every free dimension of the spec (``OddSpec.dimensions``: scenery,
   environment, camera, object counts) is one optuna parameter: a choice domain is
   categorical over its options, an integer range is an integer, anything else (a range
   or a truncated normal) is its quantile ``u`` in [0, 1). A proposal is a point of the
   unit cube (``SearchSpace.unit_point``; coordinates rounded to 6 decimals, the point
   of a choice at the middle of its option's interval), mapped by ``Domain.at`` exactly
   as every other sampler's.
   With ``placement`` (the default), every object slot is searched too: the distance,
   lateral offset and heading of the ``j``-th object of each class (through the class's
   domains), its asset family and its look (one of ``odd.families.LOOKS`` fixed
   appearances of the family; ``odd.samplers.search.object_dimensions``). Where each
   object stands and what it looks like decide occlusion and what the detector sees;
   left to the scene seed, they make the objective noise as a function of the searched
   point. The first ``startup`` proposals are the first points of a scrambled Sobol
   sequence over every searched coordinate (seeded by the suite seed), so the optimiser
   starts from an even cover of the searched space: the first 2**k points put one point
   in every 1/2**k of each coordinate's range, and a failing band of width w of one
   dimension is visited once about 1/w points were rendered. From then on the optimiser
   proposes where the scores are high, except for a share ``explore`` of the proposals
   (``exploring_trials``), which are the sequence's next points: a narrow failing
   region that the startup missed is still visited, and the optimiser, told its score,
   can go there too. The startup is sized so that the region is found early: found
   late, one failing scene among many the optimiser already knows fail weighs little in
   its model.
2. **Rules.** A proposal that breaks one of the spec's rules is never rendered: it is
   told to optuna as PRUNED (TPE ranks pruned trials below every finished one, so it
   learns to avoid the excluded region; CMA-ES ignores them) or, to the Gaussian process,
   which models finished trials only, as scoring 0 (the lowest score of every
   objective), counted as ``infeasible``, and the next proposal is asked. The render
   budget counts rendered scenes only.
3. **Render.** Feasible proposals are rendered in batches of ``batch`` (asked together,
   TPE's constant liar, or the Gaussian process's treatment of running trials, keeping
   them apart; the startup's last batch ends with the startup, so the optimiser's first proposals are modelled on every startup score), each
   as its full scene in the searched variant only (the first variant without overrides),
   by the suite's own worker ``render_scene`` on the executor (local pool or Ray), so the
   pixels are those the suite will hold.
4. **Score.** The detector (in this process, one torch thread: the same bytes on any
   machine) predicts the image, ``metrics.matching.outcome_tables`` gives every ROI's
   outcome at ``conf`` and ``iou`` as ``evaluate`` does, and the objective
   (``OBJECTIVES``, maximised) turns the outcomes into one number. Trials are told to the
   optimiser in scene order once their batch is scored, so the search is the same
   whatever the executor or the order tasks finish in.
5. **Suite.** Scene ``i`` is the ``i``-th rendered proposal. The spec is written again with
   ``sampler: search`` and a ``search:`` block holding the points, the scores and the
   scenes to expand (``odd.samplers.search``), and ``suite.generate_suite`` renders the
   suite from it: failing scenes (severity above ``fail_above``; every scene with
   ``expand="all"``) get their ROI permutations and every variant, the others their full
   scene in the searched variant. That one image is the image the search scored: its
   render is moved into the suite as it is (``_adopt_scored_renders``), not rendered again.

The default objective, ``severity``, is the share of the scene's scored ROIs (visible, not
ignore regions, of ``classes`` when given) that the detector misses or mislabels, plus a
tie-breaker that never reorders two scenes of different severity: (1 − the lowest IoU of
a scored ROI) / (R² + 1), R the most ROIs a scene of the spec can hold (two severities
a/n ≠ b/m differ by at least 1/R²). A miss's IoU is that of the best-overlapping
detection above ``conf`` (0 when none).

Interrupted searches resume: each scored trial is kept in ``OUT/.state/search/trials/``,
and a re-run replays the optimiser over the kept scores (seeded, same order, so the same
proposals) without rendering them again; the suite then resumes as ``generate`` does.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from oddsuite.errors import ModelError, OddsuiteError, SpecError, SuiteError
from oddsuite.evaluate import map_classes
from oddsuite.fileio import atomic_write_bytes
from oddsuite.metrics.matching import DEFAULT_CONF, DEFAULT_IOU, outcome_tables
from oddsuite.models.base import MAP_CONF_FLOOR, Detector
from oddsuite.odd import OddSpec, load_spec, parse_spec
from oddsuite.odd.domains import Domain
from oddsuite.odd.reader import read_yaml
from oddsuite.odd.rules import broken_rule
from oddsuite.odd.samplers.search import (OBJECTIVE_TEXT, SCORE_COLUMNS, free_dimensions, exploring_trials,
                                         object_dimensions, searched_variant)
from oddsuite.suite import GenerateResult, PlanOptions, generate_suite, render_scene
from oddsuite.suite.generate import SceneJob
from oddsuite.suite.lock import SuiteLock

log = logging.getLogger(__name__)

#: the most scenes one search renders (its points are written into the suite's spec.yaml)
MAX_BUDGET = 2000
#: the search's own resume state inside the suite folder (never hashed, like all of .state)
STATE = Path(".state") / "search"
#: decimals of a written unit coordinate (a millionth of a dimension's range)
DIGITS = 6
OPTIMIZERS = ("auto", "gp", "tpe", "cmaes")
#: ``auto`` is ``gp`` up to this budget and ``tpe`` above it (a Gaussian process's fit grows
#: with the cube of the trials told: seconds per proposal at a few hundred)
GP_MAX_BUDGET = 500
#: the stream tag of the exploration proposals' Sobol sequence
EXPLORE_STREAM = 0x6578706C
EXPAND = ("failing", "all")


# ----------------------------------------------------------------------------- objectives

def _severity(failed: int, scored: int, lowest: Optional[float], max_rois: int) -> float:
    if not scored:
        return 0.0
    return failed / scored + (1.0 - float(lowest or 0.0)) / (max_rois ** 2 + 1)


def _failures(failed: int, scored: int, lowest: Optional[float], max_rois: int) -> float:
    return failed + 0.5 * (1.0 - float(lowest or 0.0)) if scored else 0.0


def _lowest_iou(failed: int, scored: int, lowest: Optional[float], max_rois: int) -> float:
    return 1.0 - float(lowest or 0.0) if scored else 0.0


#: name -> f(ROIs failed, ROIs scored, lowest IoU, R) -> the value to maximise (what each
#: measures: ``odd.samplers.search.OBJECTIVE_TEXT``)
OBJECTIVES: dict[str, Callable[[int, int, Optional[float], int], float]] = {
    "severity": _severity, "failures": _failures, "lowest-iou": _lowest_iou}
assert set(OBJECTIVES) == set(OBJECTIVE_TEXT)


@dataclass(frozen=True)
class TrialScore:
    """What the search measured on one scene's full image (``SCORE_COLUMNS``)."""

    objective: float
    severity: float
    rois_scored: int
    rois_failed: int
    lowest_iou: Optional[float]

    def row(self) -> list[Optional[float]]:
        """The row written into the ``search.scores`` block (6 decimals)."""
        return [round(self.objective, DIGITS), round(self.severity, DIGITS), self.rois_scored, self.rois_failed,
                None if self.lowest_iou is None else round(self.lowest_iou, DIGITS)]

    @staticmethod
    def from_row(row: Sequence[Any]) -> "TrialScore":
        o, s, n, f, low = row
        return TrialScore(float(o), float(s), int(n), int(f), None if low is None else float(low))


def score_outcomes(outcomes: pd.DataFrame, objective: str, classes: Sequence[str], max_rois: int) -> TrialScore:
    """The score of one image from its outcome rows (``metrics.matching.OUTCOME_COLUMNS``).
    Scored ROIs: visible, not ignore regions, of ``classes`` when given."""
    rows = outcomes[~outcomes["ignore"].astype(bool) & ~outcomes["not_visible"].astype(bool)]
    if classes:
        rows = rows[rows["category"].isin(list(classes))]
    n = int(len(rows))
    failed = int(rows["outcome"].isin(["miss", "mislabel"]).sum())
    lowest = float(rows["iou"].fillna(0.0).min()) if n else None
    value = OBJECTIVES[objective](failed, n, lowest, max(1, max_rois))
    return TrialScore(float(value), failed / n if n else 0.0, n, failed, lowest)


# ----------------------------------------------------------------------------- the space


def _option_unit(d: Domain, option: Any) -> float:
    """The middle of ``option``'s interval of the unit line (as ``Domain.at`` lays them out)."""
    total, acc = sum(d.weights), 0.0
    for opt, w in zip(d.options, d.weights):
        lo, acc = acc, acc + w / total
        if opt == option:
            return (lo + acc) / 2
    raise AssertionError(option)


class SearchSpace:
    """The spec's free dimensions (and, with ``placement``, its object slots' dimensions:
    ``odd.samplers.search.object_dimensions``) as optuna distributions, and proposals as
    unit points (the free global coordinates first, then the object ones)."""

    def __init__(self, spec: OddSpec, placement: bool = True):
        self.spec = spec
        self.dims = spec.dimensions()
        self.free = free_dimensions(spec)
        self.objects = object_dimensions(spec) if placement else []
        #: (path, domain) of every searched coordinate, in the order of a unit point
        self.searched: list[tuple[str, Domain]] = [(p, self.dims[i][1]) for i, p in self.free] + [
            (od.path, od.domain) for od in self.objects]
        if not self.searched:
            raise SpecError(f"{spec.source_path}: every dimension is fixed: there is nothing to search")
        self.distributions: dict[str, Any] = {p: _distribution(d) for p, d in self.searched}

    @property
    def categorical(self) -> list[str]:
        return [p for p, dist in self.distributions.items() if type(dist).__name__ == "CategoricalDistribution"]

    def unit_point(self, params: Mapping[str, Any]) -> tuple[float, ...]:
        """One coordinate per searched dimension, in [0, 1), rounded to ``DIGITS`` decimals
        where the rounded coordinate still gives the proposed value."""
        out = []
        for path, d in self.searched:
            v = params[path]
            if d.kind == "choices":
                u = _option_unit(d, v)
            elif d.kind == "range" and d.integer:
                u = (int(v) - d.lo + 0.5) / (d.hi - d.lo + 1)
            else:
                u = float(v)
            r = min(round(u, DIGITS), 1.0 - 10.0 ** -DIGITS)
            if d.kind == "choices" or d.integer:
                r = r if d.at(r) == d.at(u) else u
            out.append(float(min(r, math.nextafter(1.0, 0.0))))
        return tuple(out)

    def params(self, u: Sequence[float]) -> dict[str, Any]:
        """The optuna parameters of the free global dimensions at a point ``u`` of the whole
        unit cube (one coordinate per dimension of the spec, as a UnitSampler gives); the
        object dimensions are left to the optimiser."""
        out: dict[str, Any] = {}
        for i, path in self.free:
            d = self.dims[i][1]
            out[path] = d.at(u[i]) if d.kind == "choices" or (d.kind == "range" and d.integer) else float(u[i])
        return out

    def values(self, point: Sequence[float]) -> dict[str, Any]:
        """The value of every global dimension (fixed ones included) at a unit point (its
        object coordinates are not global values: rules cannot name them)."""
        u = [0.5] * len(self.dims)
        for (i, _), x in zip(self.free, point[:len(self.free)]):
            u[i] = x
        return {p: d.at(x) for (p, d), x in zip(self.dims, u)}


def _distribution(d: Domain) -> Any:
    """The optuna distribution of one searched dimension: categorical over a choice
    domain's options, an integer range as integers, anything else as its quantile."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if d.kind == "choices":
        return CategoricalDistribution(list(d.values() or ()))
    if d.kind == "range" and d.integer:
        return IntDistribution(int(d.lo), int(d.hi))
    return FloatDistribution(0.0, 1.0)


# ----------------------------------------------------------------------------- the spec written for the suite


def _num(x: float) -> str:
    s = repr(float(x))
    if "e" in s or "E" in s:  # YAML 1.1 reads 1e-07 as a string: write it out
        s = f"{float(x):.17f}".rstrip("0")
        s += "0" if s.endswith(".") else ""
    return s


def _flow(v: Any) -> str:
    """A value as YAML flow text that the spec reader reads back exactly."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return _num(float(v))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {_flow(x)}" for k, x in v.items()) + "}"
    return "[" + ", ".join(_flow(x) for x in v) + "]"


def _block(record: Mapping[str, Any]) -> str:
    lines = ["", "# " + "-" * 86,
             "# Written by `oddsuite search`: the scenes of this suite are the points below, replayed by",
             "# `sampler: search` (docs/FORMAT.md, \"Search suites\"). Do not edit: verify and resume check it.",
             "# scores: one row per scene: " + ", ".join(SCORE_COLUMNS) + ".",
             "sampler: search", "search:"]
    for key, value in record.items():
        if key in ("points", "scores") and value:
            lines.append(f"  {key}:")
            lines.extend(f"    - {_flow(row)}" for row in value)
        else:
            lines.append(f"  {key}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def replay_spec(spec: OddSpec, record: Mapping[str, Any]) -> OddSpec:
    """``spec`` with ``sampler: search`` and the ``search:`` block ``record``, parsed (its
    source path is the original's, so user meshes resolve). The original text is kept
    line for line; only its top-level ``sampler:`` line is commented out. SpecError when
    the result would differ from ``spec`` in anything but the sampler and the block."""
    text = spec.source_text or ""
    lines = text.splitlines(keepends=True)
    at = read_yaml(text, str(spec.source_path)).lines.get(("sampler",))
    if at is not None:
        line = lines[at - 1]
        if not line.startswith("sampler:") or not line[len("sampler:"):].split("#")[0].strip():
            raise SpecError(f"{spec.source_path}:{at}: sampler: write it as one line `sampler: NAME` at the top level "
                            f"for oddsuite search to replace it")
        lines[at - 1] = "# " + lines[at - 1].rstrip("\r\n") + "   (replaced by oddsuite search: see the end)\n"
    body = "".join(lines)
    out = parse_spec(body + ("" if body.endswith("\n") or not body else "\n") + _block(record),
                     source=str(spec.source_path))
    keep = {"sampler", "search"}
    if out.model_dump(exclude=keep) != spec.model_dump(exclude=keep):
        raise SpecError(f"{spec.source_path}: sampler: the spec reads differently once its sampler line is replaced; "
                        f"write it as one line `sampler: NAME` at the top level")
    return out


# ----------------------------------------------------------------------------- options and results


@dataclass(frozen=True)
class SearchOptions:
    """How to search (each field is a CLI option of ``oddsuite search``).

    budget: scenes to render while searching (each a scene of the suite); seed: the suite
    seed, which also seeds the optimiser; optimizer: ``gp`` (Gaussian-process Bayesian
    optimisation, any dimension), ``tpe`` (any dimension), ``cmaes`` (continuous and
    integer dimensions; choices fall back to seeded random sampling) or ``auto`` (the
    default: ``gp`` up to ``GP_MAX_BUDGET``, else ``tpe``; ``optimizer_used``);
    batch: proposals rendered together; startup: proposals before the optimiser models
    anything, the first points of a scrambled Sobol sequence over every searched coordinate
    (default: a sixth of the budget rounded down to a power of two, at least 8); explore:
    the share of the later proposals that are the sequence's next points instead of the
    optimiser's (``odd.samplers.search.exploring_trials``), so that the search keeps
    covering the ODD and finds a narrow failing region the startup missed; objective: a key of ``OBJECTIVES``; classes: score only ROIs of
    these suite categories (all when empty); conf, iou: the operating threshold and match
    IoU of ROI outcomes; fail_above: a scene fails when its severity exceeds it; expand:
    ``failing`` or ``all`` scenes get ROI permutations and variants; placement: search
    every object slot's distance, lateral offset, heading and asset family too
    (``odd.samplers.search.object_dimensions``), not only the global dimensions."""

    budget: int
    seed: int = 0
    optimizer: str = "auto"
    batch: int = 4
    startup: Optional[int] = None
    explore: float = 0.1
    objective: str = "severity"
    classes: tuple[str, ...] = ()
    conf: float = DEFAULT_CONF
    iou: float = DEFAULT_IOU
    fail_above: float = 0.0
    expand: str = "failing"
    placement: bool = True

    @property
    def optimizer_used(self) -> str:
        """``optimizer``, with ``auto`` resolved: ``gp`` up to ``GP_MAX_BUDGET`` scenes, else ``tpe``."""
        if self.optimizer != "auto":
            return self.optimizer
        return "gp" if self.budget <= GP_MAX_BUDGET else "tpe"

    @property
    def n_startup(self) -> int:
        """The startup proposals: ``startup``, or a sixth of the budget rounded down to a
        power of two (the Sobol sequence's balanced sizes), at least 8."""
        if self.startup is not None:
            return int(self.startup)
        return max(8, 1 << max(0, (self.budget // 6).bit_length() - 1))

    def check(self, spec: OddSpec) -> None:
        """OddsuiteError naming the option that cannot work with ``spec``."""
        def bad(what: str) -> OddsuiteError:
            return OddsuiteError(what)

        if not 1 <= self.budget <= MAX_BUDGET:
            raise bad(f"--budget: expected 1 to {MAX_BUDGET} scenes, got {self.budget}")
        if not 0 <= self.seed < 2 ** 63:
            raise bad(f"--seed: expected an integer from 0 to 2**63-1, got {self.seed}")
        if self.optimizer not in OPTIMIZERS:
            raise bad(f"--optimizer: expected one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.objective not in OBJECTIVES:
            raise bad(f"--objective: expected one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.expand not in EXPAND:
            raise bad(f"--expand: expected one of {', '.join(EXPAND)}, got {self.expand!r}")
        if self.batch < 1 or self.n_startup < 0:
            raise bad(f"--batch must be at least 1 and --startup at least 0 (got {self.batch}, {self.startup})")
        if not 0.0 <= self.explore < 1.0:
            raise bad(f"--explore: expected a share in [0, 1), got {self.explore}")
        for name, v in (("conf", self.conf), ("iou", self.iou), ("fail-above", self.fail_above)):
            if not 0.0 <= v <= 1.0:
                raise bad(f"--{name}: expected a number in [0, 1], got {v}")
        unknown = sorted(set(self.classes) - set(spec.class_names))
        if unknown:
            raise bad(f"--classes: {', '.join(unknown)} {'is not a class' if len(unknown) == 1 else 'are not classes'}"
                      f" of {spec.source_path} (expected some of: {', '.join(spec.class_names)})")
        if searched_variant(spec) is None:
            raise SpecError(f"{spec.source_path}: variants: the search scores the scene as sampled, which needs a "
                            f"variant without overrides (`- name: base`); every variant here overrides something")
        if spec.sampler == "search":
            raise SpecError(f"{spec.source_path}: sampler: search: this is already a search suite's spec; search "
                            f"the original spec (search.source names it)")


@dataclass(frozen=True)
class Trial:
    """One rendered proposal: scene ``scene`` of the suite, its unit point and its score."""

    scene: int
    point: tuple[float, ...]
    score: TrialScore


@dataclass
class SearchResult:
    """``trials`` in scene order; ``infeasible``: proposals pruned for breaking a rule;
    ``expanded``: the scenes rendered with ROI permutations and variants; ``suite``: what
    ``generate_suite`` did."""

    out_dir: Path
    trials: list[Trial]
    infeasible: int
    expanded: list[int]
    fail_above: float
    suite: Optional[GenerateResult] = None
    record: dict[str, Any] = field(default_factory=dict)
    #: scenes whose scored render became the suite's image as it was (not rendered again)
    adopted: int = 0
    #: trials whose score an earlier, interrupted run kept (replayed, not rendered again)
    replayed: int = 0

    @property
    def rendered(self) -> int:
        """Images rendered in all: one per trial while searching, plus what the suite
        rendered afterwards (the expanded scenes' images, and any scored image that could
        not be kept)."""
        extra = 0 if self.suite is None else self.suite.images - self.adopted
        return len(self.trials) + extra

    @property
    def failing(self) -> list[int]:
        return [t.scene for t in self.trials if t.score.severity > self.fail_above]

    @property
    def exploring(self) -> list[int]:
        """The scenes no score chose (startup and exploration proposals: ``exploring_trials``)."""
        rec = self.record
        flags = exploring_trials(len(self.trials), int(rec.get("startup", 0)), float(rec.get("explore", 0.0)))
        return [t.scene for t, f in zip(self.trials, flags) if f]


# ----------------------------------------------------------------------------- the search


def _optuna_sampler(o: SearchOptions, n_categorical: int) -> Any:
    import optuna

    seed = int(np.random.SeedSequence(o.seed).generate_state(1)[0])  # optuna seeds numpy's RandomState: < 2**32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if o.optimizer_used == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=o.n_startup, warn_independent_sampling=False,
                                             independent_sampler=optuna.samplers.RandomSampler(seed=seed))
        if o.optimizer_used == "cmaes":
            if n_categorical:
                log.info("cmaes: %d categorical dimension(s) are sampled at random (seeded)", n_categorical)
            return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=o.n_startup, warn_independent_sampling=False,
                                                independent_sampler=optuna.samplers.RandomSampler(seed=seed))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=o.n_startup, multivariate=True,
                                          constant_liar=o.batch > 1)


@contextmanager
def _quiet_optuna_one_thread() -> Iterator[None]:
    """optuna's own logging at WARNING (the library logs; it never prints) and one torch
    thread for the detector, both restored afterwards."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)
        if torch is not None and threads is not None:
            torch.set_num_threads(threads)


def _detector_id(detector: Detector) -> dict[str, Any]:
    info = getattr(detector, "info", None)
    sha = getattr(detector, "sha256", None) or getattr(info, "sha256", None)
    return {"name": str(detector.name), "sha256": sha}


class _Search:
    """One search run: the optimiser, the trials so far and their resume state."""

    def __init__(self, spec: OddSpec, out: Path, detector: Detector, o: SearchOptions, plan: PlanOptions,
                 executor: Any, on_trial: Optional[Callable[[Trial, int], None]]):
        import optuna

        self.spec, self.out, self.detector, self.o, self.plan = spec, out, detector, o, plan
        self.executor, self.on_trial = executor, on_trial
        self.space = SearchSpace(spec, o.placement)
        self.study = optuna.create_study(direction="maximize",
                                         sampler=_optuna_sampler(o, len(self.space.categorical)))
        #: per trial, whether it is a Sobol point (the startup and the exploration ones), not the optimiser's
        self.schedule = exploring_trials(o.budget, o.n_startup, o.explore)
        self.next_sobol = 0  # the index of the Sobol point the next startup or exploration proposal takes
        from scipy.stats import qmc

        with warnings.catch_warnings():  # "balance properties": the sequence is used a point at a time
            warnings.simplefilter("ignore", UserWarning)
            self.sobol = qmc.Sobol(d=len(self.space.searched), scramble=True,
                                   seed=np.random.default_rng(np.random.SeedSequence([o.seed, EXPLORE_STREAM])))
        self.trials: list[Trial] = []
        self.infeasible = 0
        self.replayed = 0  # trials scored by an earlier, interrupted run of this search
        self.categories = {i + 1: n for i, n in enumerate(spec.class_names)}
        self.mapping = map_classes(detector.classes, self.categories, getattr(detector, "class_map", None))
        self.state = out / STATE

    # ---- proposals
    def ask_batch(self) -> list[tuple[Any, int, tuple[float, ...]]]:
        """Up to ``batch`` feasible proposals (trial, scene id, unit point); infeasible ones
        are pruned on the way (SpecError when the rules reject too many in a row)."""
        from optuna.trial import TrialState

        want = min(self.o.batch, self.o.budget - len(self.trials))
        if len(self.trials) < self.o.n_startup:  # the last startup batch stops at the startup's end: the
            want = min(want, self.o.n_startup - len(self.trials))  # optimiser's first batch sees every startup score
        asked: list[tuple[Any, int, tuple[float, ...]]] = []
        in_a_row = 0
        while len(asked) < want:
            scene = len(self.trials) + len(asked)
            if self.schedule[scene]:  # a startup or exploration proposal: the next Sobol point
                self.study.enqueue_trial(self._sobol_params())
            t = self.study.ask(self.space.distributions)
            point = self.space.unit_point(t.params)
            rule = broken_rule(self.spec.rules, self.space.values(point))
            if rule is None:
                asked.append((t, len(self.trials) + len(asked), point))
                in_a_row = 0
                continue
            if self.o.optimizer_used == "gp":  # GPSampler models finished trials only: it learns the
                self.study.tell(t, 0.0)  # excluded region from the lowest score any objective gives
            else:
                self.study.tell(t, state=TrialState.PRUNED)
            self.infeasible += 1
            in_a_row += 1
            if in_a_row > self.spec.max_placement_tries:
                raise SpecError(f"{self.spec.source_path}: rules.{rule}: the optimiser proposed "
                                f"{in_a_row} points in a row that break the rules; widen a domain or relax the rule")
        return asked

    def _sobol_params(self) -> dict[str, Any]:
        """The next startup or exploration proposal: the next point of a scrambled Sobol
        sequence over every searched coordinate (seeded by the suite seed). Its first 2**k
        points put one point in every 1/2**k of each coordinate's range, so a failing band
        of width w of any one dimension is visited once about 1/w such proposals were made
        (a proposal that breaks a rule is pruned and the next point taken)."""
        h = self.next_sobol
        self.next_sobol += 1
        u = self.sobol.random(1)[0]
        assert self.sobol.num_generated == h + 1
        return {path: d.at(float(x)) if d.kind == "choices" or (d.kind == "range" and d.integer) else float(x)
                for (path, d), x in zip(self.space.searched, u)}

    # ---- scoring
    def _trial_file(self, scene: int) -> Path:
        return self.state / "trials" / f"trial_{scene:06d}.json"

    def _cached(self, scene: int, point: tuple[float, ...]) -> Optional[TrialScore]:
        p = self._trial_file(scene)
        if not p.is_file():
            return None
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
            if tuple(float(x) for x in d["point"]) == point:
                return TrialScore.from_row(d["score"])
        except (ValueError, KeyError, TypeError):
            pass
        return None

    def record(self, pending: Sequence[tuple[int, tuple[float, ...]]] = (), expanded: Sequence[int] = ()
               ) -> dict[str, Any]:
        """The ``search:`` block of the trials so far plus ``pending`` (scene, point) ones
        (scored 0 until they are: only the suite's final block is complete)."""
        o = self.o
        src = self.spec
        points = [t.point for t in self.trials] + [p for _, p in pending]
        scores = [t.score.row() for t in self.trials] + [[0.0, 0.0, 0, 0, None]] * len(pending)
        return {
            "source": {"file": Path(src.source_path or "spec.yaml").name, "sha256": src.sha256,
                       "sampler": src.sampler},
            "detector": _detector_id(self.detector),
            "optimizer": o.optimizer_used, "seed": o.seed, "batch": o.batch, "startup": o.n_startup,
            "design": "sobol", "explore": o.explore, "objective": o.objective, "classes": list(o.classes), "conf": o.conf, "iou": o.iou,
            "fail_above": o.fail_above, "expand": o.expand, "variant": searched_variant(src).name,  # type: ignore[union-attr]
            "infeasible": self.infeasible,
            "dimensions": [p for p, _ in self.space.searched],
            "points": [list(p) for p in points], "scores": scores, "expanded": list(expanded),
        }

    def score_batch(self, asked: Sequence[tuple[Any, int, tuple[float, ...]]]) -> list[TrialScore]:
        """Render (on the executor) and score the batch's scenes; kept scores are reused."""
        from oddsuite.run import TaskFailure

        scores: dict[int, TrialScore] = {}
        todo = []
        for _, scene, point in asked:
            hit = self._cached(scene, point)
            if hit is not None:
                scores[scene] = hit
                self.replayed += 1
            else:
                todo.append((scene, point))
        if todo:
            partial = replay_spec(self.spec, self.record(pending=[(s, p) for _, s, p in asked]))
            scratch = self.state / "render"
            jobs = [SceneJob(partial.source_text or "", str(self.spec.source_path), self.o.seed, s, str(scratch),
                             self.plan) for s, _ in todo]
            records: dict[int, dict[str, Any]] = {}
            for job, rec in self.executor.map(render_scene, jobs, key=lambda j: j.scene_id):
                if isinstance(rec, TaskFailure):
                    raise SuiteError(f"search: scene {rec.key} failed to render: {rec.error}. Scored trials are kept "
                                     f"in {self.state}; fix the cause and run the same command to resume.")
                records[job.scene_id] = rec
            for scene, point in todo:
                # as the record keeps it (6 decimals): a resumed run tells the optimiser the kept score,
                # and the Gaussian process proposes differently on a score that differs in the 17th digit
                scores[scene] = TrialScore.from_row(self._score(records[scene], scratch).row())
                atomic_write_bytes(self._trial_file(scene), (json.dumps(
                    {"scene": scene, "point": list(point), "score": scores[scene].row()}) + "\n").encode())
        return [scores[s] for _, s, _ in asked]

    def _score(self, rec: Mapping[str, Any], scratch: Path) -> TrialScore:
        """Predict the one image of a rendered trial and score its ROI outcomes as evaluate does."""
        from PIL import Image

        (im,) = rec["images"]
        path = scratch / im["file_name"]
        with Image.open(path) as f:
            rgb = np.asarray(f.convert("RGB"), dtype=np.uint8)
        (det,) = self.detector.predict([rgb], conf=MAP_CONF_FLOOR)
        keep = [j for j, c in enumerate(det.class_ids.tolist()) if int(c) in self.mapping.to_suite]
        xyxy = det.boxes[keep].astype(np.float64)
        dets = [{"image_id": 1, "category_id": self.mapping.to_suite[int(det.class_ids[j])],
                 "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": float(det.scores[j])}
                for j, b in zip(keep, xyxy.tolist())]
        gt = {"categories": [{"id": i, "name": n} for i, n in self.categories.items()],
              "images": [{**im, "id": 1}],
              "annotations": [{**a, "id": k + 1, "image_id": 1} for k, a in enumerate(im["annotations"])]}
        roi_cats = {(int(r["scene_id"]), int(r["roi_id"])): int(r["category_id"]) for r in rec["rois"]}
        outcomes, _ = outcome_tables(gt, dets, iou=self.o.iou, conf=self.o.conf, roi_categories=roi_cats)
        return score_outcomes(outcomes, self.o.objective, self.o.classes, self.spec.max_rois)

    # ---- the loop
    def run(self) -> None:
        while len(self.trials) < self.o.budget:
            asked = self.ask_batch()
            for (t, scene, point), score in zip(asked, self.score_batch(asked)):
                self.study.tell(t, score.objective)
                trial = Trial(scene, point, score)
                self.trials.append(trial)
                if self.on_trial:
                    self.on_trial(trial, self.o.budget)


def _adopt_scored_renders(final: OddSpec, out: Path, seed: int, scenes: Sequence[int], opts: PlanOptions) -> int:
    """Move the scored renders of those ``scenes`` whose suite image is the one image the
    search scored (a scene not expanded; or an expanded one when the suite has one variant
    and no masking modes) from the search's scratch folder into the suite, with their scene
    records, so that ``generate_suite`` finds them finished and does not render them again.
    A render is moved only when its record's parameters are those the final spec gives the
    scene (``sample_scene``) and all its files are there. Returns the number of scenes
    moved. The folder becomes an unfinished suite of the final spec (its job record written
    as ``generate_suite`` writes it), which ``generate_suite`` resumes; nothing is moved
    into a folder that holds anything else (a finished suite: a re-run)."""
    from oddsuite.fileio import write_json
    from oddsuite.odd import sample_scene
    from oddsuite.odd.samplers.search import scene_scope
    from oddsuite.suite.generate import _jsonable
    from oddsuite.suite.layout import JOB, scene_record
    from oddsuite.suite.state import inspect_folder, job_key

    scratch = out / STATE / "render"
    key = job_key(final.sha256, seed, opts.as_dict())
    state = inspect_folder(out)
    if state.kind == "new":
        write_json(out / JOB, {**key, "scenes": len(scenes)})
    elif state.kind != "unfinished" or state.key != key:
        return 0
    scored_only = ((searched_variant(final),), ())
    moved = 0
    for i in scenes:
        if scene_scope(final, i, opts.modes) != scored_only:
            continue
        src, dst = scratch / scene_record(i), out / scene_record(i)
        if dst.is_file() or not src.is_file():
            continue
        try:
            rec = json.loads(src.read_text(encoding="utf-8"))
            files = list(rec["files"])
            same = json.dumps(rec["params"], sort_keys=True) == json.dumps(
                _jsonable(sample_scene(final, seed, i).flat()), sort_keys=True)
        except (ValueError, KeyError, TypeError):
            continue
        if not same or not all((scratch / f).is_file() for f in files):
            continue
        for f in files:
            (out / f).parent.mkdir(parents=True, exist_ok=True)
            (scratch / f).replace(out / f)
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.replace(dst)  # the record last: a scene is finished once its record is there
        moved += 1
    return moved


def _key_differences(prev: Any, want: Mapping[str, Any]) -> str:
    """What differs between the folder's search key and this run's, as ``field: folder's
    value, not this run's`` (options by their CLI names; the spec and detector by hash)."""
    if not isinstance(prev, dict):
        return "its key.json is unreadable"
    out = []
    for k in sorted(set(prev) | set(want)):
        a, b = prev.get(k), want.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and k in ("options", "plan"):
            for f in sorted(set(a) | set(b)):
                if a.get(f) != b.get(f):
                    name = f"--{f.replace('_', '-')}" if k == "options" else f"plan.{f}"
                    out.append(f"{name} {json.dumps(a.get(f))} there, {json.dumps(b.get(f))} now")
        else:
            out.append(f"{k} {json.dumps(a)[:80]} there, {json.dumps(b)[:80]} now")
    return "; ".join(out) or "nothing visible (the key file was edited?)"


def _claim(out: Path, key: Mapping[str, Any]) -> None:
    """Start or resume a search in ``out``: refuse a folder of another search or anything else."""
    kp = out / STATE / "key.json"
    if kp.is_file():
        try:
            prev = json.loads(kp.read_text(encoding="utf-8"))
        except ValueError:
            prev = None
        want = json.loads(json.dumps(key))
        if prev != want:
            raise SuiteError(f"{out}: holds a search of another spec, seed, detector or options ({kp}): "
                             f"{_key_differences(prev, want)}; use another --out or delete the folder (a finished "
                             f"search is never extended: a larger --budget is another search)")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SuiteError(f"{out}: exists and is not a search suite; use an empty or new folder")
    atomic_write_bytes(kp, (json.dumps(key, sort_keys=True, indent=1) + "\n").encode())


def search_suite(spec_path: str | Path, out_dir: str | Path, detector: Detector, options: SearchOptions, *,
                 workers: int = 1, executor: Any = None, plan: Optional[str] = None,
                 modes: Optional[tuple[str, ...]] = None, renderer: Optional[str] = None,
                 on_trial: Optional[Callable[[Trial, int], None]] = None,
                 on_start: Optional[Callable[[Any], None]] = None,
                 on_scene: Optional[Callable[[int], None]] = None,
                 on_image: Optional[Callable[[int], None]] = None) -> SearchResult:
    """Search the ODD of ``spec_path`` for scenes where ``detector`` fails, then write the
    suite of the searched scenes to ``out_dir`` (see the module doc); resumes an
    interrupted search. ``plan``/``modes``/``renderer`` override the spec's permutations
    for the expanded scenes, as in ``generate``. ``on_trial(trial, budget)`` after each
    scored trial; ``on_start``/``on_scene``/``on_image`` as in ``suite.generate_suite``.

    Raises OddsuiteError (a bad option), SpecError (a spec that cannot be searched, or
    rules that reject the optimiser's proposals), ModelError (no detector class matches a
    spec class), SuiteError (``out_dir`` holds something else; a render failed)."""
    spec = load_spec(spec_path)
    options.check(spec)
    if not isinstance(detector, Detector):
        raise ModelError(f"{detector!r} is not a Detector (needs name, classes, predict)")
    opts = PlanOptions.from_spec(spec, plan, modes, renderer)
    out = Path(out_dir)
    # the startup as it resolves: --startup 10 and the default of 10 are the same search
    key = {"spec_sha256": spec.sha256, "options": {**asdict(options), "startup": options.n_startup,
                                                        "optimizer": options.optimizer_used},
           "plan": opts.as_dict(), "detector": _detector_id(detector)}
    _claim(out, key)
    if executor is None:
        from oddsuite.run import LocalExecutor

        executor = LocalExecutor(workers)
    # the folder's lock while the search writes its state and moves its renders (two runs on one
    # folder would mix them); generate_suite takes it again for the suite
    with SuiteLock(out, "search"):
        _claim(out, key)  # again, now that no other run can change it
        with _quiet_optuna_one_thread():
            s = _Search(spec, out, detector, options, opts, executor, on_trial)
            s.run()
        failing = [t.scene for t in s.trials if t.score.severity > options.fail_above]
        expanded = [t.scene for t in s.trials] if options.expand == "all" else failing
        if not failing:
            log.warning("search: no scene failed in %d renders (severity above %g)", options.budget, options.fail_above)
        record = s.record(expanded=expanded)
        final = replay_spec(spec, record)
        adopted = _adopt_scored_renders(final, out, options.seed, [t.scene for t in s.trials], opts)
    res = generate_suite(final, out, scenes=options.budget, seed=options.seed, plan=plan, modes=modes,
                         renderer=renderer, executor=executor, workers=workers, on_start=on_start, on_scene=on_scene,
                         on_image=on_image, lock_as="search")
    shutil.rmtree(out / STATE / "render", ignore_errors=True)
    return SearchResult(out, s.trials, s.infeasible, expanded, options.fail_above, res, record, adopted, s.replayed)
