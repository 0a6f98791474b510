#!/usr/bin/env bash
# Train the whole zoo in dependency order on the HPA train split (resumable: rerun to continue).
# Usage: scripts/train_zoo.sh [DATA_DIR]   (log: runs/train_zoo.log)
# Step counts are set for a 2-core CPU budget; raise them with e.g. PRETRAIN_STEPS=6000.
# THREADS=1 helps when other work shares the cores (OpenMP barriers suffer from oversubscription).
set -euo pipefail
cd "$(dirname "$0")/.."
# Run from a snapshot of the package so that editing the checkout cannot break a long run;
# weights, registry pins and run folders still go to this checkout.
ROOT=$(pwd)
SNAP=$(mktemp -d /tmp/sr_train_snapshot.XXXX)
cp -r sr "$SNAP/"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # no spin-waiting when cores are shared
export SR_WEIGHTS_DIR="$ROOT/weights" SR_REGISTRY="$ROOT/sr/zoo.json" PYTHONPATH="$SNAP"
DATA=${1:-../shared/data/hpa/sanch7_kaggle2018_singlechannel/train_sample}
case "$DATA" in /*) ;; *) DATA="$(pwd)/$DATA" ;; esac
FEAT_STEPS=${FEAT_STEPS:-1500}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-1000}
GAN_STEPS=${GAN_STEPS:-250}
LITE_STEPS=${LITE_STEPS:-1500}
mkdir -p runs
run() { echo "== $(date -u +%FT%TZ) $*" ; (cd "$SNAP" && python -m sr train --data "$DATA" --out "$ROOT/runs" ${THREADS:+--threads "$THREADS"} "$@"); }
{
  run --model msrgan-vgg --steps "$FEAT_STEPS" --batch 32 --val-every 250
  run --model srresnet-improved --steps "$PRETRAIN_STEPS"
  run --model srgan-improved --steps "$GAN_STEPS" --val-every 100
  run --model srresnet --steps "$PRETRAIN_STEPS"
  run --model srgan --steps "$GAN_STEPS" --val-every 100
  run --model msrgan --steps "$GAN_STEPS" --val-every 100
  run --model srgan-lite --steps "$LITE_STEPS" --val-every 500
  echo "== $(date -u +%FT%TZ) all done"
} >> runs/train_zoo.log 2>&1
