"""Fidelity-detail blend: exact weight interpolation of a GAN with its pixel-loss parent.

ESRGAN's network interpolation: every parameter (and batch-norm statistic) of the blended
generator is ``(1 - a) * parent + a * gan``; ``a = 1`` is the GAN, ``a = 0`` the PSNR-oriented
model it was fine-tuned from (``recipe.init`` in the registry). Both must have the same
architecture, which fine-tuning guarantees; the GAN's card pins the parent's sha256
(``init_sha256``), so a retrained parent is never blended with a GAN that did not start from it.

Each GAN's default ``a`` (``card.default_blend``) is chosen on validation images by
``python -m sr blend choose MODEL --data DIR [--other DIR ...] [--consistency N]``: the largest
value whose paired PSNR and SSIM gains over bicubic are above zero at the lower end of their 95%
intervals on the validation fields of ``DIR`` (HPA), above zero on average on the ``--other``
folders (fluorescence images from other sources that no evaluation uses), and whose PSNR gain
keeps at least :data:`KEEP_PSNR_SHARE` of the parent's (``--keep-psnr-share``: a fidelity budget,
so the default adds GAN detail where it costs little fidelity; more is one slider move away), with
the model's back-projection steps (:mod:`sr.consistency`; ``--consistency`` records a new number).
"""
from __future__ import annotations

import copy
import threading
from collections import OrderedDict

import torch

from . import zoo

KEEP_PSNR_SHARE = 0.8  # the default keeps at least this share of the parent's validation PSNR gain over bicubic
STEP = 0.05  # blend values are rounded to this grid (so slider positions share cached models)


class BlendError(zoo.ZooError):
    """A blend was asked of a model that has none, or with a value out of range."""


def quantize(alpha: float) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise BlendError(f"blend must be a number between 0 and 1, got {alpha!r}") from None
    if not 0.0 <= a <= 1.0:
        raise BlendError(f"blend must be between 0 (pixel-loss parent) and 1 (the GAN), got {a:g}")
    return round(round(a / STEP) * STEP, 4)


def parent_of(model_id: str) -> str:
    """The pixel-loss model a GAN was fine-tuned from; raises if it cannot be blended."""
    entry = zoo.get_entry(model_id)
    parent = entry.blend_parent
    if parent is None:
        raise BlendError(f"{model_id!r} is not a GAN fine-tuned from a pixel-loss model: it has no blend")
    pinned = (entry.card or {}).get("init_sha256")
    actual = zoo.get_entry(parent).sha256
    if pinned and actual != pinned:
        raise BlendError(f"{model_id!r} was fine-tuned from another version of {parent!r} "
                         f"(sha256 {pinned[:12]}, now {str(actual)[:12]}): retrain it to blend")
    return parent


def can_blend(model_id: str) -> bool:
    try:
        parent = parent_of(model_id)
    except zoo.ZooError:
        return False
    return zoo.get_entry(model_id).available and zoo.get_entry(parent).available


def default_blend(model_id: str) -> float | None:
    """The model's validated default (None for models without a blend: use them as they are)."""
    entry = zoo.get_entry(model_id)
    if entry.blend_parent is None:
        return None
    value = (entry.card or {}).get("default_blend")
    return 1.0 if value is None else float(value)


def interpolate(parent: torch.nn.Module, gan: torch.nn.Module, alpha: float) -> torch.nn.Module:
    """A new module with every floating-point tensor blended; integer buffers from the GAN."""
    sp, sg = parent.state_dict(), gan.state_dict()
    if sp.keys() != sg.keys():
        raise BlendError("the GAN and its parent have different layers: they cannot be blended")
    out = copy.deepcopy(gan)
    blended = {}
    for k, g in sg.items():
        p = sp[k]
        if p.shape != g.shape:
            raise BlendError(f"layer {k}: shapes differ ({tuple(p.shape)} vs {tuple(g.shape)})")
        blended[k] = torch.lerp(p.float(), g.float(), alpha).to(g.dtype) if g.is_floating_point() else g.clone()
    out.load_state_dict(blended, strict=True)
    return out.eval().requires_grad_(False)


_lock = threading.Lock()
_cache: "OrderedDict[tuple[str, float], torch.nn.Module]" = OrderedDict()
CACHE_SIZE = 24


def blended(model_id: str, alpha: float) -> torch.nn.Module:
    """The blended generator (shared, read-only; cached per value)."""
    a = quantize(alpha)
    if a == 1.0:
        return zoo.shared(model_id)
    parent = parent_of(model_id)
    if a == 0.0:
        return zoo.shared(parent)
    key = (model_id, a)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    net = interpolate(zoo.shared(parent), zoo.shared(model_id), a)
    with _lock:
        _cache[key] = net
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return net


OTHER_CROP = 512  # --other images: centre crops of at most this size (some are 1392x1040)


def _pairs(planes, crop: int | None = None) -> list[tuple]:
    from . import degrade, metrics

    out = []
    for plane in planes:
        hr = plane.hr_raw
        if crop:
            h, w = hr.shape[:2]
            ch, cw = min(h, crop) // 4 * 4, min(w, crop) // 4 * 4
            y, x = (h - ch) // 2, (w - cw) // 2
            hr = hr[y:y + ch, x:x + cw]
        lr = degrade.degrade(hr)
        b = degrade.upscale_baseline(lr, "bicubic")
        out.append((hr, lr, metrics.psnr(hr, b), metrics.ssim(hr, b)))
    return out


