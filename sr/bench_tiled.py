"""The tiled 2048^2 -> 8192^2 benchmark (``python -m sr bench``): each run in a fresh process.

A tiled run's peak memory depends on what the process did before it (the allocator keeps freed
arenas, OpenVINO keeps buffers per shape it has seen), so the paths are not timed one after the
other in one process: every (path, round) is its own ``python -m sr.bench_tiled`` child that
loads the model, compiles both halves on an image over one tile, then times one uint8 run and
reads its peak RSS growth (``VmHWM`` after a reset, minus ``VmRSS`` before; it includes the
64 MB output). The paths run in turn, ``rounds`` times, so a slow phase of the machine hits all
of them; ``speedup_vs_previous`` is the median of the per-round ratios to the first path.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class TiledPath:
    precision: str
    tile: int
    staged: bool  # False: one-stage tiles (every tile through the whole model)
    label: str
    trunk_factor: int | None = None  # two-stage: the trunk's tile over `tile` (default sr.staged's)


# What the tiled speed-ups are measured against: the default path when issue 17 was filed.
PREVIOUS_TILED = TiledPath("bf16", 256, False, "previous default: bf16, one-stage tiles of 256")


class OneStage(torch.nn.Module):
    """A fast generator without two-stage tiling (:mod:`sr.staged`): the tiled path before it."""

    self_casting = True

    def __init__(self, fast):
        super().__init__()
        self.fast = fast
        self.config, self.fast_precision = fast.config, fast.fast_precision

    def receptive_radius(self) -> int:
        return self.fast.receptive_radius()

    def forward(self, x):
        return self.fast(x)


def measure(model_id: str, path: TiledPath, side: int = 2048) -> dict:
    """One timed tiled run of ``path`` in this process (what the child does)."""
    from . import staged
    from .api import fast_module, load, upscale
    from .bench import _rss_mb, _rss_peak_reset

    if path.trunk_factor:
        staged.TRUNK_FACTOR = int(path.trunk_factor)
    fast = fast_module(load(model_id), path.precision)  # a GAN at its default blend, as its id runs
    net = fast if path.staged else OneStage(fast)
    img = (np.random.default_rng(0).random((side, side)) * 255).astype(np.uint8)
    warm = path.tile + 8 if path.staged else 64  # compiled before timing (two-stage: both halves)
    upscale(img[:warm, :warm], net, tile=path.tile)
    _rss_peak_reset()
    base = _rss_mb("VmRSS")
    t = time.perf_counter()
    out = upscale(img, net, tile=path.tile)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "peak_rss_growth_mb": _rss_mb("VmHWM") - base, "precision": fast.fast_precision,
            "trunk_factor": staged.TRUNK_FACTOR if path.staged else None,
            "output": f"{out.shape[1]}x{out.shape[0]}", "output_mb": out.nbytes / 2 ** 20}


def run_child(model_id: str, path: TiledPath, side: int) -> dict:
    """:func:`measure` in a fresh Python process (the environment, e.g. ``SR_*``, is inherited)."""
    arg = json.dumps({"model": model_id, "path": asdict(path), "side": side})
    p = subprocess.run([sys.executable, "-m", "sr.bench_tiled", arg], capture_output=True, text=True, timeout=1800)
    line = [x for x in p.stdout.splitlines() if x.startswith("TILED")]
    if p.returncode or not line:
        raise RuntimeError(f"tiled run {path.label!r} failed: {(p.stderr or p.stdout)[-400:]}")
    return json.loads(line[-1][5:])


def bench_tiled(entry, paths, side: int = 2048, rounds: int = 2, runner=run_child) -> list[dict]:
    """One row per path of ``paths`` (:class:`TiledPath` or its fields as a tuple): ``seconds`` is
    the median over ``rounds``, ``peak_rss_growth_mb`` the largest, each run a fresh process."""
    paths = [p if isinstance(p, TiledPath) else TiledPath(*p) for p in paths]
    runs = [[] for _ in paths]
    for _ in range(rounds):
        for i, path in enumerate(paths):
            runs[i].append(runner(entry.id, path, side))
    first = [r["seconds"] for r in runs[0]]
    rows = []
    for path, rs in zip(paths, runs):
        t = [r["seconds"] for r in rs]
        rows.append({"model": entry.id, "path": path.label, "precision": rs[0]["precision"],
                     "input": f"{side}x{side}x1", "output": rs[0]["output"],
                     "tiling": "two-stage" if path.staged else "one-stage", "tile": path.tile,
                     "trunk_tile": path.tile * rs[0]["trunk_factor"] if path.staged else None,
                     "rounds": rounds, "seconds": round(statistics.median(t), 2),
                     "peak_rss_growth_mb": round(max(r["peak_rss_growth_mb"] for r in rs), 1),
                     "output_mb": round(rs[0]["output_mb"], 1),
                     "speedup_vs_previous": round(statistics.median(a / b for a, b in zip(first, t)), 2)})
    return rows


if __name__ == "__main__":
    a = json.loads(sys.argv[1])
    print("TILED" + json.dumps(measure(a["model"], TiledPath(**a["path"]), int(a["side"]))), flush=True)
