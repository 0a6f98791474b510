"""Everything the Gradio demo does, without Gradio (``app.py`` only wires the UI to this).

One comparison run (:func:`run_comparison`) reads the user's image, makes the low-resolution
input (mode ``"hr"``: :func:`sr.degrade.degrade` of the image, which is then the reference;
mode ``"lr"``: the image itself, no reference), runs every chosen model through
:func:`sr.api.upscale`, scores the results (:func:`sr.metrics.score`), and writes into a
per-run temporary folder:

* the lossless result of each model (TIFF for 16-bit/float/TIFF inputs and channel stacks,
  else PNG), the LR input (mode ``"hr"``), ``metrics.csv`` and a zip of all of them;
* for display: one uint8 array per image (``.npy``, memory-mapped for region-of-interest
  crops) and a PNG view of at most :data:`VIEW_MAX` pixels a side. All display images share
  one intensity stretch (from the reference, or the input), so brightness is comparable.

The run is described by a plain dict (the per-user ``gr.State``); :func:`roi_views`,
:func:`slider_pair`, :func:`table_rows` and :func:`comparison_figure` work from it.
User errors raise :class:`AppError` or :class:`sr.imio.ImageError` with a message for the user.
"""
from __future__ import annotations

import csv
import logging
import math
import os
import re
import shutil
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import degrade as _degrade
from . import imio, metrics, zoo

log = logging.getLogger("sr.app")

SCALE = _degrade.SCALE
REPO_DIR = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = REPO_DIR / "examples"
DEFAULT_MODELS = ("bicubic", "srgan", "srgan-improved")
DEFAULT_TILE = 192
MODE_HR, MODE_LR = "hr", "lr"
MODE_CHOICES = [
    ("My image is high-resolution: downscale it 4x, upscale it back and score each result "
     "against it (PSNR/SSIM)", MODE_HR),
    ("My image is low-resolution: just upscale it 4x (no reference, so no PSNR/SSIM)", MODE_LR),
]
NO_METRICS_WHY = ("No PSNR/SSIM in low-resolution mode: these metrics compare a result with the "
                  "true high-resolution image, and there is none for an image that is already the "
                  "low-resolution input. To score the models, use the high-resolution mode: the app "
                  "then makes the low-resolution input itself (bicubic 4x downscale) and compares "
                  "each result with your original.")
VIEW_MAX = 2048  # longest side of the PNG views sent to the browser (gallery, slider, preview)
ROI_VIEW = 256   # region-of-interest crops are shown at about this size, nearest neighbour
PREVIEW_MIN = 384  # small images are previewed enlarged (nearest) to at least this size, to click
FIG_CELL = 256   # size of one panel of the comparison figure
TABLE_HEADERS = ["model", "id", "PSNR (dB)", "SSIM", "time (s)", "status"]
ZOO_HEADERS = ["id", "model", "kind", "status", "architecture", "training", "test PSNR / SSIM",
               "Hub repo @ revision"]
LOSSLESS_NOTE = "TIFF keeps 16-bit/float data and channel stacks; 8-bit grey/RGB results are PNG"


class AppError(ValueError):
    """A problem with what the user asked for; the message is shown to the user."""


Progress = Callable[[float, str], None]


# ---------------------------------------------------------------------------- settings

def server_settings(env: dict | None = None) -> dict:
    """``server_name``/``server_port`` for ``launch``: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT,
    else 127.0.0.1:7860 locally and 0.0.0.0 on a Hugging Face Space (``SPACE_ID`` set)."""
    env = os.environ if env is None else env
    name = env.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if env.get("SPACE_ID") else "127.0.0.1")
    port = env.get("GRADIO_SERVER_PORT") or "7860"
    try:
        port = int(port)
    except ValueError:
        raise AppError(f"GRADIO_SERVER_PORT={port!r} is not a port number") from None
    return {"server_name": name, "server_port": port}


def max_file_size() -> str:
    """Upload limit (Gradio syntax, e.g. ``"64mb"``), from ``SR_APP_MAX_FILE_SIZE``."""
    return os.environ.get("SR_APP_MAX_FILE_SIZE", "64mb")


def max_output_pixels() -> int:
    """Largest result (H*W, per channel) the app computes, from ``SR_APP_MAX_OUTPUT_PIXELS``."""
    return int(os.environ.get("SR_APP_MAX_OUTPUT_PIXELS", 2048 * 2048))


def concurrency_limit() -> int:
    """How many inference jobs run at once (``SR_APP_CONCURRENCY``, default 1: torch already
    uses every core for one job)."""
    return max(1, int(os.environ.get("SR_APP_CONCURRENCY", "1")))


