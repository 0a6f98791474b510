"""LR consistency: back-projection of a super-resolved image onto its low-resolution input.

A 4x SR output ``y`` of an LR image ``x`` is *consistent* when degrading it gives ``x`` back:
``D(y) = x``, with ``D`` the one degradation of this project (:func:`sr.degrade.degrade`, Pillow's
bicubic 1/4). Iterative back-projection (Irani & Peleg 1991) moves ``y`` towards that set:

    y <- y + U(x - D(y))        (U: Pillow's bicubic 4x upscale)

The correction ``U(x - D(y))`` is band-limited to the LR image's frequencies, so the detail a GAN
adds above the LR Nyquist frequency stays; what goes is the part of its output that contradicts
the measured pixels (a GAN's contrast drift on images unlike its training set: the improved SRGAN
at blend 1 read -3.2 dB against bicubic on the non-HPA fluorescence validation images without it,
-0.1 dB with 3 steps; ``sr blend choose --other``, README). Pixel-loss models are already consistent
to within ~0.01 dB, so it is for GANs.

``D`` and ``U`` here are Pillow's resampling exactly (same kernels, same renormalisation of the
kernel over the taps inside the image at its borders; tests/test_consistency.py compares them
with Pillow), as separable windowed products in float32 on (N, C, H, W) tensors, on any device.
The step assumes what the models assume: that the LR image is the HR's bicubic 1/4. On a real
acquisition it enforces consistency with that model of the microscope.

:class:`Consistent` wraps a (fast) generator so that every caller (whole image, tiles, the
two-stage tiler, :mod:`sr.chunked`) runs it; its receptive radius grows by :func:`radius`.
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F

SCALE = 4
MAX_ITERATIONS = 8


def _bicubic(t: float) -> float:  # Pillow's bicubic filter (a = -0.5)
    a, t = -0.5, abs(t)
    if t < 1.0:
        return ((a + 2.0) * t - (a + 3.0)) * t * t + 1
    if t < 2.0:
        return (((t - 5) * t + 8) * t - 4) * a
    return 0.0


@lru_cache(maxsize=8)
def _down_taps(scale: int) -> tuple[int, tuple[float, ...]]:
    """Pillow's 1/scale bicubic taps of an interior output pixel: (first offset, weights)."""
    support, center = 2.0 * scale, scale / 2.0  # output 0's centre, in input pixels
    lo, hi = math.floor(center - support + 0.5), math.floor(center + support + 0.5)
    w = [_bicubic((j - center + 0.5) / scale) for j in range(lo, hi)]
    s = sum(w)
    return lo, tuple(v / s for v in w)


@lru_cache(maxsize=8)
def _up_taps(scale: int) -> tuple[tuple[float, ...], ...]:
    """Pillow's x``scale`` bicubic taps per output phase r, over input offsets -2..2."""
    phases = []
    for r in range(scale):
        center = (r + 0.5) / scale  # output pixel r's centre, in input pixels (q = 0)
        lo, hi = math.floor(center - 1.5), math.floor(center + 2.5)
        w = {j: _bicubic(j - center + 0.5) for j in range(lo, hi)}
        s = sum(w.values())
        phases.append(tuple(w.get(j, 0.0) / s for j in range(-2, 3)))
    return tuple(phases)


def _kernel(values, device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, device=device)


def _down_last(z: torch.Tensor, scale: int) -> torch.Tensor:
    """Pillow's bicubic 1/scale along the last axis: every output is a 16-tap window (unfold)
    times the kernel, divided by the kernel's weight inside the image (Pillow's border rule)."""
    lo, w = _down_taps(scale)
    k = _kernel(w, z.device)
    left, right = -lo, len(w) + lo - scale
    n = z.shape[-1]
    num = F.pad(z, (left, right)).unfold(-1, len(w), scale) @ k
    den = F.pad(torch.ones(n, device=z.device), (left, right)).unfold(-1, len(w), scale) @ k
    return num / den


def _up_last(z: torch.Tensor, scale: int) -> torch.Tensor:
    """Pillow's bicubic x``scale`` along the last axis: per input pixel, its 5-pixel window times
    the (5, scale) phase kernels gives the ``scale`` outputs around it."""
    k = _kernel(_up_taps(scale), z.device).t()  # (5, scale)
    n = z.shape[-1]
    num = F.pad(z, (2, 2)).unfold(-1, 5, 1) @ k  # (..., n, scale)
    den = F.pad(torch.ones(n, device=z.device), (2, 2)).unfold(-1, 5, 1) @ k
    return (num / den).flatten(-2)


