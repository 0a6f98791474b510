"""Benchmark: latency, throughput and memory of every zoo model (``python -m sr bench``).

Measured in one run on the machine it runs on:

* the machine's bf16 and fp32 matmul throughput (2048^3), the ceiling for these convnets;
* per model and input (128->512 and 256->1024, 1 and 3 channels): median latency and its
  spread (p10-p90) over ``--repeats`` runs after a warm-up, frames per second, and peak RSS
  growth; for learned models both the plain fp32 eager path and the optimised path
  (:func:`sr.runtime.optimize_for_inference`: BN folded, upsampling stages and output conv
  rewritten to run below output resolution, bf16 weights, channels_last, inference_mode) with
  the speed-up ratio, and the achieved GFLOP/s of the optimised path against the bf16 matmul
  ceiling;
* the tiled path on a 2048x2048 input (time and peak RSS) per precision and tile, and the cold
  start of the app's default models, unless ``--quick``; int8 vs bf16 vs fp32 in one run
  (:mod:`sr.bench_precision`);
* the app's comparison of its three default models on a 128x128 input (total time);
* an ablation of the fast path (``srgan-improved`` and ``srgan-lite`` at 128->512, one channel),
  unless ``--quick``: fp32 eager, fp32 with the fast path's rewrites, bf16 autocast +
  channels_last (the previous fast path), the fast path, and the fast path on one thread.

Speed does not depend on the weights' values: models without trained weights yet (or whose
weights cannot be fetched) are benchmarked with random weights of their registry architecture
(marked ``random``).
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from .settings import settings
from . import zoo
from . import api
from .api import load as api_load
from .tables import command_line, markdown_table
from . import bench_precision as bp


def _rss_peak_reset() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _rss_mb(field: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def matmul_gflops(dtype=torch.bfloat16, n: int = 2048, repeats: int = 5) -> float:
    return bp.matmul_rate(torch.mm, torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype), repeats)


def _time(fn, repeats: int) -> dict:
    fn()  # warm-up
    _rss_peak_reset()
    base = _rss_mb("VmRSS")
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    med = statistics.median(times)
    return {"median_ms": round(med * 1e3, 2),
            "p10_ms": round(times[int(0.1 * (len(times) - 1))] * 1e3, 2),
            "p90_ms": round(times[int(round(0.9 * (len(times) - 1)))] * 1e3, 2),
            "fps": round(1 / med, 2),
            "peak_rss_growth_mb": round(max(0.0, _rss_mb("VmHWM") - base), 1)}


def forward_gflop(model: torch.nn.Module, h: int, w: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, model.config["in_channels"], h, w))
    return counter.get_total_flops() / 1e9


class _AsIs(torch.nn.Module):
    """Runs a module exactly as it is (``sr.upscale`` gives a plain generator the fast path)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module
        self.config = getattr(module, "config", {})

    def forward(self, x):
        return self.module(x)


def _model_for(entry: zoo.ModelEntry) -> tuple[torch.nn.Module, str]:
    if entry.available:
        try:
            return api_load(entry.id), "trained"  # a GAN at its default blend, as its id runs
        except zoo.ZooError as exc:
            print(f"  {entry.id}: {exc}; benchmarking random weights", flush=True)
    from .arch import Generator

    torch.manual_seed(0)
    return Generator(**entry.arch).eval().requires_grad_(False), "random"


