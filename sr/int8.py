"""int8 inference: post-training static quantisation of the zoo generators with OpenVINO NNCF.

``python -m sr quantize MODEL|all --data TRAIN_DIR`` quantises the fast path's rewritten
generator (:class:`sr.runtime.FastGenerator`, fp32, the model at its default blend) with
``nncf.quantize``: convolution weights per output channel and activations per tensor in int8
(NNCF's ``mixed`` preset), calibrated on whole low-resolution images of the *training* split
of ``TRAIN_DIR`` (its validation fields are held out by field id, as in training; a folder
named like a test split is refused).

Fluorescence fields span a wide range: dim fields use a few grey levels, saturated nuclei sit
at the top of the 8-bit range. NNCF's activation ranges (the mean over calibration images of
each image's extremes) clip the brightest fields (one saturated validation field lost 2.4 dB),
and the full extremes cost the dim fields resolution (SSIM -0.03). So the activation ranges are
widened by a factor, and some layers may stay out of int8 (in bf16 where the CPU has it, else
fp32: mixed precision): the first convolution, the output convolution's shifts and gather (its
1x1 taps run int8 where validation allows: the first variant), and the residual sums, whose int8
re-quantisation of the skip stream at every block added up over 16 blocks (on srgan-improved's
validation fields: -0.10 dB and SSIM -0.018 with them in int8, -0.02 dB and SSIM -0.005 with
them in bf16, at about the same speed). Tried on the validation fields: all convolutions or
all but the first in int8 (-0.16 dB, worst field -1.2 dB). (Tried and not used: data-aware cross-layer equalisation of the
conv -> PReLU -> conv channels, worse on validation; NNCF's accuracy-control quantisation, which
returned the costly second upsampling convolution to bf16: 1.3x instead of 1.6x.) Both are chosen on the validation fields: every variant of :data:`VARIANTS` is tried;
of those whose mean PSNR drift from fp32 is within :data:`CHOOSE_DB` and whose worst image
loses at most :data:`WORST_DB`, the one whose worst image loses least wins, among the
variants of the first (fastest) kept-out set that has one passing (the first that
passed was taken before: the lite model's ranges x1 passed validation with its worst field at
-0.39 dB and lost 3.3 dB on a saturated test field, where ranges x1.3 keep the bright nuclei).

The quantised graph gets :func:`sr.ovgraph.requantize_sums_apart` (exact; the fp32 graph it
starts from already has :func:`sr.ovgraph.pixel_shuffles_to_depth_to_space` and, see
:data:`PHASE_WINDOWS`, :func:`sr.ovgraph.nearest_upsampling_as_phase_windows`).

The result ships in the model's folder (``weights/<id>/openvino_int8.xml|.bin`` and
``int8.json`` with the calibration, the chosen variant, every variant tried and the validation
drift) and is pinned in the registry (``int8``: sha256 of both files and of the rewritten core
it was made from). At run time (:func:`find`) it is used only when the pins match and the
core's fingerprint equals the model being run (another blend, changed weights or a new
checkpoint: no int8 until it is quantised again).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from . import zoo
from .ovgraph import requantize_sums_apart

log = logging.getLogger(__name__)

XML, BIN, INFO = "openvino_int8.xml", "openvino_int8.bin", "int8.json"
FILES = (XML, BIN, INFO)  # what a model folder holds of its int8 form (published with it)
TOLERANCE_DB = 0.1  # the most mean PSNR drift from fp32 a shipped int8 model may have
CHOOSE_DB = 0.075  # what a variant must meet on the validation fields (margin for the test split)
WORST_DB = 0.5  # and no validation image may lose more than this
# Quantise the graph with the nearest-x2 stages as four 2x2 phase windows (sr.ovgraph): OpenVINO 2026.4
# copies their concatenation with its reference kernel in int8's layout, but the 4/9 of the multiply-adds
# win: the improved SRGAN's int8 form at 128->512 on the 2-core EPYC, 116.4 -> 101.5 ms median
# (scripts/ov_files_ab.py, docs/runtime_notes.md; an older OpenVINO measured ~5 % slower, so int8 was
# made without them before).
PHASE_WINDOWS = True
AUTO_DSSIM = 0.005  # `auto` picks a model's int8 form only if its validation SSIM drift is within this
PARTS = {"ends-and-sums-bf16": ("head", "tail", "residual-adds"),
         "head-sums-and-tail-shifts-bf16": ("head", "tail.shift", "tail.gather", "residual-adds"),
         "ends-and-upsampling-bf16": ("head", "tail", "upsample")}  # what stays out of int8
VARIANTS = [  # (parts kept out of int8, activation range widening), in order of speed: the variants of the
    # first kept-out set with one passing validation compete (best worst image), later sets are
    # fallbacks. With the residual sums in int8 the lite model passed validation (worst field
    # -0.31 dB) and lost 2.3 dB on one test field; kept out, the speed is about the same.
    # First: the output convolution's 1x1 taps in int8 too (its shifts and the gather stay bf16): the
    # improved SRGAN's tail 17.9 -> 11.8 ms and the whole 104.0 -> 89.5 ms at 128->512 on the 2-core EPYC
    # (`python scripts/ov_profile.py --precision int8 --xml ...`). Without back-projection its drift was
    # -0.055 dB / SSIM -0.012 on validation; measured as inference runs (3 back-projection steps) the
    # improved SRGAN's GAN drifts -0.006 dB / SSIM -0.0006 (worst field -0.04 dB).
    ("head-sums-and-tail-shifts-bf16", 1.0), ("head-sums-and-tail-shifts-bf16", 1.3),
    ("ends-and-sums-bf16", 1.0), ("ends-and-sums-bf16", 1.3), ("ends-and-upsampling-bf16", 1.3)]


def cpu_has_int8() -> bool:
    """True when the CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8)."""
    from .ovcache import cpu_features

    return any(f in cpu_features() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def calibration_set(data_dir: str | Path, n: int = 120, seed: int = 0,
                    val_fraction: float = 0.1) -> list[np.ndarray]:
    """Up to ``n`` whole low-resolution images (1,1,h,w) of the training split (one plane each),
    normalised as inference normalises them. Whole images, not patches: the ranges must see
    the saturated nuclei and the empty background of real fields."""
    from . import data, degrade, imio

    if "test" in Path(data_dir).name.lower():
        raise ValueError(f"{data_dir}: calibrate on a training folder, never on a test split")
    train, _ = data.split(data.scan(data_dir), val_fraction)
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.permutation(len(train))[:n]:
        a, _ = imio.read_image(train[i].path)
        planes = [a] if a.ndim == 2 else [a[..., c] for c in range(a.shape[2])]
        lr = degrade.degrade(degrade.crop_to_multiple(planes[int(rng.integers(len(planes)))], 4), 4)
        x, _ = imio.normalize(lr, "auto")
        out.append(np.ascontiguousarray(x[None], dtype=np.float32))
    return out


def _ignored(model, parts: tuple[str, ...]):
    import nncf

    ops = list(model.get_ordered_ops())
    names = [op.get_friendly_name() for op in ops if op.get_type_name() in ("Convolution", "GroupConvolution")]
    keep = [n for n in names if any(f"__module.{p}." in n or f"__module.{p}/" in n for p in parts)]
    if "residual-adds" in parts:  # the skip connections' sums (not the convolutions' bias adds)
        keep += [op.get_friendly_name() for op in ops
                 if op.get_type_name() == "Add" and "aten::add/" in op.get_friendly_name()]
    return nncf.IgnoredScope(names=keep) if keep else None


def quantize_model(model, calibration: list[np.ndarray], parts: tuple[str, ...] = ()):
    """The int8 OpenVINO model of an fp32 OpenVINO ``model`` (``parts`` stay in bf16/fp32)."""
    import nncf

    # full bias correction (not NNCF's fast one): the GAN's texture is sensitive to the per-channel
    # shifts int8 rounding leaves (the improved SRGAN's GAN, ends and sums in bf16, ranges x1, validation:
    # SSIM -0.023, worst field -0.61 dB with the fast correction; -0.010 and -0.36 dB with the full one)
    kw = {"subset_size": len(calibration), "preset": nncf.QuantizationPreset.MIXED, "fast_bias_correction": False}
    ignored = _ignored(model, parts)
    if ignored is not None:
        kw["ignored_scope"] = ignored
    return nncf.quantize(model, nncf.Dataset(calibration), **kw)


def widen_ranges(model, factor: float):
    """A copy of the quantised ``model`` whose activation quantisers cover ``factor`` times
    NNCF's range (its default for activations is the mean over calibration images of each
    image's extremes, which clips the brightest, saturated fields)."""
    from openvino import opset13 as ops

    model = model.clone()
    for op in model.get_ordered_ops():
        if op.get_type_name() != "FakeQuantize" or op.input_value(0).get_node().get_type_name() == "Constant":
            continue  # weights keep their own (per-channel) ranges
        for i in (1, 2, 3, 4):
            c = op.input_value(i).get_node()
            if c.get_type_name() == "Constant":
                op.input(i).replace_source_output(ops.constant(c.get_data() * np.float32(factor)).output(0))
    return model


