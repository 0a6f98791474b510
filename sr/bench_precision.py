"""Benchmark parts for precisions and start-up (``python -m sr bench``, measured in the same run):

* the CPU's int8 matmul throughput (``torch._int_mm``, 2048^3), the int8 path's ceiling;
* one generator at 128->512 in fp32, bf16 and int8 (the precision each really ran in, its
  speed-up over fp32 and bf16, and its share of the matching matmul ceiling);
* cold start: the first ``sr.upscale`` of the default models in a fresh process with an empty
  model cache, then in another fresh process with the cache that run left, against warm calls;
* (the tiled 2048^2 -> 8192^2 runs: :mod:`sr.bench_tiled`).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from . import zoo
from .api import load as api_load


def matmul_rate(mm, a: torch.Tensor, b: torch.Tensor, repeats: int = 5) -> float:
    """Giga multiply-adds x 2 per second of ``mm(a, b)`` (square ``n x n``), median after a warm-up."""
    mm(a, b)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        mm(a, b)
        times.append(time.perf_counter() - t)
    return 2 * a.shape[0] ** 3 / statistics.median(times) / 1e9


def int8_matmul_gops(n: int = 2048, repeats: int = 5) -> float | None:
    """int8 x int8 -> int32 matmul throughput (GOP/s), or ``None`` where torch has none."""
    a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    try:
        return matmul_rate(torch._int_mm, a, b, repeats)
    except (RuntimeError, AttributeError):
        return None


def interleaved(fns: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each function, called in turn (a, b, c, a, b, c, ...) after one
    warm-up each, so that a busy moment of a shared machine hits all of them alike."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return times


def bench_precisions(entry: zoo.ModelEntry, timer, gflop: float, ceilings: dict, side: int = 128,
                     repeats: int = 7) -> list[dict]:
    """fp32, bf16 and int8 fast paths of ``entry`` in one run (one channel, whole image), timed
    call by call in turn (:func:`interleaved`, ``3 * repeats`` rounds); the speed-ups are the
    medians of the per-round ratios."""
    from .api import upscale
    from .runtime import optimize_for_inference

    plain = api_load(entry.id)  # a GAN at its default blend, as its id runs
    img = (np.random.default_rng(0).random((side, side)) * 255).astype(np.uint8)
    nets = {want: optimize_for_inference(plain, want) for want in ("fp32", "bf16", "int8")}
    fns = {want: (lambda f=fast: upscale(img, f, tile=None)) for want, fast in nets.items()}
    times = interleaved(fns, 3 * repeats)
    rows = []
    for want, fast in nets.items():
        got = fast.fast_precision
        t = sorted(times[want])
        med = statistics.median(t)
        achieved = gflop / med
        ceiling = ceilings.get(got)
        ratio = {ref: round(statistics.median(a / b for a, b in zip(times[ref], times[want])), 2)
                 for ref in ("fp32", "bf16")}
        rows.append({"model": entry.id, "asked": want, "ran": got, "backend": getattr(fast, "backend", "torch"),
                     "input": f"{side}x{side}x1", "median_ms": round(med * 1e3, 2),
                     "p10_ms": round(t[int(0.1 * (len(t) - 1))] * 1e3, 2),
                     "p90_ms": round(t[int(round(0.9 * (len(t) - 1)))] * 1e3, 2), "fps": round(1 / med, 2),
                     "peak_rss_growth_mb": timer(fns[want], 1)["peak_rss_growth_mb"],
                     "speedup_vs_fp32": ratio.get("fp32"), "speedup_vs_bf16": ratio.get("bf16"),
                     "achieved_gops": round(achieved, 1),
                     "share_of_matmul": round(achieved / ceiling, 3) if ceiling else None})
    return rows


def bench_video(entry: zoo.ModelEntry, side: int = 128, frames: int = 8, rounds: int = 15) -> list[dict]:
    """Frames per second of ``entry`` on ``side`` x ``side`` one-plane frames: one frame per call
    (latency) and ``frames`` frames per call as :mod:`sr.video` batches them (throughput), at the
    default precision, timed call by call in turn (:func:`interleaved`)."""
    from .api import fast_model, upscale

    rng = np.random.default_rng(0)
    one = (rng.random((side, side)) * 255).astype(np.uint8)
    stack = (rng.random((side, side, frames)) * 255).astype(np.uint8)  # the planes sr.video stacks
    fns = {"one frame per call": lambda: upscale(one, entry.id, tile=None),
           f"{frames} frames per call (sr.video batching)": lambda: upscale(stack, entry.id, tile=None)}
    times = interleaved(fns, rounds)
    single = times["one frame per call"]
    rows = []
    for (label, t), n in zip(times.items(), (1, frames)):
        med = statistics.median(t)
        rows.append({"model": entry.id, "frames": label, "input": f"{side}x{side}x1 per frame",
                     "precision": fast_model(entry.id).fast_precision, "median_ms_per_call": round(med * 1e3, 2),
                     "ms_per_frame": round(med * 1e3 / n, 2), "fps": round(n / med, 1),
                     "fps_over_one_per_call": round(statistics.median(n * a / b for a, b in zip(single, t)), 2)})
    return rows


_COLD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import sr
t_import = time.perf_counter() - t0
img = (np.random.default_rng(0).random(({side}, {side})) * 255).astype(np.uint8)
out = {{"import_s": t_import}}
t = time.perf_counter()
for m in {models!r}:
    sr.upscale(img, m)
out["first_s"] = time.perf_counter() - t
warm = []
for _ in range(3):
    t = time.perf_counter()
    for m in {models!r}:
        sr.upscale(img, m)
    warm.append(time.perf_counter() - t)
out["warm_s"] = sorted(warm)[1]
print("COLD" + json.dumps(out))
"""


