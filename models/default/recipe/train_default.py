"""Train the default detector on the three shipped specs' training suites (seed range disjoint
from validation seeds). Exports each suite as YOLO, remaps labels to one class list, trains."""
import json, shutil, sys
from pathlib import Path
import yaml
from oddsuite.training.yolo_dataset import export_yolo
from oddsuite.training.train import train_detector

ROOT = Path("/work/main")
CLASSES = ["car", "truck", "person", "bicycle", "stop sign", "traffic cone"]
runs = ROOT / "runs/default"
merged = runs / "data"
shutil.rmtree(merged, ignore_errors=True)
train_dirs, val_dirs = [], []
for s in ["urban_day", "rainy_dusk", "foggy_night"]:
    d = export_yolo(runs / f"train_{s}", runs / f"yolo_{s}", images="full", link=True, val_fraction=0.15, seed=0)
    data = yaml.safe_load(Path(d).read_text())
    names = data["names"]
    names = names if isinstance(names, dict) else dict(enumerate(names))
    remap = {int(k): CLASSES.index(v) for k, v in names.items()}
    base = Path(d).parent
    for lbl in base.rglob("labels/**/*.txt"):
        lines = []
        for ln in lbl.read_text().splitlines():
            if ln.strip():
                c, *rest = ln.split()
                lines.append(" ".join([str(remap[int(c)]), *rest]))
        lbl.write_text("\n".join(lines) + ("\n" if lines else ""))
    root = Path(data.get("path", base))
    train_dirs.append(str((root / data["train"]).resolve()))
    val_dirs.append(str((root / data["val"]).resolve()))
merged.mkdir(parents=True)
(merged / "data.yaml").write_text(yaml.safe_dump({"path": str(merged), "train": train_dirs, "val": val_dirs,
                                                  "names": dict(enumerate(CLASSES))}))
epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 25
imgsz = int(sys.argv[2]) if len(sys.argv) > 2 else 320
cmd = (f"oddsuite generate odd_specs/{{urban_day,rainy_dusk,foggy_night}}.yaml --scenes 100 (urban_day), 40 (rainy_dusk, foggy_night) --seed 4611686018427387904 "
       f"--plan full --modes remove; python runs/default/train_default.py {epochs} {imgsz}")
train_detector(merged / "data.yaml", ROOT / (sys.argv[3] if len(sys.argv) > 3 else "models/default"), epochs=epochs, imgsz=imgsz, batch=16, seed=0,
               command=cmd, name="oddsuite-default-yolov8n")
print("TRAIN_DONE")
