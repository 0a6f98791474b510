"""One comparison run: every chosen model on one image, scored, written to a run folder.

The run is described by a plain dict (the per-user ``gr.State``): :func:`run_comparison`
makes it; :mod:`sr.app.roi`, :func:`slider_pair`, :func:`table_rows` work from it.
"""
from __future__ import annotations

import csv
import logging
import math
import re
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from .. import degrade as _degrade
from .. import imio, metrics, spectral, zoo
from ..display import Stretch, nearest, save_preview, save_view
from ..tiling import DEFAULT_TILE
from .config import MODE_HR, NO_METRICS_WHY, SCALE, Progress
from .errors import AppError
from .inputs import output_size, read_input
from .models import model_choices
from .roi import auto_roi, clamp_roi, default_roi_size
from .runstate import _item, _require, caption
from .workspace import new_run_dir

log = logging.getLogger("sr.app")




def _lossless_suffix(info: imio.ImageInfo, a: np.ndarray) -> str:
    """16-bit and float results, TIFF inputs and channel stacks -> .tif; 8-bit grey/RGB -> .png."""
    if a.dtype != np.uint8:
        return ".tif"
    return imio.output_suffix(info, a)

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
    blend: float | None = None,
    consistency: bool = True,
) -> dict:
    """Run the chosen models on one image; returns the run's state dict (see module doc).

    ``roi``: optional (x, y) top-left of the zoom region in result pixels (else automatic);
    ``roi_size``: its side (default about a fifth of the image).
    ``blend``: the fidelity-detail blend of every GAN with its pixel-loss parent (0..1; None:
    each GAN's validated default; see :mod:`sr.blend`). Other models ignore it.
    ``consistency``: run each model's back-projection steps onto the input (on for the GANs;
    :mod:`sr.consistency`); False runs every generator without them.
    """
    from .. import api

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
        return _run(a, info, name, mode, model_ids, roi, roi_size, tile, run_dir, progress, api, blend,
                    None if consistency in (True, None) else 0)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise

