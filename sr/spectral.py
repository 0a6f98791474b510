"""Perceptual measures that need no downloaded weights: radial power spectra and FRC.

* :func:`radial_power` - the power spectrum of a Hann-windowed image averaged over rings of
  equal spatial frequency (``bins`` rings from 0 to the Nyquist frequency).
* :func:`hf_lsd` - log-spectral distance (dB, root mean square over rings) between an output's
  and its reference's radial spectra over the high-frequency bands, by default from the LR
  Nyquist frequency (1/scale of the HR Nyquist) up. These are the frequencies a 4x model has to
  invent: bicubic leaves them nearly empty (a large distance); a GAN that restores texture with
  the reference's statistics gets closer. Lower is better.
* :func:`frc_resolution` - Fourier ring correlation between output and reference; the
  resolution is the period (in HR pixels) of the first ring where the correlation falls below
  the 1/7 threshold (a standard resolution criterion in microscopy). Lower is better.
* :func:`phase_bias` - the checkerboard of an upscaled image: how much its fine detail depends on
  the pixel's position within each ``scale x scale`` cell (sub-pixel convolution and transposed
  convolution artefacts repeat with that period). A reference image has none (about 0).

Images are single planes (2-D); multi-channel arrays are averaged over channels by the caller.
Intensities are taken as they are (no normalisation), so pass output and reference in the
same units.
"""
from __future__ import annotations

import numpy as np

FRC_THRESHOLD = 1 / 7


def _plane(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3:
        a = a.mean(axis=2)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {a.shape}")
    return a


def _spectrum(a: np.ndarray) -> np.ndarray:
    a = _plane(a)
    a = a - a.mean()
    win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    return np.fft.fftshift(np.fft.fft2(a * win))


def _ring_index(shape: tuple[int, int], bins: int) -> np.ndarray:
    """Ring number (0..bins-1, or -1 beyond Nyquist) of each frequency of an fftshifted array."""
    h, w = shape
    fy = np.fft.fftshift(np.fft.fftfreq(h))[:, None] / 0.5
    fx = np.fft.fftshift(np.fft.fftfreq(w))[None, :] / 0.5
    r = np.sqrt(fy ** 2 + fx ** 2)  # 1 = Nyquist
    idx = np.floor(r * bins).astype(np.int64)
    idx[idx >= bins] = -1
    return idx


def radial_power(a: np.ndarray, bins: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(ring centres as a fraction of Nyquist, mean power per ring)."""
    f = _spectrum(a)
    idx = _ring_index(f.shape, bins)
    ok = idx >= 0
    power = np.bincount(idx[ok], weights=(np.abs(f) ** 2)[ok], minlength=bins)
    count = np.bincount(idx[ok], minlength=bins)
    centres = (np.arange(bins) + 0.5) / bins
    return centres, power / np.maximum(count, 1)


def hf_lsd(ref: np.ndarray, out: np.ndarray, low: float = 0.25, bins: int = 64) -> float:
    """High-frequency log-spectral distance in dB between ``out`` and ``ref`` (lower is better)."""
    c, p_ref = radial_power(ref, bins)
    _, p_out = radial_power(out, bins)
    band = c >= low
    eps = 1e-12 * max(float(p_ref.max()), 1e-30)
    d = 10 * np.log10(p_out[band] + eps) - 10 * np.log10(p_ref[band] + eps)
    return float(np.sqrt(np.mean(d ** 2)))


def hf_power_ratio(ref: np.ndarray, out: np.ndarray, low: float = 0.25, bins: int = 64) -> float:
    """Power of ``out`` above ``low`` x Nyquist relative to the reference's (1 = same energy)."""
    c, p_ref = radial_power(ref, bins)
    _, p_out = radial_power(out, bins)
    band = c >= low
    return float(p_out[band].sum() / max(p_ref[band].sum(), 1e-30))


def frc_curve(a: np.ndarray, b: np.ndarray, bins: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(ring centres as a fraction of Nyquist, Fourier ring correlation of ``a`` and ``b``)."""
    fa, fb = _spectrum(a), _spectrum(b)
    if fa.shape != fb.shape:
        raise ValueError(f"shapes differ: {fa.shape} vs {fb.shape}")
    idx = _ring_index(fa.shape, bins)
    ok = idx >= 0
    num = np.bincount(idx[ok], weights=np.real(fa * np.conj(fb))[ok], minlength=bins)
    da = np.bincount(idx[ok], weights=(np.abs(fa) ** 2)[ok], minlength=bins)
    db = np.bincount(idx[ok], weights=(np.abs(fb) ** 2)[ok], minlength=bins)
    centres = (np.arange(bins) + 0.5) / bins
    return centres, num / np.sqrt(np.maximum(da * db, 1e-30))


def frc_resolution(ref: np.ndarray, out: np.ndarray, bins: int = 64,
                   threshold: float = FRC_THRESHOLD) -> float:
    """Resolution in pixels (period of the first ring below ``threshold``; 2 = Nyquist)."""
    c, frc = frc_curve(ref, out, bins)
    below = np.nonzero(frc[1:] < threshold)[0]  # ring 0 (the mean) is skipped
    if len(below) == 0:
        return 2.0
    i = below[0] + 1
    # linear interpolation of the crossing between ring i-1 and i
    f0, f1, c0, c1 = frc[i - 1], frc[i], c[i - 1], c[i]
    f_cross = c0 + (c1 - c0) * (f0 - threshold) / max(f0 - f1, 1e-12)
    return float(2.0 / max(f_cross, 1e-6))


def plot_spectra(curves: dict[str, tuple[np.ndarray, np.ndarray]], out_path, title: str = "",
                 low: float = 0.25) -> None:
    """Log radial power spectra of several methods in one figure (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, (c, p) in curves.items():
        ax.semilogy(c, p, label=name, lw=1.6 if name == "reference" else 1.1,
                    color="black" if name == "reference" else None)
    ax.axvline(low, color="grey", ls=":", lw=1)
    ax.text(low, ax.get_ylim()[1], " LR Nyquist", va="top", fontsize=8, color="grey")
    ax.set_xlabel("spatial frequency (fraction of the HR Nyquist frequency)")
    ax.set_ylabel("mean power")
    ax.set_title(title or "Radial power spectrum (mean over images)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path)
    plt.close(fig)


def phase_bias(a: np.ndarray, period: int = 4) -> float:
    """The periodic pattern of period ``period`` in an image, in its units: the standard
    deviation over the ``period x period`` pixel phases of the mean high-pass residual (the image
    minus its ``period``-wide moving average, which holds none of the pattern). Content without a
    fixed phase averages out over the image (a camera image, bicubic output: near 0); a
    checkerboard alternating +-``c`` reads about ``c``."""
    from scipy.ndimage import uniform_filter

    p = _plane(a)
    h, w = (p.shape[0] // period) * period, (p.shape[1] // period) * period
    if h == 0 or w == 0:
        raise ValueError(f"image {p.shape} smaller than the period {period}")
    r = (p - uniform_filter(p, size=period, mode="reflect"))[:h, :w]
    phases = r.reshape(h // period, period, w // period, period).mean(axis=(0, 2))
    return float(phases.std())
