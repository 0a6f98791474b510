"""Evaluation: the paper's table on folders of HR images, with paired comparisons.

    python -m sr evaluate --data DIR --models nearest,bicubic,srgan,srgan-improved@1 [--json F]

For every HR image: crop to a multiple of 4, LR = :func:`sr.degrade.degrade` (Pillow bicubic
1/4), each method upscales the LR 4x (``id@a`` runs a GAN at blend ``a``, else at its default,
see :mod:`sr.blend`), and each result is scored against the HR image:

* PSNR / SSIM (:mod:`sr.metrics` conventions: :data:`sr.metrics.RANGE_NOTE`; ``--ssim``
  chooses the window), globally and on the foreground (cells: Otsu on the smoothed reference);
* paired differences to a baseline (``--baseline``, default bicubic) on the same images: mean,
  95% t interval and wins / ties / losses. Per-method intervals (about +/-0.9 dB on 200 HPA
  images) cannot separate models 0.1 dB apart; paired ones can (about +/-0.1 dB);
* perceptual measures that need no downloaded weights (:mod:`sr.spectral`): the
  high-frequency log-spectral distance to the reference (dB, lower is better), the Fourier ring
  correlation resolution (pixels, lower is better) and, when a zoo feature network with the
  ``eval-features`` role is trained, a feature distance in it (it is not msrgan's content
  network, so msrgan is not graded by its own loss);
* ``--segmentation``: nuclei Dice and count error on nucleus (blue/DAPI) images;
* mean inference time per image (the first call of each model is a warm-up, not timed).
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import degrade, imio, metrics, spectral, zoo
from .tables import columns, command_line, markdown_table

TIES = {"psnr": 0.05, "ssim": 0.001, "fg_psnr": 0.05, "fg_ssim": 0.001}  # |difference| below: a tie


@dataclass
class MethodResult:
    model: str
    per_image: list = field(default_factory=list)  # one dict of metrics per image, in file order
    images: list = field(default_factory=list)

    def values(self, key: str) -> list:
        return [r.get(key) for r in self.per_image]

    # the lists of the previous interface
    @property
    def psnr(self) -> list:
        return self.values("psnr")

    @property
    def ssim(self) -> list:
        return self.values("ssim")


def parse_method(spec: str) -> tuple[str, float | None]:
    """``"srgan-improved@0.5"`` -> ("srgan-improved", 0.5); ``"bicubic"`` -> ("bicubic", None)."""
    mid, a, _ = parse_spec(spec)
    return mid, a


def parse_spec(spec: str) -> tuple[str, float | None, int | None]:
    """``id[@a][~k]``: model, blend ``a`` (None: its default) and back-projection steps ``k``
    (None: its default; :mod:`sr.consistency`), e.g. ``"srgan-improved@1~0"``."""
    head, _, k = spec.partition("~")
    mid, _, a = head.partition("@")
    return mid, (float(a) if a else None), (int(k) if k else None)


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its two-sided t confidence interval."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
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


class FeatureDistance:
    """Feature distance in the zoo's ``eval-features`` network (scale-free MSE of its features)."""

    def __init__(self, model_id: str):
        self.model_id = model_id
        self.net = zoo.load(model_id)

    def features(self, a: np.ndarray):
        import torch

        x, _ = imio.normalize(a if a.ndim == 2 else a.mean(axis=2).astype(np.float32), "dtype")
        with torch.inference_mode():
            return self.net.features(torch.from_numpy(x)[None]).float()

    def __call__(self, ref_features, out: np.ndarray) -> float:
        f = self.features(out)
        return float(((f - ref_features) ** 2).mean() / ((ref_features ** 2).mean() + 1e-8))


def feature_metric() -> FeatureDistance | None:
    ids = [m for m in zoo.with_role("eval-features") if zoo.get_entry(m).available]
    return FeatureDistance(ids[0]) if ids else None


def _plane(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) if a.ndim == 2 else a.astype(np.float64).mean(axis=2)