def bench_model(entry: zoo.ModelEntry, sizes, channels, repeats: int, bf16_ceiling: float) -> list[dict]:
    from .api import upscale
    from .runtime import optimize_for_inference, resolve_precision

    rows = []
    if entry.kind == "baseline":
        for s in sizes:
            for c in channels:
                img = (np.random.default_rng(0).random((s, s, c) if c > 1 else (s, s)) * 255).astype(np.uint8)
                r = _time(lambda: upscale(img, entry.id), repeats)
                rows.append({"model": entry.id, "weights": "-", "input": f"{s}x{s}x{c}",
                             "output": f"{4 * s}x{4 * s}", "path": "pillow", **r})
        return rows
    plain, weights = _model_for(entry)
    from .device import resolve_device

    precision = resolve_precision("auto", resolve_device())
    fast = optimize_for_inference(plain, precision)
    for s in sizes:
        gflop = forward_gflop(plain, s, s)
        for c in channels:
            img = (np.random.default_rng(0).random((s, s, c) if c > 1 else (s, s)) * 255).astype(np.uint8)
            eager = _AsIs(plain)
            base = _time(lambda: upscale(img, eager, tile=None, precision="fp32"), repeats)
            opt = _time(lambda: upscale(img, fast, tile=None, precision=precision), repeats)
            common = {"model": entry.id, "weights": weights, "input": f"{s}x{s}x{c}", "output": f"{4 * s}x{4 * s}",
                      "gflop_per_frame": round(gflop * c, 2)}
            rows.append({**common, "path": "fp32-eager", **base})
            achieved = gflop * c / (opt["median_ms"] / 1e3)
            rows.append({**common, "path": f"fast-{precision}-{getattr(fast, 'backend', 'torch')}", **opt,
                         "speedup_vs_fp32": round(base["median_ms"] / opt["median_ms"], 2),
                         "achieved_gflops": round(achieved, 1),
                         "fraction_of_matmul_peak": round(achieved / bf16_ceiling, 3) if precision == "bf16" else None})
    return rows


def _load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None




def bench_compare(model_ids=None, side: int = 128, repeats: int = 5) -> dict:
    model_ids = tuple(zoo.with_role("app-default")) if model_ids is None else model_ids
    """The app's comparison: every model in turn on one ``side`` x ``side`` grey image."""
    from .api import upscale
    from .runtime import optimize_for_inference

    runners, weights = [], []
    for mid in model_ids:
        e = zoo.get_entry(mid)
        if e.kind == "baseline":
            runners.append(mid)
            weights.append("-")
        else:
            plain, w = _model_for(e)
            runners.append(optimize_for_inference(plain))
            weights.append(w)
    img = (np.random.default_rng(0).random((side, side)) * 255).astype(np.uint8)
    r = _time(lambda: [upscale(img, m) for m in runners], repeats)
    return {"models": ",".join(model_ids), "weights": ",".join(weights), "input": f"{side}x{side}x1",
            "median_ms": r["median_ms"], "p10_ms": r["p10_ms"], "p90_ms": r["p90_ms"]}


def _old_fast_path(model: torch.nn.Module) -> torch.nn.Module:
    """The previous fast path, for the ablation: BN folded + channels_last, run under autocast."""
    import copy

    from .arch import fold_batchnorm

    fast = fold_batchnorm(copy.deepcopy(model).eval()).to(memory_format=torch.channels_last)
    fast.config = model.config
    return fast


def bench_ablation(entry: zoo.ModelEntry, side: int = 128, repeats: int = 7) -> list[dict]:
    """Latency of the fast path's ingredients, all measured in this run (one channel)."""
    from .api import upscale
    from .runtime import cpu_has_bf16, optimize_for_inference

    plain, weights = _model_for(entry)
    img = (np.random.default_rng(0).random((side, side)) * 255).astype(np.uint8)
    eager = _AsIs(plain)
    variants = [("fp32 eager (plain module)", lambda: upscale(img, eager, tile=None, precision="fp32"))]
    fast32 = optimize_for_inference(plain, "fp32")
    variants.append(("fp32 + rewrites (BN fold, sub-pixel stages, phase tail, channels_last)",
                     lambda: upscale(img, fast32, tile=None, precision="fp32")))
    if cpu_has_bf16():
        old = _AsIs(_old_fast_path(plain))
        fast16 = optimize_for_inference(plain, "bf16", backend="torch")
        variants.append(("bf16 autocast + channels_last + BN fold (previous fast path)",
                         lambda: upscale(img, old, tile=None, precision="bf16")))
        variants.append(("bf16 fast path, torch (bf16 weights + rewrites)",
                         lambda: upscale(img, fast16, tile=None, precision="bf16")))
    if importlib.util.find_spec("openvino") is not None:
        prec = "bf16" if cpu_has_bf16() else "fp32"
        fast_ov = optimize_for_inference(plain, prec, backend="openvino")
        variants.append((f"{prec} fast path, OpenVINO (same rewritten core)",
                         lambda: upscale(img, fast_ov, tile=None, precision=prec)))
    rows = []
    threads = torch.get_num_threads()
    for name, fn in variants:
        rows.append({"model": entry.id, "weights": weights, "input": f"{side}x{side}x1", "variant": name,
                     "threads": threads, **_time(fn, repeats)})
    if threads > 1 and cpu_has_bf16():
        torch.set_num_threads(1)
        try:
            fast1 = optimize_for_inference(plain, "bf16", backend="torch")
            rows.append({"model": entry.id, "weights": weights, "input": f"{side}x{side}x1",
                         "variant": "bf16 fast path, torch, 1 thread", "threads": 1,
                         **_time(lambda: upscale(img, fast1, tile=None, precision="bf16"), repeats)})
        finally:
            torch.set_num_threads(threads)
    return rows


