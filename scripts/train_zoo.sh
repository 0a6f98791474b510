#!/usr/bin/env bash
# Train the whole zoo in dependency order on the HPA train split (resumable: rerun to continue).
# Usage: scripts/train_zoo.sh [DATA_DIR]   (logs: runs/train_zoo.<chain>.log; each run's CSV -> docs/training/<id>.csv)
# Step counts are set for a 2-core CPU budget; raise them with e.g. PRETRAIN_STEPS=6000.
# Learning rate: constant, then cosine decay to 1% from *_DECAY_FROM (default: half-way).
# PARALLEL=1 runs the two independent chains (improved / baseline) side by side, one thread each:
# on 2 cores that trains more steps per hour than one 2-thread process.
# THREADS=1 helps when other work shares the cores (OpenMP barriers suffer from oversubscription).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/train_env.sh "$@"
FEAT_STEPS=${FEAT_STEPS:-1500}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-2200}
GAN_STEPS=${GAN_STEPS:-400}
LITE_STEPS=${LITE_STEPS:-6000}
PRETRAIN_DECAY_FROM=${PRETRAIN_DECAY_FROM:-$((PRETRAIN_STEPS / 2))}
GAN_DECAY_FROM=${GAN_DECAY_FROM:-$((GAN_STEPS / 2))}
LITE_DECAY_FROM=${LITE_DECAY_FROM:-$((LITE_STEPS / 2))}
PARALLEL=${PARALLEL:-0}
if [ "$PARALLEL" = 1 ]; then THREADS=${THREADS:-1}; fi
mkdir -p runs
run() {  # run --model ID ...: train, then copy the run's log next to the docs
  echo "== $(date -u +%FT%TZ) $*"
  (cd "$SNAP" && python -m sr train --data "$DATA" --out "$ROOT/runs" ${THREADS:+--threads "$THREADS"} "$@")
  cp "$ROOT/runs/$2/log.csv" "$ROOT/docs/training/$2.csv"
}
improved() {
  run --model srresnet-improved --steps "$PRETRAIN_STEPS" --decay-from "$PRETRAIN_DECAY_FROM"
  run --model srgan-improved --steps "$GAN_STEPS" --decay-from "$GAN_DECAY_FROM" --val-every 100
  run --model srgan-lite --steps "$LITE_STEPS" --decay-from "$LITE_DECAY_FROM" --val-every 500
}
baseline() {
  run --model srresnet --steps "$PRETRAIN_STEPS" --decay-from "$PRETRAIN_DECAY_FROM"
  run --model srgan --steps "$GAN_STEPS" --decay-from "$GAN_DECAY_FROM" --val-every 100
  run --model msrgan --steps "$GAN_STEPS" --decay-from "$GAN_DECAY_FROM" --val-every 100
}
run --model msrgan-vgg --steps "$FEAT_STEPS" --batch 32 --val-every 250 >> runs/train_zoo.log 2>&1
if [ "$PARALLEL" = 1 ]; then
  improved >> runs/train_zoo.improved.log 2>&1 &
  baseline >> runs/train_zoo.baseline.log 2>&1
  wait
else
  { improved; baseline; } >> runs/train_zoo.log 2>&1
fi
echo "== $(date -u +%FT%TZ) all done" >> runs/train_zoo.log