def evaluate(files: list[Path], models: list[str], precision: str | None = None,
             segmentation: bool = False, progress: bool = True, window: str = "uniform",
             perceptual: bool = True, spectra: dict | None = None) -> dict[str, MethodResult]:
    """Score every method on every file. ``spectra`` (a dict) collects the mean radial power
    spectrum per method (and ``reference``) for the spectrum figure."""
    from . import api

    results = {m: MethodResult(m) for m in models}
    feat = feature_metric() if perceptual else None
    warmed: set[str] = set()
    for i, path in enumerate(files):
        hr, _ = imio.read_image(path)
        hr = degrade.crop_to_multiple(hr)
        lr = degrade.degrade(hr)
        mask = metrics.foreground_mask(hr)
        seg_hr = segment_nuclei(hr) if segmentation and _is_nucleus(path) else None
        ref_feat = feat.features(hr) if feat else None
        if spectra is not None:
            _add_spectrum(spectra, "reference", hr)
        outs = {}
        for m in models:
            mid, blend, k = parse_spec(m)
            if m not in warmed:  # first call loads the model and warms up: not timed
                api.upscale(lr[:32, :32], mid, precision=precision, blend=blend, consistency=k)
                warmed.add(m)
            t = time.perf_counter()
            out = api.upscale(lr, mid, precision=precision, blend=blend, consistency=k)
            rec = {"time_s": time.perf_counter() - t,
                   **metrics.score(hr, out, window=window, foreground=True, mask=mask)}
            if perceptual:
                rec["lsd"] = spectral.hf_lsd(_plane(hr), _plane(out))
                rec["frc_px"] = spectral.frc_resolution(_plane(hr), _plane(out))
                rec["phase_bias"] = spectral.phase_bias(_plane(out)) * 255 / _range(hr)
                if feat:
                    rec["feat_dist"] = feat(ref_feat, out)
            if seg_hr is not None:
                smask, n = segment_nuclei(out)
                rec["dice"] = dice(seg_hr[0], smask)
                rec["count_err"] = abs(n - seg_hr[1]) / max(seg_hr[1], 1)
            if spectra is not None:
                _add_spectrum(spectra, m, out)
            results[m].per_image.append(rec)
            results[m].images.append(path.name)
            outs[m] = out
        for m in models:  # a GAN (at any blend) against the pixel-loss model it was fine-tuned from
            parent = zoo.get_entry(parse_method(m)[0]).blend_parent
            if parent in outs:
                d = np.abs(outs[m].astype(np.float64) - outs[parent].astype(np.float64)).mean()
                results[m].per_image[-1]["mad_parent"] = float(d) * 255 / _range(hr)
        if progress:
            print(f"[{i + 1}/{len(files)}] {path.name}", flush=True)
    return results


def _precision_note(precision: str | None, models: list[str] | None = None) -> str:
    """What ran: the precision asked for, and for ``auto`` what it ran per learned model."""
    from .settings import settings

    asked = precision or settings().precision
    if asked != "auto":
        return asked
    ran: dict[str, list[str]] = {}
    from .api import fast_model

    for m in models or []:
        mid, a, k = parse_spec(m)
        if zoo.get_entry(mid).kind == "generator":
            ran.setdefault(fast_model(mid, blend=a, consistency=k).fast_precision, []).append(m)
    said = "; ".join(f"{p}: {', '.join(ms)}" for p, ms in sorted(ran.items()))
    return ("auto: int8 where the model ships a matching int8 form within its validation drift bounds and "
            "the CPU has int8 instructions, else bf16" + (f" (here {said})" if said else ""))


def _consistency_note(models: list[str]) -> str:
    from .api import resolve_consistency

    steps = {mid: resolve_consistency(mid, None) for mid, _, _ in map(parse_spec, models)
             if zoo.get_entry(mid).kind == "generator"}
    on = sorted(f"{mid} {k}" for mid, k in steps.items() if k)
    return ", ".join(on) if on else "none"