def drift(compiled_ref, compiled_q, lr_images: list[np.ndarray], hr_images: list[np.ndarray],
          consistency: int = 0) -> dict:
    """PSNR/SSIM of the quantised vs the reference compiled model on paired images, each output
    followed by ``consistency`` back-projection steps onto its input as inference runs them."""
    from . import imio, metrics
    from .consistency import project

    rows = []
    for lr, hr in zip(lr_images, hr_images):
        x, norm = imio.normalize(lr, "auto")
        xin = x[:, None] if x.shape[0] > 1 else x[None]
        xt = torch.from_numpy(np.ascontiguousarray(xin))
        outs = []
        for c in (compiled_ref, compiled_q):
            y = next(iter(c.create_infer_request().infer({0: xin}).values()))
            if consistency:
                y = project(torch.from_numpy(np.asarray(y)), xt, consistency).numpy()
            outs.append(imio.denormalize(y[:, 0] if x.shape[0] > 1 else y[0], norm, lr.ndim))
        rows.append([metrics.psnr(hr, outs[0]), metrics.psnr(hr, outs[1]),
                     metrics.ssim(hr, outs[0]), metrics.ssim(hr, outs[1])])
    r = np.asarray(rows)
    d = r[:, 1] - r[:, 0]
    return {"images": len(rows), "psnr_fp32": round(float(r[:, 0].mean()), 4), "psnr_int8": round(float(r[:, 1].mean()), 4),
            "dpsnr": round(float(d.mean()), 4), "dpsnr_worst": round(float(d.min()), 4),
            "ssim_fp32": round(float(r[:, 2].mean()), 5), "ssim_int8": round(float(r[:, 3].mean()), 5),
            "dssim": round(float((r[:, 3] - r[:, 2]).mean()), 5)}


