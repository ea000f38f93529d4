#!/usr/bin/env bash
# Trains the bundled demo model (assets/demo/musedance-demo-tiny.safetensors) from nothing, on
# the CPU, with the project's own scripts: SynthDance data, the tiny VAE (subject pixels weighted),
# stage 1, stage 2 (motion modules, then the spatial ResNets too), then the held-out evaluation.
# Every step resumes where it stopped (data and checkpoints are skipped or continued), so after
# an interruption just run it again.
#   bash scripts/setup.sh && bash scripts/train_demo.sh      # ~3.5 h on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p runs/logs
step() { echo "== $(date -u +%H:%M:%S) $*"; }
step "SynthDance data";  $PY training/synth_dance.py --out data/synthdance --clips 2000 --size 64 --fps 12 \
                           --frames 24 --val-frames 96 --seed 0 --workers 2 --val-fraction 0.05
for stage in vae stage1 stage2 stage2_resnets; do
  if [ ! -f "runs/tiny/$stage/model.safetensors" ]; then
    step "train $stage";  $PY training/train.py --config "training/configs/tiny_$stage.yaml" 2>&1 | tee -a "runs/logs/$stage.log"
  fi
  if [ "$stage" = stage1 ] && [ ! -f runs/tiny/stage1-check/report.json ]; then  # a minute; see tiles.png
    step "check stage 1"; $PY training/check_appearance.py --model runs/tiny/stage1/model.safetensors \
                           --data data/synthdance --out runs/tiny/stage1-check
  fi
done
step "evaluate";         $PY training/evaluate.py --model runs/tiny/stage2_resnets/model.safetensors --data data/synthdance \
                           --clips 16 --steps 15 --out runs/tiny/eval
cp runs/tiny/stage2_resnets/model.safetensors assets/demo/musedance-demo-tiny.safetensors
step "done: assets/demo/musedance-demo-tiny.safetensors (from runs/tiny/stage2_resnets), report in runs/tiny/eval"