def _range(hr: np.ndarray) -> float:
    """The reference's data range, as PSNR takes it (255 for 8-bit, else max - min)."""
    return 255.0 if hr.dtype == np.uint8 else max(float(hr.max()) - float(hr.min()), 1e-12)


def _add_spectrum(spectra: dict, key: str, a: np.ndarray) -> None:
    c, pw = spectral.radial_power(_plane(a))
    prev = spectra.get(key)
    spectra[key] = (c, pw, 1) if prev is None else (c, prev[1] + pw, prev[2] + 1)


def _is_nucleus(path: Path) -> bool:
    from .data import parse_name

    return parse_name(path)[1] == "blue"


def paired(a: list, b: list, tie: float) -> dict:
    """Mean paired difference a - b, its 95% t half-width, and wins / ties / losses of a."""
    d = np.asarray([x - y for x, y in zip(a, b) if x is not None and y is not None
                    and np.isfinite(x) and np.isfinite(y)], dtype=np.float64)
    m, ci = mean_ci(d)
    return {"mean": m, "ci95": ci, "wins": int((d > tie).sum()), "ties": int((np.abs(d) <= tie).sum()),
            "losses": int((d < -tie).sum())}


def summarize(results: dict[str, MethodResult], baseline: str | None = "bicubic") -> list[dict]:
    rows = []
    base = results.get(baseline) if baseline else None
    for m, r in results.items():
        row = {"model": m, "images": len(r.per_image)}
        for key, nd in (("psnr", 3), ("ssim", 4), ("fg_psnr", 3), ("fg_ssim", 4)):
            v, ci = mean_ci(r.values(key))
            row[key], row[key + "_ci95"] = round(v, nd), round(ci, nd)
            if base is not None and r is not base:
                pr = paired(r.values(key), base.values(key), TIES[key])
                row[f"d{key}_vs_{baseline}"] = round(pr["mean"], nd)
                row[f"d{key}_ci95"] = round(pr["ci95"], nd)
                if key in ("psnr", "ssim"):
                    row[f"{key}_w/t/l"] = f"{pr['wins']}/{pr['ties']}/{pr['losses']}"
        for key, nd in (("lsd", 2), ("frc_px", 2), ("phase_bias", 3), ("mad_parent", 3), ("feat_dist", 4)):
            vals = [v for v in r.values(key) if v is not None]
            if vals:
                row[key] = round(float(np.mean(vals)), nd)
        if any(v is not None for v in r.values("dice")):
            d, dci = mean_ci([v for v in r.values("dice") if v is not None])
            c, cci = mean_ci([v for v in r.values("count_err") if v is not None])
            row.update({"seg_images": sum(v is not None for v in r.values("dice")), "dice": round(d, 4),
                        "dice_ci95": round(dci, 4), "count_rel_err": round(c, 4), "count_rel_err_ci95": round(cci, 4)})
        times = [t for t in r.values("time_s") if t is not None]
        if times:
            row["time_s"] = round(float(np.mean(times)), 4)
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
    from .runtime import hardware

    models = args.models.split(",") if args.models else [e.id for e in zoo.super_resolvers()]
    if all(zoo.get_entry(parse_method(m)[0]).kind == "featurenet" for m in models):
        return _featurenet_cli(args, models)
    for m in models:
        mid, blend = parse_method(m)
        e = zoo.get_entry(mid)
        if not e.upscales:
            raise zoo.ZooError(f"{mid!r} is not a super-resolution model")
        if not e.available:
            raise zoo.ZooError(f"model {mid!r} has no weights yet")
    baseline = args.baseline if args.baseline in models else None
    files = collect(args.data, args.limit)
    spectra: dict = {}
    results = evaluate(files, models, precision=args.precision, segmentation=args.segmentation,
                       window=args.ssim, spectra=spectra)
    rows = summarize(results, baseline)
    name = args.name or "eval_" + "_".join(Path(d).name for d in args.data)
    command = command_line()
    feat = feature_metric()
    note = (f"{len(files)} HR images; LR = Pillow bicubic 1/4; PSNR/SSIM per `sr.metrics` ({metrics.RANGE_NOTE}; "
            f"SSIM {args.ssim} window; channel mean; no border crop); `fg_*`: on the cells only (Otsu on the "
            f"smoothed reference, dilated 4 px); ci95 = half-width of the 95% t interval of the mean"
            + (f"; `d*_vs_{baseline}`: paired difference to {baseline} on the same images, with its 95% interval "
               f"and wins/ties/losses (ties: |dPSNR| <= {TIES['psnr']} dB, |dSSIM| <= {TIES['ssim']})" if baseline else "")
            + "; `lsd`: high-frequency log-spectral distance to the reference (dB, above the LR Nyquist "
              "frequency; lower is closer); `frc_px`: Fourier ring correlation resolution against the reference "
              "(1/7 threshold, pixels; lower is better); `phase_bias`: checkerboard, the spread over the 4x4 "
              "pixel phases of the mean high-pass residual (8-bit grey levels; camera images and bicubic read "
              "about 0.02-0.04); `mad_parent`: a GAN's mean absolute difference from the pixel-loss model it "
              "was fine-tuned from (8-bit grey levels)"
            + (f"; `feat_dist`: feature distance in `{feat.model_id}` (not msrgan's content network)" if feat else "")
            + f"; `id@a`: a GAN at blend a (else its default); `~k`: with k back-projection steps onto the input "
              f"(else the model's: {_consistency_note(models)}); time = mean seconds per image "
              f"({_precision_note(args.precision, models)}, {hardware()}).")
    md, csv_path = write_tables(rows, Path(args.out), name, f"Evaluation: {', '.join(args.data)}", command, note)
    print(md.read_text())
    if spectra:
        fig = Path(args.out) / f"{name}_spectrum.png"
        spectral.plot_spectra({k: (c, p / n) for k, (c, p, n) in spectra.items()}, fig,
                              f"Radial power spectrum, mean over {len(files)} images")
        print(fig)
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "files": [str(f) for f in files],
                                               "rows": rows}, indent=1), encoding="utf-8")
    if args.figure:
        rois = [tuple(int(v) for v in r.split(",")) for r in args.figure_roi] or [(96, 96, 64), (288, 288, 64)]
        from .paper_figure import paper_figure

        print(paper_figure(args.figure, [parse_method(m)[0] for m in models if "@" not in m and "~" not in m], rois,
                           Path(args.out) / f"{name}_figure.png"))
    if args.update_cards:
        from .publish import write_card

        keep = ("psnr", "ssim", "fg_psnr", "fg_ssim", "lsd", "frc_px", "phase_bias", "mad_parent", "feat_dist")
        for row in rows:  # card fields merge, so the order of a GAN's own and blend-1 rows does not matter
            mid, blend, k = parse_spec(row["model"])
            if k is not None:  # a variant (e.g. without back-projection): shown, not the card's numbers
                continue
            if blend is not None:
                if blend == 1.0 and zoo.get_entry(mid).learned:  # the GAN itself, next to its default blend
                    zoo.update_entry(mid, card={f"test_blend1_{k}": row[k] for k in keep if k in row})
                    write_card(mid)
                continue
            card = {f"test_{k}": row[k] for k in keep if k in row}
            if baseline and f"dpsnr_vs_{baseline}" in row:
                card.update({f"test_dpsnr_vs_{baseline}": row[f"dpsnr_vs_{baseline}"], "test_dpsnr_ci95": row["dpsnr_ci95"],
                             f"test_dssim_vs_{baseline}": row[f"dssim_vs_{baseline}"], "test_dssim_ci95": row["dssim_ci95"]})
            zoo.update_entry(mid, card={**card, "test_images": row["images"], "test_command": command})
            if zoo.get_entry(mid).learned:
                write_card(mid)
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
