import numpy as np
import pytest
from PIL import Image

from sr import degrade, metrics
from conftest import blobs


def test_degrade_is_pillow_bicubic_quarter():
    hr = blobs(64, 48)
    lr = degrade.degrade(hr)
    ref = np.asarray(Image.fromarray(hr).resize((12, 16), Image.BICUBIC))
    assert lr.dtype == np.uint8 and np.array_equal(lr, ref)


def test_degrade_crops_to_multiple_and_keeps_dtype():
    hr16 = blobs(66, 50, dtype=np.uint16)
    lr = degrade.degrade(hr16)
    assert lr.shape == (16, 12) and lr.dtype == np.uint16
    rgb = blobs(40, 40, c=3)
    assert degrade.degrade(rgb).shape == (10, 10, 3)
    with pytest.raises(ValueError):
        degrade.degrade(np.zeros((3, 3), np.uint8))


def test_baselines():
    lr = blobs(10, 12)
    nn_up = degrade.upscale_baseline(lr, "nearest")
    assert nn_up.shape == (40, 48) and np.array_equal(nn_up[::4, ::4], lr)
    bic = degrade.upscale_baseline(lr, "bicubic")
    assert bic.shape == (40, 48) and bic.dtype == np.uint8


def test_psnr_ssim_conventions():
    ref = blobs(32, 32)
    noisy = np.clip(ref.astype(int) + 5, 0, 255).astype(np.uint8)
    mse = np.mean((ref.astype(float) - noisy.astype(float)) ** 2)
    assert metrics.psnr(ref, noisy) == pytest.approx(10 * np.log10(255 ** 2 / mse))
    assert metrics.psnr(ref, ref) == float("inf")
    assert metrics.ssim(ref, ref) == pytest.approx(1.0)
    # 16-bit: data range 65535
    r16 = ref.astype(np.uint16) * 256
    n16 = noisy.astype(np.uint16) * 256
    assert metrics.psnr(r16, n16) == pytest.approx(10 * np.log10(65535 ** 2 / (mse * 256 ** 2)))
    # multi-channel: mean of per-channel values
    rgb_ref = np.stack([ref, ref, ref], -1)
    rgb_out = np.stack([ref, noisy, noisy], -1)
    assert metrics.ssim(rgb_ref, rgb_out) == pytest.approx((1 + 2 * metrics.ssim(ref, noisy)) / 3)
    with pytest.raises(ValueError):
        metrics.psnr(ref, ref[:-1])
    assert metrics.psnr(ref, noisy, crop=4) != metrics.psnr(ref, noisy)
