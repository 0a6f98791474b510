#!/usr/bin/env bash
# GPU check, runnable anywhere: on a machine with a CUDA GPU it runs
#   1. the CUDA-marked tests (CUDA against fp32 on the CPU: fast path, API, tiling, training steps),
#   2. python -m sr bench --device cuda --quick,
#   3. a short training run on the GPU (50 steps of srgan-improved from its pinned srresnet-improved
#      init, bf16 autocast; no export), then resumes it on the CPU for 2 steps (portable checkpoints),
# and writes the report to docs/gpu_check.md (REPORT=path to change). Without a GPU it says so and
# exits 0. Exit status 1 when a step failed (the report says which).
#
#   scripts/gpu_check.sh                   # data: GPU_CHECK_DATA, else the HPA train sample in
#                                          # ../shared/data, else a generated blob folder
#   STEPS=200 scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
REPORT=${REPORT:-docs/gpu_check.md}
STEPS=${STEPS:-50}
MODEL=${MODEL:-srgan-improved}

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA GPU on this machine (torch.cuda.is_available() is False); nothing to check."
  exit 0
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
DATA=${GPU_CHECK_DATA:-}
if [ -z "$DATA" ]; then
  for d in ../shared/data/hpa/sanch7_kaggle2018_singlechannel/train_sample shared/data/hpa/sanch7_kaggle2018_singlechannel/train_sample; do
    [ -d "$d" ] && DATA=$d && break
  done
fi
if [ -z "$DATA" ]; then  # no data here: 24 generated fluorescence-like fields
  DATA=$TMP/blobs
  "$PY" - "$DATA" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
out = Path(sys.argv[1]); out.mkdir(parents=True)
for i in range(24):
    r = np.random.default_rng(i); yy, xx = np.mgrid[0:256, 0:256]; img = np.zeros((256, 256))
    for _ in range(40):
        cy, cx, s = r.uniform(0, 256, 2).tolist() + [r.uniform(2, 20)]
        img += r.uniform(0.3, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    Image.fromarray((img / img.max() * 255).astype(np.uint8)).save(out / f"{i:08x}-0000-11e8-b2b8-ac1f6b6435d0_green.png")
EOF
fi

status=0
declare -A RESULT
step() {  # step NAME LOGFILE COMMAND...
  local name=$1 log=$2; shift 2
  local t0=$SECONDS
  if "$@" >"$log" 2>&1; then RESULT[$name]="passed ($((SECONDS - t0)) s)"; else RESULT[$name]="FAILED ($((SECONDS - t0)) s)"; status=1; fi
  echo "gpu_check: $name: ${RESULT[$name]}"
}

step tests "$TMP/tests.txt" "$PY" -m pytest -q -p no:cacheprovider -m cuda -rs tests/test_cuda.py
step bench "$TMP/bench.txt" "$PY" -m sr bench --device cuda --quick --json "$TMP/bench.json" --out "$TMP/bench.md"
step train "$TMP/train.txt" "$PY" -m sr train --model "$MODEL" --data "$DATA" --steps "$STEPS" --device cuda \
  --out "$TMP/runs" --no-export --batch 16 --patch 96 --val-every "$STEPS" --ckpt-every "$STEPS" --log-every 10
step resume-on-cpu "$TMP/resume.txt" "$PY" -m sr train --model "$MODEL" --data "$DATA" --steps $((STEPS + 2)) \
  --device cpu --precision fp32 --out "$TMP/runs" --no-export --batch 4 --patch 96 --val-every 1000 --log-every 1 \
  --ckpt-every 1000

GPU=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0), '| CUDA', torch.version.cuda, '| torch', torch.__version__)")
mkdir -p "$(dirname "$REPORT")"
{
  echo "# GPU check"
  echo
  echo "\`scripts/gpu_check.sh\` on $(date -u +%Y-%m-%d) (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))."
  echo "GPU: $GPU. Training data: \`$(basename "$DATA")\`, $STEPS steps of \`$MODEL\`."
  echo
  echo "| check | result |"
  echo "|---|---|"
  for k in tests bench train resume-on-cpu; do echo "| $k | ${RESULT[$k]} |"; done
  echo
  echo "## CUDA-marked tests (CUDA against fp32 on the CPU, 0.05 dB PSNR)"
  echo; echo '```'; tail -n 25 "$TMP/tests.txt"; echo '```'; echo
  echo "## python -m sr bench --device cuda --quick"
  echo
  if [ -s "$TMP/bench.md" ]; then sed '1,/^Command/d' "$TMP/bench.md"; else echo '```'; tail -n 25 "$TMP/bench.txt"; echo '```'; fi
  echo
  echo "## Training: $STEPS steps on the GPU, then 2 on the CPU from its checkpoint"
  echo
  if [ -f "$TMP/runs/$MODEL/log.csv" ]; then echo '```'; cat "$TMP/runs/$MODEL/log.csv"; echo '```'; fi
  echo; echo '```'; tail -n 5 "$TMP/train.txt" | tr '\r' '\n' | tail -n 3; tail -n 3 "$TMP/resume.txt" | tr '\r' '\n' | tail -n 2; echo '```'
} >"$REPORT"
echo "gpu_check: report in $REPORT"
exit $status
