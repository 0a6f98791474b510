"""Image I/O for what microscopists have, and intensity normalisation.

In memory an image is a numpy array ``(H, W)`` (one channel) or ``(H, W, C)`` (colour or a
channel stack), dtype uint8, uint16 or float32. Readers refuse decompression bombs and
absurd sizes *before* decoding pixels, with an :class:`ImageError` that says why.
"""
from __future__ import annotations

import io
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .imlimits import (FLOAT_LIMIT, ImageError, _finite_and_bounded, app_limits,  # noqa: F401 (re-exported)
                       check_before_decoding, check_size, current_limits, decode_budget, decode_limits,
                       max_bytes, max_pixels)
from .pngcheck import check_png_stream  # noqa: F401 (re-exported)

TIFF_SUFFIXES = (".tif", ".tiff")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
# the only Pillow decoders ever tried, whatever the file says it is: no PostScript (Ghostscript),
# no rarely used parsers
PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")  # JPEG includes MPO
SUFFIXES = TIFF_SUFFIXES + PIL_SUFFIXES
MAX_CHANNELS = 16
MAX_TIFF_PAGES = 64  # more pages cannot be one 2-D image or channel stack (and are slow to index)

# tifffile logs damaged-file warnings; without this handler Python's last-resort handler would
# print them on stderr next to our one-line error (apps that configure logging still see them)
logging.getLogger("tifffile").addHandler(logging.NullHandler())


@dataclass
class ImageInfo:
    format: str  # "tiff" | "png" | ...
    channel_axis: str  # "none" (2-D), "last" (H,W,C), "first" (C,H,W, TIFF stacks)
    note: str = ""




def check_array(a: np.ndarray, what: str = "image") -> np.ndarray:
    """Validate an in-memory image and bring it to uint8/uint16/float32 ``(H,W)``/``(H,W,C)``."""
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3):
        raise ImageError(f"{what} must be 2-D (H,W) or 3-D (H,W,C); got shape {a.shape}")
    if a.ndim == 3 and a.shape[2] == 0:
        raise ImageError(f"{what} has no channels (shape {a.shape})")
    if a.ndim == 3 and a.shape[2] > MAX_CHANNELS:
        raise ImageError(f"{what} has {a.shape[2]} channels in its last axis; at most {MAX_CHANNELS} "
                         f"are supported (is it a (C,H,W) stack? pass it as (H,W,C))")
    check_size(a.shape[0], a.shape[1])
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype in (np.uint8, np.uint16):
        pass
    elif np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo >= 0 and hi <= 65535:
            a = a.astype(np.uint16)
        else:
            a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.floating):
        _finite_and_bounded(a, what)
        a = a.astype(np.float32, copy=False)
    else:
        raise ImageError(f"{what} has unsupported dtype {a.dtype}")
    return np.ascontiguousarray(a)


# ---------------------------------------------------------------------------- reading

