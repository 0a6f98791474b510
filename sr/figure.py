"""The comparison figure (as in the seed project's paper): per method, the whole image with the
region box, the region zoomed (nearest neighbour), its name, PSNR/SSIM and time.

Pure drawing from arrays and PIL images: the app (``sr.app.roi``) and ``sr evaluate --figure``
both use it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .display import _box, _font, _wrap

FIG_CELL = 256  # size of one panel


@dataclass
class Panel:
    label: str
    view: Image.Image  # the whole image (any size; thumbnailed)
    crop: np.ndarray  # the region, uint8 (H,W) or (H,W,3)
    psnr: float | None = None
    ssim: float | None = None
    time_s: float | None = None


def _fmt_time(t: float | None) -> str:
    return "" if t is None else (f"{t * 1000:.0f} ms" if t < 1 else f"{t:.2f} s")


def draw_comparison(panels: list[Panel], roi: tuple[int, int, int], out_hw: tuple[int, int],
                    title: str, cell: int = FIG_CELL) -> Image.Image:
    x, y, s = roi
    pad, text_h, title_h = 10, 64, 34
    n = len(panels)
    fig = Image.new("RGB", (n * cell + (n + 1) * pad, title_h + 2 * cell + 3 * pad + text_h), "white")
    draw = ImageDraw.Draw(fig)
    f_title, f_text = _font(16), _font(13)
    oh, ow = out_hw
    draw.text((pad, 8), f"{title}; region x={x}, y={y}, {s}x{s} px of {ow}x{oh}", fill="black", font=f_title)
    for j, p in enumerate(panels):
        x0 = pad + j * (cell + pad)
        view = p.view.copy()
        view.thumbnail((cell, cell), Image.BOX)
        ox, oy = x0 + (cell - view.width) // 2, title_h + (cell - view.height) // 2
        fig.paste(view, (ox, oy))
        f = view.width / ow
        _box(draw, ox + x * f, oy + y * f, s * f, 2)
        zoom = Image.fromarray(p.crop).convert("RGB").resize((cell, cell), Image.NEAREST)
        fig.paste(zoom, (x0, title_h + cell + pad))
        ty = title_h + 2 * cell + 2 * pad
        lines = _wrap(p.label, draw, f_text, cell)[:2]
        if p.psnr is not None:
            lines.append(f"{p.psnr:.2f} dB / SSIM {p.ssim:.4f}")
        if p.time_s is not None:
            lines.append(_fmt_time(p.time_s))
        for li, line in enumerate(lines[:4]):
            draw.text((x0, ty + li * 16), line, fill="black", font=f_text)
    return fig


def stack_rows(images: list[Image.Image]) -> Image.Image:
    """Figures one under the other (one row per region)."""
    fig = Image.new("RGB", (max(p.width for p in images), sum(p.height for p in images)), "white")
    y0 = 0
    for p in images:
        fig.paste(p, (0, y0))
        y0 += p.height
    return fig
