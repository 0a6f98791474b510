"""The MOS item pool: every method's 4x result of the same HR crop, under opaque ids.

Layout of a pool folder (server side only; never served as a folder)::

    manifest.json        item_id -> image_id, method, role ("rated" | "calibration"), label
    <item_id>.png        one 8-bit grey or RGB PNG per item, no metadata

Item ids are ``secrets.token_hex(8)``: random, so neither the file names nor their order say
anything about the method. All items of a pool have the same pixel size (one crop size for
every image and method) and are served in one PNG mode (grey, or RGB if any image is colour)
without compression, so even the byte size of a served image is the same for every item.

Build (``python -m sr mos build``): for each HR image a ``crop`` x ``crop`` window (the one
with the most structure on a half-crop grid) is taken, converted to 8 bits for display
(percentile stretch for 16-bit/float images), degraded with :func:`sr.degrade.degrade` and
upscaled 4x by each method with :func:`sr.api.upscale`; the crop itself is the hidden
``reference``. Then every version of the crop gets ONE display stretch, computed from the
reference (its 0.5 and 99.8 percentiles mapped to 0 and 255) and applied identically to all
versions, so that dim fluorescence is visible and the versions stay comparable and blind. The first image(s) are kept apart as calibration examples (nearest shown as
"1 - Bad", reference as "5 - Excellent") and are never rated.
"""
from __future__ import annotations

import io
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"
REFERENCE = "reference"
LOW_ANCHOR = "nearest"
SCORE_NAMES = {1: "Bad", 2: "Poor", 3: "Fair", 4: "Good", 5: "Excellent"}
FORMAT_VERSION = 1
STRETCH = (0.5, 99.8)  # percentiles of the reference mapped to 0 and 255


def score_label(score: int) -> str:
    return f"{score} - {SCORE_NAMES[score]}"


class PoolMissing(FileNotFoundError):
    """No usable pool at the configured place; the message says how to build one."""


@dataclass(frozen=True)
class Item:
    item_id: str
    image_id: str
    method: str
    role: str = "rated"  # "rated" | "calibration"
    label: int | None = None  # calibration score shown with the item


# ------------------------------------------------------------------------------- loading

class Pool:
    """A loaded, read-only pool (shared by all sessions of a process)."""

    def __init__(self, folder: Path, manifest: dict):
        self.folder = Path(folder)
        self.manifest = manifest
        self.mode = manifest.get("mode", "L")
        self.size = tuple(manifest.get("size", ()))
        self.items: dict[str, Item] = {}
        for d in manifest["items"]:
            it = Item(d["item_id"], d["image_id"], d["method"], d.get("role", "rated"), d.get("label"))
            self.items[it.item_id] = it
        self.rated = [it for it in self.items.values() if it.role == "rated"]
        self.methods = sorted({it.method for it in self.rated})
        self.calibration: list[tuple[Item, Item]] = []
        cal = [it for it in self.items.values() if it.role == "calibration"]
        for image_id in sorted({it.image_id for it in cal}):
            pair = {it.label: it for it in cal if it.image_id == image_id}
            if 1 in pair and 5 in pair:
                self.calibration.append((pair[1], pair[5]))

    @classmethod
    def load(cls, folder: str | Path) -> "Pool":
        folder = Path(folder)
        path = folder / MANIFEST
        if not path.is_file():
            raise PoolMissing(f"no MOS item pool at {folder} (no {MANIFEST}); build one with "
                              f"`python -m sr mos build --data DIR --out {folder}`")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            pool = cls(folder, manifest)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PoolMissing(f"MOS pool manifest {path} is unreadable ({type(exc).__name__}: {exc}); "
                              f"rebuild it with `python -m sr mos build --force`") from None
        if not pool.rated:
            raise PoolMissing(f"MOS pool {folder} has no items to rate")
        return pool

    def png_bytes(self, item_id: str) -> bytes:
        """The item as an uncompressed PNG in the pool's mode: the same byte size for every item."""
        from PIL import Image

        item = self.items[item_id]  # KeyError for unknown ids
        with Image.open(self.folder / f"{item.item_id}.png") as im:
            im.load()
            im = im.convert(self.mode)
        buf = io.BytesIO()
        im.save(buf, format="PNG", compress_level=0)  # fresh image: no text chunks, no metadata
        return buf.getvalue()

    def plan(self, n: int, rng: np.random.Generator, served: dict[str, int] | None = None) -> list[str]:
        """``n`` distinct rated items for one session, balanced across methods, random order.

        Each method gets ``n // M`` items (the remainder goes to randomly chosen methods);
        within a method the items served least so far (``served``: item -> count) come first,
        ties broken at random. The order is shuffled so that two versions of the same image
        are not shown one after the other where that can be avoided.
        """
        served = served or {}
        by_method = {m: [it for it in self.rated if it.method == m] for m in self.methods}
        n = max(0, min(int(n), len(self.rated)))
        quota = {m: 0 for m in self.methods}
        left = n
        while left > 0:  # deal one per method per round, random order within the round
            room = [m for m in self.methods if quota[m] < len(by_method[m])]
            if not room:
                break
            for m in rng.permutation(room)[:left]:
                quota[str(m)] += 1
                left -= 1
        chosen: list[Item] = []
        for m in self.methods:
            cands = by_method[m]
            keys = rng.random(len(cands))
            order = sorted(range(len(cands)), key=lambda i: (served.get(cands[i].item_id, 0), keys[i]))
            chosen.extend(cands[i] for i in order[: quota[m]])
        return [it.item_id for it in _spread(chosen, rng)]