def bench_cold_start(model_ids, side: int = 128) -> list[dict]:
    """First call of ``model_ids`` after process start, with an empty and with a filled cache."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="sr-cold-") as cache:
        env = dict(os.environ, SR_CACHE_DIR=cache)
        for label in ("empty model cache (first start)", "filled model cache (restart)"):
            code = _COLD.format(side=side, models=list(model_ids))
            p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
            line = [x for x in p.stdout.splitlines() if x.startswith("COLD")]
            if p.returncode or not line:
                rows.append({"models": ",".join(model_ids), "cache": label, "error": (p.stderr or p.stdout)[-300:]})
                continue
            r = json.loads(line[0][4:])
            rows.append({"models": ",".join(model_ids), "cache": label, "input": f"{side}x{side}x1",
                         "import_s": round(r["import_s"], 2), "first_call_s": round(r["first_s"], 3),
                         "warm_call_s": round(r["warm_s"], 3),
                         "first_over_warm": round(r["first_s"] / r["warm_s"], 2)})
    return rows


def bench_consistency(entry: zoo.ModelEntry, side: int = 128, rounds: int = 21) -> list[dict]:
    """What a GAN's back-projection steps (:mod:`sr.consistency`) cost: ``sr.upscale(x, id)`` with
    its default steps and with ``consistency=0``, timed call by call in turn."""
    from .api import resolve_consistency, upscale

    k = resolve_consistency(entry.id, None)
    if not k:
        return []
    img = (np.random.default_rng(0).random((side, side)) * 255).astype(np.uint8)
    fns = {"with": lambda: upscale(img, entry.id, tile=None), "without": lambda: upscale(img, entry.id, tile=None,
                                                                                         consistency=0)}
    times = interleaved(fns, rounds)
    w, wo = statistics.median(times["with"]), statistics.median(times["without"])
    return [{"model": entry.id, "input": f"{side}x{side}x1", "steps": k, "with_ms": round(w * 1e3, 2),
             "without_ms": round(wo * 1e3, 2), "cost_ms": round((w - wo) * 1e3, 2),
             "with_over_without": round(statistics.median(a / b for a, b in zip(times["with"], times["without"])), 3)}]


def bench_module_vs_id(entry: zoo.ModelEntry, timer, side: int = 128, repeats: int = 7) -> list[dict]:
    """``sr.upscale(x, id)`` against ``sr.upscale(x, sr.load(id))`` (the README's example), alternated."""
    from .api import upscale

    net = api_load(entry.id)  # sr.load: a GAN at its default blend
    img = (np.random.default_rng(0).random((side, side)) * 255).astype(np.uint8)
    upscale(img, entry.id), upscale(img, net)  # both built before timing
    by_id, by_module = [], []
    for _ in range(3):
        by_id.append(timer(lambda: upscale(img, entry.id), repeats)["median_ms"])
        by_module.append(timer(lambda: upscale(img, net), repeats)["median_ms"])
    a, b = statistics.median(by_id), statistics.median(by_module)
    return [{"model": entry.id, "input": f"{side}x{side}x1", "by_id_ms": a, "by_loaded_module_ms": b,
             "module_over_id": round(b / a, 3)}]
