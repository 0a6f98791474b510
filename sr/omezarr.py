"""Lazy readers of large images (OME-TIFF / TIFF, OME-Zarr, plain Zarr) and the OME-Zarr writer.

A :class:`Source` opens an image without reading its pixels and reads any ``(C, y, x)``
region on demand (TIFF through ``tifffile``'s ``aszarr`` store, so only the tiles or strips a
region touches are decoded). It pickles as its path, so Dask workers reopen it themselves.

Output is OME-Zarr (NGFF 0.4 on Zarr format 2, what napari-ome-zarr, Fiji/MoBIE/BigDataViewer
and QuPath read today): a multiscale group with arrays ``0`` (full resolution), ``1``, ...
(each 2x smaller, mean of 2x2), axes ``c, y, x`` and ``scale`` transforms whose level-0 pixel
size is the input's physical pixel size divided by 4.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .imio import MAX_CHANNELS, ImageError

UNITS = {"µm": "micrometer", "um": "micrometer", "micron": "micrometer", "nm": "nanometer",
         "mm": "millimeter", "m": "meter", "Å": "angstrom", "pm": "picometer", "cm": "centimeter"}
ZARR_SUFFIXES = (".zarr",)
OME_TIFF_SUFFIXES = (".ome.tif", ".ome.tiff")


def is_zarr(path: str | Path) -> bool:
    p = Path(path)
    return p.suffix.lower() in ZARR_SUFFIXES or (p.is_dir() and any(
        (p / n).exists() for n in (".zgroup", ".zarray", "zarr.json")))


def is_ome_tiff(path: str | Path) -> bool:
    return str(path).lower().endswith(OME_TIFF_SUFFIXES)


@dataclass
class Source:
    """A 2-D image or channel stack read lazily: ``shape`` is ``(C, H, W)``."""

    path: str
    kind: str  # "tiff" | "tiff-contiguous" (uncompressed, memory-mapped) | "ome-zarr" | "zarr"
    axes: str  # axes of the stored array, e.g. "YX", "CYX", "YXS", "TCZYX"
    shape: tuple
    dtype: np.dtype
    pixel_size: tuple | None = None  # physical (y, x) size of one pixel
    unit: str | None = None
    channel_names: list | None = None
    dataset: str = ""  # array path inside a Zarr group
    _arr: object = field(default=None, repr=False, compare=False)
    _handle: object = field(default=None, repr=False, compare=False)

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_arr"] = d["_handle"] = None
        return d

    def _array(self):
        if self._arr is None:
            import zarr

            if self.kind == "tiff":
                import tifffile

                self._handle = tifffile.TiffFile(self.path)
                self._arr = zarr.open(self._handle.series[0].aszarr(level=0), mode="r")
            else:
                self._arr = zarr.open_array(str(Path(self.path) / self.dataset) if self.dataset else self.path,
                                            mode="r")
        return self._arr

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._arr = self._handle = None

    @property
    def height(self) -> int:
        return self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[2]

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels of rows ``y0:y1`` and columns ``x0:x1`` as ``(C, h, w)``."""
        sel, kept = [], []
        for a in self.axes:
            if a == "Y":
                sel.append(slice(y0, y1))
                kept.append(a)
            elif a == "X":
                sel.append(slice(x0, x1))
                kept.append(a)
            elif a in "CS":
                sel.append(slice(None))
                kept.append("C")
            else:
                sel.append(0)
        if self.kind == "tiff-contiguous":  # one uncompressed strip: map it, copy the region, unmap
            import tifffile

            m = tifffile.memmap(self.path, series=0, mode="r")
            block = np.array(m[tuple(sel)])
            del m
        else:
            block = np.asarray(self._array()[tuple(sel)])
        if "C" not in kept:
            return block[None]
        return np.moveaxis(block, kept.index("C"), 0)


