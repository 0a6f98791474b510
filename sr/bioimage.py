"""bioimage.io model packages: ``python -m sr export bioimageio MODEL --out DIR``.

A package is a folder (and, with ``--zip``, the same files zipped) that bioimage.io
consumers (deepImageJ in Fiji, napari, ilastik, bioimageio.core) open without this project:

* ``rdf.yaml`` in the model spec format 0.5 (``bioimageio.spec``);
* weights three ways: ``pytorch_state_dict`` (``weights.pt``, a pure tensor dict, plus the
  standalone architecture file ``sr_generator.py``), ``torchscript`` (``weights_torchscript.pt``)
  and ``onnx`` (``weights.onnx``, opset 17), both converted from the state dict;
* test tensors ``test_input.npy`` / ``test_output.npy`` in the spec's axes ``b,c,y,x``: the
  model's own LR test crop in 8-bit units, and the output of the preprocessing
  (``scale_range``, per-image percentiles 0.1 / 99.9, the project's ``--normalize percentile``)
  followed by the network; the output is in normalised units (about 0..1);
* a cover image (``cover.png``: input, nearest 4x and the model's result side by side),
  ``README.md`` (the model card), citations (SRGAN arXiv 1609.04802 and arXiv 2010.04634),
  licence CC-BY-NC-4.0, and the card's numbers in ``config.sr``.

The output axes carry a *halo* of the generator's receptive field (4x its radius in LR
pixels), so tiling consumers cut tiles that equal whole-image inference.
Validation (:func:`validate`) runs bioimageio.core's own test, offline.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np

from . import zoo

FORMAT_VERSION = "0.5.4"
LICENSE = "CC-BY-NC-4.0"
PERCENTILES = (0.1, 99.9)
EPS = 1e-6
CITE = [
    {"text": "Ledig C. et al. Photo-Realistic Single Image Super-Resolution Using a Generative "
             "Adversarial Network. CVPR 2017.", "url": "https://arxiv.org/abs/1609.04802",
     "doi": "10.1109/CVPR.2017.19"},
    {"text": "Real-time super-resolution for microscopic images using GAN. arXiv 2010.04634 (no batch norm, "
             "nearest-neighbour upsampling, global-average-pooling discriminator).",
     "url": "https://arxiv.org/abs/2010.04634"},
]
AUTHORS = [{"name": "sr-microscopy contributors"}]
ARCH_FILE, SD_FILE, TS_FILE, ONNX_FILE = "sr_generator.py", "weights.pt", "weights_torchscript.pt", "weights.onnx"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def standalone_architecture() -> str:
    """``sr/arch.py`` up to the discriminator, without the Hub mixin: the Generator class that
    consumers import with only torch installed."""
    src = (Path(__file__).resolve().parent / "arch.py").read_text(encoding="utf-8")
    src = src.split("\nclass Discriminator", 1)[0]
    src = src.replace("from huggingface_hub import PyTorchModelHubMixin\n", "")
    src, n = re.subn(r"class Generator\(\s*nn\.Module,\s*PyTorchModelHubMixin,[^)]*\):",
                     "class Generator(nn.Module):", src)
    if n != 1:
        raise RuntimeError("sr/arch.py changed: cannot derive the standalone Generator class")
    return ('"""SRGAN-family generator (standalone copy of sr/arch.py for bioimage.io consumers)."""\n'
            + src.split('"""', 2)[2].lstrip("\n"))


def preprocess(x: np.ndarray) -> np.ndarray:
    """The package's preprocessing in numpy (bioimage.io ``scale_range`` over y,x per sample
    and channel): what consumers apply before the network."""
    lo = np.percentile(x, PERCENTILES[0], axis=(2, 3), keepdims=True)
    hi = np.percentile(x, PERCENTILES[1], axis=(2, 3), keepdims=True)
    return ((x - lo) / (hi - lo + EPS)).astype(np.float32)


