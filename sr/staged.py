"""Two-stage tiled inference: the trunk in large tiles, the upsampler in small sub-tiles.

A generator is a trunk (head and residual body at the input's resolution, up to the global skip
sum: 64 channels per input pixel) and an upsampler (the x2 stages and the output convolution).
Per input pixel the upsampler's activations are 16x the trunk's (4x the pixels after the first
x2 stage, 4 phases of 64 channels after the second), but its receptive field is small (2-4
input pixels against the trunk's 15-37). One-stage tiling has to pay the whole receptive
radius as a margin on every tile, and its tile size is set by the upsampler's memory: on a
2048x2048 image the improved SRGAN (radius 40) computes 1.43x the image's area at tile 384,
1.62x at tile 256.

Here the trunk runs on tiles :data:`TRUNK_FACTOR` times wider (1.35x the image's area on a
2048x2048 image at the default tile 256), on the image's global grid, and its exact features (those at least the
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

# trunk tile = this x the upsampler's tile. On the 2-core EPYC, int8 improved SRGAN, 2048^2 at tile 256, each
# run a fresh process, 2 rounds (`python scripts/tile_sweep.py --tiles 256 --trunk-factors 2,3 --rounds 2`): factor 2
# ran 2.22x the previous default path with 711 MB of peak RSS growth, factor 3 2.09x with 1220 MB (its
# 823^2 trunk tiles hold 64 float32 feature planes twice, the OpenVINO output and its copy, plus the
# compiled trunk's own buffers; fewer margins did not pay for the larger working set).
TRUNK_FACTOR = 2


@dataclass(frozen=True)
class Stages:
    """The two halves of a generator: ``trunk(x) -> features``, ``up(features) -> output``
    (torch tensors in and out, float32), and their receptive radii in input pixels."""

    trunk: Callable[[torch.Tensor], torch.Tensor]
    up: Callable[[torch.Tensor], torch.Tensor]
    trunk_radius: int
    up_radius: int
    # an optional last step on each upsampled sub-tile with its LR input, ``post(y, x) -> y``
    # (:mod:`sr.consistency`), exact beyond ``post_radius`` input pixels from the sub-tile's edge
    post: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    post_radius: int = 0


def _grid(lo: int, hi: int, step: int) -> list[tuple[int, int]]:
    """Spans of ``step`` from ``lo`` (a multiple of ``step`` on the global grid) up to ``hi``."""
    return [(a, min(a + step, hi)) for a in range(lo, hi, step)]


def trunk_tile(tile: int) -> int:
    return TRUNK_FACTOR * tile


def run_staged(stages: Stages, xt: torch.Tensor, out: np.ndarray, scale: int, tile: int,
               trunk_overlap: int | None = None,
               progress: Callable[[int, int], None] | None = None,
               finish: Callable[[np.ndarray], np.ndarray] | None = None,
               region: tuple[int, int, int, int] | None = None, offset: tuple[int, int] = (0, 0),
               size: tuple[int, int] | None = None) -> np.ndarray:
    """Fill ``out`` (N,C',h*s,w*s for the ``region``) with the generator's output: trunk tiles of
    :func:`trunk_tile` ``(tile)``, upsampler sub-tiles of ``tile``, both on the image's global grid
    (so :mod:`sr.chunked`, which runs regions of whole trunk tiles, cuts the very same tiles).

    ``xt`` (N,C,.,.) float32 holds the image (``size`` = its full (H, W), default ``xt``'s) from
    ``offset``; ``region`` (y0, y1, x0, x1; default the whole image, starts on the trunk grid) is
    what to compute, and ``xt`` must cover it with the trunk's and the upsampler's margins.
    ``trunk_overlap`` overrides the trunk's margin (default its receptive radius: exact)."""
    h, w = size or tuple(xt.shape[-2:])
    oy, ox = offset
    ry0, ry1, rx0, rx1 = region or (0, h, 0, w)
    rt = stages.trunk_radius if trunk_overlap is None else int(trunk_overlap)
    rp = stages.post_radius if stages.post is not None else 0
    ru = stages.up_radius + rp  # the post step's margin rides on the upsampler's
    big = trunk_tile(tile)
    tiles = [(y, x, _grid(y[0], y[1], tile), _grid(x[0], x[1], tile))
             for y in _grid(ry0, ry1, big) for x in _grid(rx0, rx1, big)]
    total, done = sum(len(sy) * len(sx) for *_, sy, sx in tiles), 0
    for (y0, y1), (x0, x1), sy, sx in tiles:
        fy0, fy1, fx0, fx1 = max(0, y0 - ru), min(h, y1 + ru), max(0, x0 - ru), min(w, x1 + ru)
        py0, py1, px0, px1 = max(0, fy0 - rt), min(h, fy1 + rt), max(0, fx0 - rt), min(w, fx1 + rt)
        feats = stages.trunk(xt[:, :, py0 - oy:py1 - oy, px0 - ox:px1 - ox])
        feats = feats[:, :, fy0 - py0:fy1 - py0, fx0 - px0:fx1 - px0]  # the exact ones
        for sy0, sy1 in sy:
            for sx0, sx1 in sx:
                qy0, qy1, qx0, qx1 = max(fy0, sy0 - ru), min(fy1, sy1 + ru), max(fx0, sx0 - ru), min(fx1, sx1 + ru)
                y = stages.up(feats[:, :, qy0 - fy0:qy1 - fy0, qx0 - fx0:qx1 - fx0].contiguous())
                if rp:  # exact upsampled pixels (the sub-tile +- rp) and their LR input
                    ey0, ey1 = max(qy0, sy0 - rp), min(qy1, sy1 + rp)
                    ex0, ex1 = max(qx0, sx0 - rp), min(qx1, sx1 + rp)
                    y = stages.post(y[:, :, (ey0 - qy0) * scale:(ey1 - qy0) * scale,
                                      (ex0 - qx0) * scale:(ex1 - qx0) * scale],
                                    xt[:, :, ey0 - oy:ey1 - oy, ex0 - ox:ex1 - ox])
                    qy0, qx0 = ey0, ex0
                cy, cx = (sy0 - qy0) * scale, (sx0 - qx0) * scale
                core = y[:, :, cy:cy + (sy1 - sy0) * scale, cx:cx + (sx1 - sx0) * scale].float().cpu().numpy()
                out[:, :, (sy0 - ry0) * scale:(sy1 - ry0) * scale, (sx0 - rx0) * scale:(sx1 - rx0) * scale] = (
                    core if finish is None else finish(core))
                done += 1
                if progress is not None:
                    progress(done, total)
        del feats
    return out
