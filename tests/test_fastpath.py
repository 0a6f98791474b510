"""The fast inference path (sr.runtime.optimize_for_inference): exact rewrites, bf16 within
0.05 dB PSNR of fp32, tiling, and the zoo/API wiring."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sr import api, degrade, metrics, runtime
from sr.arch import Generator
from sr.tiling import run_tiled
from conftest import REPO, blobs, hpa_sample

ZOO_ARCHS = {m["id"]: m["arch"] for m in json.loads((REPO / "sr" / "zoo.json").read_text())["models"]
             if m["kind"] == "generator"}
# one of each distinct architecture of the zoo (real widths, depths and kernels)
ARCH_IDS = sorted({json.dumps(a, sort_keys=True): i for i, a in ZOO_ARCHS.items()}.values())


def _randomised(arch: dict, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    g = Generator(**arch).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so folding is really tested
        for m in g.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return g.requires_grad_(False)


@pytest.mark.parametrize("k", [1, 3, 5, 9])
def test_rewrites_are_exact(k):
    torch.manual_seed(k)
    conv = nn.Conv2d(3, 2, k, padding=k // 2).double()
    x = torch.randn(2, 3, 7, 9, dtype=torch.double)
    z = torch.randn(2, 12, 7, 9, dtype=torch.double)
    with torch.no_grad():
        a = conv(F.interpolate(x, scale_factor=2, mode="nearest"))
        b = F.pixel_shuffle(runtime.nearest_conv_to_subpixel(conv).double()(x), 2)
        c = conv(F.pixel_shuffle(z, 2))
        d = F.pixel_shuffle(runtime.conv_on_shuffled(conv).double()(z), 2)
    assert (a - b).abs().max() < 1e-6 and (c - d).abs().max() < 1e-6


@pytest.mark.parametrize("model_id", ARCH_IDS)
def test_fast_generator_matches_plain(model_id):
    g = _randomised(ZOO_ARCHS[model_id])
    before = {k: v.clone() for k, v in g.state_dict().items()}
    x = torch.rand(2, 1, 9, 7)
    with torch.inference_mode():
        ref = g(x)
        fast32 = runtime.optimize_for_inference(g, "fp32")
        y32 = fast32(x)
        assert isinstance(fast32, runtime.FastGenerator) and y32.dtype == torch.float32
        assert y32.shape == ref.shape == (2, 1, 36, 28)
        scale = ref.abs().max().item() + 1e-6
        assert (y32 - ref).abs().max().item() / scale < 1e-4
        if runtime.cpu_has_bf16():
            y16 = runtime.optimize_for_inference(g, "bf16")(x)
            assert (y16 - ref).abs().max().item() / scale < 0.05
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())  # original untouched
    assert fast32.receptive_radius() == g.receptive_radius() and fast32.config == g.config


@pytest.mark.parametrize("scale,upsample", [(2, "pixelshuffle"), (8, "nearest-conv")])
def test_other_scales(scale, upsample):
    g = _randomised(dict(width=16, blocks=1, norm="batch", upsample=upsample, up_width=8, scale=scale,
                         head_kernel=5, tail_kernel=7, act="lrelu"))
    x = torch.rand(1, 1, 9, 11)
    with torch.inference_mode():
        ref, y = g(x), runtime.optimize_for_inference(g, "fp32")(x)
    assert y.shape == ref.shape and (y - ref).abs().max() < 1e-5


def _psnr_pair(net, hr_u8):
    lr = degrade.degrade(hr_u8)
    out32 = api.upscale(lr, net["fp32"], precision="fp32", consistency=0)  # the networks alone
    outfast = api.upscale(lr, net["fast"], precision=net["fast"].fast_precision, consistency=0)
    return metrics.score(hr_u8, out32)["psnr"], metrics.score(hr_u8, outfast)["psnr"]


def _backend(name: str, monkeypatch) -> None:
    if name == "openvino":
        pytest.importorskip("openvino")
    monkeypatch.setenv("SR_BACKEND", name)


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_bf16_fast_path_within_005_db_psnr(backend, monkeypatch):
    """The optimised output's PSNR equals fp32's within 0.05 dB: a smoke test with the real zoo
    architectures and random weights (trained weights on an HPA test image: the next test)."""
    _backend(backend, monkeypatch)
    hr = blobs(64, 64)
    for model_id in ("srgan-improved", "srgan-lite"):
        g = _randomised(ZOO_ARCHS[model_id])
        net = {"fp32": g, "fast": runtime.optimize_for_inference(g)}
        assert net["fast"].backend == backend
        p32, pfast = _psnr_pair(net, hr)
        assert abs(p32 - pfast) < 0.05, (model_id, p32, pfast)


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_trained_models_within_005_db_on_hpa(backend, monkeypatch):
    from sr import zoo

    _backend(backend, monkeypatch)
    path = hpa_sample()
    # one model of each kind (BN + pixel shuffle, improved, lite) keeps the test short
    trained = [e.id for e in zoo.entries("generator") if e.id in ("srgan", "srgan-improved", "srgan-lite")
               and e.available and (zoo.weights_dir() / e.id).is_dir()]
    if path is None or not trained:
        pytest.skip("needs the HPA test sample and trained weights in weights/")
    from sr import imio

    a, _ = imio.read_image(path)
    hr = (a if a.ndim == 2 else a[..., 0])[:128, :128]
    hr = hr if hr.dtype == np.uint8 else imio.to_uint8_display(hr)
    for mid in trained:
        g = zoo.load(mid)
        fast = runtime.optimize_for_inference(g, "bf16" if runtime.cpu_has_bf16() else "fp32")  # int8: test_int8_cache
        assert fast.backend == backend
        p32, pfast = _psnr_pair({"fp32": g, "fast": fast}, hr)
        assert abs(p32 - pfast) < 0.05, (mid, p32, pfast)


def test_tiled_fast_path_equals_whole():
    g = _randomised(ZOO_ARCHS["srgan-lite"])
    fast = runtime.optimize_for_inference(g, "fp32")
    x = blobs(41, 37).astype(np.float32)[None, None] / 255
    whole = run_tiled(fast, x, tile=None, precision="fp32")
    tiled = run_tiled(fast, x, tile=16, precision="fp32")
    assert np.abs(whole - tiled).max() < 1e-4


def test_api_uses_fast_path(tiny_zoo, monkeypatch):
    net = api.fast_model("srgan-improved")
    assert isinstance(net, runtime.FastGenerator) and net.zoo_entry.id == "srgan-improved"
    img = blobs(20, 24, c=3)
    out = api.upscale(img, "srgan-improved")
    assert out.shape == (80, 96, 3) and out.dtype == np.uint8
    # a backend that is not installed falls back to torch with a warning
    import importlib.util

    for name in ("openvino", "auto"):
        monkeypatch.setenv("SR_BACKEND", name)
        installed = importlib.util.find_spec("openvino") is not None
        assert runtime.resolve_backend() == ("openvino" if installed else "torch")
    monkeypatch.delenv("SR_BACKEND")
    assert runtime.resolve_backend() == ("openvino" if installed else "torch")  # the default is auto
    monkeypatch.setenv("SR_BACKEND", "nope")
    with pytest.raises(ValueError, match="SR_BACKEND"):
        runtime.optimize_for_inference(api.zoo.shared("srgan-improved"))


def test_other_modules_keep_the_generic_path():
    from sr.arch import FeatureNet

    f = FeatureNet().eval()
    fast = runtime.optimize_for_inference(f, "fp32")
    assert not isinstance(fast, runtime.FastGenerator) and fast.fast_precision == "fp32"
    x = torch.rand(1, 1, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(fast(x), f(x), atol=1e-5)


def test_openvino_backend_when_installed(monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setenv("SR_BACKEND", "openvino")
    g = _randomised(ZOO_ARCHS["srgan-lite"])
    fast = runtime.optimize_for_inference(g)
    assert fast.backend == "openvino"
    x = blobs(23, 19).astype(np.float32)[None, None] / 255
    ref = run_tiled(g, x, tile=None, precision="fp32")
    got = run_tiled(fast, x, tile=12, precision=fast.fast_precision)  # several shapes, one compile
    assert got.shape == ref.shape and np.abs(got - ref).max() < 0.05 * (np.abs(ref).max() + 1e-6) + 2e-3


def test_openvino_batches_run_on_parallel_streams(monkeypatch):
    """A batch the thread count divides runs one plane per request on parallel streams; the
    result equals one request's, plane for plane (odd batches and one thread stay on one request)."""
    pytest.importorskip("openvino")
    monkeypatch.setenv("SR_BACKEND", "openvino")
    g = _randomised(ZOO_ARCHS["srgan-lite"])
    fast = runtime.optimize_for_inference(g)
    core = fast.core
    x = torch.from_numpy(np.stack([blobs(20, 17, seed=s) for s in range(4)]).astype(np.float32)[:, None] / 255)
    one = core._call(core._compiled, x)
    monkeypatch.setattr(core, "_threads", 1)
    assert core.streams() is None
    monkeypatch.setattr(core, "_threads", 2)
    assert core._streams is None
    core(x[:3])  # odd: one request
    assert core._streams is None
    got = core(x)
    assert core._streams is not None and got.shape == one.shape
    assert torch.allclose(got, one, atol=1e-3 * (one.abs().max().item() + 1))
    assert torch.equal(core(x[2:4]), core._call_streams(core._streams, x[2:4]))