def _test_input(c: int, side: int) -> np.ndarray:
    """(1,C,side,side) float32 in 8-bit units: the centre of the bicubic LR of the example HPA
    image (the one the zoo's own test tensors come from), or seeded noise without it."""
    from . import degrade, imio
    from .testtensors import EXAMPLE

    try:
        a, _ = imio.read_image(EXAMPLE)
        a = degrade.degrade(a if a.ndim == 2 else a[..., 0])
        if min(a.shape) < side:
            raise ValueError("example too small")
        y, x = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
        x0 = a[y:y + side, x:x + side].astype(np.float32)
    except Exception:  # noqa: BLE001 - an installed package without examples/
        x0 = np.rint(np.random.default_rng(0).random((side, side)) * 255).astype(np.float32)
    return np.ascontiguousarray(np.repeat(x0[None, None], c, axis=1))


def _cover(x8: np.ndarray, y: np.ndarray, path: Path) -> None:
    from PIL import Image

    lr = np.clip(x8[0, 0], 0, 255).astype(np.uint8)
    near = np.kron(lr, np.ones((4, 4), dtype=np.uint8))
    sr = np.clip(np.rint(y[0, 0] * (lr.max() - lr.min()) + lr.min()), 0, 255).astype(np.uint8)
    gap = np.full((near.shape[0], 4), 255, np.uint8)
    img = np.concatenate([near, gap, sr], axis=1)
    img = np.kron(img, np.ones((2, 2), dtype=np.uint8))  # covers should be at least ~200 px
    Image.fromarray(img).save(path)


def _axes_in(c: int, min_side: int, step: int) -> list[dict]:
    return [{"type": "batch"},
            {"type": "channel", "channel_names": [f"c{i}" for i in range(c)]},
            {"type": "space", "id": "y", "size": {"min": min_side, "step": step}, "unit": "micrometer", "scale": 1.0},
            {"type": "space", "id": "x", "size": {"min": min_side, "step": step}, "unit": "micrometer", "scale": 1.0}]


def _axes_out(c: int, halo: int, scale: int) -> list[dict]:
    return [{"type": "batch"},
            {"type": "channel", "channel_names": [f"c{i}" for i in range(c)]}] + [
        {"type": "space", "id": a, "size": {"tensor_id": "input", "axis_id": a}, "unit": "micrometer",
         "scale": 1.0 / scale, "halo": halo} for a in ("y", "x")]


def _card_config(entry: zoo.ModelEntry) -> dict:
    card = {k: v for k, v in (entry.card or {}).items() if isinstance(v, (int, float, str)) and k != "test_command"}
    return {"sr": {"zoo_id": entry.id, "arch": entry.arch, "card": card, "hub_repo": entry.repo_id,
                   "weights_sha256": entry.sha256}}


def _description(entry: zoo.ModelEntry) -> str:
    c = entry.card or {}
    nums = ", ".join(f"{k} {c[k]}" for k in ("test_psnr", "test_ssim", "val_psnr", "val_ssim") if k in c)
    return (f"4x super-resolution of fluorescence microscopy: {entry.description} "
            f"HPA test (200 images, bicubic LR): {nums or 'not measured'}.")[:1024]


