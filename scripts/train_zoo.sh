#!/usr/bin/env bash
# Train the whole zoo in dependency order on the HPA train split (resumable: rerun to continue).
# Usage: scripts/train_zoo.sh [DATA_DIR]
# The order comes from the registry's recipes (`python -m sr zoo --train-order`): feature networks,
# then pixel-loss generators, then the GANs fine-tuned from them; each generator is then quantised
# to int8 (`python -m sr quantize`; after `sr blend choose --write`, quantise a GAN again). Run state lives outside the work
# tree (SR_RUNS_DIR, default ~/.cache/sr/runs), so a new checkout resumes where the last one stopped;
# logs: $RUNS/train_zoo.log, per model $RUNS/<id>/log.csv (copied to docs/training/<id>.csv when a
# run ends) and validation grids $RUNS/<id>/val_*.png. Each run exports the checkpoint its recipe's
# criterion picks on the validation fields (never simply the last step).
# Steps per stage: FEAT_STEPS, PRETRAIN_STEPS, GAN_STEPS, LITE_STEPS (the `live` model); cosine
# decay to 1% from half-way. ONLY="id id" trains just those. THREADS=1 helps when other work shares
# the cores (OpenMP barriers suffer from oversubscription). PRETRAIN_PATCH (default 128) and
# PRETRAIN_INIT=1 (a new pixel-loss run starts from the shipped weights) shape the pixel stage; the
# long L1 continuation of issue 12 (resumes from $RUNS/srresnet-improved, then re-trains its GAN):
#   ONLY="srresnet-improved srgan-improved" PRETRAIN_STEPS=16000 PRETRAIN_PATCH=192 PRETRAIN_INIT=1 scripts/train_zoo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/train_env.sh "$@"
RUNS=${SR_RUNS_DIR:-$HOME/.cache/sr/runs}
FEAT_STEPS=${FEAT_STEPS:-1500}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-6500}
GAN_STEPS=${GAN_STEPS:-5000}
LITE_STEPS=${LITE_STEPS:-6000}
PRETRAIN_PATCH=${PRETRAIN_PATCH:-128}
mkdir -p "$RUNS"
run() {  # run ID STEPS VAL_EVERY EXTRA...: train, then copy the run's log next to the docs
  local id=$1 steps=$2 val=$3; shift 3
  echo "== $(date -u +%FT%TZ) $id $steps steps"
  (cd "$SNAP" && python -m sr train --model "$id" --data "$DATA" --out "$RUNS" --steps "$steps" \
     --decay-from $((steps / 2)) --val-every "$val" ${THREADS:+--threads "$THREADS"} "$@")
  cp "$RUNS/$id/log.csv" "$ROOT/docs/training/$id.csv"
}
quantize() {  # the int8 model of a new generator (calibrated on the same training split)
  (cd "$SNAP" && python -m sr quantize "$1" --data "$DATA") || echo "quantize $1 failed: it runs in bf16"
}
(cd "$SNAP" && python -m sr zoo --train-order) | while read -r id stage roles; do
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $id "* ]]; then continue; fi
  case "$stage" in
    featurenet) run "$id" "$FEAT_STEPS" 250 --batch 32 ;;
    pretrain) if [[ "$roles" == *live* ]]; then run "$id" "$LITE_STEPS" 500; else run "$id" "$PRETRAIN_STEPS" 500 --patch "$PRETRAIN_PATCH" ${PRETRAIN_INIT:+--init "$id"}; fi
              quantize "$id" ;;
    gan) run "$id" "$GAN_STEPS" 250; quantize "$id" ;;
  esac
done >> "$RUNS/train_zoo.log" 2>&1
echo "== $(date -u +%FT%TZ) all done" >> "$RUNS/train_zoo.log"