def _read_tiff(src) -> tuple[np.ndarray, ImageInfo]:
    import tifffile

    try:
        with tifffile.TiffFile(src) as tf:
            try:
                tf.pages[MAX_TIFF_PAGES]  # reads the page chain up to there only
            except IndexError:
                pass
            else:
                raise ImageError(f"TIFF has more than {MAX_TIFF_PAGES} pages; expected a 2-D image or a "
                                 f"channel stack of at most {MAX_CHANNELS} channels")
            first = tf.pages.first if len(tf.pages) else None
            if first is not None and (first.imagewidth < 1 or first.imagelength < 1):
                raise ImageError(f"TIFF image is empty ({first.imagewidth}x{first.imagelength})")
            if not tf.series:
                raise ImageError("TIFF file holds no image")
            series = tf.series[0]
            shape, axes = tuple(series.shape), series.axes
            n = int(np.prod(shape)) if shape else 0
            if n == 0:
                raise ImageError(f"TIFF image is empty (shape {shape})")
            # drop singleton axes (T=1, Z=1, ...) before judging the layout
            keep = [i for i, s in enumerate(shape) if s != 1]
            core = [shape[i] for i in keep]
            if len(core) > 3 or len(core) < 2:
                raise ImageError(f"TIFF has shape {shape} (axes {axes}); expected a 2-D image or a "
                                 f"channel stack (C,H,W) or (H,W,C)")
            if len(core) == 3:
                if min(core[0], core[2]) > MAX_CHANNELS:
                    raise ImageError(f"TIFF has shape {shape} (axes {axes}): neither its first nor its "
                                     f"last axis is a channel axis of at most {MAX_CHANNELS} channels")
                if core[0] <= MAX_CHANNELS and core[2] > MAX_CHANNELS:
                    h, w = core[1], core[2]
                else:
                    h, w = core[0], core[1]
            else:
                h, w = core
            nbytes = n * np.dtype(series.dtype).itemsize
            reserve = check_before_decoding(h, w, nbytes, f"TIFF image ({shape}, {series.dtype})")
            with decode_budget().hold(reserve):
                a = series.asarray()
                a = np.squeeze(a)
                axis = "none"
                if a.ndim == 3:
                    if a.shape[0] <= MAX_CHANNELS and a.shape[2] > MAX_CHANNELS:
                        a = np.moveaxis(a, 0, -1)
                        axis = "first"
                    else:
                        axis = "last"
                return check_array(a, "TIFF image"), ImageInfo("tiff", axis)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError("not enough memory to decode this TIFF") from None
    except Exception as exc:
        raise ImageError(f"cannot read TIFF: {type(exc).__name__}: {exc}") from None


def _pil_to_array(im) -> tuple[np.ndarray, str]:
    from PIL import Image

    note = ""
    mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        note = "alpha channel dropped"
        im = im.convert("RGB" if mode in ("RGBA", "RGBa", "PA") else "L")
    elif mode == "P":
        im = im.convert("RGB")
        a = np.asarray(im)
        if (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all():
            return a[..., 0].copy(), "palette converted to grey"
        return a, "palette converted to RGB"
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
        note = f"{mode} converted to RGB"
    elif mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16), note
    elif mode == "I":
        return np.asarray(im), note
    elif mode not in ("L", "RGB", "F"):
        im = im.convert("RGB")
        note = f"{mode} converted to RGB"
    return np.asarray(im), note


_truncated_lock = threading.Lock()


def _load_strict(im) -> None:
    """``im.load()`` with Pillow's LOAD_TRUNCATED_IMAGES off (a truncated file is an error, never
    zeros), whatever another library set it to; restored afterwards."""
    from PIL import ImageFile

    if not ImageFile.LOAD_TRUNCATED_IMAGES:
        im.load()
        return
    with _truncated_lock:
        old, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
        try:
            im.load()
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = old


def _pil_decoded_bytes(im) -> int:
    """Bytes of the array the image decodes and converts to (from the header: size and mode)."""
    w, h = im.size
    mode = im.mode
    if mode in ("I", "F", "I;32", "I;32B", "I;32L"):
        per = 4
    elif mode.startswith("I;16"):
        per = 2
    elif mode in ("L", "1", "LA", "La"):
        per = 2  # the image and its converted copy
    else:
        per = 4  # RGB/RGBA/P/CMYK...: up to 4 bands, converted to RGB
    return w * h * per