def export(model_id: str, out: str | Path, zip_package: bool = False, blend: float | None = None) -> Path:
    """Write the bioimage.io package of a zoo generator into ``out``; returns the rdf.yaml path
    (or the .zip with ``zip_package``). GANs are exported at ``blend`` (default: the model's
    validated default, as ``sr.upscale`` runs them; see :mod:`sr.blend`)."""
    import copy

    import torch
    import yaml

    from .publish import render_card

    entry = zoo.get_entry(model_id)
    if entry.kind != "generator":
        raise zoo.ZooError(f"model {model_id!r} is a {entry.kind}; only generators export to bioimage.io")
    from .api import resolve_blend

    a = resolve_blend(model_id, blend)
    if a is None or a == 1.0:
        net = zoo.load(model_id).float()
    else:
        from .blend import blended

        net = copy.deepcopy(blended(model_id, a)).float()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    arch = dict(entry.arch)
    c, scale = arch.get("in_channels", 1), arch.get("scale", 4)
    radius = int(net.receptive_radius())

    (out / ARCH_FILE).write_text(standalone_architecture(), encoding="utf-8")
    torch.save({k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}, out / SD_FILE)

    step = 16
    min_side = -(-(2 * radius + step) // step) * step  # tiles larger than twice the halo
    x8 = _test_input(c, min_side)
    with torch.inference_mode():
        y = net(torch.from_numpy(preprocess(x8))).float().numpy()
    np.save(out / "test_input.npy", x8)
    np.save(out / "test_output.npy", y)
    _cover(x8, y, out / "cover.png")
    (out / "README.md").write_text(render_card(entry), encoding="utf-8")

    example = torch.from_numpy(preprocess(x8))
    with torch.inference_mode():
        ts = torch.jit.trace(net, example, check_trace=False)
    ts.save(str(out / TS_FILE))
    dyn = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(net, example, str(out / ONNX_FILE), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": dyn, "output": dyn})

    tv = str(torch.__version__).split("+")[0]
    rdf = {
        "type": "model", "format_version": FORMAT_VERSION,
        "name": re.sub(r"[^A-Za-z0-9_+\- ]", " ", f"{entry.id} 4x fluorescence SR {entry.title}").split("  ")[0][:128].strip(),
        "description": _description(entry),
        "authors": AUTHORS, "cite": CITE, "license": LICENSE,
        "tags": ["super-resolution", "fluorescence-light-microscopy", "2d", "pytorch", "srgan", "image-restoration"],
        "documentation": "README.md", "covers": ["cover.png"],
        "inputs": [{"id": "input", "axes": _axes_in(c, min_side, step),
                    "test_tensor": {"source": "test_input.npy", "sha256": _sha(out / "test_input.npy")},
                    "data": {"type": "float32"},
                    "preprocessing": [{"id": "scale_range", "kwargs": {
                        "axes": ["y", "x"], "min_percentile": PERCENTILES[0], "max_percentile": PERCENTILES[1],
                        "eps": EPS}}]}],
        "outputs": [{"id": "output", "axes": _axes_out(arch.get("out_channels", 1), radius * scale, scale),
                     "test_tensor": {"source": "test_output.npy", "sha256": _sha(out / "test_output.npy")},
                     "data": {"type": "float32"}}],
        "weights": {
            "pytorch_state_dict": {"source": SD_FILE, "sha256": _sha(out / SD_FILE), "pytorch_version": tv,
                                   "architecture": {"source": ARCH_FILE, "sha256": _sha(out / ARCH_FILE),
                                                    "callable": "Generator", "kwargs": arch}},
            "torchscript": {"source": TS_FILE, "sha256": _sha(out / TS_FILE), "pytorch_version": tv,
                            "parent": "pytorch_state_dict"},
            "onnx": {"source": ONNX_FILE, "sha256": _sha(out / ONNX_FILE), "opset_version": 17,
                     "parent": "pytorch_state_dict"},
        },
        "config": {"sr": {**_card_config(entry)["sr"], "blend": a,
                          # the network alone: sr.upscale follows a GAN with back-projection steps
                          "lr_consistency": {"steps_in_sr_upscale": (entry.card or {}).get("lr_consistency") or 0,
                                             "in_these_weights": 0}}},
        "version": "0.1.0",
    }
    rdf_path = out / "rdf.yaml"
    rdf_path.write_text(yaml.safe_dump(json.loads(json.dumps(rdf)), sort_keys=False), encoding="utf-8")
    if zip_package:
        return Path(shutil.make_archive(str(out), "zip", root_dir=out))
    return rdf_path


def validate(rdf_path: str | Path, weight_format: str | None = None) -> dict:
    """bioimageio.core's test of a package (format, then the model on its test input compared
    with its test output), offline. Returns ``{"status": ..., "details": [...]}``."""
    from bioimageio.core import test_model

    summary = test_model(Path(rdf_path), weight_format=weight_format)
    details = [{"name": d.name, "status": d.status,
                "errors": [str(e.msg) for e in getattr(d, "errors", [])]} for d in summary.details]
    return {"status": summary.status, "details": details}


def cli(args) -> int:
    ids = [e.id for e in zoo.entries("generator") if e.available] if args.model == "all" else [args.model]
    for mid in ids:
        out = Path(args.out) / mid if len(ids) > 1 else Path(args.out)
        path = export(mid, out, zip_package=args.zip, blend=getattr(args, "blend", None))
        line = f"{mid} -> {path}"
        if args.validate:
            res = validate(out / "rdf.yaml")
            line += f" (bioimageio.core test: {res['status']})"
            if res["status"] != "passed":
                print(line)
                for d in res["details"]:
                    if d["status"] != "passed":
                        print(f"  {d['name']}: {d['status']} {d['errors'][:2]}")
                return 1
        print(line)
    return 0