DENSE_MAX = 2048  # axes up to this many pixels resample as one GEMM with the dense (banded) matrix


_AXIS = {"down": _down_last, "up": _up_last,
         "du": lambda z, scale: _down_last(_up_last(z, scale), scale)}  # up then down: LR -> LR


@lru_cache(maxsize=16)  # at most 4 MB each (2048 x 512 floats)
def _matrix(fn_name: str, n: int, scale: int, device: str) -> torch.Tensor:
    """The resampling of an axis of ``n`` pixels as a matrix: ``z @ m`` = ``fn(z)`` along it."""
    return _AXIS[fn_name](torch.eye(n, device=device), scale).contiguous()


def _axis(fn_name: str, z: torch.Tensor, scale: int) -> torch.Tensor:
    n = z.shape[-1]
    if n * (scale if fn_name == "du" else 1) <= DENSE_MAX:
        return z @ _matrix(fn_name, n, scale, str(z.device))
    return _AXIS[fn_name](z, scale)


def _separable(fn_name: str, y: torch.Tensor, scale: int) -> torch.Tensor:
    z = _axis(fn_name, y, scale)  # along W
    return _axis(fn_name, z.transpose(-1, -2), scale).transpose(-1, -2).contiguous()  # along H


def downscale(y: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """:func:`sr.degrade.degrade` on float (N, C, H, W) tensors (H, W multiples of ``scale``)."""
    return _separable("down", y, scale)


def upscale(x: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """Pillow's bicubic x``scale`` upscale (the ``bicubic`` baseline) of float (N, C, H, W)."""
    return _separable("up", x, scale)


def project(y: torch.Tensor, x: torch.Tensor, iterations: int, scale: int = SCALE) -> torch.Tensor:
    """``iterations`` back-projection steps of the SR output ``y`` onto its LR input ``x``
    (float32, autocast off: the correction is small and must not be rounded to bf16)."""
    if iterations <= 0:
        return y
    dev = y.device.type if y.device.type in ("cpu", "cuda") else "cpu"
    with torch.autocast(dev, enabled=False):
        y, x = y.float().contiguous(), x.to(device=y.device, dtype=torch.float32).contiguous()
        if y.shape[-2:] != (x.shape[-2] * scale, x.shape[-1] * scale) or y.shape[:2] != x.shape[:2]:
            raise ValueError(f"output {tuple(y.shape)} is not {scale}x the input {tuple(x.shape)}")
        # y_{t+1} = y_t + U(r_t), r_t = x - D(y_t)  =>  r_{t+1} = r_t - D(U(r_t)), all at the input's size,
        # and y_n = y_0 + U(r_0 + ... + r_{n-1}): one D and one U at the output's size
        r = x - downscale(y, scale)
        total = r
        for _ in range(iterations - 1):
            r = r - _separable("du", r, scale)
            total = total + r
        y = y + upscale(total, scale)
    return y


def radius(iterations: int) -> int:
    """LR pixels of context each output pixel's correction depends on (D: +-2, U: +-2 per step;
    one more for the renormalised border taps)."""
    return 5 * max(0, int(iterations))


def check_iterations(value) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"consistency must be a whole number of back-projection steps, got {value!r}") from None
    if not 0 <= n <= MAX_ITERATIONS:
        raise ValueError(f"consistency must be 0 (off) to {MAX_ITERATIONS} back-projection steps, got {n}")
    return n


class Consistent(nn.Module):
    """A generator followed by :func:`project`; the same attributes as the generator it wraps
    (``config``, ``fast_precision``, ``backend``...), its receptive radius grown by :func:`radius`."""

    def __init__(self, net: nn.Module, iterations: int):
        super().__init__()
        self.net = net
        self.iterations = check_iterations(iterations)
        self.scale = int(getattr(net, "config", {}).get("scale", SCALE))

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "net":
                raise
            return getattr(super().__getattr__("net"), name)

    def receptive_radius(self) -> int:
        fn = getattr(self.net, "receptive_radius", None)
        return (int(fn()) if callable(fn) else 32) + radius(self.iterations)

    def stages(self):
        fn = getattr(self.net, "stages", None)
        st = fn() if callable(fn) else None
        if st is None:
            return None
        return replace(st, post=lambda y, x: project(y, x, self.iterations, self.scale),
                       post_radius=radius(self.iterations))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return project(self.net(x), x, self.iterations, self.scale)
