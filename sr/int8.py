"""int8 inference: post-training static quantisation of the zoo generators with OpenVINO NNCF.

``python -m sr quantize MODEL|all --data TRAIN_DIR`` quantises the fast path's rewritten
generator (:class:`sr.runtime.FastGenerator`, fp32, the model at its default blend) with
``nncf.quantize``: activations and weights of the convolutions in int8 (symmetric weights per
output channel, asymmetric activations: NNCF's ``mixed`` preset), calibrated on low-resolution
patches of the *training* split of ``TRAIN_DIR`` (the validation fields are held out by field
id, as in training; a folder named like a test split is refused). What stays out of int8 is
chosen on the validation fields: the variants of :data:`VARIANTS` are tried in order and the
first whose mean PSNR drift from fp32 is within :data:`TOLERANCE_DB` wins (layers left out run
in bf16 where the CPU has it, else fp32: mixed precision).

The result ships in the model's folder (``weights/<id>/openvino_int8.xml|.bin`` and
``int8.json`` with the calibration, the chosen variant and the validation drift) and is pinned
in the registry (``int8``: sha256 of both files and of the rewritten core it was made from).
At run time (:func:`find`) it is used only when the pins match and the core's fingerprint
equals the model being run (another blend, changed weights or a new checkpoint: no int8 until
it is quantised again).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from . import zoo

log = logging.getLogger(__name__)

XML, BIN, INFO = "openvino_int8.xml", "openvino_int8.bin", "int8.json"
TOLERANCE_DB = 0.1
VARIANTS = {  # what stays out of int8, tried in this order
    "all-conv": (),
    "ends-bf16": ("head", "tail"),
    "ends-and-upsampling-bf16": ("head", "tail", "upsample"),
}


def cpu_has_int8() -> bool:
    """True when the CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8)."""
    from .ovcache import cpu_features

    return any(f in cpu_features() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def calibration_set(data_dir: str | Path, n: int = 96, size: int = 64, seed: int = 0,
                    val_fraction: float = 0.1) -> list[np.ndarray]:
    """``n`` low-resolution ``size`` x ``size`` patches (1,1,size,size) from the training split,
    normalised as inference normalises whole images, preferring patches with signal."""
    from . import data, degrade, imio

    if "test" in Path(data_dir).name.lower():
        raise ValueError(f"{data_dir}: calibrate on a training folder, never on a test split")
    train, _ = data.split(data.scan(data_dir), val_fraction)
    rng = np.random.default_rng(seed)
    patches, order = [], rng.permutation(len(train))
    for i in range(n):
        a, _ = imio.read_image(train[order[i % len(order)]].path)
        planes = [a] if a.ndim == 2 else [a[..., c] for c in range(a.shape[2])]
        lr = degrade.degrade(degrade.crop_to_multiple(planes[int(rng.integers(len(planes)))], 4), 4)
        x, _ = imio.normalize(lr, "auto")
        h, w = x.shape[1:]
        s = min(size, h, w)
        for _ in range(10):
            y0, x0 = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            p = x[:, y0:y0 + s, x0:x0 + s]
            if (p > 0.1).mean() >= 0.05:
                break
        patches.append(np.ascontiguousarray(p[None], dtype=np.float32))
    return patches


def _ignored(model, variant: str):
    import nncf

    parts = VARIANTS[variant]
    names = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    keep = [n for n in names if any(f"__module.{p}." in n or f"__module.{p}/" in n for p in parts)]
    return nncf.IgnoredScope(names=keep) if keep else None


def quantize_model(model, calibration: list[np.ndarray], variant: str = "all-conv"):
    """The int8 OpenVINO model of an fp32 OpenVINO ``model``."""
    import nncf

    kw = {"subset_size": len(calibration), "preset": nncf.QuantizationPreset.MIXED}
    ignored = _ignored(model, variant)
    if ignored is not None:
        kw["ignored_scope"] = ignored
    return nncf.quantize(model, nncf.Dataset(calibration), **kw)


def drift(compiled_ref, compiled_q, lr_images: list[np.ndarray], hr_images: list[np.ndarray]) -> dict:
    """PSNR/SSIM of the quantised vs the reference compiled model on paired images."""
    from . import imio, metrics

    rows = []
    for lr, hr in zip(lr_images, hr_images):
        x, norm = imio.normalize(lr, "auto")
        outs = []
        for c in (compiled_ref, compiled_q):
            y = next(iter(c.create_infer_request().infer({0: x[:, None] if x.shape[0] > 1 else x[None]}).values()))
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
    """The fp32 rewritten core of ``model_id`` at its default blend, its fingerprint and blend."""
    from . import ovcache
    from .api import resolve_blend
    from .blend import blended
    from .runtime import FastGenerator

    a = resolve_blend(model_id, None)
    gen = zoo.load(model_id) if a is None or a == 1.0 else blended(model_id, a)
    fast = FastGenerator(gen, "fp32")
    return fast.core, ovcache.fingerprint(fast.core), a


def build(model_id: str, data_dir: str | Path, calib_n: int = 96, val_limit: int | None = None,
          out_dir: Path | None = None, update_registry: bool = True) -> dict:
    """Quantise ``model_id``, choose the variant on validation, write and pin the files."""
    import nncf
    import openvino as ov

    from . import ovcache

    entry = zoo.get_entry(model_id)
    core, fp, a = source_core(model_id)
    in_c = entry.arch.get("in_channels", 1)
    fp32 = ovcache._convert(core, in_c)
    threads = torch.get_num_threads()
    ref = ovcache.compile_model(fp32, "fp32", threads)
    t0 = time.perf_counter()
    calib = calibration_set(data_dir, n=calib_n)
    lrs, hrs = validation_pairs(data_dir, limit=val_limit)
    if not lrs:
        raise ValueError(f"{data_dir}: no validation fields to check the int8 model on")
    tried, chosen = [], None
    for variant in VARIANTS:
        q = quantize_model(fp32, calib, variant)
        d = drift(ref, ovcache.compile_model(q, "int8", threads), lrs, hrs)
        tried.append({"variant": variant, **d})
        log.info("%s int8 %s: validation dPSNR %+.3f dB", model_id, variant, d["dpsnr"])
        if abs(d["dpsnr"]) <= TOLERANCE_DB:
            chosen = (variant, q, d)
            break
    if chosen is None:
        raise RuntimeError(f"{model_id}: no int8 variant within {TOLERANCE_DB} dB on validation: {tried}")
    variant, q, d = chosen
    folder = Path(out_dir) if out_dir else zoo.weights_dir() / model_id
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(q, str(folder / XML), compress_to_fp16=False)
    info = {"model": model_id, "blend": a, "core_sha256": fp, "variant": variant, "kept_out_of_int8": list(VARIANTS[variant]),
            "calibration": {"data": Path(data_dir).name, "split": "train (validation fields held out)",
                            "patches": len(calib), "patch_lr_px": int(calib[0].shape[-1]) if calib else 0},
            "validation": d, "tried": tried, "tolerance_db": TOLERANCE_DB, "seconds": round(time.perf_counter() - t0, 1),
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


def cli(args) -> int:
    ids = args.models
    if ids == ["all"]:
        ids = [e.id for e in zoo.entries("generator") if e.available]
    for mid in ids:
        if zoo.get_entry(mid).kind != "generator":
            raise ValueError(f"{mid!r} is not a generator")
        r = build(mid, args.data, calib_n=args.patches)
        v = r["validation"]
        print(f"{mid}: {r['variant']} (blend {r['blend']}), validation {v['images']} images: "
              f"PSNR {v['psnr_fp32']:.3f} -> {v['psnr_int8']:.3f} dB ({v['dpsnr']:+.3f}, worst {v['dpsnr_worst']:+.3f}), "
              f"SSIM {v['dssim']:+.4f}; {r['seconds']} s", flush=True)
    return 0
