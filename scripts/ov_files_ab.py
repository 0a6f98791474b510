"""Interleaved timing of OpenVINO model files (e.g. an int8 model made before a change and after it).

    git show REV:weights/srgan-improved/openvino_int8.xml > /tmp/old.xml   # and the .bin beside it
    git show REV:weights/srgan-improved/openvino_int8.bin > /tmp/old.bin
    python scripts/ov_files_ab.py old=/tmp/old.xml new=weights/srgan-improved/openvino_int8.xml [--side 128] [--rounds 25]

Each file is compiled as the fast path compiles it (`sr.ovcache.compile_model`, int8 precision hint:
bf16 where the graph is not quantised), then called in turn on one (1, 1, side, side) input;
prints each one's median and 10th percentile in ms. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", help="NAME=PATH.xml")
    ap.add_argument("--side", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--threads", type=int, default=0, help="0: torch's thread count")
    args = ap.parse_args()
    import openvino as ov
    import torch

    from sr import ovcache

    threads = args.threads or torch.get_num_threads()
    x = (np.random.default_rng(0).random((1, 1, args.side, args.side)) * 0.4).astype(np.float32)
    core, reqs = ov.Core(), {}
    for spec in args.models:
        name, path = spec.split("=", 1)
        r = ovcache.compile_model(core.read_model(path), "int8", threads).create_infer_request()
        for _ in range(3):
            r.infer({0: x})
        reqs[name] = r
    times = {k: [] for k in reqs}
    for _ in range(args.rounds):
        for k, r in reqs.items():
            t = time.perf_counter()
            r.infer({0: x})
            times[k].append((time.perf_counter() - t) * 1000)
    for k, v in times.items():
        print(f"{k}: median {np.median(v):.2f} ms, p10 {np.percentile(v, 10):.2f} ms ({args.rounds} rounds, {threads} threads)")


if __name__ == "__main__":
    main()
