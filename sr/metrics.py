"""PSNR and SSIM (scikit-image) with the project's conventions, written down once.

* ``data_range`` comes from the reference dtype: 255 for uint8, 65535 for uint16, and
  ``max - min`` of the reference for float images.
* Multi-channel images: the metric of each channel, then the mean over channels.
* No border crop unless ``crop`` (pixels on each side) is given.
* SSIM: scikit-image defaults (7x7 uniform window), computed in float64.
* Both images must have the same shape and dtype (the SR output is cropped/produced at the
  reference's size by :func:`sr.degrade.degrade` + a x4 model).
"""
from __future__ import annotations

import numpy as np


def data_range(ref: np.ndarray) -> float:
    if ref.dtype == np.uint8:
        return 255.0
    if ref.dtype == np.uint16:
        return 65535.0
    r = float(np.max(ref) - np.min(ref))
    return r if r > 0 else 1.0


def _planes(a: np.ndarray, crop: int):
    if crop:
        a = a[crop:-crop, crop:-crop]
    return [a] if a.ndim == 2 else [a[:, :, i] for i in range(a.shape[2])]


def _check(ref: np.ndarray, out: np.ndarray) -> None:
    if ref.shape != out.shape:
        raise ValueError(f"shapes differ: reference {ref.shape}, output {out.shape}")


def psnr(ref: np.ndarray, out: np.ndarray, crop: int = 0) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    _check(ref, out)
    dr = data_range(ref)
    vals = []
    for r, o in zip(_planes(ref, crop), _planes(out, crop)):
        r = r.astype(np.float64)
        o = o.astype(np.float64)
        if np.array_equal(r, o):
            vals.append(float("inf"))
        else:
            vals.append(peak_signal_noise_ratio(r, o, data_range=dr))
    return float(np.mean(vals))


def ssim(ref: np.ndarray, out: np.ndarray, crop: int = 0) -> float:
    from skimage.metrics import structural_similarity

    _check(ref, out)
    dr = data_range(ref)
    vals = [structural_similarity(r.astype(np.float64), o.astype(np.float64), data_range=dr)
            for r, o in zip(_planes(ref, crop), _planes(out, crop))]
    return float(np.mean(vals))


def score(ref: np.ndarray, out: np.ndarray, crop: int = 0) -> dict:
    return {"psnr": psnr(ref, out, crop), "ssim": ssim(ref, out, crop)}
