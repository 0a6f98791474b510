#!/usr/bin/env bash
# Which of the paper's changes keeps GAN fine-tuning from losing PSNR/SSIM? Swap the discriminator
# head between the baseline and the improved generator (same data, seed, steps, loss weights and
# schedule as the zoo's GAN stage), from the zoo's pretrained generators; nothing is exported.
# Usage: scripts/gan_ablation.sh [DATA_DIR]    Result: docs/training/gan_ablation.md (+ ablation-*.csv)
# Runs both in parallel, one thread each (about 15 min on 2 cores). Resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/train_env.sh "$@"
STEPS=${GAN_STEPS:-400}
OUT="${SR_RUNS_DIR:-$HOME/.cache/sr/runs}/ablation"
mkdir -p "$OUT"
run() {  # name model recipe-override
  (cd "$SNAP" && python -m sr train --data "$DATA" --out "$OUT/$1" --threads 1 --model "$2" --steps "$STEPS" \
     --decay-from $((STEPS / 2)) --val-every 100 --no-export --recipe "$3") > "$OUT/$1.log" 2>&1
}
run baseline-G_gap-D srgan '{"discriminator": {"head": "gap"}}' &
run improved-G_dense-D srgan-improved '{"discriminator": {"head": "dense"}}' &
wait
cp "$OUT/baseline-G_gap-D/srgan/log.csv" docs/training/ablation-baseline-G_gap-D.csv
cp "$OUT/improved-G_dense-D/srgan-improved/log.csv" docs/training/ablation-improved-G_dense-D.csv
python - <<'PY'
import csv
def validations(path):  # "PSNR / SSIM" of every validation row of a training log
    with open(path, encoding="utf-8") as f:
        return [f"{float(r['val_psnr']):.2f} / {float(r['val_ssim']):.3f}" for r in csv.DictReader(f) if r.get("val_psnr")]
B, I = validations("docs/training/srresnet.csv")[-1], validations("docs/training/srresnet-improved.csv")[-1]
rows = [("baseline G (BN frozen, pixel shuffle) + dense D  [zoo srgan]", "docs/training/srgan.csv", B),
        ("baseline G (BN frozen, pixel shuffle) + GAP D", "docs/training/ablation-baseline-G_gap-D.csv", B),
        ("improved G (no BN, nearest+conv) + dense D", "docs/training/ablation-improved-G_dense-D.csv", I),
        ("improved G (no BN, nearest+conv) + GAP D  [zoo srgan-improved]", "docs/training/srgan-improved.csv", I)]
out = ["# GAN ablation: generator vs discriminator head", "",
       "Command: `scripts/gan_ablation.sh` (the two middle rows; the others are the zoo's own runs).",
       "Same pretrained generators, data, seed, 400 GAN steps, loss weights (pixel 1, adversarial 1e-4) and",
       "learning-rate schedule. Validation: centre crops of the 8 held-out validation images (never the test split).", "",
       "| generator + discriminator | start (pretrained) | val PSNR / SSIM after GAN steps 100, 200, 300, 400 |",
       "|---|---|---|"]
for name, path, start in rows:
    out.append(f"| {name} | {start} | " + ", ".join(validations(path)) + " |")
open("docs/training/gan_ablation.md", "w", encoding="utf-8").write("\n".join(out) + "\n")
print("\n".join(out))
PY
