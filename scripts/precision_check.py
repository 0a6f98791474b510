"""bf16 autocast + channels_last vs fp32 training: the same short run twice, loss curves compared.

    python scripts/precision_check.py [--model srresnet-improved] [--steps 60] [--data DIR]

Both runs use the same seed, so the same initial weights and the same patches at every step;
they write to a temporary folder (nothing exported). Result: docs/training/bf16_vs_fp32.md and .csv.
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from sr.tables import markdown_table  # noqa: E402
from sr.runtime import hardware  # noqa: E402
from sr.train import TrainArgs, train  # noqa: E402


def _log(run_dir: Path) -> list[dict]:
    with open(run_dir / "log.csv", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r.get("loss")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="srresnet-improved")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/hpa/sanch7_kaggle2018_singlechannel/train_sample"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "training"))
    a = ap.parse_args()
    logs, walls = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("bf16", "fp32"):
            out = Path(tmp) / precision
            res = train(TrainArgs(model=a.model, data=a.data, steps=a.steps, out=str(out), precision=precision,
                                  log_every=5, val_every=a.steps, ckpt_every=a.steps, export=False))
            logs[precision], walls[precision] = _log(out / a.model), res["wall_s"]
    rows = []
    for b, f in zip(logs["bf16"], logs["fp32"]):
        lb, lf = float(b["loss"]), float(f["loss"])
        rows.append({"step": int(b["step"]), "loss_bf16": lb, "loss_fp32": lf,
                     "relative_difference": round(abs(lb - lf) / lf, 4)})
    rel = np.array([r["relative_difference"] for r in rows])
    vb, vf = logs["bf16"][-1], logs["fp32"][-1]
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "bf16_vs_fp32.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cmd = "python scripts/precision_check.py " + " ".join(sys.argv[1:])
    lines = ["# bf16 autocast vs fp32 training", "", f"Command: `{cmd.strip()}`", "",
             f"Model `{a.model}`, {a.steps} steps, batch 16 of 96x96 patches, same seed (same initial weights "
             f"and patches). Machine: {hardware()}.", "",
             f"- training loss (mean of 5 steps): median relative difference {np.median(rel):.3f}, "
             f"max {rel.max():.3f}",
             f"- validation at step {a.steps}: bf16 {vb.get('val_psnr')} dB / {vb.get('val_ssim')}, "
             f"fp32 {vf.get('val_psnr')} dB / {vf.get('val_ssim')}",
             f"- wall time: bf16 {walls['bf16']:.0f} s, fp32 {walls['fp32']:.0f} s "
             f"({walls['fp32'] / walls['bf16']:.1f}x)", ""]
    lines += markdown_table(rows)
    (out_dir / "bf16_vs_fp32.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[:10]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
