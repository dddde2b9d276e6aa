#!/usr/bin/env bash
set -e
cd /work/main
SEED=4611686018427387904
.venv/bin/oddsuite generate odd_specs/urban_day.yaml --out runs/default/train_urban_day --scenes 100 --seed $SEED --workers 2 --plan full --modes remove
for s in rainy_dusk foggy_night; do
  .venv/bin/oddsuite generate odd_specs/$s.yaml --out runs/default/train_$s --scenes 40 --seed $SEED --workers 2 --plan full --modes remove
done
echo GEN_DONE
.venv/bin/python runs/default/train_default.py 60 320  # the shipped model; a first 30-epoch run reached lower scores
