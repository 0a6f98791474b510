"""The periodic pattern a model prints on a flat input: each zoo model upscales constant 48x48
8-bit images (as `sr.upscale(img, id)` runs it: default blend and back-projection), and the output's
interior is read with the evaluation's checkerboard measure (`sr.spectral.phase_bias`). A sub-pixel generator with batch norm can print
a 4x4 pattern there that back-projection cannot remove (it vanishes when downsampled), which costs
SSIM on dark, mostly empty fields; bicubic prints none.

    python scripts/flat_field_pattern.py [--models bicubic,srresnet,srgan,srgan-improved,msrgan] [--levels 3,10,40]
"""
from __future__ import annotations

import argparse

import numpy as np

import sr
from sr.spectral import phase_bias


def pattern(model: str, level: int, side: int = 48, border: int = 40) -> dict:
    out = sr.upscale(np.full((side, side), level, np.uint8), model).astype(np.float64)[border:-border, border:-border]
    return {"mean": out.mean(), "std": out.std(), "checkerboard": phase_bias(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="bicubic,srresnet,srgan,srresnet-improved,srgan-improved,msrgan")
    ap.add_argument("--levels", default="3,10,40")
    args = ap.parse_args()
    levels = [int(v) for v in args.levels.split(",")]
    print("| model | " + " | ".join(f"level {v}: mean / std / checkerboard" for v in levels) + " |")
    print("|---|" + "---|" * len(levels))
    for m in args.models.split(","):
        cells = [pattern(m, v) for v in levels]
        print(f"| {m} | " + " | ".join(f"{c['mean']:.2f} / {c['std']:.2f} / {c['checkerboard']:.2f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
