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
    # 16-bit: the reference's own range (max - min)
    r16 = ref.astype(np.uint16) * 256
    n16 = noisy.astype(np.uint16) * 256
    dr = (int(ref.max()) - int(ref.min())) * 256
    assert metrics.psnr(r16, n16) == pytest.approx(10 * np.log10(dr ** 2 / (mse * 256 ** 2)))
    # multi-channel: mean of per-channel values
    rgb_ref = np.stack([ref, ref, ref], -1)
    rgb_out = np.stack([ref, noisy, noisy], -1)
    assert metrics.ssim(rgb_ref, rgb_out) == pytest.approx((1 + 2 * metrics.ssim(ref, noisy)) / 3)
    with pytest.raises(ValueError):
        metrics.psnr(ref, ref[:-1])
    assert metrics.psnr(ref, noisy, crop=4) != metrics.psnr(ref, noisy)


def test_16bit_small_range_is_scored_against_its_own_range():
    """A 16-bit image using 0..235 of 0..65535 ranks methods as its 8-bit copy does (issue 16)."""
    speckle = np.random.default_rng(1).integers(0, 60, (96, 96))
    ref8 = np.clip(blobs(96, 96).astype(int) * 3 // 4 + speckle, 0, 255).astype(np.uint8)
    ref16 = (ref8.astype(np.uint16) * 235 // 255).astype(np.uint16)
    lr16 = degrade.degrade(ref16)
    outs = {m: degrade.upscale_baseline(lr16, m) for m in ("nearest", "bicubic")}
    scores = {m: metrics.score(ref16, o) for m, o in outs.items()}
    for s in scores.values():
        assert s["psnr"] < 45 and s["ssim"] < 0.9
    ref8b = (ref16.astype(np.float64) * 255 / 235).round().astype(np.uint8)
    lr8 = degrade.degrade(ref8b)
    s8 = {m: metrics.score(ref8b, degrade.upscale_baseline(lr8, m)) for m in ("nearest", "bicubic")}
    assert (scores["bicubic"]["psnr"] > scores["nearest"]["psnr"]) == (s8["bicubic"]["psnr"] > s8["nearest"]["psnr"])


def test_gaussian_window_and_foreground():
    ref = blobs(64, 64)
    noisy = np.clip(ref.astype(int) + np.random.default_rng(0).integers(-20, 21, ref.shape), 0, 255).astype(np.uint8)
    u, g = metrics.ssim(ref, noisy, window="uniform"), metrics.ssim(ref, noisy, window="gaussian")
    assert 0 < u < 1 and 0 < g < 1 and u != g
    with pytest.raises(ValueError):
        metrics.ssim(ref, noisy, window="box")
    s = metrics.score(ref, noisy, foreground=True)
    m = metrics.foreground_mask(ref)
    assert 0 < s["fg_fraction"] < 1 and s["fg_fraction"] == pytest.approx(m.mean())
    d = (ref.astype(float) - noisy.astype(float)) ** 2
    assert s["fg_psnr"] == pytest.approx(10 * np.log10(255 ** 2 / d[m].mean()))
    assert metrics.foreground_mask(np.zeros((16, 16), np.uint8)).all()  # flat: everything


def test_flat_field_pattern_script_reads_zero_for_bicubic():
    """scripts/flat_field_pattern.py: bicubic keeps a flat field flat (no phase pattern)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "flat_field_pattern.py"
    p = subprocess.run([sys.executable, str(script), "--models", "bicubic,nearest", "--levels", "5,40"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-300:]
    assert "| bicubic | 5.00 / 0.00 / 0.00 | 40.00 / 0.00 / 0.00 |" in p.stdout
    assert "| nearest |" in p.stdout
