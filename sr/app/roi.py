"""The region of interest: zoomed crops of every result, the preview box and the figure."""
from __future__ import annotations

import math
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..display import _box, nearest, save_png
from ..figure import Panel, draw_comparison
from .config import MODE_HR, MODE_LR, ROI_VIEW, SCALE
from .runstate import _require, caption
from .errors import AppError


def auto_roi(disp: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` window with the most edges (where SR differences show)."""
    g = disp.astype(np.float32)
    if g.ndim == 3:
        g = g.mean(axis=2)
    h, w = g.shape
    f = max(1, math.ceil(max(h, w) / 256))
    hh, ww = h // f, w // f
    if hh < 2 or ww < 2:
        return 0, 0
    g = g[:hh * f, :ww * f].reshape(hh, f, ww, f).mean(axis=(1, 3))
    e = np.zeros_like(g)
    e[:, 1:] += np.diff(g, axis=1) ** 2
    e[1:, :] += np.diff(g, axis=0) ** 2
    k = max(1, min(size // f, hh, ww))
    ii = np.pad(e.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    win = ii[k:, k:] - ii[:-k, k:] - ii[k:, :-k] + ii[:-k, :-k]
    y, x = np.unravel_index(int(np.argmax(win)), win.shape)
    return int(x * f), int(y * f)

def default_roi_size(h: int, w: int) -> int:
    s = int(min(h, w) / 5) // 4 * 4
    return int(min(max(s, 16), 128, min(h, w)))

def clamp_roi(x, y, size, h: int, w: int) -> tuple[int, int, int]:
    """Square ROI (top-left x, y and side, in result pixels) kept inside an h x w image."""
    try:
        size = int(round(float(size))) if size not in (None, "") else default_roi_size(h, w)
        x = int(round(float(x))) if x not in (None, "") else 0
        y = int(round(float(y))) if y not in (None, "") else 0
    except (TypeError, ValueError, OverflowError):  # OverflowError: infinity
        raise AppError(f"ROI must be numbers; got x={x!r}, y={y!r}, size={size!r}") from None
    size = max(4, min(size, h, w))
    return min(max(x, 0), w - size), min(max(y, 0), h - size), size

def roi_from_click(state: dict | None, px: float, py: float, size, mode: str | None = None,
                   preview_factor: float = 1.0) -> tuple[int, int, int]:
    """ROI centred on a click at (px, py) in the preview image's pixels.

    After a run the run's preview is used; before one, the upload preview (``preview_factor``
    preview pixels per image pixel), whose results will be 1x (mode hr) or 4x (lr) the image."""
    if state and state.get("items"):
        scale = state["preview_scale"]
        h, w = state["out_hw"]
    else:
        scale = (SCALE if mode == MODE_LR else 1) / (preview_factor or 1.0)
        h = w = 10 ** 9
    size = int(size) if size else 64
    cx, cy = (px + 0.5) * scale, (py + 0.5) * scale
    return clamp_roi(cx - size / 2, cy - size / 2, size, h, w)

def _crop(item: dict, x: int, y: int, s: int) -> np.ndarray:
    arr = np.load(item["npy"], mmap_mode="r")
    return np.ascontiguousarray(arr[y:y + s, x:x + s])

def _zoom_factor(s: int) -> int:
    return max(1, min(math.ceil(ROI_VIEW / s), 1024 // s if s <= 1024 else 1))

def roi_views(state: dict | None, x, y, size) -> dict:
    """Zoom one region in every image of the run (nearest neighbour, crisp pixels).

    Returns ``{"roi": (x, y, size), "gallery": [(png, caption)], "preview": png with the box,
    "figure": comparison figure png}``; writes into a fresh sub-folder of the run.
    """
    state = _require(state)
    h, w = state["out_hw"]
    x, y, s = clamp_roi(x, y, size, h, w)
    d = Path(state["run_dir"]) / f"roi_{uuid.uuid4().hex[:8]}"
    d.mkdir()
    k = _zoom_factor(s)
    crops, out = {}, []
    for it in state["items"]:
        c = _crop(it, x, y, s)
        crops[it["key"]] = c
        p = save_png(d / f"roi_{it['key']}.png", nearest(c, k))
        out.append((str(p), caption(it)))
    prev = Image.open(state["preview_base"]).convert("RGB")
    sc = state["preview_scale"]
    _box(ImageDraw.Draw(prev), x / sc, y / sc, s / sc, max(2, round(max(prev.size) / 250)))
    prev.save(d / "preview_roi.png", compress_level=3)
    fig = comparison_figure(state, (x, y, s), crops, d / f"{state['name']}_comparison.png")
    state["roi"] = [x, y, s]
    return {"roi": (x, y, s), "gallery": out, "preview": str(d / "preview_roi.png"), "figure": str(fig)}

def comparison_figure(state: dict, roi: tuple[int, int, int], crops: dict | None = None,
                      path: Path | None = None) -> Path:
    """A figure like the seed's (:func:`sr.figure.draw_comparison`) of the run's images."""
    x, y, s = roi
    panels = [Panel(it["label"], Image.open(it["view"]).convert("RGB"),
                    crops[it["key"]] if crops else _crop(it, x, y, s),
                    it.get("psnr"), it.get("ssim"), it.get("time_s")) for it in state["items"]]
    mode = "score against the original" if state["mode"] == MODE_HR else "upscale only, no reference"
    fig = draw_comparison(panels, roi, tuple(state["out_hw"]), f"{state['name']}: 4x super-resolution ({mode})")
    path = Path(path) if path else Path(state["run_dir"]) / f"{state['name']}_comparison.png"
    fig.save(path, compress_level=3)
    return path
