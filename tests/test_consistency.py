"""LR consistency (sr.consistency): Pillow's resampling as convolutions, back-projection, and
the wrapper every inference path runs."""
import numpy as np
import pytest
import torch

from sr import consistency as cons
from sr import degrade
from sr.runtime import optimize_for_inference
from sr.tiling import run_tiled
from conftest import blobs, zoo_env
from test_staged import CONFIGS, _gen


@pytest.mark.parametrize("h,w", [(4, 8), (12, 20), (36, 100), (132, 76)])
def test_down_and_up_are_pillows_resampling_borders_included(h, w):
    rng = np.random.default_rng(h * w)
    hr = (rng.random((h, w)) * 200).astype(np.float32)
    lr = (rng.random((h // 4, w // 4)) * 200).astype(np.float32)
    down = cons.downscale(torch.from_numpy(hr)[None, None])[0, 0].numpy()
    up = cons.upscale(torch.from_numpy(lr)[None, None])[0, 0].numpy()
    assert np.abs(down - degrade.resize(hr, (w // 4, h // 4))).max() < 1e-4
    assert np.abs(up - degrade.resize(lr, (w, h))).max() < 1e-4


def test_projection_makes_the_output_consistent_and_keeps_high_frequencies():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(blobs(40, 48).astype(np.float32) / 255)[None, None]
    detail = torch.from_numpy(rng.normal(0, 0.05, (160, 192)).astype(np.float32))[None, None]
    y = cons.upscale(x) * 1.3 - 0.1 + detail  # a gain/offset error plus texture
    err0 = (cons.downscale(y) - x).abs().mean()
    p = cons.project(y, x, 3)
    assert (cons.downscale(p) - x).abs().mean() < 0.1 * err0
    # the texture above the LR band stays: what was removed is smooth
    removed = (y - p)[0, 0].numpy()
    hf = lambda a: np.abs(np.fft.fft2(a))[40:120, 48:144].sum()  # noqa: E731  (the middle = highest frequencies)
    assert hf(removed) < 0.05 * hf(detail[0, 0].numpy())
    assert torch.equal(cons.project(y, x, 0), y)
    with pytest.raises(ValueError, match="4x"):
        cons.project(y[..., :-4], x, 1)


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("tile", [None, 9, 16])
def test_wrapped_generator_tiles_exactly(cfg, tile):
    """One-stage and two-stage tiling of a consistent generator equal whole-image inference."""
    fast = optimize_for_inference(_gen(cfg), "fp32", backend="torch")
    wrapped = cons.Consistent(fast, 3)
    assert wrapped.receptive_radius() == fast.receptive_radius() + cons.radius(3)
    assert wrapped.config == fast.config and wrapped.self_casting
    x = blobs(61, 50).astype(np.float32)[None, None] / 255
    whole = wrapped(torch.from_numpy(x)).numpy()
    assert not np.allclose(whole, fast(torch.from_numpy(x)).numpy(), atol=1e-3)
    assert (wrapped.stages() is not None) == (fast.stages() is not None)
    got = run_tiled(wrapped, x, tile=tile)
    assert np.abs(got - whole).max() < 1e-4


def test_iterations_are_checked():
    assert cons.check_iterations("2") == 2
    for bad in (-1, cons.MAX_ITERATIONS + 1, "x", None):
        with pytest.raises(ValueError, match="consistency"):
            cons.check_iterations(bad)


@pytest.fixture
def gan_zoo(tmp_path, monkeypatch):
    from sr.testing import ALL_TINY, make_tiny_zoo

    with zoo_env(monkeypatch, *make_tiny_zoo(tmp_path, ids=ALL_TINY)) as z:
        yield z


def test_upscale_uses_the_models_default_and_explicit_values(gan_zoo):
    import sr
    from sr import api, zoo

    lr = blobs(24, 28)
    plain = sr.upscale(lr, "srgan-improved", precision="fp32", consistency=0)
    assert api.resolve_consistency("srgan-improved", None) == 0  # no card value: off
    zoo.update_entry("srgan-improved", card={"lr_consistency": 2})
    assert api.resolve_consistency("srgan-improved", None) == 2
    dflt = sr.upscale(lr, "srgan-improved", precision="fp32")
    assert np.array_equal(dflt, sr.upscale(lr, "srgan-improved", precision="fp32", consistency=2))
    assert not np.array_equal(dflt, plain)
    # the loaded module runs what the id runs (its entry's default), unless told otherwise
    mod = sr.load("srgan-improved")
    assert np.array_equal(sr.upscale(lr, mod, precision="fp32"), dflt)
    assert np.array_equal(sr.upscale(lr, mod, precision="fp32", consistency=0), plain)
    # the result is closer to consistent with its input than without
    d = lambda y: np.abs(degrade.resize(y.astype(np.float32), (28, 24)) - lr).mean()  # noqa: E731
    assert d(dflt) < d(plain)
    with pytest.raises(ValueError, match="consistency"):
        sr.upscale(lr, "srgan-improved", consistency=99)
    with pytest.raises(ValueError, match="generators"):
        sr.upscale(lr, "bicubic", consistency=1)


def test_choose_needs_the_other_images_too():
    from sr.blend import choose

    ok = {"dpsnr": 0.5, "dpsnr_ci": 0.1, "dssim": 0.01, "dssim_ci": 0.005}
    rows = [{"blend": 0.0, **ok, "other": {"dpsnr": 0.4, "dssim": 0.01}},
            {"blend": 0.5, **ok, "other": {"dpsnr": 0.1, "dssim": 0.002}},
            {"blend": 1.0, **ok, "other": {"dpsnr": -0.3, "dssim": 0.004}}]
    assert choose(rows) == 0.5
    rows[1]["other"]["dssim"] = -0.001
    assert choose(rows) == 0.0


def test_validation_scores_what_inference_runs():
    """Training validation with the recipe's back-projection steps scores the projected output."""
    from sr import data
    from sr.validation import validate_generator

    hr = blobs(64, 64)
    lr8 = degrade.degrade(hr)
    plane = data.Plane(hr.astype(np.float32) / 255, lr8.astype(np.float32) / 255, hr, -1, "p")
    g = _gen(CONFIGS[0])
    with torch.no_grad():  # a GAN-like contrast error the projection removes
        g.tail.weight.mul_(3.0)
    plain = validate_generator(g, [plane], "fp32")
    proj = validate_generator(g, [plane], "fp32", consistency=3)
    assert proj["val_psnr"] > plain["val_psnr"] + 1


def test_choose_records_a_saved_curve(gan_zoo, tmp_path, capsys):
    import json
    from types import SimpleNamespace

    from sr import blend, zoo

    ok = {"dpsnr": 0.5, "dpsnr_ci": 0.1, "dssim": 0.01, "dssim_ci": 0.005, "lsd": 9.0, "fields": 3}
    saved = {"model": "srgan-improved", "command": "python -m sr blend choose ...", "lr_consistency": 2,
             "other": ["elsewhere"], "curve": [{"blend": 0.0, **ok}, {"blend": 0.7, **ok},
                                               {"blend": 1.0, **ok, "dpsnr": -0.1}]}
    f = tmp_path / "curve.json"
    f.write_text(json.dumps(saved))
    args = SimpleNamespace(model="srgan-improved", data=None, other=None, consistency=None, write=True,
                           from_json=str(f))
    assert blend.choose_cli(args) == 0
    card = zoo.get_entry("srgan-improved").card
    assert card["default_blend"] == 0.7 and card["lr_consistency"] == 2 and "elsewhere" in card["blend_selection"]
    assert json.loads(capsys.readouterr().out)["command"] == saved["command"]
    with pytest.raises(blend.BlendError, match="not 'srgan'"):
        blend.choose_cli(SimpleNamespace(**{**vars(args), "model": "srgan"}))


def test_fast_modules_are_not_projected_twice(gan_zoo):
    import sr
    from sr import api, zoo
    from sr.consistency import Consistent

    zoo.update_entry("srgan-improved", card={"lr_consistency": 2})
    lr = blobs(20, 20)
    fast = api.fast_model("srgan-improved", "fp32")
    assert isinstance(fast, Consistent) and fast.iterations == 2
    assert api.fast_module(fast) is fast
    assert api.fast_module(fast, consistency=0) is fast.net
    assert api.fast_module(fast, consistency=1).iterations == 1
    assert not isinstance(api.fast_module(fast.net), Consistent)  # a fast module: only the steps asked
    assert np.array_equal(sr.upscale(lr, fast, precision="fp32"), sr.upscale(lr, "srgan-improved", precision="fp32"))
