"""Evaluation: the paper's table (PSNR / SSIM / time per method) on folders of HR images.

    python -m sr evaluate --data DIR [--data DIR2] --models nearest,bicubic,srgan [--json F]

For every HR image: crop to a multiple of 4, LR = :func:`sr.degrade.degrade` (Pillow bicubic
1/4), each method upscales the LR 4x, and PSNR/SSIM are computed against the HR with
:mod:`sr.metrics` conventions. Reported per method: mean, 95% confidence interval of the
mean (Student t over images), mean inference time per image (the model's first call is a
warm-up and is not timed). ``--segmentation`` adds the downstream check on nucleus (blue /
DAPI) images: Otsu threshold + connected components on HR and on each output, Dice of the
foreground masks and the relative error of the nuclei count.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import degrade, imio, metrics, zoo
from .tables import columns, command_line, markdown_table


@dataclass
class MethodResult:
    model: str
    psnr: list = field(default_factory=list)
    ssim: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    dice: list = field(default_factory=list)
    count_err: list = field(default_factory=list)
    images: list = field(default_factory=list)


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its two-sided t confidence interval."""
    from scipy import stats

    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) < 2:
        return float(v.mean()), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(half)


def segment_nuclei(a: np.ndarray) -> tuple[np.ndarray, int]:
    """Otsu foreground mask and number of connected components (min 16 px) of a grey image."""
    from skimage.filters import threshold_otsu
    from skimage.measure import label
    from skimage.morphology import remove_small_objects

    g = a if a.ndim == 2 else a.mean(axis=2)
    g = g.astype(np.float64)
    if g.max() == g.min():
        return np.zeros(g.shape, bool), 0
    mask = g > threshold_otsu(g)
    mask = remove_small_objects(mask, max_size=15)
    return mask, int(label(mask).max())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * np.logical_and(a, b).sum() / s)


def collect(folders: list[str], limit: int | None = None) -> list[Path]:
    files: list[Path] = []
    for f in folders:
        p = Path(f)
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files += sorted(x for x in p.rglob("*") if x.suffix.lower() in imio.SUFFIXES and x.is_file())
        else:
            raise FileNotFoundError(f"no such file or folder: {f}")
    if not files:
        raise FileNotFoundError(f"no images in {', '.join(folders)}")
    return files[:limit] if limit else files


def evaluate(files: list[Path], models: list[str], precision: str | None = None,
             segmentation: bool = False, progress: bool = True) -> dict[str, MethodResult]:
    from . import api

    results = {m: MethodResult(m) for m in models}
    warmed: set[str] = set()
    for i, path in enumerate(files):
        hr, _ = imio.read_image(path)
        hr = degrade.crop_to_multiple(hr)
        lr = degrade.degrade(hr)
        seg_hr = segment_nuclei(hr) if segmentation and _is_nucleus(path) else None
        for m in models:
            if m not in warmed:  # first call loads the model and warms up: not timed
                api.upscale(lr[:32, :32], m, precision=precision)
                warmed.add(m)
            t = time.perf_counter()
            out = api.upscale(lr, m, precision=precision)
            dt = time.perf_counter() - t
            r = results[m]
            r.psnr.append(metrics.psnr(hr, out))
            r.ssim.append(metrics.ssim(hr, out))
            r.seconds.append(dt)
            r.images.append(path.name)
            if seg_hr is not None:
                mask, n = segment_nuclei(out)
                r.dice.append(dice(seg_hr[0], mask))
                r.count_err.append(abs(n - seg_hr[1]) / max(seg_hr[1], 1))
        if progress:
            print(f"[{i + 1}/{len(files)}] {path.name}", flush=True)
    return results


def _is_nucleus(path: Path) -> bool:
    from .data import parse_name

    return parse_name(path)[1] == "blue"


def summarize(results: dict[str, MethodResult]) -> list[dict]:
    rows = []
    for m, r in results.items():
        p, pci = mean_ci(r.psnr)
        s, sci = mean_ci(r.ssim)
        row = {"model": m, "images": len(r.psnr), "psnr": round(p, 3), "psnr_ci95": round(pci, 3),
               "ssim": round(s, 4), "ssim_ci95": round(sci, 4),
               "time_s": round(float(np.mean(r.seconds)), 4) if r.seconds else None}
        if r.dice:
            d, dci = mean_ci(r.dice)
            c, cci = mean_ci(r.count_err)
            row.update({"seg_images": len(r.dice), "dice": round(d, 4), "dice_ci95": round(dci, 4),
                        "count_rel_err": round(c, 4), "count_rel_err_ci95": round(cci, 4)})
        rows.append(row)
    return rows


def to_markdown(rows: list[dict], title: str, command: str, note: str = "") -> str:
    lines = [f"# {title}", "", f"Command: `{command}`", ""]
    if note:
        lines += [note, ""]
    lines += markdown_table(rows)
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict], out_dir: Path, name: str, title: str, command: str, note: str = "") -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{name}.md"
    md.write_text(to_markdown(rows, title, command, note), encoding="utf-8")
    csv_path = out_dir / f"{name}.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, columns(rows))
        w.writeheader()
        w.writerows(rows)
    return md, csv_path


