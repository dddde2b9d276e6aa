"""Cost of each reduced-context inference condition relative to the reference, measured side by side.

The same detector (default: the shipped models/default, imgsz 320) predicts the same frames
under every condition (``oddsuite.models.conditions``), in this one process, rounds
interleaved so that drift of the shared machine hits all alike; the median of the rounds.
Prints per condition: milliseconds per frame end to end (cutting, resizing, the detector,
mapping back and, for tiles, sahi's merge), the ratio to the reference, the detector's
input images per frame, boxes per frame after merging (conf 0.001, as for mAP) and the
merge's own milliseconds per frame.

    python benchmarks/reduced_context.py [--suite demo/suite] [--frames 12] [--rounds 3]
        [--conditions reference,scale:0.5,scale:0.25,tiles:2x2:0.2,tiles:3x3:0.2,crop:0.6]

Frames: the full-scene images of ``--suite`` (e.g. the demo's), else 640 x 480 frames of a
toy suite written to a temporary folder. One torch thread (see benchmarks/detect.py).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _frames(suite: Path | None, n: int, tmp: Path) -> tuple[list[np.ndarray], str]:
    import json

    from PIL import Image

    if suite is None:
        from oddsuite.training.toy import make_toy_suite

        suite = make_toy_suite(tmp / "toy", scenes=n, size=(480, 640), seed=0)
        what = "toy suite (boxes and discs)"
    else:
        what = str(suite)
    gt = json.loads((suite / "annotations.json").read_text())
    full = [im for im in gt["images"] if im.get("mode", "full") == "full"] or gt["images"]
    files = [suite / im["file_name"] for im in full][:n]
    return [np.asarray(Image.open(f).convert("RGB")) for f in files], what


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "default"), help="detector (default models/default)")
    ap.add_argument("--suite", type=Path, default=None, help="take its full-scene images (default: a toy suite)")
    ap.add_argument("--frames", type=int, default=12, help="frames per round (default 12)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    ap.add_argument("--batch", type=int, default=8, help="frames per predict call, as evaluate's --batch (default 8)")
    ap.add_argument("--conditions", default="reference,scale:0.5,scale:0.25,tiles:2x2:0.2,tiles:3x3:0.2,crop:0.6")
    args = ap.parse_args(argv)

    import torch

    from oddsuite.models import MAP_CONF_FLOOR, load_detector
    from oddsuite.models.conditions import ConditionDetector, merge_tiles, parse_conditions

    torch.set_num_threads(1)
    det = load_detector(args.model)
    conds = parse_conditions(args.conditions)
    wrapped = [(c.name, c.wrap(det)) for c in conds]
    with tempfile.TemporaryDirectory() as tmp:
        frames, what = _frames(args.suite, args.frames, Path(tmp))
    h, w = frames[0].shape[:2]
    batches = [frames[i:i + args.batch] for i in range(0, len(frames), args.batch)]
    print(f"{det.name} (input {det.info.input_hw}), {len(frames)} frames {w}x{h} from {what}, batch {args.batch}, "
          f"conf {MAP_CONF_FLOOR}, 1 torch thread; median of {args.rounds} rounds, conditions interleaved")

    for _, d in wrapped:  # warm up (first-call allocations, sahi import)
        d.predict(batches[0][:1])
    times: dict[str, list[float]] = {n: [] for n, _ in wrapped}
    boxes: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, d in wrapped:
            t = time.perf_counter()
            out = [r for b in batches for r in d.predict(b)]
            times[name].append((time.perf_counter() - t) / len(frames))
            boxes[name] = sum(len(r) for r in out) / len(out)
    merge_ms: dict[str, float] = {}
    for name, d in wrapped:  # the merge alone, on the views' detections
        if isinstance(d, ConditionDetector) and d.condition.kind == "tiles":
            views = [r for b in batches for r in d.predict_views(b)]
            t = time.perf_counter()
            for r in views:
                merge_tiles(r.boxes, r.scores, r.class_ids, d.merge_conf)
            merge_ms[name] = 1000 * (time.perf_counter() - t) / len(views)

    ref = statistics.median(times[wrapped[0][0]])
    wn = max(len(n) for n, _ in wrapped)
    print(f"\n{'condition':<{wn}}  ms/frame  x reference  detector inputs/frame  boxes/frame  merge ms/frame")
    for c, (name, _) in zip(conds, wrapped):
        t = statistics.median(times[name])
        merge = f"{merge_ms[name]:.1f}" if name in merge_ms else "-"
        print(f"{name:<{wn}}  {1000 * t:8.1f}  {t / ref:11.2f}  {len(c.views(h, w)):21d}  {boxes[name]:11.1f}  "
              f"{merge:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
