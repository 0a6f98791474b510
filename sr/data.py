"""Training data: image folders (plain or the HPA Kaggle layout), fixed splits, HR/LR patches.

* Any folder of PNG/JPEG/TIFF images (8/16-bit, searched recursively) works. In the HPA Kaggle
  layout (``{id}_{red|green|blue|yellow}.png``) each file is one stain of one field of view and
  is used as a single-channel image; the stain is read from the name (the feature network's
  label). Multi-channel files are split into channels.
* Validation split: a fixed ~10% of *fields of view* (by a hash of the field id, so all stains of
  one field land on the same side). Test data is a different folder and never seen here.
* Patches: HR crops (default 96x96) aligned to the x4 grid, the LR crop taken from the LR
  image made by :func:`sr.degrade.degrade` of the whole HR image (exactly the evaluation
  degradation), random flips/90-degree rotations, and mostly-black background patches skipped.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import degrade, imio

STAINS = ("red", "green", "blue", "yellow")  # microtubules, protein, nucleus, ER
STAIN_NAMES = {"red": "microtubules", "green": "protein", "blue": "nucleus", "yellow": "ER"}
_HPA_RE = re.compile(r"^(?P<id>[0-9a-f\-]{36})_(?P<stain>red|green|blue|yellow)$", re.I)


@dataclass
class Sample:
    path: Path
    field_id: str
    stain: str | None  # one of STAINS for HPA Kaggle files, else None
    channel: int | None = None  # channel index for multi-channel files


def parse_name(path: Path) -> tuple[str, str | None]:
    m = _HPA_RE.match(path.stem)
    if m:
        return m.group("id").lower(), m.group("stain").lower()
    return path.stem, None


def scan(root: str | Path) -> list[Sample]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in imio.SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(imio.SUFFIXES)}) under {root}")
    return [Sample(p, *parse_name(p)) for p in files]


def is_validation(field_id: str, fraction: float = 0.1) -> bool:
    h = int(hashlib.sha256(field_id.encode()).hexdigest()[:8], 16)
    return (h % 1000) < fraction * 1000


def split(samples: list[Sample], fraction: float = 0.1) -> tuple[list[Sample], list[Sample]]:
    train = [s for s in samples if not is_validation(s.field_id, fraction)]
    val = [s for s in samples if is_validation(s.field_id, fraction)]
    return train, val


@dataclass
class Plane:
    """One single-channel image in model units ([0,1] floats) with its LR version."""

    hr: np.ndarray  # float32 (H, W)
    lr: np.ndarray  # float32 (H/4, W/4)
    hr_raw: np.ndarray  # original dtype, cropped to a multiple of 4 (for metrics)
    stain: int  # index into STAINS, -1 when unknown
    name: str = ""


def _to_unit(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    if ref.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if ref.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    lo, hi = float(ref.min()), float(ref.max())
    return ((a.astype(np.float32) - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def load_planes(samples: list[Sample], scale: int = 4, min_size: int = 96) -> list[Plane]:
    planes = []
    for s in samples:
        a, _ = imio.read_image(s.path)
        chans = [a] if a.ndim == 2 else [a[:, :, i] for i in range(a.shape[2])]
        for ci, c in enumerate(chans):
            c = degrade.crop_to_multiple(c, scale)
            if min(c.shape) < min_size:
                continue
            lr = degrade.degrade(c, scale)
            stain = STAINS.index(s.stain) if s.stain in STAINS else -1
            name = s.path.name if len(chans) == 1 else f"{s.path.name}[c{ci}]"
            planes.append(Plane(_to_unit(c, c), _to_unit(lr, c), c, stain, name))
    return planes


@dataclass
class PatchSampler:
    planes: list[Plane]
    patch: int = 96
    scale: int = 4
    background_threshold: float = 0.1  # a pixel is "signal" above this (model units)
    min_signal_fraction: float = 0.05  # skip patches with less signal than this (recipe `min_signal_fraction`; 0: none)
    tries: int = 10
    _rng: np.random.Generator = field(default=None, repr=False)

    def sample(self, rng: np.random.Generator, batch: int):
        """(lr (B,1,p/4,p/4), hr (B,1,p,p), stain (B,)) float32/int64 numpy arrays."""
        p, s = self.patch, self.scale
        lp = p // s
        lrs, hrs, labels = [], [], []
        for _ in range(batch):
            for attempt in range(self.tries):
                plane = self.planes[rng.integers(len(self.planes))]
                lh, lw = plane.lr.shape
                y = int(rng.integers(0, lh - lp + 1))
                x = int(rng.integers(0, lw - lp + 1))
                hr = plane.hr[y * s:(y + lp) * s, x * s:(x + lp) * s]
                if (hr > self.background_threshold).mean() >= self.min_signal_fraction:
                    break
            lr = plane.lr[y:y + lp, x:x + lp]
            k = int(rng.integers(4))
            flip = bool(rng.integers(2))
            hr, lr = np.rot90(hr, k), np.rot90(lr, k)
            if flip:
                hr, lr = hr[:, ::-1], lr[:, ::-1]
            hrs.append(np.ascontiguousarray(hr))
            lrs.append(np.ascontiguousarray(lr))
            labels.append(plane.stain)
        return (np.stack(lrs)[:, None].astype(np.float32), np.stack(hrs)[:, None].astype(np.float32),
                np.asarray(labels, dtype=np.int64))


def center_crop(a: np.ndarray, size: int, scale: int = 4) -> np.ndarray:
    h, w = a.shape[:2]
    size = min(size, h, w) // scale * scale
    y, x = (h - size) // 2 // scale * scale, (w - size) // 2 // scale * scale
    return a[y:y + size, x:x + size]
