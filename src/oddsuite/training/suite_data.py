"""The training data of ``oddsuite train``: training suites rendered from one or more ODD
specs (suite seeds from the training range, disjoint from validation suites), each exported
as a YOLO data set with one shared class list, and, for several specs, one ``data.yaml``
over all of them; then the training run that records where its data came from.

Layout under ``OUT`` (one spec: no per-spec sub-folders)::

    OUT/train_suite/SPEC_NAME/    the rendered training suite (resumable)
    OUT/train_data/SPEC_NAME/     its YOLO export (data.yaml, export.json, images/, labels/)
    OUT/train_data/data.yaml      several specs: train/val lists over every export
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from oddsuite.fileio import atomic_write_text
from oddsuite.training.train import train_detector, training_suite_seed
from oddsuite.training.yolo_dataset import export_yolo


@dataclass(frozen=True)
class TrainingData:
    """What :func:`build_training_data` made: the data set yaml to train on, the training
    suite seed, one record per spec (``spec``, ``dir``, ``scenes``), the shared class list, and
    per spec the number of scenes that failed to render (left out)."""

    data_yaml: Path
    suite_seed: int
    suites: list[dict[str, Any]]
    classes: list[str]
    failures: dict[str, int] = field(default_factory=dict)


def class_list(specs: Sequence[str | Path]) -> list[str]:
    """One class list for several specs: the built-in classes in their fixed order, then
    others in the order the specs name them."""
    from oddsuite.odd import load_spec
    from oddsuite.odd.spec import BUILTIN_CLASSES

    names: list[str] = []
    for sp in specs:
        names += [n for n in load_spec(sp).class_names if n not in names]
    first = list(names)
    names.sort(key=lambda n: (BUILTIN_CLASSES.index(n) if n in BUILTIN_CLASSES else len(BUILTIN_CLASSES),
                              first.index(n)))
    return names


def build_training_data(specs: Sequence[str | Path], out: str | Path, *, scenes: Sequence[int], seed: int,
                        plan: str = "full", images: str = "full", val_fraction: float = 0.2, workers: int = 1,
                        on_start: Callable[[Path, Path, int, Any], None] | None = None,
                        on_scene: Callable[[int], None] | None = None,
                        on_image: Callable[[int], None] | None = None,
                        on_done: Callable[[Path], None] | None = None) -> TrainingData:
    """Render (or resume) a training suite per spec and export each as a YOLO data set.

    scenes: one count per spec (``len(scenes) == len(specs)``). seed: the training seed in
    [0, 2**32); the suites use :func:`training_suite_seed` of it and the train/val split uses it
    as well. ``on_start(spec, suite_dir, suite_seed, plan)`` is called when a
    suite's work is planned (``plan``: the suite's :class:`oddsuite.suite.SuitePlan`), ``on_scene(n_images)`` after each scene,
    ``on_image(n)`` with the images finished so far, ``on_done(spec)`` when its
    rendering ends (also on an error)."""
    from oddsuite.odd import load_spec
    from oddsuite.suite import generate_suite

    if len(scenes) != len(specs):
        raise ValueError(f"{len(scenes)} scene counts for {len(specs)} specs")
    out = Path(out)
    suite_seed = training_suite_seed(seed)
    names = class_list(specs)
    multi = len(specs) > 1
    train_dirs, val_dirs, suites, failures = [], [], [], {}
    dy = None
    for sp, n_scenes in zip(specs, scenes):
        stem = load_spec(sp).name
        suite_dir = out / "train_suite" / stem if multi else out / "train_suite"
        data_dir = out / "train_data" / stem if multi else out / "train_data"
        try:
            res = generate_suite(sp, suite_dir, scenes=n_scenes, seed=suite_seed, workers=workers, plan=plan,
                                 on_start=(lambda the_plan, sp=sp, d=suite_dir:
                                           on_start(Path(sp), d, suite_seed, the_plan)) if on_start else None,
                                 on_scene=on_scene, on_image=on_image)
        finally:
            if on_done:
                on_done(Path(sp))
        if res.failures:
            failures[str(sp)] = len(res.failures)
        dy = export_yolo(suite_dir, data_dir, images=images, link=True, val_fraction=val_fraction, seed=seed,
                         classes=names if multi else None)
        train_dirs.append(str((data_dir / "images" / "train").resolve()))
        val = data_dir / "images" / "val"
        val_dirs.append(str((val if val.is_dir() else data_dir / "images" / "train").resolve()))
        suites.append({"spec": str(sp), "dir": str(suite_dir), "scenes": n_scenes})
    if multi:
        import yaml

        dy = out / "train_data" / "data.yaml"
        atomic_write_text(dy, yaml.safe_dump({"path": str((out / "train_data").resolve()), "train": train_dirs,
                                              "val": val_dirs, "nc": len(names), "names": dict(enumerate(names))},
                                             sort_keys=False))
    return TrainingData(dy, suite_seed, suites, names, failures)


def train_on(data: TrainingData, out: str | Path, *, arch: str, epochs: int, imgsz: int, batch: int, seed: int,
             plan: str, images: str, command: str | None = None,
             on_epoch: Callable[[int, int, dict[str, float]], None] | None = None) -> Path:
    """Train ``arch`` on the training data into the model directory ``out``; the card records
    the training suites (seed, specs, folders, plan, image selection) beside the training run."""
    return train_detector(data.data_yaml, out, arch=arch, epochs=epochs, imgsz=imgsz, batch=batch, seed=seed,
                          workers=0, name=Path(out).name, command=command, on_epoch=on_epoch,
                          extra={"training_suite": {"seed": data.suite_seed, "suites": data.suites, "plan": plan,
                                                    "images": images}})
