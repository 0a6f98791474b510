"""Decoding under a memory budget, truncated images, handler refusals (issue 15, items 2, 5, 6)."""
from __future__ import annotations

import io
import logging
import struct
import threading
import time
import tracemalloc
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from sr import imio, imlimits, pngcheck


@pytest.fixture(scope="module")
def tiff_bomb(tmp_path_factory):
    """The issue's file: a small zlib TIFF that decodes to 4x4096x4096 float32 (256 MiB, exactly
    at the general decoded-size limit)."""
    p = tmp_path_factory.mktemp("bomb") / "bomb.tif"
    tifffile.imwrite(p, np.zeros((4, 4096, 4096), np.float32), compression="zlib", photometric="minisblack")
    assert p.stat().st_size < 2 * 2**20
    return p


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def short_png(w=4096, h=4096, stream=None) -> bytes:
    """A PNG declaring w x h grey pixels whose (valid, complete) zlib stream is far too short."""
    stream = zlib.compress(b"\x00" * 64) if stream is None else stream
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", stream) + _png_chunk(b"IEND", b""))


def test_short_png_is_refused_as_truncated():
    data = short_png()
    assert len(data) < 200
    with pytest.raises(imio.ImageError, match="truncated"):
        imio.read_image(data)
    rows = b"".join(b"\x00" + bytes(np.random.default_rng(i).integers(0, 255, 64, dtype=np.uint8))
                    for i in range(64))
    cut = short_png(64, 64, zlib.compress(rows)[:-1500])  # stream cut mid-way
    with pytest.raises(imio.ImageError):
        imio.read_image(cut)
    ok = short_png(64, 64, zlib.compress(rows))  # complete: accepted
    assert imio.read_image(ok)[0].shape == (64, 64)


def test_short_png_is_refused_even_if_someone_allowed_truncated_images(monkeypatch):
    """Pillow 12 alone refuses these files; a library setting LOAD_TRUNCATED_IMAGES=True (a common
    snippet) made them decode as zeros. imio counts the scanlines itself and forces it off."""
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(imio.ImageError, match="truncated"):
        imio.read_image(short_png())
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for the rest of the process


def test_png_stream_check_counts_interlaced_images(tmp_path):
    rng = np.random.default_rng(0)
    for shape in ((37, 53), (37, 53, 3), (9, 5)):
        a = rng.integers(0, 255, shape, dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "PNG")
        assert np.array_equal(imio.read_image(buf.getvalue())[0], a)
    a16 = rng.integers(0, 65535, (21, 33), dtype=np.uint16)
    p = tmp_path / "x.png"
    imio.write_image(p, a16)
    assert np.array_equal(imio.read_image(p)[0], a16)
    # Adam7: raw size from the passes (Pillow cannot write interlaced PNGs; check the arithmetic)
    assert pngcheck._png_raw_size(1, 1, 8, 0, 1) == 2
    assert pngcheck._png_raw_size(8, 8, 8, 0, 1) == sum(ph * (1 + pw) for pw, ph in
                                                     ((1, 1), (1, 1), (2, 1), (2, 2), (4, 2), (4, 4), (8, 4)))


