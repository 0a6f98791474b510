"""The ONE degradation (HR -> LR) and the non-learned baselines.

Degradation: Pillow's bicubic resize to 1/scale of the size, per channel, as in the seed
project (arXiv 2010.04634). 8-bit images are resized as 8-bit ("L"), so the LR is an 8-bit
image as a camera would store it; other dtypes are resized in float ("F") and rounded back.
HR sizes that are not multiples of the scale are cropped (bottom/right) to a multiple first,
so that SR output and reference have the same shape. Training, evaluation, the MOS pool and
the app all call :func:`degrade`.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

SCALE = 4


def crop_to_multiple(hr: np.ndarray, scale: int = SCALE) -> np.ndarray:
    h, w = hr.shape[:2]
    return hr[: h - h % scale, : w - w % scale]


def _resize_plane(p: np.ndarray, size: tuple[int, int], resample) -> np.ndarray:
    if p.dtype == np.uint8:
        return np.asarray(Image.fromarray(p, mode="L").resize(size, resample))
    out = np.asarray(Image.fromarray(p.astype(np.float32), mode="F").resize(size, resample))
    if p.dtype == np.uint16:
        return np.clip(np.rint(out), 0, 65535).astype(np.uint16)
    return out.astype(np.float32)


def resize(a: np.ndarray, size_wh: tuple[int, int], method: str = "bicubic") -> np.ndarray:
    """Per-channel Pillow resize of a (H,W) or (H,W,C) array, keeping its dtype."""
    resample = {"bicubic": Image.BICUBIC, "nearest": Image.NEAREST, "bilinear": Image.BILINEAR}[method]
    if a.ndim == 2:
        return _resize_plane(a, size_wh, resample)
    return np.stack([_resize_plane(a[:, :, i], size_wh, resample) for i in range(a.shape[2])], axis=2)


def degrade(hr: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """HR image -> LR image (bicubic, 1/scale). Crops HR to a multiple of scale first."""
    hr = crop_to_multiple(hr, scale)
    h, w = hr.shape[:2]
    if h < scale or w < scale:
        raise ValueError(f"image {w}x{h} is smaller than the scale factor {scale}")
    return resize(hr, (w // scale, h // scale), "bicubic")


def upscale_baseline(lr: np.ndarray, method: str, scale: int = SCALE) -> np.ndarray:
    """Non-learned x``scale`` upscaling (``nearest`` or ``bicubic``) keeping dtype."""
    h, w = lr.shape[:2]
    if method == "nearest":
        return np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)
    return resize(lr, (w * scale, h * scale), method)