def cli(args) -> int:

    from .runtime import resolve_precision
    from .runtime import hardware

    models = args.models.split(",") if args.models else [e.id for e in zoo.super_resolvers()]
    if all(zoo.get_entry(m).kind == "featurenet" for m in models):
        return _featurenet_cli(args, models)
    for m in models:
        e = zoo.get_entry(m)
        if e.kind not in ("baseline", "generator"):
            raise zoo.ZooError(f"{m!r} is not a super-resolution model")
        if not e.available:
            raise zoo.ZooError(f"model {m!r} has no weights yet")
    files = collect(args.data, args.limit)
    results = evaluate(files, models, precision=args.precision, segmentation=args.segmentation)
    rows = summarize(results)
    name = args.name or "eval_" + "_".join(Path(d).name for d in args.data)
    command = command_line()
    note = (f"{len(files)} HR images; LR = Pillow bicubic 1/4; PSNR/SSIM per `sr.metrics` (data range "
            f"from dtype, channel mean, no border crop); ci95 = half-width of the 95% t interval of the "
            f"mean; time = mean seconds per image ({resolve_precision(args.precision)}, {hardware()}).")
    md, csv_path = write_tables(rows, Path(args.out), name, f"Evaluation: {', '.join(args.data)}", command, note)
    print(md.read_text())
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "files": [str(f) for f in files],
                                               "rows": rows}, indent=1), encoding="utf-8")
    if args.figure:
        rois = [tuple(int(v) for v in r.split(",")) for r in args.figure_roi] or [(96, 96, 64), (288, 288, 64)]
        print(paper_figure(args.figure, models, rois, Path(args.out) / f"{name}_figure.png"))
    if args.update_cards:
        from .publish import write_card

        for row in rows:
            zoo.update_entry(row["model"], card={"test_psnr": row["psnr"], "test_ssim": row["ssim"],
                                                 "test_images": row["images"], "test_command": command})
            if zoo.get_entry(row["model"]).learned:
                write_card(row["model"])
    return 0


def stain_accuracy(model_id: str, files: list[Path], precision: str | None = None) -> dict:
    """Whole-image stain classification accuracy of a feature network on HPA-named files."""
    import torch

    from .data import STAINS, parse_name
    from .runtime import autocast, resolve_precision

    net = zoo.load(model_id)
    precision = resolve_precision(precision)
    correct, total = 0, 0
    confusion = np.zeros((len(STAINS), len(STAINS)), dtype=int)
    for path in files:
        stain = parse_name(path)[1]
        if stain not in STAINS:
            continue
        a, _ = imio.read_image(path)
        x, _ = imio.normalize(a if a.ndim == 2 else a.mean(axis=2).astype(a.dtype), "dtype")
        with torch.inference_mode(), autocast(precision):
            pred = int(net(torch.from_numpy(x)[None]).float().argmax(1))
        truth = STAINS.index(stain)
        confusion[truth, pred] += 1
        correct += pred == truth
        total += 1
    if total == 0:
        raise FileNotFoundError("no files named {id}_{red|green|blue|yellow}.* to score stain accuracy")
    return {"model": model_id, "images": total, "stain_accuracy": round(correct / total, 4),
            "confusion_rows_truth": {s: confusion[i].tolist() for i, s in enumerate(STAINS)}}


def _featurenet_cli(args, models: list[str]) -> int:

    files = collect(args.data, args.limit)
    command = command_line()
    results = [stain_accuracy(m, files, args.precision) for m in models]
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "results": results}, indent=1), encoding="utf-8")
    if args.update_cards:
        from .publish import write_card

        for r in results:
            zoo.update_entry(r["model"], card={"test_stain_accuracy": r["stain_accuracy"],
                                               "test_images": r["images"], "test_command": command})
            write_card(r["model"])
    return 0


def paper_figure(image: str | Path, models: list[str], rois: list[tuple[int, int, int]], out: Path) -> Path:
    """The seed-style figure for one HR test image: one panel row per ROI box, every method
    side by side (LR input, each model, HR), built with the app's own comparison figure."""
    from PIL import Image

    from .app import comparison, roi, workspace
    from .app.config import MODE_HR

    state = comparison.run_comparison(str(image), MODE_HR, models)
    try:
        parts = [Image.open(roi.roi_views(state, x, y, s)["figure"]).convert("RGB") for x, y, s in rois]
        fig = Image.new("RGB", (max(p.width for p in parts), sum(p.height for p in parts)), "white")
        y0 = 0
        for p in parts:
            fig.paste(p, (0, y0))
            y0 += p.height
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.save(out)
    finally:
        workspace.cleanup_state(state)
    return out
