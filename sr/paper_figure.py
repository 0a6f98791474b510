"""The seed project's comparison figure for one HR image (``sr evaluate --figure``): the LR
input, each method and the reference side by side, per region box, with PSNR/SSIM and time."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import degrade, imio, metrics, zoo
from .evaluate import parse_spec


def paper_figure(image: str | Path, models: list[str], rois: list[tuple[int, int, int]], out: Path) -> Path:
    """The seed-style figure for one HR test image: one panel row per ROI box, every method
    side by side (LR input, each model, HR), all shown with one intensity stretch."""
    from PIL import Image

    from . import api
    from .display import Stretch, nearest
    from .figure import Panel, draw_comparison, stack_rows

    hr, _ = imio.read_image(image)
    hr = degrade.crop_to_multiple(hr)
    lr = degrade.degrade(hr)
    stretch = Stretch.of(hr)
    shown = [("LR input (4x bicubic downscale; nearest x4)", nearest(stretch.apply(lr), 4), None)]
    for m in models:
        mid, blend, k = parse_spec(m)
        t = time.perf_counter()
        sr_img = api.upscale(lr, mid, blend=blend, consistency=k)
        dt = time.perf_counter() - t
        s = metrics.score(hr, sr_img)
        shown.append((zoo.get_entry(mid).title + (f" (blend {blend:g})" if blend is not None else ""),
                      stretch.apply(sr_img), (s["psnr"], s["ssim"], dt)))
    shown.append(("Reference (original HR)", stretch.apply(hr), None))
    rows = []
    for x, y, size in rois:
        panels = [Panel(label, Image.fromarray(u8).convert("RGB"), np.ascontiguousarray(u8[y:y + size, x:x + size]),
                        *(sc if sc else (None, None, None))) for label, u8, sc in shown]
        rows.append(draw_comparison(panels, (x, y, size), hr.shape[:2],
                                    f"{Path(image).name}: 4x super-resolution (score against the original)"))
    out.parent.mkdir(parents=True, exist_ok=True)
    stack_rows(rows).save(out)
    return out