def _spread(items: list[Item], rng: np.random.Generator) -> list[Item]:
    """Random order in which no two neighbours show the same image, wherever that is possible."""
    left: dict[str, list[Item]] = {}
    for i in rng.permutation(len(items)):
        left.setdefault(items[i].image_id, []).append(items[i])
    seq: list[Item] = []
    last = None
    while left:
        total = sum(len(v) for v in left.values())
        cands = [k for k in left if k != last] or list(left)
        forced = [k for k in cands if 2 * len(left[k]) > total]  # must go now to stay feasible
        if forced:
            pick = forced[0]
        else:
            weights = np.array([len(left[k]) for k in cands], dtype=float)
            pick = cands[int(rng.choice(len(cands), p=weights / weights.sum()))]
        seq.append(left[pick].pop())
        if not left[pick]:
            del left[pick]
        last = pick
    return seq


_cache_lock = threading.Lock()
_cache: dict[str, tuple[float, Pool]] = {}


def get_pool(folder: str | Path) -> Pool:
    """Process-wide cached pool, reloaded when its manifest changes."""
    folder = Path(folder)
    try:
        mtime = (folder / MANIFEST).stat().st_mtime
    except OSError:
        mtime = -1.0
    key = str(folder.resolve())
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == mtime:
            return hit[1]
    pool = Pool.load(folder)
    with _cache_lock:
        _cache[key] = (mtime, pool)
    return pool


def pool_status(folder: str | Path) -> str | None:
    """``None`` if a usable pool exists, else a message for the user."""
    try:
        get_pool(folder)
        return None
    except PoolMissing as exc:
        return str(exc)


# ------------------------------------------------------------------------------- building

def _display_hr(a: np.ndarray) -> tuple[np.ndarray, int]:
    """HR crop -> uint8 with at most 3 channels; also how many zero channels to pad later."""
    from ..imio import to_uint8_display

    pad = 0
    if a.ndim == 3:
        if a.shape[2] > 3:
            a = a[:, :, :3]
        elif a.shape[2] == 2:
            pad = 1
    if a.dtype != np.uint8:
        if pad:  # stretch the two channels themselves, no zero channel through the models
            a = np.stack([to_uint8_display(np.ascontiguousarray(a[:, :, i])) for i in range(2)], axis=2)
        else:
            a = to_uint8_display(a)
    return np.ascontiguousarray(a), pad