def _read_pil(src, fmt_hint: str) -> tuple[np.ndarray, ImageInfo]:
    from PIL import Image, ImageOps

    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(src, formats=PIL_FORMATS)
            w, h = im.size
            check_size(h, w, limit)
            reserve = check_before_decoding(h, w, _pil_decoded_bytes(im))
            note = ""
            if getattr(im, "n_frames", 1) > 1:
                note = f"first of {im.n_frames} frames used"
            fmt = (im.format or fmt_hint or "png").lower()
            if im.format == "PNG":
                if isinstance(src, (str, os.PathLike)):
                    with open(src, "rb") as fh:
                        check_png_stream(fh)
                else:
                    pos = src.tell()
                    check_png_stream(src)
                    src.seek(pos)
            with decode_budget().hold(reserve):
                _load_strict(im)
                im = ImageOps.exif_transpose(im) or im
                a, n2 = _pil_to_array(im)
                a = check_array(a)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError("not enough memory to decode this image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"refused a possible decompression bomb: {exc}") from None
    except Image.UnidentifiedImageError:
        what = f"{Path(src).name} is" if isinstance(src, (str, Path)) else "the data are"
        raise ImageError(f"cannot read image: {what} not a PNG, JPEG, TIFF, BMP, GIF or WebP image "
                         f"(or the file is damaged)") from None
    except Exception as exc:
        raise ImageError(f"cannot read image: {type(exc).__name__}: {exc}") from None
    note = "; ".join(x for x in (note, n2) if x)
    return a, ImageInfo(fmt, "last" if a.ndim == 3 else "none", note)


def read_image(src: str | Path | bytes) -> tuple[np.ndarray, ImageInfo]:
    """Read PNG/JPEG/TIFF/... from a path or bytes: ``(array, info)``."""
    if isinstance(src, (bytes, bytearray)):
        data = bytes(src)
        name = ""
    else:
        path = Path(src)
        if not path.is_file():
            raise ImageError(f"no such file: {path}")
        name = path.name.lower()
        if path.stat().st_size == 0:
            raise ImageError(f"{path.name} is an empty file")
        data = None
    head = data[:4] if data is not None else open(src, "rb").read(4)
    if not head:
        raise ImageError("empty file")
    is_tiff = head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
    source = io.BytesIO(data) if data is not None else str(src)
    if is_tiff:
        return _read_tiff(source)
    return _read_pil(source, Path(name).suffix.lstrip("."))


# ---------------------------------------------------------------------------- writing

def write_image(path: str | Path, a: np.ndarray, info: ImageInfo | None = None) -> Path:
    """Write losslessly: TIFF keeps dtype and channel layout; PNG for 8/16-bit grey or RGB."""
    path = Path(path)
    a = np.asarray(a)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        import tifffile

        out = a
        if a.ndim == 3 and info is not None and info.channel_axis == "first":
            out = np.moveaxis(a, -1, 0)
        photometric = "rgb" if (out.ndim == 3 and out.shape[-1] == 3 and (info is None or info.channel_axis != "first")) else "minisblack"
        tifffile.imwrite(path, out, photometric=photometric, compression="zlib")
        return path
    from PIL import Image

    if a.dtype == np.uint16 and a.ndim == 2:
        Image.fromarray(a).save(path)  # 16-bit grey PNG
    elif a.dtype == np.uint8 and (a.ndim == 2 or a.shape[2] in (3, 4)):
        Image.fromarray(a).save(path)
    else:
        raise ImageError(f"{path.suffix} cannot hold a {a.dtype} image of shape {a.shape}; use .tif")
    return path


def output_suffix(info: ImageInfo, a: np.ndarray) -> str:
    """Lossless output format matching the input: TIFF stays TIFF, else PNG when it fits."""
    if info.format == "tiff":
        return ".tif"
    if a.dtype == np.uint8 and (a.ndim == 2 or a.shape[2] in (3, 4)):
        return ".png"
    if a.dtype == np.uint16 and a.ndim == 2:
        return ".png"
    return ".tif"


# ---------------------------------------------------------------------------- intensities

@dataclass(frozen=True)
class Norm:
    """Per-channel affine map ``x_model = (x - lo) / (hi - lo)``; inverted for the output."""

    lo: np.ndarray
    hi: np.ndarray
    dtype: np.dtype


def to_channels(a: np.ndarray) -> np.ndarray:
    """(H,W) or (H,W,C) -> (C,H,W)."""
    return a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0)


def from_channels(c: np.ndarray, like_ndim: int) -> np.ndarray:
    return c[0] if like_ndim == 2 else np.moveaxis(c, 0, -1)