def machine() -> dict:
    from .int8 import cpu_has_int8
    from .runtime import cpu_has_bf16, hardware, resolve_backend
    from .device import resolve_device

    dev = resolve_device()
    return {"hardware": hardware(dev), "device": dev, "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu_bf16": cpu_has_bf16(), "cpu_int8": cpu_has_int8(), "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "load_avg_1min": _load(),
            "backend": resolve_backend(), "compile": settings().compile}


def run(models: list[str] | None = None, repeats: int = 7, quick: bool = False, tiled_rounds: int = 2) -> dict:
    entries = [zoo.get_entry(m) for m in models] if models else [
        e for e in zoo.entries() if e.upscales and e.id != "nearest"]
    sizes = [128] if quick else [128, 256]
    channels = [1] if quick else [1, 3]
    info = machine()
    n, reps = (1024, 3) if quick else (2048, 5)  # --quick: a smoke run, a smaller matmul
    info["matmul_n"] = n
    info["matmul_bf16_gflops"] = round(matmul_gflops(torch.bfloat16, n=n, repeats=reps), 1)
    info["matmul_fp32_gflops"] = round(matmul_gflops(torch.float32, n=n, repeats=reps), 1)
    i8 = bp.int8_matmul_gops(n=n, repeats=reps)
    info["matmul_int8_gops"] = None if i8 is None else round(i8, 1)
    rows = []
    for e in entries:
        print(f"bench {e.id} ...", flush=True)
        rows += bench_model(e, sizes, channels, repeats, info["matmul_bf16_gflops"])
    tiled, compare, ablation, precisions, cold, module_vs_id, video, cons = [], [], [], [], [], [], [], []
    ids = [e.id for e in entries]
    ceilings = {"fp32": info["matmul_fp32_gflops"], "bf16": info["matmul_bf16_gflops"], "int8": info["matmul_int8_gops"]}
    focus = [e for e in entries if e.kind == "generator" and e.available and ("cli-default" in e.roles or "live" in e.roles)]
    for e in focus:
        print(f"bench precisions {e.id} ...", flush=True)
        precisions += bp.bench_precisions(e, _time, forward_gflop(api_load(e.id), 128, 128), ceilings, repeats=repeats)
        module_vs_id += bp.bench_module_vs_id(e, _time, repeats=repeats)
        cons += bp.bench_consistency(e, rounds=3 * repeats)
        if "live" in e.roles:  # the real-time model: frames per second as sr.video runs it
            print(f"bench video frames {e.id} ...", flush=True)
            video += bp.bench_video(e, rounds=3 * repeats)
    if not quick:
        from .bench_tiled import PREVIOUS_TILED, TiledPath, bench_tiled
        from .tiling import DEFAULT_TILE

        for e in focus:
            configs = [PREVIOUS_TILED, TiledPath("int8", 384, False, "int8, one-stage tiles of 384")]
            if api.fast_model(e.id).fast_precision != "int8":  # auto keeps this one out of int8: time both
                configs.append(TiledPath("int8", DEFAULT_TILE, True, f"int8 (asked), two-stage, tile {DEFAULT_TILE}"))
            configs.append(TiledPath("auto", DEFAULT_TILE, True, f"default: auto precision, two-stage, tile {DEFAULT_TILE}"))
            print(f"bench tiled {e.id} 2048x2048: {len(configs)} paths x {tiled_rounds} rounds, each in a fresh process ...",
                  flush=True)
            tiled += bench_tiled(e, configs, rounds=tiled_rounds)
        app = list(zoo.with_role("app-default"))
        if all(zoo.get_entry(m).available for m in app):
            print("bench cold start ...", flush=True)
            cold = bp.bench_cold_start(app)
        for e in entries:
            if e.kind == "generator" and ("cli-default" in e.roles or "live" in e.roles):
                print(f"bench ablation {e.id} ...", flush=True)
                ablation += bench_ablation(e, repeats=repeats)
    if all(m in ids for m in zoo.with_role("app-default")):
        print("bench the app's comparison ...", flush=True)
        compare.append(bench_compare(repeats=repeats))
    info["load_avg_1min_end"] = _load()
    return {"machine": info, "rows": rows, "tiled": tiled, "compare": compare, "ablation": ablation,
            "precisions": precisions, "cold_start": cold, "module_vs_id": module_vs_id, "video": video,
            "consistency": cons}