def warm_up(model_ids=DEFAULT_MODELS) -> list[str]:
    """Load the default models (shared, read-only) and run each once on a tiny image, so the
    first user does not pay for loading and first-call initialisation. Returns the models
    warmed; never raises (a model that cannot load is reported when a user asks for it)."""
    from . import api

    done = []
    tiny = np.zeros((24, 24), np.uint8)
    for mid in model_ids:
        try:
            e = zoo.get_entry(mid)
            if e.available and e.kind in ("baseline", "generator"):
                out = api.upscale(tiny, mid)
                metrics.score(nearest(tiny, SCALE), out)
                done.append(mid)
        except Exception as exc:  # noqa: BLE001 - best effort only
            log.info("warm-up of %s skipped: %s", mid, exc)
    return done


# ---------------------------------------------------------------------------- examples

@dataclass(frozen=True)
class Example:
    file: str
    mode: str
    label: str


EXAMPLES = (
    Example("hpa_test_02ad0dd2_green.png", MODE_HR, "HPA test image: protein stain (green)"),
    Example("hpa_test_79c54a6e_blue.png", MODE_HR, "HPA test image: nuclei (blue)"),
    Example("hpa_test_3d5e183c_red.png", MODE_HR, "HPA test image: microtubules (red)"),
    Example("hpa_composite_00008af0.png", MODE_HR, "HPA RGB composite (seed project)"),
    Example("seed_lr128_0349cea2_3.png", MODE_LR, "Seed project 128x128 low-res composite A"),
    Example("seed_lr128_05caacd4_2.png", MODE_LR, "Seed project 128x128 low-res composite B"),
    Example("zebrafish_16bit_crop.tif", MODE_HR, "16-bit TIFF: zebrafish spinal cord"),
    Example("ht29_3channel_stack.tif", MODE_HR, "3-channel TIFF stack: HT29 cells"),
    Example("mouse_brain_section.png", MODE_HR, "Cross-domain: mouse brain section"),
    Example("usaf_target.png", MODE_HR, "Cross-domain: USAF resolution target"),
    Example("histology_he.jpg", MODE_HR, "Cross-domain: H&E histology"),
    Example("em_isbi2012_test_0.png", MODE_HR, "Cross-domain: electron microscopy"),
    Example("photo_chelsea.png", MODE_HR, "Cross-domain: natural photo"),
)


def examples() -> list[Example]:
    """The examples whose files exist (``examples/``)."""
    return [e for e in EXAMPLES if (EXAMPLES_DIR / e.file).is_file()]


# ---------------------------------------------------------------------------- models

def model_label(entry: zoo.ModelEntry) -> str:
    return f"{entry.title} [{entry.id}]" + ("" if entry.available else " (not trained yet)")


def model_choices() -> list[tuple[str, str]]:
    """(label, id) of every super-resolution model; unavailable ones say "not trained yet"."""
    return [(model_label(e), e.id) for e in zoo.super_resolvers(available_only=False)]


def default_models() -> list[str]:
    ids = {e.id for e in zoo.super_resolvers(available_only=False)}
    return [m for m in DEFAULT_MODELS if m in ids]


def _recipe_summary(e: zoo.ModelEntry) -> str:
    r = e.recipe or {}
    if e.kind == "baseline":
        return "none (interpolation)"
    if r.get("stage") == "pretrain":
        return f"pixel loss ({r.get('pixel_loss', 'mse')}) only"
    if r.get("stage") == "gan":
        d = r.get("discriminator", {})
        head = {"gap": "global-average-pooling", "dense": "flatten+dense"}.get(d.get("head"), d.get("head", "?"))
        content = r.get("content", "mse")
        content = "pixel MSE" if content == "mse" else f"features of {content.split(':', 1)[-1]}"
        return (f"GAN from {r.get('init', 'scratch')}; {head} discriminator; content: {content}; "
                f"adversarial weight {r.get('adv_weight')}")
    return r.get("stage", "")


def _card_metric(card: dict, name: str):
    """A test metric from the model card: a key mentioning ``name`` (``test`` keys first)."""
    keys = [k for k, v in (card or {}).items() if name in k.lower() and isinstance(v, (int, float))]
    keys.sort(key=lambda k: (not k.lower().startswith("test"), "val" in k.lower(), k))
    return round(float(card[keys[0]]), 4) if keys else None


def zoo_rows() -> list[list]:
    """The model-zoo table (:data:`ZOO_HEADERS`): every super-resolution model."""
    from .arch import describe

    rows = []
    for e in zoo.super_resolvers(available_only=False):
        arch = (f"no learning ({e.method})" if e.kind == "baseline" else describe(e.arch))
        status = "built in" if e.kind == "baseline" else ("weights pinned" if e.available else "not trained yet")
        psnr, ssim = _card_metric(e.card, "psnr"), _card_metric(e.card, "ssim")
        scores = " / ".join(f"{v:g}" for v in (psnr, ssim) if v is not None)
        hub = "" if e.repo_id is None else f"{e.repo_id} @ {e.revision or 'not published'}"
        rows.append([e.id, e.title, e.kind, status, arch, _recipe_summary(e), scores, hub])
    return rows