def best_crop(a: np.ndarray, crop: int) -> tuple[int, int]:
    """Top-left corner of the ``crop`` window (half-crop grid) with the largest intensity std."""
    h, w = a.shape[:2]
    g = a.astype(np.float32)
    if g.ndim == 3:
        g = g.mean(axis=2)
    step = max(1, crop // 2)
    ys = sorted(set(list(range(0, h - crop + 1, step)) + [h - crop]))
    xs = sorted(set(list(range(0, w - crop + 1, step)) + [w - crop]))
    best, where = -1.0, (0, 0)
    for y in ys:
        for x in xs:
            s = float(g[y:y + crop, x:x + crop].std())
            if s > best:
                best, where = s, (y, x)
    return where


def _find_images(folders) -> list[Path]:
    from ..imio import SUFFIXES

    files: list[Path] = []
    for d in folders:
        d = Path(d)
        if d.is_file():
            files.append(d)
            continue
        if not d.is_dir():
            raise FileNotFoundError(f"no such folder: {d}")
        files.extend(p for p in sorted(d.rglob("*")) if p.is_file() and p.suffix.lower() in SUFFIXES)
    return files


def default_models() -> list[str]:
    from .. import zoo

    return [e.id for e in zoo.super_resolvers(available_only=True)]


def display_stretch(outs: dict[str, np.ndarray], ref: np.ndarray,
                    percentiles: tuple[float, float] | None = STRETCH) -> tuple[dict[str, np.ndarray], list[float]]:
    """One linear stretch from ``ref``'s percentiles, applied identically to every version."""
    if percentiles is None:
        return outs, [0.0, 255.0]
    lo, hi = (round(float(v), 3) for v in np.percentile(ref, percentiles))  # as recorded in the manifest
    if hi - lo < 1.0:
        hi = lo + 1.0
    gain = np.float32(255.0 / (hi - lo))
    return ({m: np.clip((o.astype(np.float32) - lo) * gain + 0.5, 0, 255).astype(np.uint8) for m, o in outs.items()},
            [lo, hi])


def _save_png(path: Path, a: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(a).save(path, format="PNG")  # array -> fresh image: no metadata chunks


def build_pool(data, out, models: list[str] | None = None, crop: int = 256, limit: int | None = None,
               calibration: int = 1, force: bool = False, precision: str | None = None,
               log=print, stretch: tuple[float, float] | None = STRETCH, study_id: str | None = None) -> dict:
    """Build a pool folder; returns the manifest. See the module docstring."""
    from .. import zoo
    from ..degrade import SCALE

    out = Path(out)
    if crop < SCALE * 2 or crop % SCALE:
        raise ValueError(f"--crop must be a multiple of {SCALE} and at least {SCALE * 2}; got {crop}")
    if calibration < 1:
        raise ValueError("at least one calibration image is needed")
    explicit = bool(models)
    models = list(dict.fromkeys(models or default_models()))
    if REFERENCE in models:
        models.remove(REFERENCE)
    for m in models:
        e = zoo.get_entry(m)
        if e.kind not in ("baseline", "generator"):
            raise ValueError(f"model {m!r} is a {e.kind}, not a super-resolution model")
    if LOW_ANCHOR not in models:
        models.insert(0, LOW_ANCHOR)  # calibration and screening need the low anchor
    for m in list(models):  # before any work: weights must be there (defaults: skip those that are not)
        if zoo.get_entry(m).learned:
            try:
                zoo.resolve(m)
            except zoo.ZooError as exc:
                if explicit:
                    raise
                log(f"skip model {m}: {exc}")
                models.remove(m)
    if (out / MANIFEST).exists() and not force:
        raise ValueError(f"{out} already holds a MOS pool; pass --force to replace it "
                         f"(votes already cast keep their method and image columns)")
    files = _find_images(data if isinstance(data, (list, tuple)) else [data])
    if not files:
        raise FileNotFoundError(f"no images found in {data}")
    out.mkdir(parents=True, exist_ok=True)
    old = out / MANIFEST
    if old.exists():
        try:
            for d in json.loads(old.read_text(encoding="utf-8")).get("items", []):
                (out / f"{d['item_id']}.png").unlink(missing_ok=True)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        old.unlink()

    items: list[dict] = []
    images: list[dict] = []
    try:
        return _build_items(files, out, models, crop, limit, calibration, precision, log, items, images,
                            stretch, study_id)
    except BaseException:
        for d in items:  # no orphan item files from a failed build
            (out / f"{d['item_id']}.png").unlink(missing_ok=True)
        raise


def _method_details(models: list[str]) -> dict:
    """Per learned model: the weights' sha256, the blend and the back-projection steps it ran with."""
    from .. import api, zoo

    out = {}
    for m in models:
        e = zoo.get_entry(m)
        if e.kind == "generator":
            out[m] = {"sha256": e.sha256, "blend": api.resolve_blend(m, None),
                      "lr_consistency": api.resolve_consistency(m, None)}
    return out


def _build_items(files, out, models, crop, limit, calibration, precision, log, items, images,
                 stretch=STRETCH, study_id=None) -> dict:
    from .. import api
    from ..degrade import degrade
    from ..imio import ImageError, read_image

    colour = False
    n_rated = 0
    t0 = time.time()
    for path in files:
        if limit is not None and n_rated >= limit and len(images) >= calibration:
            break
        try:
            a, _info = read_image(path)
        except ImageError as exc:
            log(f"skip {path}: {exc}")
            continue
        h, w = a.shape[:2]
        if h < crop or w < crop:
            log(f"skip {path}: {w}x{h} is smaller than the {crop}x{crop} crop")
            continue
        y, x = best_crop(a, crop)
        hr, pad = _display_hr(a[y:y + crop, x:x + crop])
        lr = degrade(hr)
        is_cal = len([i for i in images if i["role"] == "calibration"]) < calibration
        role = "calibration" if is_cal else "rated"
        image_id = f"img{len(images):03d}"
        outs = {REFERENCE: hr}
        for m in ([LOW_ANCHOR] if is_cal else models):
            outs[m] = api.upscale(lr, m, precision=precision)
        for m, o in outs.items():
            if o.shape[:2] != hr.shape[:2] or o.dtype != np.uint8:
                raise RuntimeError(f"method {m!r} returned {o.shape} {o.dtype}; expected {hr.shape} uint8")
        outs, window = display_stretch(outs, hr, stretch)
        for m, o in outs.items():
            if pad:
                o = np.concatenate([o, np.zeros_like(o[:, :, :1])], axis=2)
            colour = colour or o.ndim == 3
            item_id = secrets.token_hex(8)
            while any(d["item_id"] == item_id for d in items):
                item_id = secrets.token_hex(8)
            _save_png(out / f"{item_id}.png", o)
            label = None
            if is_cal:
                label = 5 if m == REFERENCE else 1
            items.append({"item_id": item_id, "image_id": image_id, "method": m, "role": role, "label": label})
        images.append({"image_id": image_id, "source": str(path), "crop_yx": [int(y), int(x)], "role": role,
                       "display_window": window})
        n_rated += role == "rated"
        log(f"{image_id} ({role}): {path.name} crop at y={y}, x={x}, {len(outs)} items")
    if n_rated == 0:
        raise ValueError(f"need at least {calibration + 1} usable images of at least {crop}x{crop} "
                         f"({calibration} for calibration, the rest to rate); found {len(images)}")
    order = np.random.default_rng(secrets.randbits(64)).permutation(len(items))  # no method order in the file
    manifest = {
        "format": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "crop": crop,
        "study_id": study_id,
        "stretch_percentiles": list(stretch) if stretch else None,
        "size": [crop, crop],
        "mode": "RGB" if colour else "L",
        "methods": models + [REFERENCE],
        "method_details": _method_details(models),  # what each method was when the pool was made
        "images": images,
        "items": [items[i] for i in order],
    }
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out / MANIFEST)
    log(f"pool {out}: {n_rated} rated images x {len(models) + 1} methods = "
        f"{sum(d['role'] == 'rated' for d in items)} items, {len(images) - n_rated} calibration image(s), "
        f"{time.time() - t0:.1f} s")
    return manifest
