"""Tiled inference: any image size with memory bounded by the tile size.

Each tile is run with a margin of ``overlap`` low-resolution pixels on every side (clipped at
the image border) and only its core is kept. With ``overlap`` at least the generator's
receptive-field radius the result equals whole-image inference up to float rounding, so no
seam can appear (tests/test_tiling.py checks it). The default overlap is the model's
``receptive_radius()``. Fast generators on the CPU run in two stages (:mod:`sr.staged`): the trunk
in tiles twice as wide, the upsampler in tiles of ``tile``, each with its own receptive radius as margin
(an explicit ``overlap`` sets the trunk's).

The model runs where its weights are (:func:`sr.device.module_device`); on CUDA each tile is
copied to the GPU and back, and the tile size comes from the free GPU memory
(:func:`sr.device.cuda_tile`): the default tile (sized for CPU caches) grows to what fits, an
explicit one is kept when it fits. The result is the same float32 numpy array either way.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .device import cuda_tile, module_device
from .runtime import autocast, resolve_precision
from .tile_sizes import DEFAULT_TILE


def default_overlap(model: torch.nn.Module) -> int:
    fn = getattr(model, "receptive_radius", None)
    return int(fn()) if callable(fn) else 32


def _spans(n: int, tile: int) -> list[tuple[int, int]]:
    return [(s, min(s + tile, n)) for s in range(0, n, tile)]


@torch.inference_mode()
def run_tiled(
    model: torch.nn.Module,
    x: np.ndarray | torch.Tensor,
    scale: int = 4,
    tile: int | None = DEFAULT_TILE,
    overlap: int | None = None,
    precision: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    finish: Callable[[np.ndarray], np.ndarray] | None = None,
    out_dtype=np.float32,
) -> np.ndarray:
    """Run ``model`` on a float (N,C,H,W) array in tiles; returns float32 (N,C',H*s,W*s).

    ``finish`` maps each finished float32 tile (N,C',h,w) to ``out_dtype`` (e.g. back to the
    image's 8-bit range) as it is written, so no full-size float32 copy of the result is held."""
    dev = module_device(model)
    precision = resolve_precision(precision, dev)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not torch.is_tensor(x) else x.float()
    n, _, h, w = xt.shape
    explicit_overlap = overlap
    overlap = default_overlap(model) if overlap is None else int(overlap)
    if overlap < 0:
        raise ValueError("overlap must be >= 0")
    if dev.type == "cuda":
        fast_precision = getattr(model, "fast_precision", precision)
        fit = cuda_tile(getattr(model, "config", {}).get("width", 64), n,
                        2 if fast_precision in ("bf16", "fp16") else 4, dev)
        tile = fit if tile is None or tile <= 0 or tile == DEFAULT_TILE else min(int(tile), fit)
    if tile is None or tile <= 0:
        tile = max(h, w)
    out_c = getattr(model, "config", {}).get("out_channels", xt.shape[1])
    out = np.empty((n, out_c, h * scale, w * scale), dtype=np.float32 if finish is None else out_dtype)
    stages = getattr(model, "stages", None)
    stages = stages() if callable(stages) and dev.type == "cpu" and max(h, w) > tile else None
    if stages is not None:  # the trunk in large tiles, the upsampler in tiles of `tile`
        from .staged import run_staged

        return run_staged(stages, xt, out, scale, tile, explicit_overlap, progress, finish)
    ys, xs = _spans(h, tile), _spans(w, tile)
    total, done = len(ys) * len(xs), 0
    self_casting = getattr(model, "self_casting", False)  # a FastGenerator casts by itself
    channels_last = precision in ("bf16", "fp16") and not self_casting
    amp_precision = "fp32" if self_casting else precision
    for y0, y1 in ys:
        for x0, x1 in xs:
            py0, py1 = max(0, y0 - overlap), min(h, y1 + overlap)
            px0, px1 = max(0, x0 - overlap), min(w, x1 + overlap)
            patch = xt[:, :, py0:py1, px0:px1].to(dev)
            if channels_last:
                patch = patch.contiguous(memory_format=torch.channels_last)
            with autocast(amp_precision, dev):
                y = model(patch)
            y = y.float()
            oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
            core = y[:, :, oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale].cpu().numpy()
            out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = core if finish is None else finish(core)
            done += 1
            if progress is not None:
                progress(done, total)
    return out
