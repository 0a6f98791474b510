"""Limits on what image decoding may cost, checked from header values before any pixel is decoded.

* :func:`check_size` / :func:`max_bytes`: pixel count (``SR_MAX_PIXELS``) and decoded size of
  one image (``SR_MAX_PIXELS`` x 16 bytes);
* :func:`decode_limits`: a context with tighter limits for the images read inside it (the app:
  ``SR_APP_MAX_DECODED_BYTES`` and the size of the result it would make);
* :func:`decode_budget`: one process-wide byte budget for concurrent decodes
  (``SR_DECODE_BUDGET_BYTES``, waiting up to ``SR_DECODE_WAIT_S``).
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
from dataclasses import dataclass, replace

import numpy as np

from .settings import settings


FLOAT_LIMIT = 1e30  # larger float magnitudes overflow float32 in resizing and normalisation


class ImageError(ValueError):
    """The input is not an image we can process; the message is for the user."""


def max_pixels() -> int:
    """Input pixel limit (H*W), from ``SR_MAX_PIXELS``; default 16 megapixels (4096x4096)."""
    return settings().max_pixels


def max_bytes() -> int:
    """Decoded-size limit of one image in bytes: ``SR_MAX_PIXELS`` x 16 (e.g. 4 channels of
    float32, or 8 of uint16, at the pixel limit): a small compressed TIFF cannot expand to
    gigabytes."""
    return max_pixels() * 16


def check_size(h: int, w: int, limit: int | None = None) -> None:
    limit = max_pixels() if limit is None else limit
    if h < 1 or w < 1:
        raise ImageError(f"image has an empty dimension ({w}x{h})")
    if h * w > limit:
        raise ImageError(f"image is {w}x{h} = {h * w:,} pixels, over the limit of {limit:,} "
                         f"(set SR_MAX_PIXELS to change it)")
    if h < 2 or w < 2:
        raise ImageError(f"image is {w}x{h}; at least 2x2 pixels are needed")


@dataclass(frozen=True)

class DecodeSettings:
    """Decoding limits from the environment (one place; read when first needed).

    ``SR_DECODE_BUDGET_BYTES``: bytes that all decodes in this process may hold at once
    (default 768 MiB); a decode reserves :data:`DECODE_OVERHEAD` x its decoded size (the
    decoded array plus the conversions after it) and waits up to ``SR_DECODE_WAIT_S`` (default
    20 s) for room, else is refused as busy. ``SR_APP_MAX_DECODED_BYTES``: decoded size of one
    image in the app (default 256 MiB, below the general ``SR_MAX_PIXELS`` x 16 bytes)."""

    budget_bytes: int = 768 * 2**20
    wait_s: float = 20.0
    app_max_decoded_bytes: int = 256 * 2**20

    @classmethod
    def from_env(cls, env=None) -> "DecodeSettings":
        from .settings import Settings

        s = Settings.from_env(env)
        return cls(budget_bytes=s.decode_budget_bytes, wait_s=s.decode_wait_s,
                   app_max_decoded_bytes=s.app_max_decoded_bytes)


DECODE_OVERHEAD = 3  # peak bytes of a decode / decoded bytes (decode, dtype/layout conversions)


class ByteBudget:
    """A semaphore counted in bytes: ``with budget.hold(n):`` waits until ``n`` bytes are free."""

    def __init__(self, total: int, wait_s: float = 20.0):
        self.total, self.wait_s = int(total), float(wait_s)
        self.used = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, n: int):
        n = int(n)
        if n > self.total:
            raise ImageError(f"decoding this image needs about {n / 2**20:,.0f} MiB, over the server's "
                             f"decoding budget of {self.total / 2**20:,.0f} MiB (SR_DECODE_BUDGET_BYTES)")
        with self._cond:
            if not self._cond.wait_for(lambda: self.used + n <= self.total, timeout=self.wait_s):
                raise ImageError("the server is busy decoding other images; try again in a minute")
            self.used += n
        try:
            yield
        finally:
            with self._cond:
                self.used -= n
                self._cond.notify_all()


_budget: ByteBudget | None = None


_budget_lock = threading.Lock()


def decode_budget() -> ByteBudget:
    """The process-wide :class:`ByteBudget` (created from :class:`DecodeSettings` on first use)."""
    global _budget
    with _budget_lock:
        if _budget is None:
            st = DecodeSettings.from_env()
            _budget = ByteBudget(st.budget_bytes, st.wait_s)
        return _budget


@dataclass(frozen=True)

class DecodeLimits:
    """Extra limits a caller sets for the images read in a context (:func:`decode_limits`).

    ``max_bytes``: decoded bytes of one image. ``max_output_pixels``: the caller will make a
    result of ``(H*output_scale) x (W*output_scale)`` pixels (``output_scale`` 1: the image
    cropped to a multiple of ``crop_multiple``); refuse before decoding if that is over."""

    max_bytes: int | None = None
    max_output_pixels: int | None = None
    output_scale: int = 1
    crop_multiple: int = 1


_LIMITS: contextvars.ContextVar[DecodeLimits] = contextvars.ContextVar("sr_decode_limits", default=DecodeLimits())


def current_limits() -> DecodeLimits:
    return _LIMITS.get()


@contextlib.contextmanager

def decode_limits(**changes):
    """``with decode_limits(max_bytes=..., max_output_pixels=..., output_scale=4):`` images read
    inside are refused by these limits before their pixels are decoded."""
    token = _LIMITS.set(replace(_LIMITS.get(), **changes))
    try:
        yield _LIMITS.get()
    finally:
        _LIMITS.reset(token)


def app_limits() -> dict:
    """The app's decoding limits (for :func:`decode_limits`): ``SR_APP_MAX_DECODED_BYTES`` and
    ``SR_APP_MAX_OUTPUT_PIXELS``; the smallest result any mode makes is the image cropped to a
    multiple of 4."""
    return {"max_bytes": DecodeSettings.from_env().app_max_decoded_bytes,
            "max_output_pixels": settings().app_max_output_pixels,
            "crop_multiple": 4}


def check_before_decoding(h: int, w: int, nbytes: int, what: str = "image") -> int:
    """Refuse by pixel count, decoded size and the caller's result size, from header values
    only. Returns the bytes to reserve from the decoding budget."""
    check_size(h, w)
    lim = current_limits()
    cap = max_bytes() if lim.max_bytes is None else min(max_bytes(), lim.max_bytes)
    if nbytes > cap:
        src = "SR_MAX_PIXELS x 16 bytes" if cap == max_bytes() else "SR_APP_MAX_DECODED_BYTES"
        raise ImageError(f"{what} would take {nbytes / 2**20:,.0f} MiB decoded, over the limit of "
                         f"{cap / 2**20:,.0f} MiB ({src})")
    if lim.max_output_pixels:
        s, m = max(1, lim.output_scale), max(1, lim.crop_multiple)
        oh, ow = (h * s, w * s) if s > 1 else (h - h % m, w - w % m)
        if oh * ow > lim.max_output_pixels:
            side = int(lim.max_output_pixels ** 0.5)
            raise ImageError(f"{what} is {w}x{h} px: its {'4x ' if s > 1 else ''}result would be {ow}x{oh} = "
                             f"{oh * ow:,} px, over this demo's limit of {lim.max_output_pixels:,} px (about "
                             f"{side}x{side}; SR_APP_MAX_OUTPUT_PIXELS). Crop the image, or run "
                             f"`python -m sr upscale` (no limit, tiled) on your machine.")
    return nbytes * DECODE_OVERHEAD


def _finite_and_bounded(a: np.ndarray, what: str) -> None:
    """NaN/inf and |x| > FLOAT_LIMIT checks in chunks (no full-size temporaries)."""
    flat = a.reshape(-1) if a.flags.c_contiguous else None
    chunks = (flat[i:i + (1 << 22)] for i in range(0, flat.size, 1 << 22)) if flat is not None else iter(a)
    for c in chunks:
        if not np.isfinite(c).all():
            raise ImageError(f"{what} contains NaN or infinite values")
        if c.size and max(float(c.max()), -float(c.min())) > FLOAT_LIMIT:
            raise ImageError(f"{what} has values of magnitude over {FLOAT_LIMIT:g}; rescale it")
