import numpy as np
import pytest
import torch

import sr
from sr.arch import Generator
from sr.tiling import run_tiled
from conftest import blobs


@pytest.fixture(scope="module")
def trained_like():
    torch.manual_seed(0)
    g = Generator(width=16, blocks=3, head_kernel=9, tail_kernel=9, norm="none", upsample="nearest-conv").eval()
    return g


@pytest.mark.parametrize("tile", [16, 23, 40])
def test_tiled_equals_whole_fp32(trained_like, tile):
    x = blobs(61, 47).astype(np.float32)[None, None] / 255
    whole = run_tiled(trained_like, x, tile=None, precision="fp32")
    tiled = run_tiled(trained_like, x, tile=tile, precision="fp32")
    assert tiled.shape == (1, 1, 244, 188)
    # in 8-bit grey levels: at most 1 (in practice float rounding only)
    assert np.abs(np.rint(whole * 255) - np.rint(tiled * 255)).max() <= 1
    assert np.abs(whole - tiled).max() < 1e-4


def test_too_small_overlap_shows_seams(trained_like):
    x = blobs(64, 64).astype(np.float32)[None, None] / 255
    whole = run_tiled(trained_like, x, tile=None, precision="fp32")
    seams = run_tiled(trained_like, x, tile=16, overlap=0, precision="fp32")
    assert np.abs(whole - seams).max() > 1e-3  # so the test above can fail


def test_tiled_bf16_close(trained_like):
    x = blobs(64, 64).astype(np.float32)[None, None] / 255
    whole = run_tiled(trained_like, x, tile=None, precision="bf16")
    tiled = run_tiled(trained_like, x, tile=24, precision="bf16")
    assert np.abs(np.rint(whole * 255) - np.rint(tiled * 255)).max() <= 2


def test_progress_callback(trained_like):
    calls = []
    run_tiled(trained_like, np.zeros((1, 1, 40, 40), np.float32), tile=16, precision="fp32",
              progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (9, 9) and len(calls) == 9


@pytest.mark.parametrize("shape,dtype", [((30, 20), np.uint8), ((30, 20, 3), np.uint8),
                                         ((24, 24, 5), np.uint16), ((16, 18), np.float32)])
def test_upscale_keeps_dtype_and_layout(trained_like, shape, dtype):
    img = blobs(shape[0], shape[1], c=shape[2] if len(shape) == 3 else None, dtype=dtype)
    out = sr.upscale(img, trained_like, tile=16, precision="fp32")
    assert out.dtype == img.dtype
    assert out.shape == (shape[0] * 4, shape[1] * 4) + tuple(shape[2:])


def test_channels_are_independent(trained_like):
    a, b = blobs(20, 20, seed=1), blobs(20, 20, seed=2)
    both = sr.upscale(np.stack([a, b], -1), trained_like, precision="fp32")
    only_a = sr.upscale(a, trained_like, precision="fp32")
    assert np.array_equal(both[:, :, 0], only_a)


def test_fast_path_matches_fp32(tiny_zoo):
    """bf16 + folded BN within 0.05 dB PSNR of plain fp32 on a small case."""
    from sr import metrics

    hr = blobs(128, 128, seed=3)
    lr = sr.degrade.degrade(hr) if hasattr(sr, "degrade") else None
    from sr.degrade import degrade
    lr = degrade(hr)
    for mid in ("srgan", "srgan-improved"):
        ref = sr.upscale(lr, sr.load(mid), precision="fp32")
        fast = sr.upscale(lr, mid, precision="bf16")
        assert abs(metrics.psnr(hr, ref) - metrics.psnr(hr, fast)) < 0.05
