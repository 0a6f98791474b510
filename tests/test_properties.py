"""Property-based tests (hypothesis): normalisation and tiling round trips, degradation shapes,
and the app's input sanitisers, over arbitrary arrays, sizes and strings."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sr import imio
from sr.degrade import SCALE, crop_to_multiple, degrade, upscale_baseline

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

shapes = st.one_of(
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=24),
    st.tuples(st.integers(2, 24), st.integers(2, 24), st.integers(1, 5)),
)
int_images = st.sampled_from([np.uint8, np.uint16]).flatmap(
    lambda dt: hnp.arrays(dt, shapes, elements=st.integers(0, np.iinfo(dt).max)))
float_images = hnp.arrays(np.float32, shapes, elements=st.floats(-1e6, 1e6, allow_nan=False, width=32))


# ------------------------------------------------------------------------------ normalisation

@FAST
@given(a=int_images, mode=st.sampled_from(["auto", "dtype", "percentile"]))
def test_normalize_denormalize_is_exact_for_integer_images(a, mode):
    a = imio.check_array(a)
    x, norm = imio.normalize(a, mode)
    assert x.dtype == np.float32 and x.shape == imio.to_channels(a).shape and np.isfinite(x).all()
    back = imio.denormalize(x, norm, a.ndim)
    assert back.dtype == a.dtype and back.shape == a.shape
    assert np.array_equal(back, a)


@FAST
@given(a=float_images)
def test_normalize_denormalize_float_round_trip(a):
    a = imio.check_array(a)
    x, norm = imio.normalize(a)
    back = imio.denormalize(x, norm, a.ndim)
    assert back.dtype == np.float32 and back.shape == a.shape
    span = float(np.abs(a).max()) + 1.0
    assert np.abs(back.astype(np.float64) - a).max() <= 1e-5 * span


@FAST
@given(a=st.one_of(int_images, float_images))
def test_display_conversion_is_uint8_grey_or_rgb(a):
    a = imio.check_array(a)
    u = imio.to_uint8_display(a)
    assert u.dtype == np.uint8 and u.shape[:2] == a.shape[:2]
    assert u.ndim == 2 or u.shape[2] == 3


@FAST
@given(a=st.one_of(int_images, float_images))
def test_check_array_is_idempotent(a):
    once = imio.check_array(a)
    twice = imio.check_array(once)
    assert twice.dtype == once.dtype and np.array_equal(twice, once)


# ------------------------------------------------------------------------------ tiling

@pytest.fixture(scope="module")
def net():
    import torch

    from sr.arch import Generator

    torch.manual_seed(1)
    g = Generator(width=4, blocks=1, head_kernel=5, tail_kernel=3, up_width=4, norm="none",
                  upsample="nearest-conv").eval()
    with torch.no_grad():  # a non-trivial response everywhere (random init is nearly flat)
        for p in g.parameters():
            p.mul_(2.0)
    return g


@FAST
@given(h=st.integers(3, 32), w=st.integers(3, 32), tile=st.integers(6, 40), n=st.integers(1, 2),
       seed=st.integers(0, 2**31 - 1))
def test_tiled_equals_whole_image_inference(net, h, w, tile, n, seed):
    from sr.tiling import run_tiled

    x = np.random.default_rng(seed).random((n, 1, h, w), dtype=np.float32)
    whole = run_tiled(net, x, tile=None, precision="fp32")
    tiled = run_tiled(net, x, tile=tile, precision="fp32")
    assert tiled.shape == whole.shape == (n, 1, h * 4, w * 4)
    assert np.isfinite(tiled).all()
    # in 8-bit grey levels at most 1 apart (in practice float rounding only)
    assert np.abs(np.rint(whole * 255) - np.rint(tiled * 255)).max() <= 1


@FAST
@given(a=st.one_of(int_images, float_images), tile=st.integers(8, 32))
def test_upscale_keeps_dtype_layout_and_size(net, a, tile):
    import sr

    a = imio.check_array(a)
    out = sr.upscale(a, net, tile=tile, precision="fp32")
    assert out.dtype == a.dtype and out.shape == (a.shape[0] * 4, a.shape[1] * 4) + a.shape[2:]
    assert np.isfinite(out.astype(np.float64)).all()


# ------------------------------------------------------------------------------ degradation

@FAST
@given(a=hnp.arrays(st.sampled_from([np.uint8, np.uint16, np.float32]),
                    st.one_of(st.tuples(st.integers(1, 41), st.integers(1, 41)),
                              st.tuples(st.integers(1, 41), st.integers(1, 41), st.integers(1, 3))),
                    elements=st.integers(0, 255)))
def test_degrade_shape_rules(a):
    h, w = a.shape[:2]
    if h < SCALE or w < SCALE:
        with pytest.raises(ValueError):
            degrade(a)
        return
    c = crop_to_multiple(a)
    assert c.shape[:2] == (h - h % SCALE, w - w % SCALE) and np.array_equal(c, a[:c.shape[0], :c.shape[1]])
    lr = degrade(a)
    assert lr.dtype == a.dtype and lr.shape == (h // SCALE, w // SCALE) + a.shape[2:]
    for method in ("nearest", "bicubic"):
        up = upscale_baseline(lr, method)
        assert up.dtype == a.dtype and up.shape == c.shape
    assert np.array_equal(upscale_baseline(lr, "nearest")[::SCALE, ::SCALE], lr)


@FAST
@given(a=hnp.arrays(np.uint8, st.tuples(st.integers(4, 33), st.integers(4, 33)), elements=st.integers(0, 255)))
def test_degrade_of_a_constant_image_is_constant(a):
    v = int(a.flat[0])
    const = np.full_like(a, v)
    assert (degrade(const) == v).all()


# ------------------------------------------------------------------------------ app sanitisers

@FAST
@given(name=st.text(max_size=300))
def test_safe_stem_gives_a_plain_file_name(name):
    from sr.app.inputs import safe_stem

    s = safe_stem(name)
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,60}", s) and not s.startswith(".") and "/" not in s


finite_or_junk = st.one_of(st.none(), st.just(""), st.integers(-10**12, 10**12),
                           st.floats(-1e12, 1e12, allow_nan=False), st.text(max_size=5))


@FAST
@given(x=finite_or_junk, y=finite_or_junk, size=finite_or_junk, h=st.integers(4, 5000), w=st.integers(4, 5000))
def test_clamp_roi_is_inside_the_image_or_a_clear_error(x, y, size, h, w):
    from sr.app.errors import AppError
    from sr.app.roi import clamp_roi

    try:
        rx, ry, rs = clamp_roi(x, y, size, h, w)
    except AppError:
        return
    assert 4 <= rs <= min(h, w) and 0 <= rx <= w - rs and 0 <= ry <= h - rs
    assert all(isinstance(v, int) for v in (rx, ry, rs))


@FAST
@given(x=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8)))
@example(x=float("inf"))
@example(x=float("-inf"))
@example(x=float("nan"))
@example(x="1e999")
def test_clamp_roi_non_finite_numbers(x):
    from sr.app.errors import AppError
    from sr.app.roi import clamp_roi

    try:
        rx, ry, rs = clamp_roi(x, x, 16, 100, 100)
    except AppError:
        return
    assert math.isfinite(rx) and 0 <= rx <= 84 and 0 <= ry <= 84
