#!/usr/bin/env bash
# The main job: install what is missing, build, and evaluate deit_tiny on the shared ImageNet
# sample (data folder: $QVIT_DATA, default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
DATA="${QVIT_DATA:-../shared/data}"
build/qvit eval --model deit_tiny --weights "$DATA/models/deit_tiny_patch16_224.safetensors" \
  --data "$DATA/imagenet-sample" --batch 32 --json build/eval_deit_tiny.json
