"""Held-out full-scene scores of a detector on the three shipped specs (validation seed 1000)."""
import json, sys
from pathlib import Path
from oddsuite.evaluate import evaluate_suite
from oddsuite.models import load_detector

model = sys.argv[1] if len(sys.argv) > 1 else "models/default"
det = load_detector(model)
out = {}
for s in ["urban_day", "rainy_dusk", "foggy_night"]:
    m = evaluate_suite(f"runs/heldout/{s}", det, f"runs/heldout/res_{Path(model).name}_{s}", progress=False)
    full = m["map"]["full"]
    out[s] = {"map": full["map"], "ap50": full["ap50"], "n_images": full["n_images"], "n_gt": full["n_gt"],
              "per_class_ap50": {name: (v["ap50"], v["n_gt"]) for name, v in full.get("per_class", {}).items()}}
    print(s, json.dumps(out[s]))
Path(f"runs/heldout/scores_{Path(model).name}.json").write_text(json.dumps(out, indent=1))
