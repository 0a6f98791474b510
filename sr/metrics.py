"""PSNR and SSIM (scikit-image) with the project's conventions, written down once.

* **Data range** (:data:`RANGE_NOTE`): 255 for 8-bit references (comparable with SR papers);
  for 16-bit and float references the reference's own range, ``max - min`` of each channel.
  Microscopy 16-bit images use a small part of 0..65535, so a fixed 65535 gives every method
  80+ dB and no ranking; the reference's range scores the error against the signal that is
  there. (CSBDeep's alternative, percentile normalisation plus an affine fit of the
  prediction, forgives a wrong intensity scale; we do not want to forgive it.)
* Multi-channel images: the metric of each channel (:func:`per_channel`), then their mean.
* No border crop unless ``crop`` (pixels on each side) is given.
* SSIM: ``window="uniform"`` (scikit-image's default 7x7 window, what our tables use) or
  ``"gaussian"`` (sigma 1.5, 11x11, as Wang et al. and most SR papers), in float64.
* Foreground (:func:`foreground_mask`): cells only, Otsu's threshold on the Gaussian-smoothed
  reference (sigma 2), dilated by 4 px. Dark background is most of a fluorescence field and
  adds several dB to every method's global PSNR; the foreground columns score the cells.
* Both images must have the same shape and dtype.
"""
from __future__ import annotations

import numpy as np

RANGE_NOTE = "data range 255 for 8-bit, the reference's own range (max - min) for 16-bit/float"
WINDOWS = ("uniform", "gaussian")


def data_range(ref: np.ndarray) -> float:
    """The data range of one reference plane (see the module doc)."""
    if ref.dtype == np.uint8:
        return 255.0
    r = float(np.max(ref)) - float(np.min(ref))
    return r if r > 0 else 1.0


def _planes(a: np.ndarray, crop: int):
    if crop:
        a = a[crop:-crop, crop:-crop]
    return [a] if a.ndim == 2 else [a[:, :, i] for i in range(a.shape[2])]


def _check(ref: np.ndarray, out: np.ndarray) -> None:
    if ref.shape != out.shape:
        raise ValueError(f"shapes differ: reference {ref.shape}, output {out.shape}")


def _psnr_plane(r: np.ndarray, o: np.ndarray, mask: np.ndarray | None = None) -> float:
    dr = data_range(r)
    r, o = r.astype(np.float64), o.astype(np.float64)
    d = (r - o) ** 2
    mse = float(d[mask].mean()) if mask is not None and mask.any() else float(d.mean())
    return float("inf") if mse == 0 else float(10 * np.log10(dr * dr / mse))


def _ssim_map(r: np.ndarray, o: np.ndarray, window: str) -> np.ndarray:
    from skimage.metrics import structural_similarity

    if window not in WINDOWS:
        raise ValueError(f"SSIM window {window!r} is not one of {WINDOWS}")
    kw = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False} if window == "gaussian" else {}
    _, smap = structural_similarity(r.astype(np.float64), o.astype(np.float64), data_range=data_range(r),
                                    full=True, **kw)
    return smap


def per_channel(ref: np.ndarray, out: np.ndarray, crop: int = 0, window: str = "uniform") -> list[dict]:
    """``[{"psnr", "ssim"}]`` for each channel."""
    _check(ref, out)
    return [{"psnr": _psnr_plane(r, o), "ssim": float(_ssim_map(r, o, window).mean())}
            for r, o in zip(_planes(ref, crop), _planes(out, crop))]


def psnr(ref: np.ndarray, out: np.ndarray, crop: int = 0) -> float:
    _check(ref, out)
    return float(np.mean([_psnr_plane(r, o) for r, o in zip(_planes(ref, crop), _planes(out, crop))]))


def ssim(ref: np.ndarray, out: np.ndarray, crop: int = 0, window: str = "uniform") -> float:
    _check(ref, out)
    return float(np.mean([_ssim_map(r, o, window).mean() for r, o in zip(_planes(ref, crop), _planes(out, crop))]))


def foreground_mask(ref: np.ndarray, sigma: float = 2.0, dilate: int = 4) -> np.ndarray:
    """Cells: Otsu on the smoothed reference (channel mean), dilated; all True for a flat image."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    g = ref.astype(np.float64)
    if g.ndim == 3:
        g = g.mean(axis=2)
    g = ndimage.gaussian_filter(g, sigma)
    if g.max() - g.min() < 1e-12:
        return np.ones(g.shape, bool)
    mask = g > threshold_otsu(g)
    if dilate:
        yy, xx = np.mgrid[-dilate:dilate + 1, -dilate:dilate + 1]
        mask = ndimage.binary_dilation(mask, structure=(yy ** 2 + xx ** 2) <= dilate ** 2)
    return mask if mask.any() else np.ones(g.shape, bool)


def score(ref: np.ndarray, out: np.ndarray, crop: int = 0, window: str = "uniform",
          foreground: bool = False, mask: np.ndarray | None = None) -> dict:
    """``{"psnr", "ssim"}`` and, with ``foreground``, ``fg_psnr`` / ``fg_ssim`` on the cells
    (``mask`` or :func:`foreground_mask` of the reference) and ``fg_fraction``."""
    _check(ref, out)
    planes = list(zip(_planes(ref, crop), _planes(out, crop)))
    maps = [_ssim_map(r, o, window) for r, o in planes]
    res = {"psnr": float(np.mean([_psnr_plane(r, o) for r, o in planes])),
           "ssim": float(np.mean([m.mean() for m in maps]))}
    if foreground:
        m = foreground_mask(ref) if mask is None else mask
        if crop:
            m = m[crop:-crop, crop:-crop]
        res["fg_psnr"] = float(np.mean([_psnr_plane(r, o, m) for r, o in planes]))
        res["fg_ssim"] = float(np.mean([smap[m].mean() for smap in maps]))
        res["fg_fraction"] = float(m.mean())
    return res
