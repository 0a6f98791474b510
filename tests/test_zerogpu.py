"""ZeroGPU wiring on a CPU machine: handlers unchanged without ZeroGPU, wrapped with
``spaces.GPU`` and a duration sized to the request with it (a stand-in ``spaces`` module)."""
from __future__ import annotations

import functools
import sys
import types

import pytest
from PIL import Image

from sr.app import gpu
from conftest import blobs


@pytest.fixture
def fake_spaces(monkeypatch):
    calls = []

    def GPU(task=None, *, duration=None):
        def deco(fn):
            @functools.wraps(fn)
            def wrapped(*a, **k):
                wrapped.durations.append(duration(*a, **k) if callable(duration) else duration)
                return fn(*a, **k)

            wrapped.durations = []
            calls.append((getattr(fn, "__name__", "?"), duration, wrapped))
            return wrapped

        return deco(task) if callable(task) else deco

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    return calls


def test_handlers_unchanged_without_zerogpu(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.setitem(sys.modules, "spaces", None)  # would fail if it were imported

    def handler(x):
        return x

    assert gpu.on_gpu(gpu.compare_seconds)(handler) is handler


def test_real_spaces_is_a_no_op_here(monkeypatch):
    spaces = pytest.importorskip("spaces")
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def handler(x):
        return x

    assert spaces.GPU(duration=gpu.compare_seconds)(handler) is handler


def test_durations_grow_with_the_request_and_are_capped(tmp_path, tiny_zoo):
    from sr.app import config as cfg

    small, big = tmp_path / "s.png", tmp_path / "b.png"
    Image.fromarray(blobs(64, 64)).save(small)
    Image.fromarray(blobs(2048, 2048)).save(big)
    one = gpu.compare_seconds(str(small), cfg.MODE_HR, ["bicubic", "srgan-improved"])
    assert one == gpu.MIN_SECONDS
    many = gpu.compare_seconds(str(big), cfg.MODE_LR, ["srgan", "srgan-improved", "msrgan"], 192, True, 1.0,
                               None, None, request=None, progress=None)
    assert gpu.MIN_SECONDS < many <= gpu.MAX_SECONDS
    assert gpu.compare_seconds(str(big), cfg.MODE_HR, ["srgan-improved"]) < many  # 16x fewer pixels
    assert gpu.upscale_seconds(str(big), "srgan-improved", 192, None) >= gpu.MIN_SECONDS
    assert gpu.compare_seconds(None, None, None) == gpu.MIN_SECONDS
    assert gpu.video_seconds("/no/such/video.mp4", "srgan-lite") <= gpu.MAX_SECONDS
    assert gpu.pool_seconds(types.SimpleNamespace(hr_dir=tmp_path, crop=256, methods=["srgan"])) >= gpu.MIN_SECONDS


def test_zerogpu_wraps_the_inference_handlers(fake_spaces, tiny_zoo, monkeypatch):
    from sr.app.ui import build_demo

    monkeypatch.setenv("SR_MOS_AUTO_BUILD", "0")
    build_demo()
    wrapped = {name: d for name, d, _ in fake_spaces}
    assert {"compare", "upscale", "on_video"} <= set(wrapped)
    assert wrapped["compare"] is gpu.compare_seconds and wrapped["upscale"] is gpu.upscale_seconds
    assert wrapped["on_video"] is gpu.video_seconds


def test_zerogpu_pool_build_is_wrapped(fake_spaces, tmp_path, monkeypatch):
    from sr.mos import autobuild

    got = {}
    monkeypatch.setattr(autobuild, "build_pool", lambda *a, **k: got.update(a=a, k=k))
    cfg = types.SimpleNamespace(hr_dir=tmp_path, crop=64, methods=["bicubic"])
    autobuild._build_on_gpu(cfg)(tmp_path, tmp_path / "pool", log=autobuild._log_progress)
    assert fake_spaces and fake_spaces[-1][0] == "<lambda>"
    assert fake_spaces[-1][2].durations == [gpu.pool_seconds(cfg)] and got["a"][0] == tmp_path


def test_zerogpu_warm_up_builds_without_running(fake_spaces, tiny_zoo, monkeypatch):
    from sr import api
    from sr.app import models

    built = []
    monkeypatch.setattr(api, "fast_model", lambda mid, *a, **k: built.append(mid))
    monkeypatch.setattr(api, "upscale", lambda *a, **k: pytest.fail("no inference outside a GPU request"))
    assert models.warm_up(("srgan-improved", "bicubic")) == ["srgan-improved"] and built == ["srgan-improved"]


def test_zerogpu_webcam_frames_stay_on_the_cpu(fake_spaces, monkeypatch):
    from sr.app import live_tab

    assert live_tab.frame_device() == "cpu"
    monkeypatch.delenv("SPACES_ZERO_GPU")
    assert live_tab.frame_device() is None
