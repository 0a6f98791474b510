"""Interleaved A/B latency of two paths of one zoo model, in one process.

    python scripts/ab_latency.py [--model srgan-improved] [--a fp32-eager] [--b auto] [--side 128]
                                 [--rounds 5] [--repeats 5]

Paths: ``fp32-eager`` (the plain module as it is), or a fast-path precision (``fp32``, ``bf16``,
``int8``, ``auto``). `python -m sr bench` times each path once per size; this alternates the two
call by call (a, b, a, b, ...) so that a busy moment of the machine hits both, and prints the
medians of each block of ``repeats`` call pairs and the median of all per-pair ratios a/b. Run it
on an idle machine.
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np


from sr.bench import _AsIs  # noqa: E402
from sr.bench_precision import interleaved  # noqa: E402  (a, b, a, b, ... one call each)
from sr.api import load as sr_load, upscale  # noqa: E402
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
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    plain = sr_load(a.model)  # a GAN at its default blend, as its id runs
    (net_a, label_a), (net_b, label_b) = _path(plain, a.a), _path(plain, a.b)
    img = (np.random.default_rng(0).random((a.side, a.side)) * 255).astype(np.uint8)
    times = interleaved({"a": lambda: upscale(img, net_a, tile=None), "b": lambda: upscale(img, net_b, tile=None)},
                        a.rounds * a.repeats)
    ratios = [x / y for x, y in zip(times["a"], times["b"])]
    for r in range(a.rounds):  # a summary per block of `repeats` call pairs
        block = slice(r * a.repeats, (r + 1) * a.repeats)
        ta, tb = (1e3 * statistics.median(times[k][block]) for k in "ab")
        print(f"round {r + 1}: {a.model} {a.side}->{4 * a.side} {label_a} {ta:.1f} ms, "
              f"{label_b} {tb:.1f} ms, ratio {statistics.median(ratios[block]):.2f}x", flush=True)
    ma, mb = (1e3 * statistics.median(times[k]) for k in "ab")
    print(f"all {len(ratios)} call pairs: {label_a} {ma:.1f} ms, {label_b} {mb:.1f} ms; "
          f"median of the per-pair ratios {statistics.median(ratios):.2f}x "
          f"(quartiles {np.percentile(ratios, 25):.2f}-{np.percentile(ratios, 75):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
