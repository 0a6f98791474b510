"""The fidelity-detail blend (sr.blend), the perceptual measures (sr.spectral) and paired
evaluation statistics."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import blobs, zoo_env


@pytest.fixture
def blend_zoo(tmp_path, monkeypatch):
    from sr.testing import ALL_TINY, make_tiny_zoo

    with zoo_env(monkeypatch, *make_tiny_zoo(tmp_path, ids=ALL_TINY)) as z:
        yield z


def test_blend_is_exact_weight_interpolation(blend_zoo):
    from sr import blend, zoo

    assert blend.parent_of("srgan-improved") == "srresnet-improved"
    gan, parent = zoo.shared("srgan-improved"), zoo.shared("srresnet-improved")
    half = blend.blended("srgan-improved", 0.5)
    for k, v in half.state_dict().items():
        g, p = gan.state_dict()[k], parent.state_dict()[k]
        if v.is_floating_point():
            assert torch.allclose(v, (g + p) / 2, atol=1e-6), k
    assert blend.blended("srgan-improved", 1.0) is gan
    assert blend.blended("srgan-improved", 0.0) is parent
    assert blend.blended("srgan-improved", 0.51) is half  # same grid point: cached
    with pytest.raises(blend.BlendError):
        blend.quantize(1.5)
    with pytest.raises(blend.BlendError):
        blend.parent_of("srresnet")  # a pixel-loss model has no blend


def test_upscale_with_blend_endpoints(blend_zoo):
    import sr

    lr = blobs(24, 24)
    gan = sr.upscale(lr, "srgan-improved", blend=1.0)
    parent = sr.upscale(lr, "srresnet-improved")
    assert np.array_equal(sr.upscale(lr, "srgan-improved", blend=0.0), parent)
    assert np.array_equal(sr.upscale(lr, "srgan-improved"), gan)  # no default in the card: the GAN
    mid = sr.upscale(lr, "srgan-improved", blend=0.5)
    assert not np.array_equal(mid, gan) and not np.array_equal(mid, parent)
    with pytest.raises(Exception):
        sr.upscale(lr, "bicubic", blend=0.5)


def test_load_is_the_model_the_id_names(blend_zoo):
    """sr.load of a GAN with a default blend gives that blend, so sr.upscale(x, sr.load(id))
    equals sr.upscale(x, id); blend=1 gives the GAN's own weights."""
    import sr
    from sr import zoo

    zoo.update_entry("srgan-improved", card={"default_blend": 0.5})
    half = sr.load("srgan-improved")
    gan, parent = zoo.load("srgan-improved").state_dict(), zoo.load("srresnet-improved").state_dict()
    k = next(k for k, v in gan.items() if v.is_floating_point() and not torch.equal(v, parent[k]))
    assert torch.allclose(half.state_dict()[k], (gan[k] + parent[k]) / 2, atol=1e-6)
    assert torch.equal(sr.load("srgan-improved", blend=1.0).state_dict()[k], gan[k])
    assert half.zoo_entry.id == "srgan-improved" and not half.training
    lr = blobs(24, 24)
    assert np.array_equal(sr.upscale(lr, half, precision="fp32"), sr.upscale(lr, "srgan-improved", precision="fp32"))


def test_blend_refuses_a_retrained_parent(blend_zoo):
    from sr import blend, zoo

    zoo.update_entry("srgan-improved", card={"init_sha256": "0" * 64})
    with pytest.raises(blend.BlendError, match="retrain"):
        blend.parent_of("srgan-improved")
    assert not blend.can_blend("srgan-improved")


def test_choose_picks_the_largest_safe_blend():
    from sr.blend import choose

    rows = [{"blend": 0.0, "dpsnr": 0.8, "dpsnr_ci": 0.1, "dssim": 0.02, "dssim_ci": 0.005},
            {"blend": 0.5, "dpsnr": 0.5, "dpsnr_ci": 0.1, "dssim": 0.004, "dssim_ci": 0.003},
            {"blend": 1.0, "dpsnr": 0.1, "dpsnr_ci": 0.2, "dssim": -0.01, "dssim_ci": 0.004}]
    assert choose(rows, keep=0) == 0.5
    assert choose(rows[2:]) == 0.0
    # the fidelity budget: 0.5 keeps 62% of the parent's PSNR gain (0.5 of 0.8)
    assert choose(rows, keep=0.6) == 0.5
    assert choose(rows) == choose(rows, keep=0.8) == 0.0
    rows[1]["dpsnr"] = 0.7  # 87% of the parent's gain
    assert choose(rows) == 0.5