def _score(model, pairs: list[tuple], **upscale_kw) -> dict:
    """Paired gains over bicubic of ``sr.upscale(lr, model, **upscale_kw)`` on ``pairs``."""
    import numpy as np

    from . import api, metrics, spectral
    from .validation import _mean_ci

    dp, ds, lsd = [], [], []
    for hr, lr, bp, bs in pairs:
        out = api.upscale(lr, model, **upscale_kw)
        dp.append(metrics.psnr(hr, out) - bp)
        ds.append(metrics.ssim(hr, out) - bs)
        lsd.append(spectral.hf_lsd(hr, out))
    (mp, cp), (ms, cs) = _mean_ci(dp), _mean_ci(ds)
    return {"dpsnr": round(mp, 4), "dpsnr_ci": round(cp, 4), "dssim": round(ms, 5), "dssim_ci": round(cs, 5),
            "lsd": round(float(np.mean(lsd)), 3), "fields": len(pairs)}


def validation_curve(model_id: str, data_dir: str, grid=None, val_fraction: float = 0.1,
                     other: tuple[str, ...] = (), consistency: int | None = None) -> list[dict]:
    """Paired PSNR/SSIM gain over bicubic and HF spectral distance of each blend value, on the
    validation fields of ``data_dir`` (held out from training by field id) and, under
    ``"other"``, pooled over every image of the ``other`` folders (centre crops of
    :data:`OTHER_CROP`)."""
    import numpy as np

    from . import data

    grid = [round(x, 2) for x in np.linspace(0, 1, 11)] if grid is None else grid
    _, val = data.split(data.scan(data_dir), val_fraction)
    if not val:
        raise BlendError(f"no validation fields in {data_dir}")
    refs = _pairs(data.load_planes(val))
    extra = _pairs(data.load_planes([s for d in other for s in data.scan(d)]), OTHER_CROP) if other else []
    rows = []
    for a in grid:
        row = {"blend": a, **_score(model_id, refs, blend=a, consistency=consistency)}
        if extra:
            row["other"] = _score(model_id, extra, blend=a, consistency=consistency)
        rows.append(row)
    return rows


def choose(rows: list[dict], keep: float = KEEP_PSNR_SHARE) -> float:
    """The largest blend whose paired PSNR and SSIM gains over bicubic are both above zero at
    the lower end of their 95% intervals, (where measured) above zero on average on the other
    folders, and whose PSNR gain is at least ``keep`` times the parent's (the blend-0 row; 0
    turns this off). 0 if none: the parent."""
    parent = next((r["dpsnr"] for r in rows if r["blend"] == 0), None)
    floor = keep * parent if keep and parent is not None and parent > 0 else float("-inf")

    def safe(r):
        o = r.get("other")
        return (r["dpsnr"] - r["dpsnr_ci"] > 0 and r["dssim"] - r["dssim_ci"] > 0 and r["dpsnr"] >= floor
                and (o is None or (o["dpsnr"] > 0 and o["dssim"] > 0)))

    ok = [r["blend"] for r in rows if safe(r)]
    return max(ok) if ok else 0.0


def choose_cli(args) -> int:
    import json
    from pathlib import Path

    from .api import resolve_consistency

    other = tuple(args.other or ())
    if args.from_json:  # record a curve measured before (the JSON this command printed)
        saved = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        if saved.get("model") != args.model:
            raise BlendError(f"{args.from_json} is the curve of {saved.get('model')!r}, not {args.model!r}")
        rows, k, other = saved["curve"], saved["lr_consistency"], tuple(saved.get("other", ()))
    else:
        if not args.data:
            raise BlendError("--data (the training folder) is needed to measure the curve")
        k = resolve_consistency(args.model, args.consistency)
        rows = validation_curve(args.model, args.data, other=other, consistency=k)
    keep = getattr(args, "keep_psnr_share", None)
    keep = KEEP_PSNR_SHARE if keep is None else float(keep)
    if not 0.0 <= keep <= 1.0:
        raise BlendError(f"--keep-psnr-share must be between 0 and 1, got {keep:g}")
    a = choose(rows, keep)
    from .tables import command_line

    print(json.dumps({"model": args.model, "command": saved.get("command") if args.from_json else command_line(),
                      "default_blend": a, "lr_consistency": k, "keep_psnr_share": keep, "other": list(other),
                      "curve": rows}, indent=1))
    if args.write:
        record(args.model, a, k, rows, other, keep)
    return 0


def record(model_id: str, a: float, k: int, rows: list[dict], other: tuple[str, ...] = (),
           keep: float = 0.0) -> None:
    """Store a GAN's default blend, back-projection steps and the curve in its card."""
    from .publish import write_card

    entry = zoo.get_entry(model_id)
    rule = ("largest blend whose paired PSNR and SSIM gains over bicubic on the validation fields are "
            "above zero (lower end of the 95% interval)")
    if other:
        rule += (" and above zero on average on other fluorescence images (" + ", ".join(other)
                 + f"; centre crops of {OTHER_CROP} px)")
    if keep:
        rule += f", keeping at least {keep:.0%} of the pixel-loss parent's validation PSNR gain"
    card = {**entry.card, "default_blend": a, "blend_curve": rows, "lr_consistency": k,
            "blend_selection": rule + (f", with {k} back-projection steps onto the input" if k else "")}
    zoo.update_entry(model_id, card=card)
    write_card(model_id)