def normalize(a: np.ndarray, mode: str = "auto", percentiles=(0.1, 99.9)) -> tuple[np.ndarray, Norm]:
    """Image -> float32 (C,H,W) for the model, plus the map back.

    ``mode``: ``"dtype"`` divides by the dtype range (uint8 /255, uint16 /65535); the models
    were trained on 8-bit images scaled this way. ``"percentile"`` maps each channel's
    percentiles to [0, 1] without clipping (CSBDeep-style), for 16-bit and float images whose
    signal uses a small part of the range. ``"auto"``: dtype for uint8, percentile otherwise.
    """
    c = to_channels(a).astype(np.float32)
    if mode == "auto":
        mode = "dtype" if a.dtype == np.uint8 else "percentile"
    n = c.shape[0]
    if mode == "dtype":
        if a.dtype == np.uint8:
            lo, hi = np.zeros(n), np.full(n, 255.0)
        elif a.dtype == np.uint16:
            lo, hi = np.zeros(n), np.full(n, 65535.0)
        else:
            lo, hi = np.zeros(n), np.ones(n)
    elif mode == "percentile":
        flat = c.reshape(n, -1)
        lo = np.percentile(flat, percentiles[0], axis=1)
        hi = np.percentile(flat, percentiles[1], axis=1)
        flat_max = flat.max(axis=1)
        flat_min = flat.min(axis=1)
        same = hi - lo < 1e-6
        lo = np.where(same, flat_min, lo)
        hi = np.where(same, np.maximum(flat_max, flat_min + 1.0), hi)
    else:
        raise ValueError(f"normalize mode {mode!r} is not one of auto, dtype, percentile")
    lo = lo.astype(np.float32)
    hi = hi.astype(np.float32)
    x = (c - lo[:, None, None]) / (hi - lo)[:, None, None]
    return x.astype(np.float32), Norm(lo, hi, a.dtype)


def output_dtype(norm: Norm):
    """The dtype :func:`denormalize` returns for images normalised with ``norm``."""
    return norm.dtype if norm.dtype in (np.uint8, np.uint16) else np.dtype(np.float32)


def denormalize_values(x: np.ndarray, norm: Norm, channel_axis: int = 0) -> np.ndarray:
    """Model output float values -> the input's dtype and range (no layout change); ``x``'s
    axis ``channel_axis`` indexes the image's channels. Works in place on a float32 copy."""
    shape = [1] * x.ndim
    shape[channel_axis] = -1
    y = np.multiply(x, (norm.hi - norm.lo).astype(np.float32).reshape(shape), dtype=np.float32)
    if np.any(norm.lo):  # 0 for images scaled by their dtype's range (8-bit): one pass less
        y += norm.lo.astype(np.float32).reshape(shape)
    if norm.dtype in (np.uint8, np.uint16):
        np.rint(y, out=y)
        np.clip(y, 0, np.iinfo(norm.dtype).max, out=y)
        return y.astype(norm.dtype)
    return y


def denormalize(x: np.ndarray, norm: Norm, like_ndim: int) -> np.ndarray:
    """Model output float (C,H,W) -> image in the input's dtype, range and layout."""
    return np.ascontiguousarray(from_channels(denormalize_values(x, norm), like_ndim))


def to_uint8_display(a: np.ndarray) -> np.ndarray:
    """Any image -> uint8 grey/RGB for display (per-channel percentile stretch for non-uint8)."""
    if a.dtype != np.uint8:
        x, _ = normalize(a, "percentile", (0.0, 100.0) if a.dtype == np.float32 else (0.1, 99.9))
        a = np.clip(np.rint(from_channels(x, a.ndim) * 255), 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] not in (3,):
        if a.shape[2] == 2:
            a = np.concatenate([a, np.zeros_like(a[:, :, :1])], axis=2)
        elif a.shape[2] == 4:
            a = a[:, :, :3]
        else:
            a = a[:, :, :3] if a.shape[2] > 3 else a
    return np.ascontiguousarray(a)