def _check_axes(axes: str, shape: tuple, path) -> tuple[int, int, int]:
    """(C, H, W) of an array with these axes; other axes must have size 1."""
    sizes = dict(zip(axes, shape))
    if "Y" not in sizes or "X" not in sizes:
        raise ImageError(f"{path}: axes {axes!r} have no Y and X")
    chan = [a for a in axes if a in "CS"]
    if len(chan) > 1:
        raise ImageError(f"{path}: both C and S axes ({axes} {shape}); expected one channel axis")
    extra = {a: s for a, s in sizes.items() if a not in "YXCS" and s != 1}
    if extra:
        raise ImageError(f"{path}: axes {extra} have more than one plane; expected a 2-D image or a channel stack")
    c = sizes[chan[0]] if chan else 1
    if c > MAX_CHANNELS:
        raise ImageError(f"{path}: {c} channels; at most {MAX_CHANNELS} are supported")
    return c, sizes["Y"], sizes["X"]


def _ome_pixel_size(xml: str | None) -> tuple[tuple | None, str | None, list | None]:
    if not xml:
        return None, None, None
    pix = re.search(r"<(?:\w+:)?Pixels\b[^>]*>", xml)
    if not pix:
        return None, None, None
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', pix.group(0)))
    names = re.findall(r'<(?:\w+:)?Channel\b[^>]*\bName="([^"]*)"', xml) or None
    try:
        py, px = float(attrs["PhysicalSizeY"]), float(attrs["PhysicalSizeX"])
    except (KeyError, ValueError):
        return None, None, names
    unit = attrs.get("PhysicalSizeXUnit", "µm")
    return (py, px), UNITS.get(unit, unit), names


def _open_tiff(path: Path) -> Source:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            if not tf.series:
                raise ImageError(f"{path}: TIFF holds no image")
            s = tf.series[0]
            axes, shape, dtype = s.axes, tuple(s.shape), np.dtype(s.dtype)
            # uncompressed contiguous data is one chunk to aszarr: memory-map it instead
            kind = "tiff-contiguous" if s.dataoffset is not None else "tiff"
            size, unit, names = _ome_pixel_size(tf.ome_metadata if tf.is_ome else None)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"cannot read TIFF {path}: {type(exc).__name__}: {exc}") from None
    axes = axes.replace("I", "Q").replace("Q", "Z")  # unknown / generic axes count as planes
    c, h, w = _check_axes(axes, shape, path)
    return Source(str(path), kind, axes, (c, h, w), dtype, size, unit, names)


def _open_zarr(path: Path) -> Source:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise ImageError(f"cannot open Zarr {path}: {type(exc).__name__}: {exc}") from None
    if isinstance(node, zarr.Array):
        shape = tuple(node.shape)
        if len(shape) == 2:
            axes = "YX"
        elif len(shape) == 3:
            axes = "CYX" if shape[0] <= MAX_CHANNELS and shape[2] > MAX_CHANNELS else "YXC"
        else:
            raise ImageError(f"{path}: plain Zarr array of shape {shape}; expected (H,W), (C,H,W) or (H,W,C)")
        c, h, w = _check_axes(axes, shape, path)
        return Source(str(path), "zarr", axes, (c, h, w), np.dtype(node.dtype))
    attrs = node.attrs.asdict()
    ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if not ms:
        raise ImageError(f"{path}: Zarr group without OME-Zarr 'multiscales' metadata")
    m = ms[0]
    ds = m["datasets"][0]
    arr = node[ds["path"]]
    ax = m.get("axes") or [{"name": n} for n in "tczyx"[-arr.ndim:]]
    names = [(a["name"] if isinstance(a, dict) else a) for a in ax]
    axes = "".join(n.upper() for n in names)
    shape = tuple(arr.shape)
    c, h, w = _check_axes(axes, shape, path)
    size, unit = None, None
    for t in ds.get("coordinateTransformations", []):
        if t.get("type") == "scale":
            sc = dict(zip(axes, t["scale"]))
            size = (float(sc["Y"]), float(sc["X"]))
    for a in ax:
        if isinstance(a, dict) and a.get("name", "").lower() == "x":
            unit = a.get("unit")
    chan = [ch.get("label") for ch in attrs.get("omero", {}).get("channels", [])] or None
    return Source(str(path), "ome-zarr", axes, (c, h, w), np.dtype(arr.dtype), size, unit, chan, ds["path"])


def open_source(path: str | Path) -> Source:
    """Open an OME-TIFF / TIFF, OME-Zarr or plain Zarr image lazily (no pixels read)."""
    p = Path(path)
    if not p.exists():
        raise ImageError(f"no such file or folder: {p}")
    if is_zarr(p):
        return _open_zarr(p)
    with open(p, "rb") as f:
        head = f.read(4)
    if head not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        raise ImageError(f"{p.name}: the chunked path reads TIFF / OME-TIFF and (OME-)Zarr only")
    return _open_tiff(p)


