"""The app on a GPU, and on a Hugging Face ZeroGPU Space.

* A machine with a GPU: models are built on CUDA at start (``SR_DEVICE=auto``, see
  :mod:`sr.device`) and every handler runs there; nothing else changes.
* ZeroGPU (``SPACES_ZERO_GPU`` set by the platform): the inference handlers (compare,
  single-model upscale, video, the MOS pool build) are wrapped with ``@spaces.GPU`` and a
  *duration sized to the request* (:func:`compare_seconds` ...: seconds estimated from the
  image size and the number of learned models, capped at :data:`MAX_SECONDS`); a GPU is lent for
  each call. The models are built and moved to CUDA once at start, in the main process,
  before the first request (:func:`sr.app.models.warm_up`). Webcam frames stay on the CPU there:
  a GPU lease per frame would cost more than the frame.
* CPU Basic and local runs: :func:`on_gpu` returns the handler itself: the app behaves exactly
  as without this module, and ``spaces`` is not even imported.

The estimates are deliberately generous (a call that outlives its duration is aborted, and a
shorter duration only moves a request up the queue): about a second per million LR pixels per
learned model and channel on the GPU, plus a fixed allowance for the first CUDA call of a
fresh worker and the metrics computed on the CPU.
"""
from __future__ import annotations

import logging
from typing import Callable

from ..device import on_zerogpu

log = logging.getLogger(__name__)

MIN_SECONDS = 15
MAX_SECONDS = 120  # ZeroGPU's limit for most visitors; say where to raise it in the README
FIXED_SECONDS = 10.0  # worker start, first CUDA call, CPU metrics and PNG encoding
SECONDS_PER_MPIX = 1.0  # per model and channel, LR megapixels


def clamp(seconds: float) -> int:
    return int(min(MAX_SECONDS, max(MIN_SECONDS, round(seconds))))


def on_gpu(duration: Callable[..., int]):
    """``@spaces.GPU(duration=duration)`` on ZeroGPU; the handler unchanged anywhere else."""

    def wrap(fn):
        if not on_zerogpu():
            return fn
        import spaces

        return spaces.GPU(duration=duration)(fn)

    return wrap


def _image_size(path) -> tuple[int, int, int]:
    """(width, height, channels) from the file header (no decoding); a guess when unreadable."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.size[0], im.size[1], max(1, len(im.getbands()))
    except Exception:  # noqa: BLE001 - TIFF stacks PIL cannot read etc.: the caller's limits apply
        return 1024, 1024, 3


def _learned(model_ids) -> int:
    from .. import zoo

    n = 0
    for m in model_ids or ():
        try:
            n += zoo.get_entry(m).learned
        except Exception:  # noqa: BLE001 - an unknown id is refused by the handler itself
            continue
    return n


def _seconds(lr_pixels: float, channels: int, models: int) -> int:
    return clamp(FIXED_SECONDS + SECONDS_PER_MPIX * lr_pixels / 1e6 * channels * models)


def compare_seconds(file=None, mode=None, models=None, *args, **kwargs) -> int:
    """Duration of one Compare call: every learned model on the (downscaled, in mode 'hr') image."""
    from . import config as cfg

    w, h, c = _image_size(file) if file else (512, 512, 1)
    lr = w * h if mode == cfg.MODE_LR else w * h / cfg.SCALE ** 2
    return _seconds(lr, c, _learned(models))


def upscale_seconds(file=None, model=None, *args, **kwargs) -> int:
    """Duration of one single-model upscale (the image is the LR input)."""
    w, h, c = _image_size(file) if file else (512, 512, 1)
    return _seconds(w * h, c, _learned([model]) if model else 1)


def video_seconds(path=None, model_id=None, *args, **kwargs) -> int:
    """Duration of one video: every frame (3 colour channels) through the model."""
    from .. import video

    try:
        info = video.probe(path)  # cached by the check that ran before this handler
        pixels = info["width"] * info["height"] * max(1, info["frames"])
    except Exception:  # noqa: BLE001 - the handler refuses unreadable videos itself
        pixels = video.max_frame_pixels() * video.max_frames()
    return clamp(_seconds(pixels, 3, 1) + 10)  # decoding and H.264 encoding run beside the GPU


def pool_seconds(cfg=None, *args, **kwargs) -> int:
    """Duration of building the MOS pool: each HR crop through each learned method."""
    from pathlib import Path

    try:
        n = sum(1 for p in Path(cfg.hr_dir).iterdir() if p.is_file())
        crop, methods = cfg.crop, list(cfg.methods)
    except Exception:  # noqa: BLE001
        n, crop, methods = 50, 256, []
    return clamp(_seconds(n * (crop / 4) ** 2, 1, max(1, _learned(methods))) + n // 2)