def to_markdown(result: dict, command: str) -> str:
    m = result["machine"]
    lines = ["# Benchmark", "", f"Command: `{command}`", "",
             f"Machine: {m['hardware']}; {m['platform']}; Python {m['python']}; native bf16: {m['cpu_bf16']}.",
             f"Matmul {m.get('matmul_n', 2048)}^3: bf16 {m['matmul_bf16_gflops']} GFLOP/s, fp32 {m['matmul_fp32_gflops']} GFLOP/s, "
             f"int8 {m.get('matmul_int8_gops')} GOP/s; CPU int8 dot-product instructions: {m.get('cpu_int8')}.",
             f"Threads: {m['threads']} of {m.get('cpus')} CPUs; backend {m.get('backend', 'torch')}; "
             f"1-minute load average {m.get('load_avg_1min')} at the start, {m.get('load_avg_1min_end')} at the end "
             f"(an idle machine reads about 0; a loaded one gives slower, noisier numbers).", "",
             "Latency per frame (whole image, no tiling), median of repeats after a warm-up; p10/p90 = spread.", ""]
    lines += markdown_table(result["rows"])
    if result.get("precisions"):
        lines += ["", "## Precisions in one run (fast path, 128x128 -> 512x512, one channel)", "",
                  "`asked`: the precision requested; `ran`: what ran (int8 needs a quantised model pinned for "
                  "these weights, `sr quantize`). `share_of_matmul`: achieved multiply-adds against this run's "
                  "matmul probe of the same precision. The paths are timed call by call in turn (fp32, bf16, int8, "
                  "fp32, ...), so a busy moment of the machine hits all of them; `speedup_vs_*` are the medians of "
                  "the per-round ratios.", ""] + markdown_table(result["precisions"])
    if result.get("module_vs_id"):
        lines += ["", "## `sr.upscale(x, id)` vs `sr.upscale(x, sr.load(id))` (alternated, median of 3 rounds)", ""]
        lines += markdown_table(result["module_vs_id"])
    if result.get("consistency"):
        lines += ["", "## Back-projection onto the input (`sr.consistency`; the GANs' default)", "",
                  "`sr.upscale(x, id)` with the model's steps and with `consistency=0`, timed call by call in turn "
                  "(the precision rows above time the network alone).", ""] + markdown_table(result["consistency"])
    if result.get("video"):
        lines += ["", "## Frames per second of the real-time model (one frame per call vs `sr.video`'s batches)", "",
                  "Both timed call by call in turn at the default precision; `fps_over_one_per_call`: the median of the "
                  "per-round throughput ratios.", ""] + markdown_table(result["video"])
    if result.get("tiled"):
        lines += ["", "## Tiled path, 2048x2048 input (uint8 in and out)", "",
                  "one-stage: every tile through the whole model with the whole receptive radius as margin; "
                  "two-stage (`sr.staged`): the trunk in tiles of `trunk_tile`, the upsampler in tiles of `tile`. "
                  "Each run is a fresh process (`sr.bench_tiled`); `peak_rss_growth_mb` includes the 64 MB output.", ""] + markdown_table(result["tiled"])
    if result.get("cold_start"):
        lines += ["", "## Cold start (`sr.upscale` of the app's default models, first call after process start)", ""]
        lines += markdown_table(result["cold_start"])
    if result.get("compare"):
        lines += ["", "## The app's comparison (its default models in turn, one 128x128 grey image)", ""]
        lines += markdown_table(result["compare"])
    if result.get("ablation"):
        lines += ["", "## Fast-path ablation (same run)", ""] + markdown_table(result["ablation"])
    return "\n".join(lines) + "\n"


def cli(args) -> int:

    result = run(args.models.split(",") if args.models else None, repeats=args.repeats, quick=args.quick)
    command = command_line()
    result["command"] = command
    md = to_markdown(result, command)
    print(md)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    if args.out:
        Path(args.out).write_text(md, encoding="utf-8")
    return 0
