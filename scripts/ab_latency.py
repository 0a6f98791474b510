"""Interleaved A/B latency: plain fp32 eager vs the fast path of one zoo model, in one process.

    python scripts/ab_latency.py [--model srgan-improved] [--side 128] [--rounds 3] [--repeats 5]

`python -m sr bench` times each path once per size; this alternates the two paths for a few rounds
(fp32, fast, fp32, ...) so that a busy moment of the machine hits both, and prints each round's
median and the ratio. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np


from sr import zoo  # noqa: E402
from sr.bench import _time  # noqa: E402  (warm-up, then the median of N runs)
from sr.api import upscale  # noqa: E402
from sr.runtime import optimize_for_inference, resolve_precision  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="srgan-improved")
    ap.add_argument("--side", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    plain = zoo.load(a.model)
    precision = resolve_precision("auto")
    fast = optimize_for_inference(plain, precision)
    img = (np.random.default_rng(0).random((a.side, a.side)) * 255).astype(np.uint8)
    label = f"fast-{precision}-{getattr(fast, 'backend', 'torch')}"
    ratios = []
    for r in range(a.rounds):
        base = _time(lambda: upscale(img, plain, tile=None, precision="fp32"), a.repeats)["median_ms"]
        opt = _time(lambda: upscale(img, fast, tile=None, precision=precision), a.repeats)["median_ms"]
        ratios.append(base / opt)
        print(f"round {r + 1}: {a.model} {a.side}->{4 * a.side} fp32-eager {base:.1f} ms, "
              f"{label} {opt:.1f} ms, ratio {base / opt:.2f}x", flush=True)
    print(f"median ratio over {a.rounds} rounds: {statistics.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
