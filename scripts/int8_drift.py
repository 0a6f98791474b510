"""Quality drift of the int8 (and bf16) paths against fp32 on a test split.

Usage: python scripts/int8_drift.py --data ../shared/data/hpa/sanch7_kaggle2018_singlechannel/test_sample \
           [--models srgan-improved,srgan-lite] [--out docs/int8_drift.md] [--json docs/int8_drift.json]

Every image: HR -> bicubic-degraded LR -> the model in fp32, bf16 and int8 (``sr.upscale``,
precision forced); PSNR/SSIM against the HR image and the high-frequency log-spectral distance
(``sr.spectral.hf_lsd``). Reported per model: the means, and the paired difference to fp32
(mean, 95% CI, worst image). The test split only measures: it chooses nothing (the int8 variant
is chosen on validation fields by ``sr quantize``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", default=None, help="default: every model with an int8 form")
    ap.add_argument("--every", type=int, default=1, help="use every N-th image")
    ap.add_argument("--out", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import sr
    from sr import api, data, degrade, imio, metrics, spectral, zoo
    from sr.runtime import hardware

    models = args.models.split(",") if args.models else [e.id for e in zoo.entries("generator") if e.int8]
    files = [s.path for s in data.scan(args.data)][::args.every]
    result = {"command": "python " + " ".join(sys.argv), "hardware": hardware(), "images": len(files), "models": {}}
    for mid in models:
        for p in ("fp32", "bf16", "int8"):
            ran = api.fast_model(mid, p).fast_precision
            if ran != p:
                raise SystemExit(f"{mid}: asked for {p}, runs {ran}")
        per = {p: [] for p in ("fp32", "bf16", "int8")}
        for f in files:
            hr, _ = imio.read_image(f)
            hr = degrade.crop_to_multiple(hr if hr.ndim == 2 else hr[..., 0], 4)
            lr = degrade.degrade(hr, 4)
            for p in per:
                out = sr.upscale(lr, mid, precision=p)
                per[p].append([metrics.psnr(hr, out), metrics.ssim(hr, out), spectral.hf_lsd(hr, out)])
        arr = {p: np.asarray(v) for p, v in per.items()}
        row = {}
        for p in per:
            row[p] = dict(zip(("psnr", "ssim", "lsd"), np.round(arr[p].mean(0), 4).tolist()))
            if p != "fp32":
                d = arr[p] - arr["fp32"]
                ci = 1.96 * d.std(0, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.zeros(3)
                row[p].update({"dpsnr": round(float(d[:, 0].mean()), 4), "dpsnr_ci95": round(float(ci[0]), 4),
                               "dpsnr_worst": round(float(d[:, 0].min()), 4),
                               "dssim": round(float(d[:, 1].mean()), 5), "dlsd": round(float(d[:, 2].mean()), 3)})
        result["models"][mid] = row
        print(mid, json.dumps(row), flush=True)
    lines = ["# int8 and bf16 drift from fp32", "", f"Command: `{result['command']}`", "",
             f"Machine: {result['hardware']}. {result['images']} images; LR = bicubic 4x downscale of each.", "",
             "| model | precision | PSNR dB | SSIM | HF spectral distance dB | dPSNR vs fp32 (95% CI) | worst image dPSNR | dSSIM | dLSD |",
             "|---|---|---|---|---|---|---|---|---|"]
    for mid, row in result["models"].items():
        for p, r in row.items():
            extra = ("| - | - | - | - |" if p == "fp32" else
                     f"| {r['dpsnr']:+.3f} (±{r['dpsnr_ci95']:.3f}) | {r['dpsnr_worst']:+.3f} | {r['dssim']:+.4f} | {r['dlsd']:+.2f} |")
            lines.append(f"| {mid} | {p} | {r['psnr']:.3f} | {r['ssim']:.4f} | {r['lsd']:.2f} " + extra)
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
