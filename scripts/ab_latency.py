"""Interleaved A/B latency of two paths of one zoo model, in one process.

    python scripts/ab_latency.py [--model srgan-improved] [--a fp32-eager] [--b auto] [--side 128]
                                 [--rounds 3] [--repeats 5]

Paths: ``fp32-eager`` (the plain module as it is), or a fast-path precision (``fp32``, ``bf16``,
``int8``, ``auto``). `python -m sr bench` times each path once per size; this alternates the two
(a, b, a, b, ...) for a few rounds so that a busy moment of the machine hits both, and prints each
round's medians and the ratio a/b. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np


from sr import zoo  # noqa: E402
from sr.bench import _AsIs, _time  # noqa: E402  (warm-up, then the median of N runs)
from sr.api import upscale  # noqa: E402
from sr.runtime import optimize_for_inference  # noqa: E402


def _path(plain, name):
    if name == "fp32-eager":
        return _AsIs(plain), "fp32-eager"
    fast = optimize_for_inference(plain, name)
    return fast, f"{fast.fast_precision}-{getattr(fast, 'backend', 'torch')}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="srgan-improved")
    ap.add_argument("--a", default="fp32-eager")
    ap.add_argument("--b", default="auto")
    ap.add_argument("--side", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    plain = zoo.load(a.model)
    (net_a, label_a), (net_b, label_b) = _path(plain, a.a), _path(plain, a.b)
    img = (np.random.default_rng(0).random((a.side, a.side)) * 255).astype(np.uint8)
    ratios = []
    for r in range(a.rounds):
        ta = _time(lambda: upscale(img, net_a, tile=None), a.repeats)["median_ms"]
        tb = _time(lambda: upscale(img, net_b, tile=None), a.repeats)["median_ms"]
        ratios.append(ta / tb)
        print(f"round {r + 1}: {a.model} {a.side}->{4 * a.side} {label_a} {ta:.1f} ms, "
              f"{label_b} {tb:.1f} ms, ratio {ta / tb:.2f}x", flush=True)
    print(f"median ratio over {a.rounds} rounds: {statistics.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