# ---------------------------------------------------------------------------- writing

def level_shapes(shape: tuple, chunk: int) -> list[tuple]:
    """(C, H, W) of every pyramid level: halving until the image fits one chunk."""
    c, h, w = shape
    out = [(c, h, w)]
    while max(h, w) > chunk:
        h, w = math.ceil(h / 2), math.ceil(w / 2)
        out.append((c, h, w))
    return out


def multiscales(n_levels: int, pixel_size: tuple | None, unit: str | None, name: str) -> dict:
    """NGFF 0.4 ``multiscales`` metadata; level-0 pixel size = ``pixel_size`` (already /4)."""
    py, px = pixel_size or (1.0, 1.0)
    space = {"type": "space", **({"unit": unit} if unit and pixel_size else {})}
    return {
        "version": "0.4", "name": name, "type": "mean",
        "axes": [{"name": "c", "type": "channel"}, {"name": "y", **space}, {"name": "x", **space}],
        "datasets": [{"path": str(i), "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, py * 2 ** i, px * 2 ** i]}]} for i in range(n_levels)],
        "metadata": {"method": "2x2 mean (sr.omezarr.downsample)"},
    }


def create(path: str | Path, shape: tuple, dtype, chunk: int, pixel_size: tuple | None, unit: str | None,
           name: str = "", channel_names: list | None = None, extra: dict | None = None) -> list[tuple]:
    """Create an empty OME-Zarr pyramid (arrays and metadata); returns the level shapes."""
    import zarr

    levels = level_shapes(tuple(shape), chunk)
    g = zarr.open_group(str(path), mode="w", zarr_format=2)
    for i, s in enumerate(levels):
        g.create_array(str(i), shape=s, chunks=(1, chunk, chunk), dtype=np.dtype(dtype),
                       fill_value=0, chunk_key_encoding={"name": "v2", "separator": "/"})
    ch = channel_names or [f"c{i}" for i in range(shape[0])]
    g.attrs.update({
        "multiscales": [multiscales(len(levels), pixel_size, unit, name)],
        "omero": {"channels": [{"label": str(n), "active": True} for n in ch]},
        **({"sr": json.loads(json.dumps(extra))} if extra else {}),
    })
    return levels


def write_region(path: str | Path, level: int, c_block: np.ndarray, y0: int, x0: int) -> None:
    import zarr

    arr = zarr.open_array(str(Path(path) / str(level)), mode="r+")
    arr[:, y0:y0 + c_block.shape[1], x0:x0 + c_block.shape[2]] = c_block


def downsample(block: np.ndarray, dtype) -> np.ndarray:
    """2x2 mean of a ``(C, h, w)`` block (odd edges repeat their last row/column)."""
    c, h, w = block.shape
    b = block.astype(np.float32)
    if h % 2:
        b = np.concatenate([b, b[:, -1:]], axis=1)
    if w % 2:
        b = np.concatenate([b, b[:, :, -1:]], axis=2)
    m = b.reshape(c, b.shape[1] // 2, 2, b.shape[2] // 2, 2).mean(axis=(2, 4))
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(m), info.min, info.max).astype(dtype)
    return m.astype(dtype)


def downsample_region(path: str | Path, level: int, y0: int, y1: int, x0: int, x1: int) -> int:
    """Fill rows ``y0:y1``, columns ``x0:x1`` of ``level`` from ``level - 1``; returns pixels written."""
    import zarr

    src = zarr.open_array(str(Path(path) / str(level - 1)), mode="r")
    dst = zarr.open_array(str(Path(path) / str(level)), mode="r+")
    y1, x1 = min(y1, dst.shape[1]), min(x1, dst.shape[2])
    block = np.asarray(src[:, 2 * y0:min(2 * y1, src.shape[1]), 2 * x0:min(2 * x1, src.shape[2])])
    dst[:, y0:y1, x0:x1] = downsample(block, dst.dtype)[:, :y1 - y0, :x1 - x0]
    return (y1 - y0) * (x1 - x0)
