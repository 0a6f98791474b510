"""Two-stage tiled inference: the trunk in large tiles, the upsampler in small sub-tiles.

A generator is a trunk (head and residual body at the input's resolution, up to the global skip
sum: 64 channels per input pixel) and an upsampler (the x2 stages and the output convolution).
Per input pixel the upsampler's activations are 16x the trunk's (4x the pixels after the first
x2 stage, 4 phases of 64 channels after the second), but its receptive field is small (2-4
input pixels against the trunk's 15-37). One-stage tiling has to pay the whole receptive
radius as a margin on every tile, and its tile size is set by the upsampler's memory: on a
2048x2048 image the improved SRGAN (radius 40) computes 1.43x the image's area at tile 384,
1.62x at tile 256.

Here the trunk runs on tiles :data:`TRUNK_FACTOR` times wider (about the memory of one upsampler
tile; 1.25x the area at the default tile 192), and its exact features (those at least the
trunk's radius from the patch edge, or at the image border) are upsampled in sub-tiles of
``tile`` with the upsampler's own radius as margin. Each output pixel is computed from exactly
the inputs whole-image inference uses, so the result equals it up to float rounding, as
one-stage tiling does (tests/test_staged.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

TRUNK_FACTOR = 3  # trunk tile = this x the upsampler's tile (9x the area; about the memory of one upsampler tile)


@dataclass(frozen=True)
class Stages:
    """The two halves of a generator: ``trunk(x) -> features``, ``up(features) -> output``
    (torch tensors in and out, float32), and their receptive radii in input pixels."""

    trunk: Callable[[torch.Tensor], torch.Tensor]
    up: Callable[[torch.Tensor], torch.Tensor]
    trunk_radius: int
    up_radius: int


def _spans(n: int, tile: int) -> list[tuple[int, int]]:
    """``ceil(n / tile)`` spans of nearly equal length (no thin last span paying a full margin)."""
    k = max(1, -(-n // tile))
    edges = [round(i * n / k) for i in range(k + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def run_staged(stages: Stages, xt: torch.Tensor, out: np.ndarray, scale: int, tile: int,
               trunk_overlap: int | None = None,
               progress: Callable[[int, int], None] | None = None,
               finish: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Fill ``out`` (N,C',H*s,W*s) with the generator's output on ``xt`` (N,C,H,W float32):
    trunk tiles of ``TRUNK_FACTOR * tile``, upsampler sub-tiles of ``tile``. ``trunk_overlap``
    overrides the trunk's margin (default: its receptive radius, which makes the result exact)."""
    _, _, h, w = xt.shape
    rt = stages.trunk_radius if trunk_overlap is None else int(trunk_overlap)
    ru = stages.up_radius
    big = TRUNK_FACTOR * tile
    ys, xs = _spans(h, big), _spans(w, big)
    tiles = [(y, x, _spans(y[1] - y[0], tile), _spans(x[1] - x[0], tile)) for y in ys for x in xs]
    total, done = sum(len(sy) * len(sx) for *_, sy, sx in tiles), 0
    for (y0, y1), (x0, x1), sy, sx in tiles:
        fy0, fy1, fx0, fx1 = max(0, y0 - ru), min(h, y1 + ru), max(0, x0 - ru), min(w, x1 + ru)
        py0, py1, px0, px1 = max(0, fy0 - rt), min(h, fy1 + rt), max(0, fx0 - rt), min(w, fx1 + rt)
        feats = stages.trunk(xt[:, :, py0:py1, px0:px1])
        feats = feats[:, :, fy0 - py0:fy1 - py0, fx0 - px0:fx1 - px0]  # the exact ones
        for a0, a1 in sy:
            for b0, b1 in sx:
                sy0, sy1, sx0, sx1 = y0 + a0, y0 + a1, x0 + b0, x0 + b1
                qy0, qy1, qx0, qx1 = max(fy0, sy0 - ru), min(fy1, sy1 + ru), max(fx0, sx0 - ru), min(fx1, sx1 + ru)
                y = stages.up(feats[:, :, qy0 - fy0:qy1 - fy0, qx0 - fx0:qx1 - fx0].contiguous())
                oy, ox = (sy0 - qy0) * scale, (sx0 - qx0) * scale
                core = y[:, :, oy:oy + (sy1 - sy0) * scale, ox:ox + (sx1 - sx0) * scale].float().cpu().numpy()
                out[:, :, sy0 * scale:sy1 * scale, sx0 * scale:sx1 * scale] = core if finish is None else finish(core)
                done += 1
                if progress is not None:
                    progress(done, total)
        del feats
    return out