def test_truncated_jpeg_is_refused():
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buf, "JPEG")
    with pytest.raises(imio.ImageError):
        imio.read_image(buf.getvalue()[: len(buf.getvalue()) // 2])


def test_app_limits_refuse_the_tiff_bomb_before_decoding(tiff_bomb, monkeypatch):
    """In the app, the issue's TIFF is refused from its header: fast, without allocating."""
    calls = []
    real = tifffile.TiffPageSeries.asarray
    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    tracemalloc.start()
    t0 = time.perf_counter()
    with imio.decode_limits(**imio.app_limits()):
        with pytest.raises(imio.ImageError, match="MiB decoded|result would be"):
            imio.read_image(tiff_bomb)
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert calls == [] and dt < 1.0 and peak < 32 * 2**20, (calls, dt, peak)


def test_output_size_is_refused_before_decoding(monkeypatch):
    from PIL import ImageFile

    big = np.zeros((3000, 3000), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, "PNG")
    small = np.zeros((600, 600), np.uint8)
    sbuf = io.BytesIO()
    Image.fromarray(small).save(sbuf, "PNG")
    loads = []
    real = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(1) or real(self))
    with imio.decode_limits(**imio.app_limits()):  # smallest result: the image itself, 9 Mpx > 4 Mpx
        with pytest.raises(imio.ImageError, match="over this demo's limit"):
            imio.read_image(buf.getvalue())
        assert imio.read_image(sbuf.getvalue())[0].shape == (600, 600)  # hr mode: fine
        with imio.decode_limits(output_scale=4):  # lr mode: 2400x2400 > 2048x2048
            n = len(loads)
            with pytest.raises(imio.ImageError, match="4x result would be 2400x2400"):
                imio.read_image(sbuf.getvalue())
            assert len(loads) == n
    assert imio.read_image(buf.getvalue())[0].shape == (3000, 3000)  # no app limits: the CLI reads it


def test_app_decoded_bytes_cap(tmp_path, monkeypatch):
    monkeypatch.setenv("SR_APP_MAX_DECODED_BYTES", str(2**20))
    p = tmp_path / "stack.tif"
    tifffile.imwrite(p, np.zeros((8, 256, 256), np.float32), compression="zlib")  # 2 MiB decoded
    with imio.decode_limits(**imio.app_limits()):
        with pytest.raises(imio.ImageError, match="SR_APP_MAX_DECODED_BYTES"):
            imio.read_image(p)
    assert imio.read_image(p)[0].shape == (256, 256, 8)


def test_byte_budget_bounds_concurrent_decoding():
    b = imlimits.ByteBudget(100, wait_s=0.2)
    with pytest.raises(imio.ImageError, match="decoding budget"):
        with b.hold(101):
            pass
    order = []
    with b.hold(60):
        with pytest.raises(imio.ImageError, match="busy"):
            with b.hold(60):
                pass

        def later():
            with b.hold(60):
                order.append("second")

        b.wait_s = 5
        t = threading.Thread(target=later)
        t.start()
        time.sleep(0.1)
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"] and b.used == 0


def test_decodes_reserve_from_the_budget(monkeypatch):
    b = imlimits.ByteBudget(10 * 2**20, wait_s=0.1)
    monkeypatch.setattr(imlimits, "_budget", b)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((1000, 1000, 3), np.uint8)).save(buf, "PNG")  # 4 MB x 3 reserved > 10 MiB
    with pytest.raises(imio.ImageError, match="decoding budget"):
        imio.read_image(buf.getvalue())
    small = io.BytesIO()
    Image.fromarray(np.zeros((500, 500), np.uint8)).save(small, "PNG")
    assert imio.read_image(small.getvalue())[0].shape == (500, 500) and b.used == 0


def test_eight_concurrent_tiff_bombs_are_refused_fast(tiff_bomb):
    import resource

    def rss_mb():
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024

    before = rss_mb()
    times, errors = [], []

    def one():
        t0 = time.perf_counter()
        try:
            with imio.decode_limits(**imio.app_limits()):
                imio.read_image(tiff_bomb)
        except imio.ImageError as exc:
            errors.append(str(exc))
        times.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(errors) == 8 and max(times) < 1.0, (errors, times)
    assert rss_mb() - before < 100, (before, rss_mb())
    del resource


# ------------------------------------------------------------------------------ handler refusals

class _Evt:
    def __init__(self, index):
        self.index = index


@pytest.mark.parametrize("index", [["a", "b"], None, [1], [1, 2, 3], [float("nan"), 1], [1e300, 1],
                                   [-5, 3], [True, 2], "12", {"x": 1}])
def test_click_event_data_is_validated(index):
    from sr.app.errors import EventDataError, click_xy

    with pytest.raises(EventDataError):
        click_xy(_Evt(index))


def test_refusals_are_one_line_and_rate_limited(caplog):
    import gradio as gr

    from sr.app import errors as ui_errors
    from sr.app.errors import click_xy, user_errors

    @user_errors
    def roi_click(evt):
        return click_xy(evt)

    @user_errors
    def buggy(x):
        raise KeyError("secret internal detail /srv/app/x.py")

    assert roi_click(_Evt([3, 4])) == (3.0, 4.0)
    caplog.set_level(logging.INFO, logger="sr.app")
    for _ in range(50):
        with pytest.raises(gr.Error) as ei:
            roi_click(_Evt(["a", "b"]))
        assert "\n" not in ei.value.message and "Traceback" not in ei.value.message
        assert "TypeError" not in ei.value.message and "'a'" not in ei.value.message
    lines = [r for r in caplog.records if "roi_click" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    caplog.clear()
    for _ in range(20):
        with pytest.raises(gr.Error) as ei:
            buggy(1)
        assert "secret" not in ei.value.message and "KeyError" not in ei.value.message
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and len(caplog.records) <= 2
    assert ui_errors.LOG_INTERVAL_S > 0
