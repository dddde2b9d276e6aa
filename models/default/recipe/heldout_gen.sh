#!/usr/bin/env bash
set -e
cd /work/main
for s in urban_day rainy_dusk foggy_night; do
  .venv/bin/oddsuite generate odd_specs/$s.yaml --out runs/heldout/$s --scenes 25 --seed 1000 --workers 1 --plan full --modes ""
done
echo HELDOUT_DONE