def _run(a, info, name, mode, model_ids, roi, roi_size, tile, run_dir: Path, progress, api, blend=None,
         consistency=None) -> dict:
    notes = []
    if mode == MODE_HR:
        ref = _degrade.crop_to_multiple(a)
        if ref.shape[:2] != a.shape[:2]:
            notes.append(f"The image was cropped from {a.shape[1]}x{a.shape[0]} to "
                         f"{ref.shape[1]}x{ref.shape[0]} px (a multiple of 4) to be the reference.")
        lr = _degrade.degrade(ref)
        stretch = Stretch.of(ref)
        fg_mask = metrics.foreground_mask(ref)
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
        if a.dtype != np.uint8:
            notes.append(f"PSNR/SSIM of this {a.dtype} image use the reference's own range (max - min "
                         "of each channel), not the full range of the type: see the metrics note.")
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
            if not entry.upscales:
                row["status"] = f"not a super-resolution model ({entry.kind})"
                continue
            if not entry.available:
                row["status"] = "not trained yet"
                continue
            if progress:
                progress(i / n, f"{entry.title}: loading")
            b = _model_blend(mid, blend)
            k = api.resolve_consistency(mid, consistency) if entry.kind == "generator" else 0
            if b is not None:
                row["label"] = f"{entry.title} (blend {b:g}{', consistent' if k else ''})"
                row["blend"] = b
            if entry.kind == "generator":
                t_load = time.perf_counter()
                net = api.fast_model(mid, blend=b, consistency=k)  # load once (shared, read-only); not part of the timing
                row["precision"] = getattr(net, "fast_precision", None)
                if time.perf_counter() - t_load > 0.05:
                    row["load_s"] = time.perf_counter() - t_load

            def on_tile(done, total, i=i, title=entry.title):
                if progress:
                    progress((i + done / max(total, 1)) / n, f"{title}: tile {done}/{total}")

            t0 = time.perf_counter()
            out = api.upscale(lr, mid, tile=tile, progress=on_tile, blend=b,
                              **({"consistency": k} if entry.kind == "generator" else {}))
            row["time_s"] = time.perf_counter() - t0
            if out.shape[:2] != (out_h, out_w):
                raise RuntimeError(f"result is {out.shape[1]}x{out.shape[0]}, expected {out_w}x{out_h}")
            row["phase_bias"] = checkerboard(out)
            if ref is not None:
                s = metrics.score(ref, out, foreground=True, mask=fg_mask)
                row["psnr"] = None if math.isinf(s["psnr"]) else s["psnr"]
                row["ssim"] = s["ssim"]
                row["fg_psnr"] = None if math.isinf(s["fg_psnr"]) else s["fg_psnr"]
                row["fg_ssim"] = s["fg_ssim"]
                row["lsd"] = spectral.hf_lsd(_mean_plane(ref), _mean_plane(out))
                if ref.ndim == 3 and ref.shape[2] > 1:
                    row["channels"] = metrics.per_channel(ref, out)
                if math.isinf(s["psnr"]):
                    row["status"] = "ok (identical to the reference)"
            f = run_dir / f"{name}_{mid}_x4{_lossless_suffix(info, out)}"
            imio.write_image(f, out, info)
            downloads.append(str(f))
            add_item(mid, row["label"], "model", stretch.apply(out), id=mid, psnr=row["psnr"],
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
    if _channel_notes(rows):
        notes.append(_channel_notes(rows))
    loads = [r for r in rows if r.get("load_s")]
    if loads:
        notes.append("First use (loading and converting the model, not in the time column): " + "; ".join(
            f"**{r['id']}** {r['load_s']:.1f} s" for r in loads) + ". Later runs reuse the loaded model.")
    skipped = [r for r in rows if not r["status"].startswith("ok")]
    if skipped:
        notes.append("Not run: " + "; ".join(f"**{r['id']}**: {r['status']}" for r in skipped) + ".")
    with open(run_dir / "metrics.csv", "w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh)
        wr.writerow(["model", "id", "psnr_db", "ssim", "time_s", "status", "cells_psnr_db", "cells_ssim",
                     "hf_spectral_distance_db", "checkerboard_grey_levels", "blend"])
        for r in rows:
            f4 = lambda v, n=4: "" if v is None else f"{v:.{n}f}"  # noqa: E731
            wr.writerow([r["label"], r["id"], f4(r["psnr"]), f4(r["ssim"], 5), f4(r["time_s"]), r["status"],
                         f4(r.get("fg_psnr")), f4(r.get("fg_ssim"), 5), f4(r.get("lsd"), 3), f4(r.get("phase_bias"), 3), r.get("blend", "")])
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

def checkerboard(out: np.ndarray, crop: int = 1024) -> float:
    """:func:`sr.spectral.phase_bias` of a result in 8-bit grey levels (other types: of its own
    range), on its central ``crop`` (aligned to the 4x grid) so that huge results cost no more."""
    h, w = out.shape[:2]
    y0, x0 = max(0, (h - crop) // 2) // 4 * 4, max(0, (w - crop) // 2) // 4 * 4
    part = _mean_plane(out[y0:y0 + crop, x0:x0 + crop])
    span = 255.0 if out.dtype == np.uint8 else float(part.max() - part.min())  # as PSNR takes the range
    return spectral.phase_bias(part) * 255.0 / max(span, 1e-12)


def _mean_plane(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) if a.ndim == 2 else a.astype(np.float64).mean(axis=2)


def _channel_notes(rows: list[dict]) -> str:
    """Per-channel PSNR/SSIM of each model (multi-channel references), as one Markdown line each."""
    lines = []
    for r in rows:
        if r.get("channels"):
            parts = ", ".join(f"ch{i}: {c['psnr']:.2f} dB / {c['ssim']:.3f}" for i, c in enumerate(r["channels"]))
            lines.append(f"- {r['label']}: {parts}")
    return "Per channel (PSNR / SSIM):\n" + "\n".join(lines) if lines else ""


def _model_blend(model_id: str, blend: float | None) -> float | None:
    """The blend this run uses for ``model_id`` (None: a model without a blend)."""
    from .. import blend as _blend

    if not _blend.can_blend(model_id):
        return None
    return _blend.default_blend(model_id) if blend is None else _blend.quantize(blend)


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
                    None if r["time_s"] is None else round(r["time_s"], 3), r["status"],
                    None if r.get("fg_psnr") is None else round(r["fg_psnr"], 2),
                    None if r.get("fg_ssim") is None else round(r["fg_ssim"], 4),
                    None if r.get("lsd") is None else round(r["lsd"], 2),
                    None if r.get("phase_bias") is None else round(r["phase_bias"], 3)])
    return out

def gallery(state: dict | None) -> list[tuple[str, str]]:
    """(PNG path, caption) of every image of the run: input, reference, results."""
    return [(it["view"], caption(it)) for it in (state or {}).get("items", [])]



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