def test_spectral_measures():
    from sr import degrade, spectral

    rng = np.random.default_rng(0)
    ref = np.clip(blobs(128, 128).astype(float) + rng.normal(0, 12, (128, 128)), 0, 255).astype(np.uint8)
    bic = degrade.upscale_baseline(degrade.degrade(ref), "bicubic")
    c, p = spectral.radial_power(ref)
    assert len(c) == len(p) == 64 and np.all(p >= 0)
    assert spectral.hf_lsd(ref, ref) == pytest.approx(0, abs=1e-9)
    assert spectral.hf_lsd(ref, bic) > 3  # bicubic leaves the high frequencies nearly empty
    assert spectral.hf_power_ratio(ref, bic) < 0.5
    assert spectral.frc_resolution(ref, ref) == pytest.approx(2.0)  # correlated up to Nyquist
    assert spectral.frc_resolution(ref, bic) > 2.0
    noisy = ref + rng.normal(0, 150, ref.shape)  # high rings: the reference's own noise (12) is swamped
    assert spectral.frc_resolution(ref, noisy) > spectral.frc_resolution(ref, ref)


def test_phase_bias_sees_checkerboards_and_nothing_else():
    from sr import degrade, spectral

    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:256, 0:256]
    field = 100 + 60 * np.sin(x / 17) * np.cos(y / 11) + rng.normal(0, 8, (256, 256))
    assert spectral.phase_bias(field) < 0.2  # content and noise have no fixed phase
    bic = degrade.upscale_baseline(degrade.degrade(np.clip(field, 0, 255).astype(np.uint8)), "bicubic")
    assert spectral.phase_bias(bic) < 0.2
    for amp in (1.0, 3.0):
        checker = field + amp * np.where((x + y) % 2 == 0, 1, -1)
        assert spectral.phase_bias(checker) == pytest.approx(amp, rel=0.1)
    stripes = field + 4.0 * (x % 4 == 0)  # every 4th column brighter: a pixel-shuffle-like pattern
    assert spectral.phase_bias(stripes) > 1.0
    with pytest.raises(ValueError):
        spectral.phase_bias(np.zeros((3, 3)))


def test_paired_statistics():
    from sr.evaluate import paired

    a = [30.0, 31.0, 29.5, 30.2]
    b = [29.0, 30.5, 29.6, 30.2]
    r = paired(a, b, tie=0.05)
    assert r["mean"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert (r["wins"], r["ties"], r["losses"]) == (2, 1, 1) and r["ci95"] > 0


def test_settings_are_read_in_one_module_and_documented():
    """Every SR_* variable is read in sr/settings.py only, and the README lists each of them."""
    import re
    from pathlib import Path

    from sr import settings

    repo = Path(__file__).resolve().parents[1]
    for f in list((repo / "sr").rglob("*.py")) + [repo / "app.py"]:
        if f.name == "settings.py":
            continue
        src = f.read_text()
        assert not re.search(r"environ(\.get)?\(?\[?[\"']SR_", src), f
        assert not re.search(r"getenv\([\"']SR_", src), f
    readme = (repo / "README.md").read_text()
    missing = [v for v in settings.variables() if f"`{v}`" not in readme]
    assert not missing, f"README does not document {missing}"
    with pytest.raises(ValueError):
        settings.Settings.from_env({"SR_MOS_ITEMS": "many"})
    assert settings.Settings.from_env({"SR_MOS_ITEMS": "7"}).mos_items == 7


def test_no_sys_path_edits_and_small_modules():
    """The package is installable (pyproject.toml): no script or module edits sys.path, and no
    module of sr/ is over 450 lines (issue 13)."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    for f in list((repo / "sr").rglob("*.py")) + list((repo / "scripts").glob("*.py")) + [repo / "app.py"]:
        assert "sys.path.insert" not in f.read_text() and "sys.path.append" not in f.read_text(), f
    big = {f.name: n for f in (repo / "sr").rglob("*.py") if (n := len(f.read_text().splitlines())) > 450}
    assert not big, big
    assert len((repo / "app.py").read_text().splitlines()) < 80