def validation_pairs(data_dir: str | Path, val_fraction: float = 0.1, limit: int | None = None):
    from . import data, degrade, imio

    _, val = data.split(data.scan(data_dir), val_fraction)
    lrs, hrs = [], []
    for s in val[:limit]:
        hr, _ = imio.read_image(s.path)
        hr = degrade.crop_to_multiple(hr, 4)
        lrs.append(degrade.degrade(hr, 4))
        hrs.append(hr)
    return lrs, hrs


def source_core(model_id: str):
    """The fp32 core that OpenVINO converts (:func:`sr.openvino_path.openvino_core`) of
    ``model_id`` at its default blend, its fingerprint and the blend."""
    from . import ovcache
    from .api import resolve_blend
    from .blend import blended
    from .openvino_path import openvino_core
    from .runtime import FastGenerator

    a = resolve_blend(model_id, None)
    gen = zoo.load(model_id) if a is None or a == 1.0 else blended(model_id, a)
    core = openvino_core(FastGenerator(gen, "fp32"))
    return core, ovcache.fingerprint(core), a


def build(model_id: str, data_dir: str | Path, calib_n: int = 120, val_limit: int | None = None,
          out_dir: Path | None = None, update_registry: bool = True) -> dict:
    """Quantise ``model_id``, choose the variant on validation, write and pin the files."""
    import nncf
    import openvino as ov

    from . import ovcache

    from .api import resolve_consistency

    entry = zoo.get_entry(model_id)
    core, fp, a = source_core(model_id)
    k = resolve_consistency(model_id, None)  # drift measured as inference runs: with the model's back-projection
    in_c = entry.arch.get("in_channels", 1)
    fp32 = ovcache._convert(core, in_c, phase_windows=PHASE_WINDOWS)  # see sr.ovgraph
    threads = torch.get_num_threads()
    ref = ovcache.compile_model(fp32, "fp32", threads)
    t0 = time.perf_counter()
    calib = calibration_set(data_dir, n=calib_n)
    lrs, hrs = validation_pairs(data_dir, limit=val_limit)
    if not lrs:
        raise ValueError(f"{data_dir}: no validation fields to check the int8 model on")
    tried, chosen, base = [], None, {}
    for parts_name, factor in VARIANTS:
        if chosen is not None and parts_name != chosen[1]:
            break  # the faster kept-out set passed: the slower ones are fallbacks only
        if parts_name not in base:
            base[parts_name] = quantize_model(fp32, calib, PARTS[parts_name])
        q = requantize_sums_apart(widen_ranges(base[parts_name], factor))[0]
        d = drift(ref, ovcache.compile_model(q, "int8", threads), lrs, hrs, k)
        variant = f"{parts_name}, ranges x{factor:g}"
        tried.append({"variant": variant, **d})
        log.info("%s int8 %s: validation dPSNR %+.3f dB (worst %+.3f)", model_id, variant, d["dpsnr"], d["dpsnr_worst"])
        passes = abs(d["dpsnr"]) <= CHOOSE_DB and d["dpsnr_worst"] >= -WORST_DB
        if passes and (chosen is None or d["dpsnr_worst"] > chosen[4]["dpsnr_worst"]):
            chosen = (variant, parts_name, factor, q, d)
    if chosen is None:
        raise RuntimeError(f"{model_id}: no int8 variant within {CHOOSE_DB} dB (worst image {WORST_DB} dB) "
                           f"on validation: {tried}")
    variant, parts_name, factor, q, d = chosen
    folder = Path(out_dir) if out_dir else zoo.weights_dir() / model_id
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(q, str(folder / XML), compress_to_fp16=False)
    info = {"model": model_id, "blend": a, "lr_consistency": k, "core_sha256": fp, "variant": variant,
            "kept_out_of_int8": list(PARTS[parts_name]), "activation_range_factor": factor,
            "graph": "pixel shuffles as DepthToSpace; " + ("nearest-x2 stages as 2x2 phase windows; " if PHASE_WINDOWS else "")
            + "each quantised residual sum computed apart (sr.ovgraph)",
            "calibration": {"data": Path(data_dir).name, "split": "train (validation fields held out)",
                            "images": len(calib), "what": "whole low-resolution images, one plane each"},
            "validation": {**d, "back_projection_steps": k}, "tried": tried, "criterion": f"|mean dPSNR| <= {CHOOSE_DB} dB, every image >= -{WORST_DB} dB; of those, the best worst image", "seconds": round(time.perf_counter() - t0, 1),
            "nncf": nncf.__version__, "openvino": ov.__version__, "torch": torch.__version__}
    (folder / INFO).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    pin = {"xml_sha256": zoo.sha256_file(folder / XML), "bin_sha256": zoo.sha256_file(folder / BIN),
           "core_sha256": fp, "blend": a, "variant": variant}
    if update_registry:
        zoo.update_entry(model_id, int8=pin)
    return {**info, "pin": pin}


