"""The Python API: ``list_models``, ``load`` and ``upscale`` (re-exported by ``sr``)."""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Callable

import numpy as np
import torch

from . import degrade, imio, zoo
from .settings import settings
from .tiling import DEFAULT_TILE, run_tiled

list_models = zoo.list_models


def load(model_id: str, blend: float | None = None) -> torch.nn.Module:
    """A fresh PyTorch module of a zoo model (eval mode, verified weights, ``.config`` and
    ``.zoo_entry``): the model the id names, so ``upscale(x, load(id))`` computes what
    ``upscale(x, id)`` does, as fast. For a GAN that is its default blend with its pixel-loss
    parent (:mod:`sr.blend`); ``blend=1`` gives the GAN's own weights (``sr.zoo.load``)."""
    a = resolve_blend(model_id, blend)
    if a is None or a == 1.0:
        return zoo.load(model_id)
    from .blend import interpolate, parent_of

    return interpolate(zoo.load(parent_of(model_id)), zoo.load(model_id), a)


def resolve_consistency(model_id: str | None, consistency: int | None) -> int:
    """Back-projection steps a call uses (:mod:`sr.consistency`): the given number, else the
    model's validated default (``card.lr_consistency``; 0 for models without one)."""
    from .consistency import check_iterations

    if consistency is not None:
        return check_iterations(consistency)
    if model_id is None:
        return 0
    entry = zoo.get_entry(model_id)
    return check_iterations((entry.card or {}).get("lr_consistency") or 0)


_fast_lock = threading.Lock()
_fast: "OrderedDict[tuple, torch.nn.Module]" = OrderedDict()
FAST_CACHE_SIZE = 32


def resolve_blend(model_id: str, blend: float | None) -> float | None:
    """The blend a call uses: ``None`` for models without one, else the given value or the
    model's validated default (see :mod:`sr.blend`)."""
    from . import blend as _blend

    if blend is None:
        return _blend.default_blend(model_id)
    if zoo.get_entry(model_id).blend_parent is None:
        raise _blend.BlendError(f"{model_id!r} has no blend (only GANs fine-tuned from a pixel-loss model do)")
    return _blend.quantize(blend)


def fast_model(model_id: str, precision: str | None = None, blend: float | None = None,
               device: str | None = None, consistency: int | None = None) -> torch.nn.Module:
    """Shared, read-only fast-path copy of a zoo generator (BN folded, channels_last), blended
    with its pixel-loss parent when ``blend`` (or the model's default) is below 1, on
    ``device`` (default ``SR_DEVICE``: CUDA when available; see :mod:`sr.device`), followed by
    ``consistency`` back-projection steps onto the input (default: the model's; see
    :mod:`sr.consistency`).

    Blends other than 0, 1 and the model's default run on the torch backend: building one
    takes milliseconds, where an OpenVINO conversion takes seconds."""
    from . import blend as _blend
    from .device import resolve_device
    from .runtime import optimize_for_inference, resolve_precision

    device = resolve_device(device)
    requested = precision or settings().precision
    precision = "auto" if requested == "auto" else resolve_precision(requested, device)
    a = resolve_blend(model_id, blend)
    k = resolve_consistency(model_id, consistency)
    key = (model_id, precision, a, device, k)
    with _fast_lock:
        if key in _fast:
            _fast.move_to_end(key)
            return _fast[key]
    if k:
        from .consistency import Consistent

        fast = Consistent(fast_model(model_id, precision, blend, device, consistency=0), k)
    elif a is None or a == 1.0:
        fast = optimize_for_inference(zoo.shared(model_id), precision, device=device)
    else:
        backend = None if a in (0.0, _blend.default_blend(model_id)) else "torch"
        fast = optimize_for_inference(_blend.blended(model_id, a), precision, backend=backend, device=device)
    with _fast_lock:
        _fast[key] = fast
        while len(_fast) > FAST_CACHE_SIZE:
            _fast.popitem(last=False)
    return fast


