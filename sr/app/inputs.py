"""Reading and checking an uploaded image."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .. import imio
from .config import MODE_HR, MODE_LR, SCALE, max_output_pixels
from .errors import AppError
from .security import URL_REFUSED, is_url


def safe_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(name)).stem).strip("._")
    return stem[:60] or "image"

def read_input(path) -> tuple[np.ndarray, imio.ImageInfo, str]:
    """Read the uploaded file: (array, info, safe name stem)."""
    if not path:
        raise AppError("No image yet: upload one (PNG, JPEG or TIFF) or click an example.")
    if is_url(path):
        raise AppError(URL_REFUSED)
    try:
        a, info = imio.read_image(path)
    except imio.ImageError as exc:  # name the user's file, not the server's temporary copy
        raise imio.ImageError(str(exc).replace(str(path), Path(path).name)) from None
    return a, info, safe_stem(Path(path).name)

def describe_image(a: np.ndarray, info: imio.ImageInfo) -> str:
    h, w = a.shape[:2]
    c = 1 if a.ndim == 2 else a.shape[2]
    kind = {1: "grey", 3: "RGB"}.get(c, f"{c}-channel stack")
    if info.channel_axis == "first" and c > 1:
        kind = f"{c}-channel stack"
    text = f"{w}x{h} px, {kind}, {a.dtype} ({info.format.upper()})"
    if c > 3 or (c == 2) or (c == 3 and info.channel_axis == "first"):
        text += "; shown as " + ("the first three channels as RGB" if c > 3 else
                                 "RGB" if c == 3 else "red/green") + ", all channels are processed and downloaded"
    if info.note:
        text += f"; {info.note}"
    return text

def output_size(a: np.ndarray, mode: str) -> tuple[int, int]:
    """Size of the results for ``mode``; raises :class:`AppError` if out of the app's limits."""
    h, w = a.shape[:2]
    if mode == MODE_HR:
        if h < 2 * SCALE or w < 2 * SCALE:
            raise AppError(f"The image is {w}x{h} px: too small to downscale 4x and still have an "
                           f"input (at least {2 * SCALE}x{2 * SCALE} px are needed). Use the "
                           "low-resolution mode to just upscale it.")
        oh, ow = h - h % SCALE, w - w % SCALE
    elif mode == MODE_LR:
        oh, ow = h * SCALE, w * SCALE
    else:
        raise AppError(f"Unknown mode {mode!r}: use {MODE_HR!r} (score against the image) or "
                       f"{MODE_LR!r} (just upscale).")
    limit = max_output_pixels()
    if oh * ow > limit:
        side = int(math.sqrt(limit))
        raise AppError(f"The 4x results would be {ow}x{oh} = {oh * ow:,} px, over this demo's limit of "
                       f"{limit:,} px (about {side}x{side}). Crop the image, use the high-resolution mode "
                       f"for a large image, or run `python -m sr upscale` (no limit, tiled) on your "
                       f"machine. The limit is SR_APP_MAX_OUTPUT_PIXELS.")
    return oh, ow