def model_card_markdown(model_id: str | None) -> str:
    """The model's card (the same text as its Hub README, without the YAML header)."""
    if not model_id:
        return "Choose a model to see its card."
    e = zoo.get_entry(model_id)
    if e.kind == "baseline":
        return (f"# {e.title} (`{e.id}`)\n\n{e.description}\n\nA non-learned baseline: "
                f"Pillow `{e.method}` 4x upscaling of each channel (`sr.degrade.upscale_baseline`). "
                "It has no weights and is always available.")
    from .publish import render_card

    text = render_card(e)
    if text.startswith("---"):
        end = text.find("\n---", 3)
        text = text[end + 4:].lstrip() if end >= 0 else text
    if e.available:
        status = (f"**Weights:** `model.safetensors` sha256 `{e.sha256[:16]}…`, Hub repo "
                  f"`{e.repo_id}`, revision `{e.revision or 'not published yet'}`.")
    else:
        status = (f"**Not trained yet:** no weights are pinned in the registry, so the demo cannot "
                  f"run this model. Train it with `python -m sr train --model {e.id}`. "
                  f"Hub repo: `{e.repo_id}`.")
    return status + "\n\n" + text


# ---------------------------------------------------------------------------- no URL fetching

# the guard lives in sr/url_guard.py; these names stay importable from here
from .url_guard import URL_REFUSED, NoRemoteFetch, is_url  # noqa: E402,F401


# ---------------------------------------------------------------------------- input

def safe_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(name)).stem).strip("._")
    return stem[:60] or "image"


def read_input(path) -> tuple[np.ndarray, imio.ImageInfo, str]:
    """Read the uploaded file: (array, info, safe name stem)."""
    if not path:
        raise AppError("No image yet: upload one (PNG, JPEG or TIFF) or click an example.")
    if is_url(path):
        raise AppError(URL_REFUSED)
    try:
        a, info = imio.read_image(path)
    except imio.ImageError as exc:  # name the user's file, not the server's temporary copy
        raise imio.ImageError(str(exc).replace(str(path), Path(path).name)) from None
    return a, info, safe_stem(Path(path).name)


def describe_image(a: np.ndarray, info: imio.ImageInfo) -> str:
    h, w = a.shape[:2]
    c = 1 if a.ndim == 2 else a.shape[2]
    kind = {1: "grey", 3: "RGB"}.get(c, f"{c}-channel stack")
    if info.channel_axis == "first" and c > 1:
        kind = f"{c}-channel stack"
    text = f"{w}x{h} px, {kind}, {a.dtype} ({info.format.upper()})"
    if c > 3 or (c == 2) or (c == 3 and info.channel_axis == "first"):
        text += "; shown as " + ("the first three channels as RGB" if c > 3 else
                                 "RGB" if c == 3 else "red/green") + ", all channels are processed and downloaded"
    if info.note:
        text += f"; {info.note}"
    return text


def output_size(a: np.ndarray, mode: str) -> tuple[int, int]:
    """Size of the results for ``mode``; raises :class:`AppError` if out of the app's limits."""
    h, w = a.shape[:2]
    if mode == MODE_HR:
        if h < 2 * SCALE or w < 2 * SCALE:
            raise AppError(f"The image is {w}x{h} px: too small to downscale 4x and still have an "
                           f"input (at least {2 * SCALE}x{2 * SCALE} px are needed). Use the "
                           "low-resolution mode to just upscale it.")
        oh, ow = h - h % SCALE, w - w % SCALE
    elif mode == MODE_LR:
        oh, ow = h * SCALE, w * SCALE
    else:
        raise AppError(f"Unknown mode {mode!r}: use {MODE_HR!r} (score against the image) or "
                       f"{MODE_LR!r} (just upscale).")
    limit = max_output_pixels()
    if oh * ow > limit:
        side = int(math.sqrt(limit))
        raise AppError(f"The 4x results would be {ow}x{oh} = {oh * ow:,} px, over this demo's limit of "
                       f"{limit:,} px (about {side}x{side}). Crop the image, use the high-resolution mode "
                       f"for a large image, or run `python -m sr upscale` (no limit, tiled) on your "
                       f"machine. The limit is SR_APP_MAX_OUTPUT_PIXELS.")
    return oh, ow


# ---------------------------------------------------------------------------- display

@dataclass(frozen=True)
class Stretch:
    """One intensity mapping to uint8 shared by all images of a run (None: uint8 as is)."""

    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    @classmethod
    def of(cls, a: np.ndarray) -> "Stretch":
        if a.dtype == np.uint8:
            return cls()
        pct = (0.0, 100.0) if a.dtype == np.float32 else (0.1, 99.9)
        _, norm = imio.normalize(a, "percentile", pct)
        return cls(norm.lo, norm.hi)

    def apply(self, a: np.ndarray) -> np.ndarray:
        """Image -> uint8 grey (H,W) or RGB (H,W,3) for display."""
        if self.lo is None:
            u = a if a.dtype == np.uint8 else imio.to_uint8_display(a)
        else:
            c = imio.to_channels(a).astype(np.float32)
            x = (c - self.lo[:, None, None]) / (self.hi - self.lo)[:, None, None]
            u = imio.from_channels(np.clip(np.rint(x * 255), 0, 255).astype(np.uint8), a.ndim)
        return imio.to_uint8_display(u)


