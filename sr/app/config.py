"""The app's constants and limits (values from :mod:`sr.settings`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .. import degrade as _degrade
from ..settings import settings
from ..tiling import DEFAULT_TILE  # noqa: F401 (the app's default tile size)
from .errors import AppError

REPO_DIR = Path(__file__).resolve().parents[2]
STATE_TTL_S = 6 * 3600  # per-session results live this long after their last update
MODE_HR, MODE_LR = "hr", "lr"


SCALE = _degrade.SCALE

EXAMPLES_DIR = REPO_DIR / "examples"

MODE_CHOICES = [
    ("My image is high-resolution: downscale it 4x, upscale it back and score each result "
     "against it (PSNR/SSIM)", MODE_HR),
    ("My image is low-resolution: just upscale it 4x (no reference, so no PSNR/SSIM)", MODE_LR),
]

NO_METRICS_WHY = ("No PSNR/SSIM in low-resolution mode: these metrics compare a result with the "
                  "true high-resolution image, and there is none for an image that is already the "
                  "low-resolution input. To score the models, use the high-resolution mode: the app "
                  "then makes the low-resolution input itself (bicubic 4x downscale) and compares "
                  "each result with your original.")

ROI_VIEW = 256   # region-of-interest crops are shown at about this size, nearest neighbour


TABLE_HEADERS = ["model", "id", "PSNR (dB)", "SSIM", "time (s)", "status", "cells PSNR (dB)", "cells SSIM",
                 "HF distance (dB)", "checkerboard"]
METRICS_NOTE = ("PSNR/SSIM against your original: data range 255 for 8-bit images, the reference's own range "
                "(max - min) for 16-bit and float; SSIM with a 7x7 uniform window; mean over channels. "
                "Cells: only the foreground (Otsu on the smoothed reference). HF distance: how far the "
                "result's fine-detail spectrum is from the reference's (dB, lower is closer; bicubic leaves it empty). "
                "Checkerboard (no reference needed): how much fine detail repeats with the 4x4 pixel grid of the "
                "upscaling, in 8-bit grey levels (camera images and bicubic about 0.02-0.04; above ~0.3 it shows "
                "when zoomed in).")

ZOO_HEADERS = ["id", "model", "kind", "status", "architecture", "training", "test PSNR / SSIM",
               "Hub repo @ revision"]

LOSSLESS_NOTE = "TIFF keeps 16-bit/float data and channel stacks; 8-bit grey/RGB results are PNG"

Progress = Callable[[float, str], None]

def server_settings(env: dict | None = None) -> dict:
    """``server_name``/``server_port`` for ``launch``: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT,
    else 127.0.0.1:7860 locally and 0.0.0.0 on a Hugging Face Space (``SPACE_ID`` set)."""
    env = os.environ if env is None else env
    name = env.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if env.get("SPACE_ID") else "127.0.0.1")
    port = env.get("GRADIO_SERVER_PORT") or "7860"
    try:
        port = int(port)
    except ValueError:
        raise AppError(f"GRADIO_SERVER_PORT={port!r} is not a port number") from None
    return {"server_name": name, "server_port": port}

def max_file_size() -> str:
    """Upload limit (Gradio syntax, e.g. ``"64mb"``), from ``SR_APP_MAX_FILE_SIZE``."""
    return settings().app_max_file_size

def max_output_pixels() -> int:
    """Largest result (H*W, per channel) the app computes, from ``SR_APP_MAX_OUTPUT_PIXELS``."""
    return settings().app_max_output_pixels

def concurrency_limit() -> int:
    """How many inference jobs run at once (``SR_APP_CONCURRENCY``, default 1: torch already
    uses every core for one job)."""
    return max(1, settings().app_concurrency)