def _files(entry: zoo.ModelEntry) -> tuple[Path, Path] | None:
    """The int8 files next to the model's verified weights (local folder, or downloaded from the
    same Hub revision), or ``None``."""
    folder = zoo.resolve(entry.id)
    xml, binf = folder / XML, folder / BIN
    if not (xml.is_file() and binf.is_file()) and entry.repo_id and folder != zoo.weights_dir() / entry.id:
        try:
            from huggingface_hub import hf_hub_download

            xml = Path(hf_hub_download(entry.repo_id, XML, revision=entry.revision, endpoint=zoo._endpoint()))
            binf = Path(hf_hub_download(entry.repo_id, BIN, revision=entry.revision, endpoint=zoo._endpoint()))
        except Exception as exc:  # noqa: BLE001 - int8 is optional: bf16 runs instead
            log.info("int8 files of %s not fetched (%s)", entry.id, exc)
            return None
    return (xml, binf) if xml.is_file() and binf.is_file() else None


def find(model_id: str, core_fingerprint: str) -> Path | None:
    """The verified int8 model file for the core with ``core_fingerprint``, or ``None``."""
    entry = zoo.get_entry(model_id)
    pin = entry.int8
    if not pin or pin.get("core_sha256") != core_fingerprint:
        return None
    files = _files(entry)
    if files is None:
        return None
    xml, binf = files
    if zoo.sha256_file(xml) != pin.get("xml_sha256") or zoo.sha256_file(binf) != pin.get("bin_sha256"):
        log.warning("int8 files of %s do not match the registry pin; not used", model_id)
        return None
    if xml.name != XML or binf.name != BIN or xml.parent != binf.parent:
        return None
    return xml


