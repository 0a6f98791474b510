"""Several images at once (a zip of HR images): per-model means with paired comparisons.

Every image is scored as in the high-resolution mode (downscaled 4x, upscaled back, compared
with the original), then :func:`sr.evaluate.summarize` gives per model the mean PSNR/SSIM (and
on the cells), the paired difference to bicubic on the same images with its 95% interval and
wins/ties/losses, and the high-frequency spectral distance. The zip is read in memory, never
extracted: member names are not trusted, sizes are checked before reading, and images are
decoded under the app's limits.
"""
from __future__ import annotations

import csv
import zipfile
from pathlib import Path

from .. import degrade, imio, metrics, spectral, zoo
from ..evaluate import MethodResult, summarize
from .config import SCALE, Progress
from .errors import AppError
from .inputs import safe_stem
from .security import is_url
from .workspace import new_run_dir

MAX_IMAGES = 48
MAX_MEMBER_BYTES = 64 * 2**20  # uncompressed size of one member
MAX_TOTAL_BYTES = 512 * 2**20  # uncompressed size of all image members
MAX_RATIO = 200  # uncompressed / compressed: more is a zip bomb, not an image
BATCH_HEADERS = ["model", "images", "PSNR (dB)", "SSIM", "cells PSNR", "cells SSIM", "dPSNR vs bicubic",
                 "95% CI", "W/T/L (PSNR)", "dSSIM vs bicubic", "HF spectrum distance (dB)"]


def read_zip(path) -> list[tuple[str, bytes]]:
    """(safe name, bytes) of every image member, after size checks; raises :class:`AppError`."""
    if not path or is_url(path):
        raise AppError("Upload a .zip of high-resolution images.")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise AppError("That file is not a readable .zip archive.") from None
    with zf:
        members = [m for m in zf.infolist()
                   if not m.is_dir() and Path(m.filename).suffix.lower() in imio.SUFFIXES]
        if not members:
            raise AppError(f"The zip holds no images ({', '.join(imio.SUFFIXES)}).")
        if len(members) > MAX_IMAGES:
            raise AppError(f"The zip holds {len(members)} images; at most {MAX_IMAGES} are scored at once "
                           "(use `python -m sr evaluate` for more).")
        total = sum(m.file_size for m in members)
        for m in members:
            if m.file_size > MAX_MEMBER_BYTES or m.file_size > MAX_RATIO * max(m.compress_size, 1) + 2**16:
                raise AppError(f"A member of the zip expands to {m.file_size / 2**20:,.0f} MiB: refused.")
        if total > MAX_TOTAL_BYTES:
            raise AppError(f"The images in the zip expand to {total / 2**20:,.0f} MiB, over {MAX_TOTAL_BYTES >> 20} MiB.")
        out = []
        for i, m in enumerate(members):
            with zf.open(m) as f:
                data = f.read(MAX_MEMBER_BYTES + 1)
            if len(data) > MAX_MEMBER_BYTES:
                raise AppError("A member of the zip is larger than it says: refused.")
            out.append((f"{i:02d}_{safe_stem(Path(m.filename).name)}", data))
        return out


def run_batch(path, model_ids, *, session: str | None = None, progress: Progress | None = None) -> dict:
    """Score every model on every image of the zip; ``{"rows", "csv", "message", "run_dir"}``."""
    from .. import api

    model_ids = [m for m in dict.fromkeys(model_ids or []) if zoo.get_entry(m).upscales]
    if not model_ids:
        raise AppError("Choose at least one model to run.")
    if "bicubic" not in model_ids:
        model_ids = ["bicubic"] + model_ids  # the baseline of the paired comparison
    images = read_zip(path)
    results = {m: MethodResult(m) for m in model_ids if zoo.get_entry(m).available}
    skipped = []
    n = len(images)
    for i, (name, data) in enumerate(images):
        try:
            hr, _ = imio.read_image(data)
            if min(hr.shape[:2]) < 2 * SCALE:
                raise imio.ImageError("too small")
        except imio.ImageError as exc:
            skipped.append(f"{name}: {exc}")
            continue
        hr = degrade.crop_to_multiple(hr)
        lr = degrade.degrade(hr)
        mask = metrics.foreground_mask(hr)
        for m in results:
            if progress:
                progress(i / n, f"image {i + 1}/{n}: {m}")
            out = api.upscale(lr, m)
            rec = metrics.score(hr, out, foreground=True, mask=mask)
            rec["lsd"] = spectral.hf_lsd(hr.astype("float64") if hr.ndim == 2 else hr.mean(axis=2),
                                         out.astype("float64") if out.ndim == 2 else out.mean(axis=2))
            results[m].per_image.append(rec)
            results[m].images.append(name)
    if not any(r.per_image for r in results.values()):
        raise AppError("None of the images in the zip could be read: " + "; ".join(skipped[:3]))
    summary = summarize(results, "bicubic")
    run_dir = new_run_dir(session)
    csv_path = run_dir / "batch_metrics.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["model", "image", "psnr_db", "ssim", "cells_psnr_db", "cells_ssim", "hf_spectral_distance_db"])
        for m, r in results.items():
            for img, rec in zip(r.images, r.per_image):
                w.writerow([m, img, f"{rec['psnr']:.4f}", f"{rec['ssim']:.5f}", f"{rec['fg_psnr']:.4f}",
                            f"{rec['fg_ssim']:.5f}", f"{rec['lsd']:.3f}"])
    rows = [[s["model"], s["images"], s["psnr"], s["ssim"], s["fg_psnr"], s["fg_ssim"],
             s.get("dpsnr_vs_bicubic"), s.get("dpsnr_ci95"), s.get("psnr_w/t/l"), s.get("dssim_vs_bicubic"),
             s.get("lsd")] for s in summary]
    msg = (f"{len(results['bicubic'].per_image)} image(s) scored against their originals; paired differences "
           "to bicubic on the same images (mean, 95% interval, wins/ties/losses).")
    if skipped:
        msg += " Skipped: " + "; ".join(skipped[:5]) + ("…" if len(skipped) > 5 else "")
    return {"rows": rows, "csv": str(csv_path), "message": msg, "run_dir": str(run_dir)}
