"""The Python API: ``list_models``, ``load`` and ``upscale`` (re-exported by ``sr``)."""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np
import torch

from . import degrade, imio, zoo
from .tiling import DEFAULT_TILE, run_tiled

list_models = zoo.list_models
load = zoo.load

_fast_lock = threading.Lock()
_fast: dict[tuple[str, str], torch.nn.Module] = {}


def fast_model(model_id: str, precision: str | None = None) -> torch.nn.Module:
    """Shared, read-only fast-path copy of a zoo generator (BN folded, channels_last)."""
    from .runtime import optimize_for_inference, resolve_precision

    precision = resolve_precision(precision)
    key = (model_id, precision)
    with _fast_lock:
        if key not in _fast:
            _fast[key] = optimize_for_inference(zoo.shared(model_id), precision)
        return _fast[key]


def upscale(
    image: np.ndarray,
    model: str | torch.nn.Module,
    tile: int | None = DEFAULT_TILE,
    overlap: int | None = None,
    precision: str | None = None,
    normalize: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Super-resolve ``image`` 4x: same dtype and layout out as in.

    ``image``: numpy (H,W) grey, (H,W,C) colour or channel stack; uint8, uint16 or float.
    ``model``: a zoo id (``sr.list_models()``) or a generator module. One-channel models run
    every channel independently (as one batch) and the channels are recombined.
    """
    a = imio.check_array(image)
    if isinstance(model, str):
        entry = zoo.get_entry(model)
        if entry.kind == "baseline":
            out = degrade.upscale_baseline(a, entry.method)
            if progress is not None:
                progress(1, 1)
            return out
        if entry.kind != "generator":
            raise zoo.ZooError(f"model {model!r} is a {entry.kind}, not a super-resolution model")
        net = fast_model(model, precision)
        precision = net.fast_precision
    else:
        net = model
    cfg = getattr(net, "config", {})
    in_c = cfg.get("in_channels", 1)
    scale = cfg.get("scale", 4)
    x, norm = imio.normalize(a, normalize)  # (C,H,W)
    c = x.shape[0]
    if in_c == 1:
        batch = x[:, None]  # (C,1,H,W): each channel on its own
    elif in_c == c:
        batch = x[None]
    else:
        raise imio.ImageError(f"the model takes {in_c} channels; the image has {c}")
    y = run_tiled(net, batch, scale=scale, tile=tile, overlap=overlap, precision=precision,
                  progress=progress)
    y = y[:, 0] if in_c == 1 else y[0]
    return imio.denormalize(y, norm, a.ndim)