def nearest(a: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour (pixel replication) enlargement by an integer factor."""
    return a if k == 1 else np.repeat(np.repeat(a, k, axis=0), k, axis=1)


def save_png(path: Path, u8: np.ndarray) -> Path:
    Image.fromarray(u8).save(path, compress_level=3)
    return path


def save_preview(path: Path, u8: np.ndarray) -> float:
    """PNG of the image to click on: small images enlarged (nearest, integer factor), large
    ones reduced. Returns the factor preview pixels / image pixels."""
    k = max(1, PREVIEW_MIN // max(u8.shape[:2]))
    save_view(path, nearest(u8, k))
    return Image.open(path).width / u8.shape[1]


def save_view(path: Path, u8: np.ndarray, max_side: int = VIEW_MAX) -> Path:
    """PNG view of a display image, box-downscaled to at most ``max_side`` pixels a side."""
    im = Image.fromarray(u8)
    if max(im.size) > max_side:
        f = max_side / max(im.size)
        im = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.BOX)
    im.save(path, compress_level=3)
    return path


# ---------------------------------------------------------------------------- temp files

def tmp_root() -> Path:
    """Folder of the per-run folders (``SR_APP_TMP``, default ``$TMPDIR/sr-app``)."""
    return Path(os.environ.get("SR_APP_TMP") or Path(tempfile.gettempdir()) / "sr-app")


def new_run_dir(session: str | None = None) -> Path:
    d = tmp_root() / (safe_stem(session or "") if session else "nosession") / uuid.uuid4().hex[:12]
    d.mkdir(parents=True, exist_ok=False)
    return d


def _is_run_dir(path: Path) -> bool:
    try:
        path.resolve().relative_to(tmp_root().resolve())
    except ValueError:
        return False
    return path.resolve() != tmp_root().resolve()


def cleanup_state(state: dict | None) -> None:
    """Delete a run's folder (the ``gr.State`` delete callback and before a new run)."""
    if isinstance(state, dict) and state.get("run_dir"):
        d = Path(state["run_dir"])
        if d.is_dir() and _is_run_dir(d):
            shutil.rmtree(d, ignore_errors=True)
            try:
                d.parent.rmdir()  # the session folder, if now empty
            except OSError:
                pass


def sweep_old(max_age_s: float = 6 * 3600, now: float | None = None) -> int:
    """Delete run folders older than ``max_age_s`` (left over by closed sessions or a crash)."""
    root = tmp_root()
    now = time.time() if now is None else now
    removed = 0
    if not root.is_dir():
        return 0
    for sess in root.iterdir():
        if not sess.is_dir():
            continue
        for run in sess.iterdir():
            try:
                if now - run.stat().st_mtime > max_age_s:
                    shutil.rmtree(run, ignore_errors=True) if run.is_dir() else run.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        try:
            sess.rmdir()
        except OSError:
            pass
    return removed


# ---------------------------------------------------------------------------- the comparison

def _fmt_time(t: float | None) -> str:
    return "" if t is None else (f"{t * 1000:.0f} ms" if t < 1 else f"{t:.2f} s")


def caption(item: dict) -> str:
    """Name, then PSNR/SSIM (mode hr) and time: "Bicubic: 27.35 dB, SSIM 0.683, 3 ms"."""
    parts = []
    if item.get("psnr") is not None:
        parts.append(f"{item['psnr']:.2f} dB, SSIM {item['ssim']:.3f}")
    if item.get("time_s") is not None:
        parts.append(_fmt_time(item["time_s"]))
    return item["label"] + (": " + ", ".join(parts) if parts else "")


def _lossless_suffix(info: imio.ImageInfo, a: np.ndarray) -> str:
    """16-bit and float results, TIFF inputs and channel stacks -> .tif; 8-bit grey/RGB -> .png."""
    if a.dtype != np.uint8:
        return ".tif"
    return imio.output_suffix(info, a)


def auto_roi(disp: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` window with the most edges (where SR differences show)."""
    g = disp.astype(np.float32)
    if g.ndim == 3:
        g = g.mean(axis=2)
    h, w = g.shape
    f = max(1, math.ceil(max(h, w) / 256))
    hh, ww = h // f, w // f
    if hh < 2 or ww < 2:
        return 0, 0
    g = g[:hh * f, :ww * f].reshape(hh, f, ww, f).mean(axis=(1, 3))
    e = np.zeros_like(g)
    e[:, 1:] += np.diff(g, axis=1) ** 2
    e[1:, :] += np.diff(g, axis=0) ** 2
    k = max(1, min(size // f, hh, ww))
    ii = np.pad(e.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    win = ii[k:, k:] - ii[:-k, k:] - ii[k:, :-k] + ii[:-k, :-k]
    y, x = np.unravel_index(int(np.argmax(win)), win.shape)
    return int(x * f), int(y * f)


def default_roi_size(h: int, w: int) -> int:
    s = int(min(h, w) / 5) // 4 * 4
    return int(min(max(s, 16), 128, min(h, w)))


def clamp_roi(x, y, size, h: int, w: int) -> tuple[int, int, int]:
    """Square ROI (top-left x, y and side, in result pixels) kept inside an h x w image."""
    try:
        size = int(round(float(size))) if size not in (None, "") else default_roi_size(h, w)
        x = int(round(float(x))) if x not in (None, "") else 0
        y = int(round(float(y))) if y not in (None, "") else 0
    except (TypeError, ValueError, OverflowError):  # OverflowError: infinity
        raise AppError(f"ROI must be numbers; got x={x!r}, y={y!r}, size={size!r}") from None
    size = max(4, min(size, h, w))
    return min(max(x, 0), w - size), min(max(y, 0), h - size), size


def run_comparison(
    path,
    mode: str,
    model_ids,
    *,
    roi: tuple | None = None,
    roi_size: int | None = None,
    tile: int | None = DEFAULT_TILE,
    session: str | None = None,
    progress: Progress | None = None,
) -> dict:
    """Run the chosen models on one image; returns the run's state dict (see module doc).

    ``roi``: optional (x, y) top-left of the zoom region in result pixels (else automatic);
    ``roi_size``: its side (default about a fifth of the image).
    """
    from . import api

    if isinstance(model_ids, str):
        model_ids = [m for m in re.split(r"[,\s]+", model_ids) if m]
    model_ids = list(dict.fromkeys(model_ids or []))
    if not model_ids:
        raise AppError("Choose at least one model to run.")
    a, info, name = read_input(path)
    out_h, out_w = output_size(a, mode)
    tile = int(tile) if tile else None
    if tile is not None and not 16 <= tile <= 2048:
        raise AppError(f"Tile size {tile} is out of range (16 to 2048 low-resolution pixels).")
    run_dir = new_run_dir(session)
    try:
        return _run(a, info, name, mode, model_ids, roi, roi_size, tile, run_dir, progress, api)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _run(a, info, name, mode, model_ids, roi, roi_size, tile, run_dir: Path, progress, api) -> dict:
    notes = []
    if mode == MODE_HR:
        ref = _degrade.crop_to_multiple(a)
        if ref.shape[:2] != a.shape[:2]:
            notes.append(f"The image was cropped from {a.shape[1]}x{a.shape[0]} to "
                         f"{ref.shape[1]}x{ref.shape[0]} px (a multiple of 4) to be the reference.")
        lr = _degrade.degrade(ref)
        stretch = Stretch.of(ref)
    else:
        ref, lr = None, a
        stretch = Stretch.of(lr)
        notes.append(NO_METRICS_WHY)
    out_h, out_w = lr.shape[0] * SCALE, lr.shape[1] * SCALE
    if info.note:
        notes.append(f"Input: {info.note}.")
    items: list[dict] = []
    rows: list[dict] = []
    downloads: list[str] = []

    def add_item(key, label, kind, u8, **extra) -> dict:
        np.save(run_dir / f"disp_{key}.npy", u8)
        save_view(run_dir / f"view_{key}.png", u8)
        item = {"key": key, "label": label, "kind": kind, "npy": str(run_dir / f"disp_{key}.npy"),
                "view": str(run_dir / f"view_{key}.png"), **extra}
        items.append(item)
        return item

    lr_u8 = stretch.apply(lr)
    ref_u8 = stretch.apply(ref) if ref is not None else None
    # the image the user clicks to pick the region: the reference, or the input
    save_preview(run_dir / "preview_base.png", ref_u8 if ref_u8 is not None else lr_u8)
    if mode == MODE_HR:
        lr_file = run_dir / f"{name}_lr_input{_lossless_suffix(info, lr)}"
        imio.write_image(lr_file, lr, info)
        add_item("input", "LR input (4x bicubic downscale; nearest x4)", "input",
                 nearest(lr_u8, SCALE))
        if a.dtype == np.uint16:
            notes.append("PSNR/SSIM use the full 16-bit data range (65535), the project's "
                         "convention: an image that uses a small part of it gets high values.")
    else:
        lr_file = None
        add_item("input", "Input (nearest x4)", "input", nearest(lr_u8, SCALE))

    n = len(model_ids)
    for i, mid in enumerate(model_ids):
        row = {"id": mid, "label": mid, "psnr": None, "ssim": None, "time_s": None, "status": ""}
        rows.append(row)
        try:
            entry = zoo.get_entry(mid)
            row["label"] = entry.title
            if entry.kind not in ("baseline", "generator"):
                row["status"] = f"not a super-resolution model ({entry.kind})"
                continue
            if not entry.available:
                row["status"] = "not trained yet"
                continue
            if progress:
                progress(i / n, f"{entry.title}: loading")
            if entry.kind == "generator":
                api.fast_model(mid)  # load once (shared, read-only); not part of the timing

            def on_tile(done, total, i=i, title=entry.title):
                if progress:
                    progress((i + done / max(total, 1)) / n, f"{title}: tile {done}/{total}")

            t0 = time.perf_counter()
            out = api.upscale(lr, mid, tile=tile, progress=on_tile)
            row["time_s"] = time.perf_counter() - t0
            if out.shape[:2] != (out_h, out_w):
                raise RuntimeError(f"result is {out.shape[1]}x{out.shape[0]}, expected {out_w}x{out_h}")
            if ref is not None:
                s = metrics.score(ref, out)
                row["psnr"] = None if math.isinf(s["psnr"]) else s["psnr"]
                row["ssim"] = s["ssim"]
                if math.isinf(s["psnr"]):
                    row["status"] = "ok (identical to the reference)"
            f = run_dir / f"{name}_{mid}_x4{_lossless_suffix(info, out)}"
            imio.write_image(f, out, info)
            downloads.append(str(f))
            add_item(mid, entry.title, "model", stretch.apply(out), id=mid, psnr=row["psnr"],
                     ssim=row["ssim"], time_s=row["time_s"], file=str(f))
            row["status"] = row["status"] or "ok"
            del out
        except zoo.ZooError as exc:
            row["status"] = f"unavailable: {exc}"
        except imio.ImageError as exc:
            row["status"] = f"cannot process: {exc}"
        except MemoryError:
            row["status"] = "out of memory: try a smaller image or tile size"
        except Exception as exc:  # one model failing must not take the others down
            log.exception("model %s failed", mid)
            row["status"] = f"failed: {type(exc).__name__}: {exc}"
    if ref_u8 is not None:  # last, as in the seed project's figures: LR, methods, HR
        add_item("reference", "Reference (original HR)", "reference", ref_u8)
    if progress:
        progress(1.0, "writing results")

    ok = [r for r in rows if r["status"].startswith("ok")]
    skipped = [r for r in rows if not r["status"].startswith("ok")]
    if skipped:
        notes.append("Not run: " + "; ".join(f"**{r['id']}**: {r['status']}" for r in skipped) + ".")
    with open(run_dir / "metrics.csv", "w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh)
        wr.writerow(["model", "id", "psnr_db", "ssim", "time_s", "status"])
        for r in rows:
            wr.writerow([r["label"], r["id"], "" if r["psnr"] is None else f"{r['psnr']:.4f}",
                         "" if r["ssim"] is None else f"{r['ssim']:.5f}",
                         "" if r["time_s"] is None else f"{r['time_s']:.4f}", r["status"]])
    files = list(downloads)
    if lr_file is not None:
        files.append(str(lr_file))
    files.append(str(run_dir / "metrics.csv"))
    zpath = run_dir / f"{name}_sr_results.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as z:
        for fpath in files:
            z.write(fpath, Path(fpath).name)

    base = items[-1] if mode == MODE_HR else items[0]  # the reference, or the input
    size = roi_size if roi_size not in (None, "", 0) else default_roi_size(out_h, out_w)
    if roi is not None and roi[0] not in (None, "") and roi[1] not in (None, ""):
        x, y = roi[0], roi[1]
    else:
        x, y = auto_roi(np.load(base["npy"], mmap_mode="r"), int(size))
    pw = Image.open(run_dir / "preview_base.png").width
    state = {
        "run_dir": str(run_dir), "name": name, "mode": mode, "out_hw": [out_h, out_w],
        "lr_hw": list(lr.shape[:2]), "dtype": str(a.dtype), "format": info.format,
        "preview_base": str(run_dir / "preview_base.png"), "preview_scale": out_w / pw,
        "items": items, "rows": rows, "notes": notes,
        "downloads": [str(zpath)] + files, "roi": list(clamp_roi(x, y, size, out_h, out_w)),
    }
    state["message"] = summary_markdown(state, ok)
    return state


def summary_markdown(state: dict, ok_rows: list[dict]) -> str:
    h, w = state["out_hw"]
    lh, lw = state["lr_hw"]
    if state["mode"] == MODE_HR:
        head = (f"**{state['name']}**: reference {w}x{h} px, downscaled to a {lw}x{lh} px input, "
                f"upscaled 4x by {len(ok_rows)} model(s).")
        scored = [r for r in ok_rows if r["psnr"] is not None]
        if scored:
            best = max(scored, key=lambda r: r["psnr"])
            head += f" Best PSNR: **{best['label']}** ({best['psnr']:.2f} dB)."
    else:
        head = (f"**{state['name']}**: {lw}x{lh} px input upscaled 4x to {w}x{h} px by "
                f"{len(ok_rows)} model(s).")
    if not ok_rows:
        head = "**No model could run.** " + head
    return "\n\n".join([head] + state["notes"])


def table_rows(state: dict | None) -> list[list]:
    """Rows for :data:`TABLE_HEADERS`."""
    if not state:
        return []
    out = []
    for r in state["rows"]:
        out.append([r["label"], r["id"],
                    None if r["psnr"] is None else round(r["psnr"], 2),
                    None if r["ssim"] is None else round(r["ssim"], 4),
                    None if r["time_s"] is None else round(r["time_s"], 3), r["status"]])
    return out


def gallery(state: dict | None) -> list[tuple[str, str]]:
    """(PNG path, caption) of every image of the run: input, reference, results."""
    return [(it["view"], caption(it)) for it in (state or {}).get("items", [])]


def _item(state: dict, key: str) -> dict:
    for it in state["items"]:
        if it["key"] == key or it["label"] == key:
            return it
    raise AppError(f"No image {key!r} in this run; choose one of: "
                   + ", ".join(it["key"] for it in state["items"]))


def _require(state: dict | None) -> dict:
    if not state or not state.get("items"):
        raise AppError("Run a comparison first.")
    if not Path(state["run_dir"]).is_dir():
        raise AppError("This run's files have expired; run the comparison again.")
    return state


# ---------------------------------------------------------------------------- slider

def image_keys() -> list[tuple[str, str]]:
    """Every image key a run can have: ``input``, ``reference`` and the model ids."""
    return [("Input (low-res)", "input"), ("Reference (original)", "reference")] + model_choices()


def slider_choices(state: dict | None) -> list[tuple[str, str]]:
    return [(it["label"], it["key"]) for it in (state or {}).get("items", [])]


def default_slider_keys(state: dict) -> tuple[str, str]:
    """Bicubic (else the input) on the left; the last learned model (else the reference or the
    last result) on the right."""
    keys = [it["key"] for it in state["items"]]
    models = [it for it in state["items"] if it["kind"] == "model"]
    learned = [it["key"] for it in models if zoo.get_entry(it["key"]).learned]
    left = "bicubic" if "bicubic" in keys else "input"
    if learned:
        right = learned[-1]
    elif "reference" in keys:
        right = "reference"
    else:
        right = models[-1]["key"] if models else keys[-1]
    if right == left:
        right = keys[-1] if keys[-1] != left else keys[0]
    return left, right


def slider_pair(state: dict | None, a: str | None, b: str | None) -> tuple[str, str]:
    """PNG views of two images of the run (same size), for the before/after slider."""
    state = _require(state)
    da, db = default_slider_keys(state)
    return _item(state, a or da)["view"], _item(state, b or db)["view"]


# ---------------------------------------------------------------------------- region of interest

def roi_from_click(state: dict | None, px: float, py: float, size, mode: str | None = None,
                   preview_factor: float = 1.0) -> tuple[int, int, int]:
    """ROI centred on a click at (px, py) in the preview image's pixels.

    After a run the run's preview is used; before one, the upload preview (``preview_factor``
    preview pixels per image pixel), whose results will be 1x (mode hr) or 4x (lr) the image."""
    if state and state.get("items"):
        scale = state["preview_scale"]
        h, w = state["out_hw"]
    else:
        scale = (SCALE if mode == MODE_LR else 1) / (preview_factor or 1.0)
        h = w = 10 ** 9
    size = int(size) if size else 64
    cx, cy = (px + 0.5) * scale, (py + 0.5) * scale
    return clamp_roi(cx - size / 2, cy - size / 2, size, h, w)


def _crop(item: dict, x: int, y: int, s: int) -> np.ndarray:
    arr = np.load(item["npy"], mmap_mode="r")
    return np.ascontiguousarray(arr[y:y + s, x:x + s])


def _zoom_factor(s: int) -> int:
    return max(1, min(math.ceil(ROI_VIEW / s), 1024 // s if s <= 1024 else 1))


def roi_views(state: dict | None, x, y, size) -> dict:
    """Zoom one region in every image of the run (nearest neighbour, crisp pixels).

    Returns ``{"roi": (x, y, size), "gallery": [(png, caption)], "preview": png with the box,
    "figure": comparison figure png}``; writes into a fresh sub-folder of the run.
    """
    state = _require(state)
    h, w = state["out_hw"]
    x, y, s = clamp_roi(x, y, size, h, w)
    d = Path(state["run_dir"]) / f"roi_{uuid.uuid4().hex[:8]}"
    d.mkdir()
    k = _zoom_factor(s)
    crops, out = {}, []
    for it in state["items"]:
        c = _crop(it, x, y, s)
        crops[it["key"]] = c
        p = save_png(d / f"roi_{it['key']}.png", nearest(c, k))
        out.append((str(p), caption(it)))
    prev = Image.open(state["preview_base"]).convert("RGB")
    sc = state["preview_scale"]
    _box(ImageDraw.Draw(prev), x / sc, y / sc, s / sc, max(2, round(max(prev.size) / 250)))
    prev.save(d / "preview_roi.png", compress_level=3)
    fig = comparison_figure(state, (x, y, s), crops, d / f"{state['name']}_comparison.png")
    state["roi"] = [x, y, s]
    return {"roi": (x, y, s), "gallery": out, "preview": str(d / "preview_roi.png"), "figure": str(fig)}


def _box(draw: ImageDraw.ImageDraw, x, y, s, width: int, color=(255, 221, 0)) -> None:
    draw.rectangle([x - width, y - width, x + s + width - 1, y + s + width - 1], outline=color, width=width)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType: fixed bitmap font
        return ImageFont.load_default()


def _wrap(text: str, draw: ImageDraw.ImageDraw, font, width: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        t = f"{cur} {word}".strip()
        if draw.textlength(t, font=font) <= width or not cur:
            cur = t
        else:
            lines.append(cur)
            cur = word
    return lines + ([cur] if cur else [])


def comparison_figure(state: dict, roi: tuple[int, int, int], crops: dict | None = None,
                      path: Path | None = None) -> Path:
    """A figure like the seed's: per method, the whole image with the ROI box, the ROI zoomed
    (nearest neighbour) and its name, PSNR/SSIM and time."""
    x, y, s = roi
    items = state["items"]
    cell, pad, text_h, title_h = FIG_CELL, 10, 64, 34
    n = len(items)
    W = n * cell + (n + 1) * pad
    H = title_h + 2 * cell + 3 * pad + text_h
    fig = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(fig)
    f_title, f_text = _font(16), _font(13)
    oh, ow = state["out_hw"]
    mode = "score against the original" if state["mode"] == MODE_HR else "upscale only, no reference"
    draw.text((pad, 8), f"{state['name']}: 4x super-resolution ({mode}); region x={x}, y={y}, "
              f"{s}x{s} px of {ow}x{oh}", fill="black", font=f_title)
    for j, it in enumerate(items):
        x0 = pad + j * (cell + pad)
        view = Image.open(it["view"]).convert("RGB")
        view.thumbnail((cell, cell), Image.BOX)
        ox, oy = x0 + (cell - view.width) // 2, title_h + (cell - view.height) // 2
        fig.paste(view, (ox, oy))
        f = view.width / ow
        _box(draw, ox + x * f, oy + y * f, s * f, 2)
        c = crops[it["key"]] if crops else _crop(it, x, y, s)
        zoom = Image.fromarray(c).convert("RGB").resize((cell, cell), Image.NEAREST)
        fig.paste(zoom, (x0, title_h + cell + pad))
        ty = title_h + 2 * cell + 2 * pad
        lines = _wrap(it["label"], draw, f_text, cell)[:2]
        if it.get("psnr") is not None:
            lines.append(f"{it['psnr']:.2f} dB / SSIM {it['ssim']:.4f}")
        if it.get("time_s") is not None:
            lines.append(_fmt_time(it["time_s"]))
        for li, line in enumerate(lines[:4]):
            draw.text((x0, ty + li * 16), line, fill="black", font=f_text)
    path = Path(path) if path else Path(state["run_dir"]) / f"{state['name']}_comparison.png"
    fig.save(path, compress_level=3)
    return path


# ---------------------------------------------------------------------------- single model

def upscale_file(path, model_id: str, *, tile: int | None = DEFAULT_TILE, session: str | None = None,
                 progress: Progress | None = None) -> dict:
    """Upscale one image with one model: ``{"file": lossless result, "view": png, "message"}``."""
    from . import api

    if not model_id:
        raise AppError("Choose a model.")
    entry = zoo.get_entry(model_id)
    if entry.kind not in ("baseline", "generator"):
        raise AppError(f"{model_id!r} is not a super-resolution model.")
    if not entry.available:
        raise AppError(f"Model {model_id!r} is not trained yet (no weights pinned); choose another.")
    a, info, name = read_input(path)
    output_size(a, MODE_LR)
    run_dir = new_run_dir(session)
    try:
        if entry.kind == "generator":
            api.fast_model(model_id)
        t0 = time.perf_counter()
        out = api.upscale(a, model_id, tile=int(tile) if tile else None,
                          progress=(lambda d, t: progress(d / max(t, 1), f"tile {d}/{t}")) if progress else None)
        dt = time.perf_counter() - t0
        f = run_dir / f"{name}_{model_id}_x4{_lossless_suffix(info, out)}"
        imio.write_image(f, out, info)
        view = save_view(run_dir / f"view_{model_id}.png", Stretch.of(a).apply(out))
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    msg = (f"**{entry.title}**: {a.shape[1]}x{a.shape[0]} -> {out.shape[1]}x{out.shape[0]} px, {out.dtype}, "
           f"in {_fmt_time(dt)}. Download: `{f.name}` (lossless; {LOSSLESS_NOTE}).")
    return {"file": str(f), "view": str(view), "message": msg, "run_dir": str(run_dir)}


def preview_input(path, session: str | None = None) -> dict:
    """Preview PNG and a one-line description of an uploaded image."""
    a, info, name = read_input(path)
    d = new_run_dir(session)
    view = d / f"preview_{name}.png"
    factor = save_preview(view, Stretch.of(a).apply(a))
    return {"view": str(view), "text": describe_image(a, info), "run_dir": str(d),
            "shape": list(a.shape), "factor": factor}