def auto_ok(xml: Path) -> tuple[bool, str]:
    """Whether ``auto`` may run this int8 model: its validation drift (``int8.json`` next to it)
    within :data:`TOLERANCE_DB` in PSNR and :data:`AUTO_DSSIM` in SSIM. A GAN's texture moves
    SSIM more than PSNR (the improved SRGAN's: -0.016 dB but SSIM -0.0076 on validation), and
    its default blend was chosen to stay above bicubic in both; asked for explicitly
    (``precision="int8"``), int8 runs anyway. The drift is measured as inference runs: with the
    model's back-projection steps (``validation.back_projection_steps``), which remove most of the
    GANs' int8 SSIM drift (their texture's contrast moves; the measured pixels pin it back)."""
    try:
        v = json.loads((Path(xml).parent / INFO).read_text(encoding="utf-8"))["validation"]
        dpsnr, dssim = float(v["dpsnr"]), float(v["dssim"])
    except (OSError, ValueError, KeyError, TypeError):
        return False, "its validation record is missing"
    if abs(dpsnr) > TOLERANCE_DB:
        return False, f"validation PSNR drift {dpsnr:+.3f} dB is beyond {TOLERANCE_DB} dB"
    if dssim < -AUTO_DSSIM:
        return False, f"validation SSIM drift {dssim:+.4f} is beyond -{AUTO_DSSIM}"
    return True, f"validation drift {dpsnr:+.3f} dB, SSIM {dssim:+.4f}"


def cli(args) -> int:
    ids = args.models
    if ids == ["all"]:
        ids = [e.id for e in zoo.entries("generator") if e.available]
    for mid in ids:
        if zoo.get_entry(mid).kind != "generator":
            raise ValueError(f"{mid!r} is not a generator")
        r = build(mid, args.data, calib_n=args.images)
        v = r["validation"]
        print(f"{mid}: {r['variant']} (blend {r['blend']}), validation {v['images']} images: "
              f"PSNR {v['psnr_fp32']:.3f} -> {v['psnr_int8']:.3f} dB ({v['dpsnr']:+.3f}, worst {v['dpsnr_worst']:+.3f}), "
              f"SSIM {v['dssim']:+.4f}; {r['seconds']} s", flush=True)
    return 0
