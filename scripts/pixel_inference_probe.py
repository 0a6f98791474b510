"""What inference-time tricks add to a pixel-loss model on the validation fields (never the test split).

    python scripts/pixel_inference_probe.py [--model srresnet-improved] [--data .../train_sample]

Paired PSNR and SSIM gains over bicubic (mean, 95% half-width) on the validation fields of the training
folder for: the model as it is, with 3 and 8 back-projection steps (`sr.consistency`), and the 8-fold
flip/rotation self-ensemble (EDSR's "+") without and with 3 steps.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from sr import api, blend, data, metrics
from sr.validation import _mean_ci


def ensemble(lr: np.ndarray, model: str, **kw) -> np.ndarray:
    outs = []
    for k in range(4):
        for flip in (False, True):
            x = np.rot90(lr, k)
            x = x[:, ::-1] if flip else x
            y = api.upscale(np.ascontiguousarray(x), model, **kw).astype(np.float64)
            y = y[:, ::-1] if flip else y
            outs.append(np.rot90(y, -k))
    top = 255 if lr.dtype == np.uint8 else 65535
    return np.clip(np.rint(np.mean(outs, 0)), 0, top).astype(lr.dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="srresnet-improved")
    ap.add_argument("--data", default="../shared/data/hpa/sanch7_kaggle2018_singlechannel/train_sample")
    args = ap.parse_args()
    _, val = data.split(data.scan(args.data), 0.1)
    pairs = blend._pairs(data.load_planes(val))
    m = args.model
    variants = {"as it is": lambda lr: api.upscale(lr, m, consistency=0),
                "3 back-projection steps": lambda lr: api.upscale(lr, m, consistency=3),
                "8 back-projection steps": lambda lr: api.upscale(lr, m, consistency=8),
                "8-fold ensemble": lambda lr: ensemble(lr, m, consistency=0),
                "8-fold ensemble + 3 steps": lambda lr: ensemble(lr, m, consistency=3)}
    print(f"{m}, {len(pairs)} validation fields of {args.data}")
    for name, fn in variants.items():
        t = time.perf_counter()
        dp, ds = [], []
        for hr, lr, bp, bs in pairs:
            out = fn(lr)
            dp.append(metrics.psnr(hr, out) - bp)
            ds.append(metrics.ssim(hr, out) - bs)
        (mp, cp), (ms, cs) = _mean_ci(dp), _mean_ci(ds)
        print(f"{name}: dPSNR {mp:+.4f} (CI {cp:.3f}), dSSIM {ms:+.5f} (CI {cs:.4f}), {time.perf_counter() - t:.0f} s",
              flush=True)


if __name__ == "__main__":
    main()