_module_lock = threading.Lock()
_module_fast: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def fast_module(module: torch.nn.Module, precision: str | None = None,
                consistency: int | None = None) -> torch.nn.Module:
    """The fast path of a plain generator module (what ``sr.load`` returns), built once per
    module and precision and rebuilt when its weights change (checked by each tensor's storage
    and in-place version counter, so fine-tuning it in place is seen); other modules (already
    fast ones, custom networks) are returned as they are. ``consistency`` back-projection steps
    follow (default: those of the zoo model a plain module was loaded as; none for a fast module,
    whose own steps, if any, are kept)."""
    from .consistency import Consistent

    if isinstance(module, Consistent):  # a fast path with its steps: as it is, or with the steps asked
        if consistency is None:
            return module
        k = resolve_consistency(None, consistency)
        return Consistent(module.net, k) if k else module.net
    plain = not getattr(module, "self_casting", False)  # an already fast module runs only the steps asked
    entry = getattr(module, "zoo_entry", None) if plain else None
    k = resolve_consistency(getattr(entry, "id", None), consistency)
    if k:
        return Consistent(fast_module(module, precision, consistency=0), k)
    from .device import module_device
    from .runtime import _is_generator, optimize_for_inference

    if getattr(module, "self_casting", False) or not _is_generator(module):
        return module
    dev = module_device(module)
    requested = precision or settings().precision
    stamp = tuple((t.data_ptr(), t._version) for t in module.state_dict().values())
    key = (requested, str(dev))
    with _module_lock:
        cached = _module_fast.get(module, {}).get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    fast = optimize_for_inference(module, requested, device=str(dev))
    with _module_lock:
        _module_fast.setdefault(module, {})[key] = (stamp, fast)
    return fast


def upscale(
    image: np.ndarray,
    model: str | torch.nn.Module,
    tile: int | None = DEFAULT_TILE,
    overlap: int | None = None,
    precision: str | None = None,
    normalize: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    blend: float | None = None,
    device: str | None = None,
    consistency: int | None = None,
) -> np.ndarray:
    """Super-resolve ``image`` 4x: same dtype and layout out as in.

    ``image``: numpy (H,W) grey, (H,W,C) colour or channel stack; uint8, uint16 or float.
    ``model``: a zoo id (``sr.list_models()``) or a generator module. One-channel models run
    every channel independently (as one batch) and the channels are recombined.
    ``blend``: for GANs, the fidelity-detail blend with their pixel-loss parent (0 = parent,
    1 = GAN; default: the model's validated default, see :mod:`sr.blend`).
    ``consistency``: back-projection steps onto the input after the generator (0 = off; default:
    the model's validated default, on for the GANs; see :mod:`sr.consistency`).
    ``device``: ``auto``, ``cpu`` or ``cuda`` (default ``SR_DEVICE``; see :mod:`sr.device`);
    the result is the same numpy array either way. A module runs where its weights are; a
    plain zoo generator module (``sr.load(id)``) runs the same fast path as its id
    (:func:`fast_module`), so ``upscale(x, sr.load(id))`` is as fast as ``upscale(x, id)``.
    """
    a = imio.check_array(image)
    if isinstance(model, str):
        entry = zoo.get_entry(model)
        if entry.kind == "baseline":
            if blend is not None:
                from .blend import BlendError

                raise BlendError(f"{model!r} has no blend (only GANs fine-tuned from a pixel-loss model do)")
            if consistency:
                raise ValueError(f"{model!r} is a fixed interpolation: consistency is for generators")
            out = degrade.upscale_baseline(a, entry.method)
            if progress is not None:
                progress(1, 1)
            return out
        if entry.kind != "generator":
            raise zoo.ZooError(f"model {model!r} is a {entry.kind}, not a super-resolution model")
        net = fast_model(model, precision, blend, device, consistency)
        precision = net.fast_precision
    else:
        if blend is not None:
            raise ValueError("blend needs a zoo id, not a module (use sr.blend.interpolate for modules)")
        if device is not None:
            from .device import module_device, resolve_device

            want, have = torch.device(resolve_device(device)), module_device(model)
            if want.type != have.type or (want.index is not None and want != have):
                raise ValueError(f"the module is on {have}, not {want}: move it (.to) or pass a zoo id")
        net = fast_module(model, precision, consistency)
        precision = getattr(net, "fast_precision", precision)
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
    # each tile goes back to the image's dtype and range as it is written (no float32 full-size copy)
    y = run_tiled(net, batch, scale=scale, tile=tile, overlap=overlap, precision=precision,
                  progress=progress, out_dtype=imio.output_dtype(norm),
                  finish=lambda t: imio.denormalize_values(t, norm, channel_axis=0 if in_c == 1 else 1))
    y = y[:, 0] if in_c == 1 else y[0]
    return np.ascontiguousarray(imio.from_channels(y, a.ndim))
