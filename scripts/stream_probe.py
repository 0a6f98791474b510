"""A batch of planes on parallel OpenVINO streams (one plane per request, one thread per stream:
what `sr.openvino_path.OpenVINOCore` runs for batches) against the same batch as one request on
all threads, called in turn.

    python scripts/stream_probe.py [--model srgan-lite] [--frames 8] [--side 128] [--rounds 15]

Run it on an idle machine (pause training).
"""
from __future__ import annotations

import argparse
import statistics

import torch

from sr.api import fast_model
from sr.bench_precision import interleaved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="srgan-lite")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--side", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    fast = fast_model(args.model)
    core = fast.core
    if getattr(fast, "backend", "") != "openvino" or core.streams() is None:
        raise SystemExit(f"{args.model} runs no OpenVINO model with a source on more than one thread here")
    x = torch.rand(args.frames, 1, args.side, args.side)
    times = interleaved({"one request": lambda: core._call(core._compiled, x),
                         "streams": lambda: core._call_streams(core.streams(), x)}, args.rounds)
    one, par = times["one request"], times["streams"]
    print(f"{args.model} ({fast.fast_precision}), {args.frames} planes of {args.side}^2, {torch.get_num_threads()} threads:")
    print(f"  one request on all threads: {args.frames / statistics.median(one):.1f} planes/s")
    print(f"  parallel streams:           {args.frames / statistics.median(par):.1f} planes/s "
          f"({statistics.median(a / b for a, b in zip(one, par)):.2f}x, median of per-round ratios)")


if __name__ == "__main__":
    main()
