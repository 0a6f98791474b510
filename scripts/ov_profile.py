"""Per-layer time of a zoo generator's OpenVINO model (OpenVINO's PERF_COUNT), grouped by module.

    python scripts/ov_profile.py [--model srgan-improved] [--precision bf16|int8|fp32] [--side 128]
                                 [--repeats 8] [--part whole|trunk|up] [--layers N] [--xml FILE.xml]

Prints the median latency and the time per module group (head, body, upsample.0, upsample.1,
tail, ...) and per (layer type, kernel) of the last run. ``--part``: one half of the two-stage
split (:func:`sr.openvino_path.split_at_upsampling`). Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import collections
import statistics
import time

import numpy as np


def main() -> int:
    import openvino as ov

    from sr import int8, ovcache, zoo
    from sr.openvino_path import split_at_upsampling

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="srgan-improved")
    ap.add_argument("--precision", default="bf16", choices=["bf16", "int8", "fp32"])
    ap.add_argument("--side", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--part", default="whole", choices=["whole", "trunk", "up"])
    ap.add_argument("--layers", type=int, default=0, help="also list this many single layers, slowest first")
    ap.add_argument("--xml", default=None, help="profile this OpenVINO file instead (e.g. a candidate int8 form)")
    a = ap.parse_args()
    core, fp, _ = int8.source_core(a.model)
    in_c = zoo.get_entry(a.model).arch.get("in_channels", 1)
    if a.xml:
        model = ov.Core().read_model(a.xml)
    elif a.precision == "int8":
        xml = int8.find(a.model, fp)
        if xml is None:
            raise SystemExit(f"{a.model} has no int8 model for its current weights (python -m sr quantize)")
        model = ov.Core().read_model(str(xml))
    else:
        model = ovcache._convert(core, in_c)
    x = np.random.default_rng(0).random((1, in_c, a.side, a.side)).astype(np.float32)
    if a.part != "whole":
        trunk, up = split_at_upsampling(model)
        if a.part == "up":
            x = ov.Core().compile_model(trunk, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})({0: x})[0]
        model = trunk if a.part == "trunk" else up
    hint = "f32" if a.precision == "fp32" else "bf16"
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                                                      "INFERENCE_NUM_THREADS": a.threads, "PERF_COUNT": True})
    request = compiled.create_infer_request()
    for _ in range(3):
        request.infer({0: x})
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        request.infer({0: x})
        times.append(time.perf_counter() - t)
    groups, kinds = collections.Counter(), collections.Counter()
    for p in request.profiling_info:
        us = p.real_time.total_seconds() * 1e6
        group = next((g for g in ("head", "body_tail", "body", "upsample.0", "upsample.1", "upsample", "tail")
                      if f"__module.{g}" in p.node_name), "other")
        groups[group] += us
        kinds[(p.node_type, p.exec_type)] += us
    print(f"{a.model} {a.precision} {a.part} {a.side}x{a.side}: median {1e3 * statistics.median(times):.1f} ms "
          f"(p10 {1e3 * sorted(times)[0]:.1f})")
    print("by module (ms, last run):", {k: round(v / 1e3, 1) for k, v in groups.most_common()})
    for (node, kernel), us in kinds.most_common(10):
        print(f"  {node:18s} {kernel:28s} {us / 1e3:7.1f} ms")
    layers = sorted(request.profiling_info, key=lambda p: -p.real_time.total_seconds())[:a.layers]
    for p in layers:
        print(f"  {p.real_time.total_seconds() * 1e3:6.2f} ms  {p.node_type:16s} {p.exec_type:26s} {p.node_name[-70:]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
