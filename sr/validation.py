"""Validation during training, and the checkpoint it chooses.

* :func:`validate_generator`: every validation field at full size (held out by field id; the
  test split is never seen), scored as a paired difference to bicubic on the same fields (mean
  and 95% CI) plus the high-frequency log-spectral distance to the reference
  (:mod:`sr.spectral`).
* :func:`selection_score`: the recipe's criterion (``psnr`` or ``lsd``); the best-scoring
  validation's generator is kept as ``best.safetensors`` beside the run state and is what
  training exports, never simply the last step. Every validated generator (the EMA where the
  recipe keeps one) is also kept as ``gen_<step>.safetensors`` (:func:`save_snapshot`), so a
  checkpoint can be chosen again afterwards with the blend and other images in the picture
  (``scripts/checkpoint_blend_check.py --snapshot STEP``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from . import data, degrade, metrics, runtime, spectral
from .arch import Generator
from .consistency import project


def _unwrap(m):
    return getattr(m, "module", m)


def _to_dtype(y: np.ndarray, like: np.ndarray) -> np.ndarray:
    top = 255 if like.dtype == np.uint8 else 65535
    return np.clip(np.rint(y * top), 0, top).astype(like.dtype)

def _val_lr(p: data.Plane, crop: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(LR input, HR reference) of a validation plane: the full field, or a centre crop."""
    if not crop:
        return p.lr, p.hr_raw
    hr = data.center_crop(p.hr_raw, crop)
    h0 = (p.hr_raw.shape[0] - hr.shape[0]) // 2 // 4 * 4
    w0 = (p.hr_raw.shape[1] - hr.shape[1]) // 2 // 4 * 4
    return p.lr[h0 // 4:(h0 + hr.shape[0]) // 4, w0 // 4:(w0 + hr.shape[1]) // 4], hr

def _grid_triple(lr: np.ndarray, out: np.ndarray, hr: np.ndarray, size: int = 256):
    """The same centre window (at most ``size`` HR pixels) of LR, output and reference."""
    h, w = hr.shape[:2]
    size = min(size, h, w) // 4 * 4
    y, x = (h - size) // 2 // 4 * 4, (w - size) // 2 // 4 * 4
    return (lr[y // 4:(y + size) // 4, x // 4:(x + size) // 4], out[y:y + size, x:x + size],
            hr[y:y + size, x:x + size])

_BICUBIC_CACHE: dict = {}

def _bicubic_scores(p: data.Plane, crop: int | None) -> tuple[float, float, float]:
    """(PSNR, SSIM, HF spectral distance) of bicubic on a validation plane (cached)."""
    key = (p.name, id(p.hr_raw), crop)
    if key not in _BICUBIC_CACHE:
        _, hr = _val_lr(p, crop)
        lr8 = degrade.degrade(hr)
        out = degrade.upscale_baseline(lr8, "bicubic")
        _BICUBIC_CACHE[key] = (metrics.psnr(hr, out), metrics.ssim(hr, out), spectral.hf_lsd(hr, out))
    return _BICUBIC_CACHE[key]

def _mean_ci(v: list[float]) -> tuple[float, float]:
    a = np.asarray(v, dtype=np.float64)
    if len(a) < 2:
        return float(a.mean()), float("nan")
    return float(a.mean()), float(1.96 * a.std(ddof=1) / np.sqrt(len(a)))

@torch.inference_mode()
def validate_generator(g: torch.nn.Module, planes: list[data.Plane], precision: str,
                       crop: int | None = None, consistency: int = 0) -> dict:
    """Validation of ``g`` on every validation plane (full fields unless ``crop``), followed by
    ``consistency`` back-projection steps onto the input as inference runs it (:mod:`sr.consistency`).

    Scored as a paired difference to bicubic on the same planes (mean and 95% CI half-width),
    plus the high-frequency log-spectral distance to the reference (:mod:`sr.spectral`)."""
    modes = [(m, m.training) for m in g.modules()]  # per layer: frozen BatchNorm stays frozen
    g.eval()
    dev = next(g.parameters()).device
    ps, ss, dps, dss, lsd, outs = [], [], [], [], [], []
    for p in planes:
        lr, hr = _val_lr(p, crop)
        x = torch.from_numpy(np.ascontiguousarray(lr))[None, None].to(dev)
        with runtime.autocast(precision, dev):
            y = project(g(x).float(), x, consistency)[0, 0].cpu().numpy()
        out = _to_dtype(y, hr)
        b_psnr, b_ssim, _ = _bicubic_scores(p, crop)
        ps.append(metrics.psnr(hr, out))
        ss.append(metrics.ssim(hr, out))
        dps.append(ps[-1] - b_psnr)
        dss.append(ss[-1] - b_ssim)
        lsd.append(spectral.hf_lsd(hr, out))
        if len(outs) < 3:
            outs.append(_grid_triple(lr, out, hr))
    for m, mode in modes:
        m.training = mode
    dp, dp_ci = _mean_ci(dps)
    ds, ds_ci = _mean_ci(dss)
    return {"val_psnr": float(np.mean(ps)), "val_ssim": float(np.mean(ss)),
            "val_dpsnr": dp, "val_dpsnr_ci": dp_ci, "val_dssim": ds, "val_dssim_ci": ds_ci,
            "val_lsd": float(np.mean(lsd)), "_images": outs}

def selection_score(select: str, v: dict, min_dpsnr: float = 0.0) -> float:
    """Higher is better. ``psnr``: paired PSNR gain over bicubic. ``lsd``: closest high-frequency
    spectrum to the reference among checks whose PSNR gain is at least ``min_dpsnr`` (others
    rank below, by PSNR gain)."""
    if select == "psnr":
        return v["val_dpsnr"]
    if select == "lsd":
        return -v["val_lsd"] if v["val_dpsnr"] >= min_dpsnr else -1000.0 + v["val_dpsnr"]
    raise ValueError(f"unknown selection criterion {select!r} (psnr | lsd)")

def save_grid(path: Path, triples, n: int = 3) -> None:
    """LR (nearest x4) | SR | HR rows for a few validation crops."""
    from PIL import Image

    rows = []
    for lr, sr_img, hr in triples[:n]:
        top = 255 if hr.dtype == np.uint8 else 65535
        to8 = lambda a: np.clip(a.astype(np.float32) / top * 255, 0, 255).astype(np.uint8)  # noqa: E731
        lr_up = np.repeat(np.repeat(np.clip(lr * 255, 0, 255).astype(np.uint8), 4, 0), 4, 1)
        rows.append(np.concatenate([lr_up, to8(sr_img), to8(hr)], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)

@torch.inference_mode()
def validate_featurenet(net: torch.nn.Module, batch) -> dict:
    was_training = net.training
    net.eval()
    _, hr, y = batch
    logits = net(torch.from_numpy(hr).to(next(net.parameters()).device))
    acc = float((logits.argmax(1).cpu().numpy() == y).mean())
    net.train(was_training)
    return {"val_acc": acc}

_SELECTION_TEXT = {
    "psnr": "highest paired PSNR gain over bicubic on the validation fields",
    "lsd": "closest high-frequency spectrum to the reference (log-spectral distance) among "
           "validation checks with a PSNR gain over bicubic",
}

BEST_WEIGHTS = "best.safetensors"


def snapshot_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / f"gen_{int(step):06d}.safetensors"


def _save_weights(path: Path, net: torch.nn.Module) -> None:
    """``net``'s weights as safetensors at ``path``, written atomically (a temporary file, then a rename)."""
    from safetensors.torch import save_file

    sd = {k: v.detach().cpu().contiguous().clone() for k, v in _unwrap(net).state_dict().items()}
    save_file(sd, str(path) + ".tmp")
    os.replace(str(path) + ".tmp", path)


def save_snapshot(run_dir: Path, net: torch.nn.Module, step: int) -> Path:
    """The validated generator's weights at ``step``."""
    path = snapshot_path(run_dir, step)
    _save_weights(path, net)
    return path


def _read_best(run_dir: Path) -> dict | None:
    f = run_dir / "best.json"
    if f.is_file() and (run_dir / BEST_WEIGHTS).is_file():
        return json.loads(f.read_text(encoding="utf-8"))
    return None

def _write_best(run_dir: Path, net: torch.nn.Module, best: dict) -> None:
    _save_weights(run_dir / BEST_WEIGHTS, net)
    (run_dir / "best.json.tmp").write_text(json.dumps(best, indent=1), encoding="utf-8")
    os.replace(run_dir / "best.json.tmp", run_dir / "best.json")

def score_generator(net: torch.nn.Module, planes: list, precision: str, crop: int | None, consistency: int,
                    select: str, min_dpsnr: float = 0.0) -> tuple[dict, float, list]:
    """One validation check: the rounded row, the criterion's score and the grid images."""
    v = validate_generator(net, planes, precision, crop, consistency)
    images = v.pop("_images")
    return {k: round(x, 4) for k, x in v.items()}, selection_score(select, v, min_dpsnr), images


def rescore_best(run_dir: Path, entry, best: dict, planes: list, precision: str, crop: int | None,
                 consistency: int, select: str, min_dpsnr: float = 0.0) -> dict:
    """``best`` validated again under the current protocol (``consistency`` back-projection
    steps), when it was scored under another one: a run whose recipe starts validating as
    inference runs compares its later checks with the kept one on the same footing."""
    if int(best.get("consistency", 0)) == int(consistency):
        return best
    net = _load_best(run_dir, entry)
    row, score, _ = score_generator(net, planes, precision, crop, consistency, select, min_dpsnr)
    new = {**best, **row, "score": score, "consistency": int(consistency),
           "rescored_from": {k: best[k] for k in ("score", "val_dpsnr", "val_lsd") if k in best}}
    _write_best(run_dir, net, new)
    return new


def _load_best(run_dir: Path, entry) -> Generator:
    from safetensors.torch import load_model

    g = Generator(**entry.arch)
    load_model(g, str(run_dir / BEST_WEIGHTS), strict=True)
    return g.eval()
