"""Images for display: one intensity stretch per comparison, nearest enlargement, PNG views.

Pure functions of arrays and files, used by the app and by evaluation figures.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import imio

VIEW_MAX = 2048  # longest side of the PNG views sent to the browser (gallery, slider, preview)
PREVIEW_MIN = 384  # small images are previewed enlarged (nearest) to at least this size, to click


@dataclass(frozen=True)
class Stretch:
    """One intensity mapping to uint8 shared by all images of a run (None: uint8 as is)."""

    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    @classmethod
    def of(cls, a: np.ndarray) -> "Stretch":
        if a.dtype == np.uint8:
            return cls()
        pct = (0.0, 100.0) if a.dtype == np.float32 else (0.1, 99.9)
        _, norm = imio.normalize(a, "percentile", pct)
        return cls(norm.lo, norm.hi)

    def apply(self, a: np.ndarray) -> np.ndarray:
        """Image -> uint8 grey (H,W) or RGB (H,W,3) for display."""
        if self.lo is None:
            u = a if a.dtype == np.uint8 else imio.to_uint8_display(a)
        else:
            c = imio.to_channels(a).astype(np.float32)
            x = (c - self.lo[:, None, None]) / (self.hi - self.lo)[:, None, None]
            u = imio.from_channels(np.clip(np.rint(x * 255), 0, 255).astype(np.uint8), a.ndim)
        return imio.to_uint8_display(u)

def nearest(a: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour (pixel replication) enlargement by an integer factor."""
    return a if k == 1 else np.repeat(np.repeat(a, k, axis=0), k, axis=1)

def save_png(path: Path, u8: np.ndarray) -> Path:
    Image.fromarray(u8).save(path, compress_level=3)
    return path

def save_preview(path: Path, u8: np.ndarray) -> float:
    """PNG of the image to click on: small images enlarged (nearest, integer factor), large
    ones reduced. Returns the factor preview pixels / image pixels."""
    k = max(1, PREVIEW_MIN // max(u8.shape[:2]))
    save_view(path, nearest(u8, k))
    return Image.open(path).width / u8.shape[1]

def save_view(path: Path, u8: np.ndarray, max_side: int = VIEW_MAX) -> Path:
    """PNG view of a display image, box-downscaled to at most ``max_side`` pixels a side."""
    im = Image.fromarray(u8)
    if max(im.size) > max_side:
        f = max_side / max(im.size)
        im = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.BOX)
    im.save(path, compress_level=3)
    return path

def _box(draw: ImageDraw.ImageDraw, x, y, s, width: int, color=(255, 221, 0)) -> None:
    draw.rectangle([x - width, y - width, x + s + width - 1, y + s + width - 1], outline=color, width=width)

def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType: fixed bitmap font
        return ImageFont.load_default()

def _wrap(text: str, draw: ImageDraw.ImageDraw, font, width: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        t = f"{cur} {word}".strip()
        if draw.textlength(t, font=font) <= width or not cur:
            cur = t
        else:
            lines.append(cur)
            cur = word
    return lines + ([cur] if cur else [])
