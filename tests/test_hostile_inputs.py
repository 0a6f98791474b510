"""Hostile inputs (issue 7): a generated corpus of bad and odd files through the Python API, the
command line and the app's endpoints. Each file gives a clear error or a correct result, the
process survives and the next request works.

The corpus runs with ``SR_MAX_PIXELS`` = 512x512 (:data:`LIMIT`), so that "over the pixel
limit" and "expands to too many bytes" need only small files; the defaults are the same code.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import tifffile
from PIL import Image, PngImagePlugin

from conftest import REPO, blobs, free_port, make_tiny_zoo, wait_until_serving

import sr
from sr.app import inputs
from sr import imio

LIMIT = 512 * 512  # SR_MAX_PIXELS for the corpus: 4 MiB decoded at most (imio.max_bytes)
NOT_AN_IMAGE = "not a PNG, JPEG, TIFF, BMP, GIF or WebP image"
WRONG_TYPE = r"Invalid file type.*\.tif.*\.png"


# ------------------------------------------------------------------------------ the corpus

def _png(a, **kw) -> bytes:
    b = io.BytesIO()
    Image.fromarray(a).save(b, format="PNG", **kw)
    return b.getvalue()


def _tif(a, **kw) -> bytes:
    b = io.BytesIO()
    tifffile.imwrite(b, a, **kw)
    return b.getvalue()


def _png_declaring(w: int, h: int) -> bytes:
    """A valid 1x1 PNG whose header is rewritten to declare w x h (CRC fixed)."""
    raw = bytearray(_png(np.zeros((1, 1), np.uint8)))
    chunk = b"IHDR" + struct.pack(">II", w, h) + bytes(raw[24:29])
    raw[8:33] = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return bytes(raw)


def _tif_declaring(w: int, h: int) -> bytes:
    """An 8x8 TIFF whose ImageWidth/ImageLength tags are rewritten (64 bytes of pixel data)."""
    raw = bytearray(_tif(np.zeros((8, 8), np.uint8)))
    with tifffile.TiffFile(io.BytesIO(bytes(raw))) as tf:
        tags = tf.pages[0].tags
        offsets = {k: (tags[k].valueoffset, tags[k].dtype) for k in ("ImageWidth", "ImageLength")}
    for key, value in (("ImageWidth", w), ("ImageLength", h)):
        off, dt = offsets[key]
        raw[off:off + (4 if dt == 4 else 2)] = struct.pack("<I" if dt == 4 else "<H", value)
    return bytes(raw)


def _jpeg_declaring(w: int, h: int) -> bytes:
    b = io.BytesIO()
    Image.fromarray(blobs(8, 8)).save(b, format="JPEG")
    raw = bytearray(b.getvalue())
    i = raw.find(b"\xff\xc0")  # baseline SOF: length(2) precision(1) height(2) width(2)
    raw[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(raw)


def _gif_declaring(w: int, h: int) -> bytes:
    b = io.BytesIO()
    Image.fromarray(blobs(8, 8)).save(b, format="GIF")
    raw = bytearray(b.getvalue())
    raw[6:10] = struct.pack("<HH", w, h)  # logical screen size
    return bytes(raw)


def _many_pages(n: int) -> bytes:
    b = io.BytesIO()
    with tifffile.TiffWriter(b) as tw:
        for _ in range(n):  # separate series: indexing them all took minutes before the page limit
            tw.write(np.zeros((2, 2), np.uint8), contiguous=False, photometric="minisblack")
    return b.getvalue()


def _zip() -> bytes:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        z.writestr("cells.png", _png(blobs(16, 16)))
    return b.getvalue()


def _animated_gif(path: Path) -> None:
    frames = [Image.fromarray(blobs(40, 48, seed=s)) for s in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _exif_png(path: Path) -> None:
    ex = Image.Exif()
    ex[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(blobs(40, 48)).save(path, exif=ex)


def _text_bomb_png(path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("junk", "A" * 5_000_000, zip=True)  # 5 MB of text in a few kB
    Image.fromarray(blobs(16, 16)).save(path, pnginfo=info)


def _float(a: np.ndarray, at=(3, 4), value=None) -> np.ndarray:
    f = a.astype(np.float32) / 255 * 3.5 - 1
    if value is not None:
        f[at] = value
    return f


@dataclass(frozen=True)
class Case:
    """One corpus file. ``error``: regex of the expected message, or None: it must work and read
    as ``shape``/``dtype``. ``hr_error``: the app's hr-mode compare refuses it (too small).
    ``app_error``: the app refuses it before reading (Gradio's upload file-type check)."""

    name: str
    data: bytes | Callable[[Path], None]
    error: str | None = None
    shape: tuple | None = None
    dtype: str | None = None
    hr_error: str | None = None
    check: Callable[[np.ndarray], bool] | None = None
    app_error: str | None = None  # the app refuses it earlier (Gradio's file-type check)


G = blobs(40, 48)  # 8-bit grey
RGB = blobs(40, 48, c=3)

CORPUS = [
    # not images at all
    Case("empty.png", b"", "empty file"),
    Case("random_bytes.png", np.random.default_rng(0).bytes(4096), NOT_AN_IMAGE),
    Case("random_bytes.tif", np.random.default_rng(1).bytes(4096), NOT_AN_IMAGE),
    Case("tiff_magic_then_garbage.tif", b"II*\x00" + np.random.default_rng(2).bytes(2000),
         "TIFF file holds no image|cannot read TIFF"),
    Case("text_file.png", b"hello, this is a text file\nnot an image\n", NOT_AN_IMAGE),
    Case("notes.txt", b"just some notes\n", NOT_AN_IMAGE, app_error=WRONG_TYPE),
    Case("archive.zip", _zip(), NOT_AN_IMAGE, app_error=WRONG_TYPE),
    Case("zip_named.tif", _zip(), NOT_AN_IMAGE),
    Case("html.jpg", b"<html><script>alert(1)</script></html>", NOT_AN_IMAGE),
    Case("svg.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', NOT_AN_IMAGE),
    Case("postscript.png", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n0 0 moveto 16 16 lineto stroke\n"
         b"showpage\n%%EOF\n", NOT_AN_IMAGE),  # never handed to Ghostscript
    Case("ppm_named.png", b"P5 16 16 255\n" + bytes(256), NOT_AN_IMAGE),  # a real image, unsupported format
    # damaged images
    Case("truncated.png", _png(blobs(64, 64))[:700], "truncated|cannot read image"),
    Case("truncated.tif", _tif(blobs(64, 64, dtype=np.uint16))[:4000], "cannot read TIFF"),
    # decompression bombs: huge declared size, tiny file; and too many decoded bytes
    Case("bomb_100000x100000.png", _png_declaring(100000, 100000), "decompression bomb"),
    Case("bomb_100000x100000.tif", _tif_declaring(100000, 100000), "over the limit"),
    Case("bomb_65000x65000.jpg", _jpeg_declaring(65000, 65000), "decompression bomb"),
    Case("bomb_65535x65535.gif", _gif_declaring(65535, 65535), "decompression bomb"),
    Case("bomb_16x256x256_float64.tif", _tif(np.zeros((16, 256, 256)), compression="zlib"),
         "MiB decoded"),
    Case("png_text_bomb.png", _text_bomb_png, "cannot read image"),
    Case("pages_2000.tif", _many_pages(2000), "more than 64 pages"),
    # sizes
    Case("one_by_one.png", _png(np.zeros((1, 1), np.uint8)), "at least 2x2"),
    Case("zero_width.png", _png_declaring(0, 4), NOT_AN_IMAGE),
    Case("zero_width.tif", _tif_declaring(0, 8), "empty"),
    Case("line_100000x1.png", _png(np.zeros((1, 100000), np.uint8)), "100000x1; at least 2x2"),
    Case("over_limit_600x500.png", _png(np.zeros((500, 600), np.uint8)), "over the limit"),
    Case("tiny_3x2.png", _png(blobs(2, 3)), shape=(2, 3), dtype="uint8", hr_error="too small to downscale"),
    # dtypes and values
    Case("gray16.png", _png(blobs(40, 48, dtype=np.uint16)), shape=(40, 48), dtype="uint16"),
    Case("uint16.tif", _tif(blobs(40, 48, dtype=np.uint16)), shape=(40, 48), dtype="uint16"),
    Case("float32.tif", _tif(_float(G)), shape=(40, 48), dtype="float32"),
    Case("float64.tif", _tif(_float(G).astype(np.float64)), shape=(40, 48), dtype="float32"),
    Case("int32_negative.tif", _tif(G.astype(np.int32) - 100), shape=(40, 48), dtype="float32"),
    Case("float32_nan.tif", _tif(_float(G, value=np.nan)), "NaN"),
    Case("float32_inf.tif", _tif(_float(G, value=-np.inf)), "infinite"),
    Case("float32_3e38.tif", _tif(_float(G, value=3e38)), "magnitude"),
    Case("complex64.tif", _tif(np.zeros((16, 16), np.complex64)), "unsupported dtype"),
    # modes and layouts
    Case("bilevel.png", lambda p: Image.fromarray(G > 100).save(p), shape=(40, 48), dtype="uint8"),
    Case("palette.png", lambda p: Image.fromarray(RGB).convert("P", palette=Image.ADAPTIVE).save(p),
         shape=(40, 48, 3), dtype="uint8"),
    Case("cmyk.jpg", lambda p: Image.fromarray(RGB).convert("CMYK").save(p), shape=(40, 48, 3), dtype="uint8"),
    Case("grey_alpha_LA.png", lambda p: Image.fromarray(G).convert("LA").save(p), shape=(40, 48), dtype="uint8"),
    Case("rgba.png", _png(np.dstack([RGB, np.full((40, 48), 9, np.uint8)])), shape=(40, 48, 3), dtype="uint8"),
    Case("animated.gif", _animated_gif, shape=(40, 48), dtype="uint8",
         check=lambda a: np.array_equal(a, blobs(40, 48, seed=0))),  # the first frame
    Case("exif_rotated.png", _exif_png, shape=(48, 40), dtype="uint8",
         check=lambda a: np.array_equal(a, np.rot90(blobs(40, 48), -1))),
    Case("stack_chw_3x40x48.tif", _tif(np.moveaxis(blobs(40, 48, c=3, dtype=np.uint16), -1, 0),
                                       photometric="minisblack"), shape=(40, 48, 3), dtype="uint16"),
    Case("stack_5d_TZCYX.tif", _tif(np.zeros((2, 3, 2, 16, 16), np.uint8), metadata={"axes": "TZCYX"}),
         "expected a 2-D image or a channel stack"),
    Case("channels_40_last.tif", _tif(np.zeros((32, 32, 40), np.uint8), photometric="minisblack"),
         "channel axis of at most 16"),
    Case("channels_40_first.tif", _tif(np.zeros((40, 32, 32), np.uint8), photometric="minisblack"),
         "channel axis of at most 16"),
    # a good image under a hostile name (spreadsheet formula, shell, quotes)
    Case("=HYPERLINK('x') $(touch pwned); 'q'.png", _png(G), shape=(40, 48), dtype="uint8"),
]
BAD = [c for c in CORPUS if c.error]
GOOD = [c for c in CORPUS if not c.error]


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 25 and len(BAD) >= 25 and len(GOOD) >= 10
    assert len({c.name for c in CORPUS}) == len(CORPUS)


def write_corpus(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for c in CORPUS:
        p = folder / c.name
        if callable(c.data):
            c.data(p)
        else:
            p.write_bytes(c.data)
        out[c.name] = p
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(autouse=True)
def _limit(monkeypatch):
    monkeypatch.setenv("SR_MAX_PIXELS", str(LIMIT))


@pytest.fixture(scope="module")
def tiny_net():
    import torch

    from sr.arch import Generator

    torch.manual_seed(0)
    return Generator(width=4, blocks=1, head_kernel=3, tail_kernel=3, up_width=4, norm="none",
                     upsample="nearest-conv").eval()


# ------------------------------------------------------------------------------ Python API

@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_python_api(case, corpus, tiny_net):
    path = corpus[case.name]
    if case.error:
        with pytest.raises(imio.ImageError, match=case.error) as e:
            imio.read_image(path)
        assert "\n" not in str(e.value) and len(str(e.value)) < 400
        return
    a, info = imio.read_image(path)
    assert a.shape == case.shape and a.dtype == case.dtype, info
    if case.check:
        assert case.check(a)
    for model in ("bicubic", tiny_net):
        out = sr.upscale(a, model, precision="fp32")
        assert out.shape == (a.shape[0] * 4, a.shape[1] * 4) + a.shape[2:] and out.dtype == a.dtype
        assert np.isfinite(out.astype(np.float64)).all()
    assert imio.read_image(path.read_bytes())[0].shape == a.shape  # bytes in: the same


HOSTILE_ARRAYS = [
    ("empty rows", np.zeros((0, 8), np.uint8), "empty dimension"),
    ("empty columns", np.zeros((8, 0, 3), np.uint8), "empty dimension"),
    ("no channels", np.zeros((8, 8, 0), np.uint8), "no channels"),
    ("1-D", np.zeros(64, np.uint8), "2-D"),
    ("4-D", np.zeros((2, 8, 8, 3), np.uint8), "2-D"),
    ("0-D", np.uint8(3), "2-D"),
    ("None", None, "2-D|dtype"),
    ("a path string", "cells.png", "2-D|dtype"),
    ("17 channels", np.zeros((8, 8, 17), np.uint8), "17 channels"),
    ("object dtype", np.array([[object()] * 4] * 4), "dtype"),
    ("strings", np.array([["a"] * 4] * 4), "dtype"),
    ("complex", np.zeros((8, 8), np.complex64), "dtype"),
    ("NaN", np.full((8, 8), np.nan, np.float32), "NaN"),
    ("-inf", np.full((8, 8), -np.inf), "infinite"),
    ("float64 over float32", np.full((8, 8), 1e300), "magnitude"),
    ("1x1", np.zeros((1, 1), np.uint8), "at least 2x2"),
    ("over the limit", np.zeros((LIMIT // 64 + 1, 64), np.uint8), "over the limit"),
]


@pytest.mark.parametrize("what,array,match", HOSTILE_ARRAYS, ids=[h[0] for h in HOSTILE_ARRAYS])
def test_python_api_hostile_arrays(what, array, match, tiny_net):
    for model in ("bicubic", tiny_net):
        with pytest.raises(imio.ImageError, match=match):
            sr.upscale(array, model)


@pytest.mark.parametrize("array,dtype", [
    (np.array([[True, False], [False, True]]), np.uint8),
    (np.arange(16, dtype=np.int64).reshape(4, 4) - 8, np.float32),
    (np.full((4, 4), 70000, np.uint32), np.float32),
    (np.ones((4, 4), np.float16), np.float32),
    ([[1, 2], [3, 4]], np.uint16),
    (np.full((6, 6, 16), 3, np.uint8), np.uint8),
])
def test_python_api_odd_but_valid_arrays(array, dtype):
    out = sr.upscale(array, "bicubic")
    a = np.asarray(array)
    assert out.dtype == dtype and out.shape == (a.shape[0] * 4, a.shape[1] * 4) + a.shape[2:]


def test_decoded_size_limit_at_the_default_limit(monkeypatch):
    monkeypatch.delenv("SR_MAX_PIXELS")
    assert imio.max_bytes() == 4096 * 4096 * 16


# ------------------------------------------------------------------------------ command line

def test_cli_one_line_per_bad_file_and_the_good_ones_work(corpus, tmp_path):
    env = dict(os.environ, SR_MAX_PIXELS=str(LIMIT))
    files = [str(corpus[c.name]) for c in CORPUS]
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "sr", "upscale", *files, "--model", "bicubic", "--out", str(out)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert all(line.startswith("error: ") for line in lines), r.stderr
    assert len(lines) == len(BAD)
    for c in BAD:
        mine = [line for line in lines if line.startswith(f"error: {corpus[c.name]}: ")]
        assert len(mine) == 1 and re.search(c.error, mine[0]), (c.name, mine)
    made = sorted(out.iterdir())
    assert len(made) == len(GOOD)
    for c in GOOD:
        stem = Path(c.name).stem
        f = next(p for p in made if p.name.startswith(f"{stem}_x4_bicubic."))
        a = tifffile.imread(f) if f.suffix == ".tif" else np.asarray(Image.open(f))
        if f.suffix == ".tif" and len(c.shape) == 3 and a.shape[0] == c.shape[2]:
            a = np.moveaxis(a, 0, -1)  # a (C,H,W) stack comes back in its own layout
        assert a.shape == (c.shape[0] * 4, c.shape[1] * 4) + c.shape[2:], c.name


# ------------------------------------------------------------------------------ the app

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

_APP: dict = {}
APP_MAX_FILE = 1024 * 1024  # SR_APP_MAX_FILE_SIZE=1mb for this server (Gradio: 1 MiB)


def _stop_app() -> None:
    proc = _APP.get("proc")
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if _APP.get("root") is not None:
        shutil.rmtree(_APP.pop("root"), ignore_errors=True)
    _APP.clear()


def hostile_app(timeout: float = 120) -> dict:
    """`python app.py` on loopback with the tiny zoo, a 512x512 pixel limit and a 1 MB upload
    limit; started once per test process (tests/test_security.py uses it too)."""
    if "url" in _APP:
        return _APP
    import atexit

    root = Path(tempfile.mkdtemp(prefix="sr_hostile_app_"))
    reg, weights = make_tiny_zoo(root)
    port = free_port()
    env = dict(os.environ, SR_REGISTRY=str(reg), SR_WEIGHTS_DIR=str(weights), SR_APP_TMP=str(root / "tmp"),
               SR_MAX_PIXELS=str(LIMIT), SR_APP_MAX_FILE_SIZE="1mb", SR_APP_WARMUP="0",
               SR_MOS_POOL=str(root / "no_pool"), SR_MOS_VOTES=str(root / "votes.csv"),
               GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1",
               GRADIO_TEMP_DIR=str(root / "gradio"), GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    for k in ("SPACE_ID", "SR_MOS_HF_REPO"):
        env.pop(k, None)
    log = open(root / "app.log", "w")
    # exactly `python app.py`, except that loopback counts as a public address for Gradio's
    # SSRF guard, so that a URL the app would fetch from the internet reaches a local test
    # server instead (tests/test_security.py counts the requests it gets)
    boot = ("import runpy, safehttpx; safehttpx.is_public_ip = lambda ip: True; "
            "runpy.run_path('app.py', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", boot], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    _APP.update(proc=proc, root=root, log=root / "app.log", tmp=root / "tmp", gradio=root / "gradio")
    atexit.register(_stop_app)
    wait_until_serving(proc, root / "app.log", timeout, _stop_app)
    _APP["url"] = f"http://127.0.0.1:{port}"
    return _APP


@pytest.fixture(scope="session")
def app():
    yield hostile_app()
    _stop_app()


@pytest.fixture(scope="module")
def client(app):
    return Client(app["url"], verbose=False, download_files=False)  # fetch only what is checked


def _fetch(app, filedata: dict, dest: Path) -> Path:
    import httpx

    r = httpx.get(filedata["url"], timeout=30)
    r.raise_for_status()
    dest.write_bytes(r.content)
    return dest


def _compare(client, path, mode="hr", models=("bicubic", "srgan-improved")):
    return client.predict(handle_file(str(path)), mode, list(models), 32, 192, api_name="/compare")


def _user_error(call) -> str:
    with pytest.raises(Exception) as e:
        call()
    msg = str(e.value)
    assert "Unexpected error" not in msg and msg.strip() not in ("", "Error", "None"), msg
    return msg


def _run_dirs(app, client=None) -> list[Path]:
    """The app's run folders (of one client's session, or all)."""
    tmp = app["tmp"]
    sessions = [tmp / inputs.safe_stem(client.session_hash)] if client else (list(tmp.iterdir()) if tmp.is_dir() else [])
    return [d for s in sessions if s.is_dir() for d in s.iterdir()]


def _our_tracebacks(log: str) -> list[str]:
    """Tracebacks through this project's code (Gradio prints its own refusals, e.g. file types)."""
    blocks = log.split("Traceback (most recent call last):")[1:]
    return [b for b in blocks if re.search(r'File "[^"]*(/sr/|app\.py)', b)]


def _bad_file_calls(app, corpus, cases) -> Client:
    c = Client(app["url"], verbose=False, download_files=False)
    for case in cases:
        path = corpus[case.name]
        expect = case.app_error or case.error
        msg = _user_error(lambda: c.predict(handle_file(str(path)), api_name="/load_image"))
        assert re.search(expect, msg), (case.name, msg)
        msg = _user_error(lambda: _compare(c, path))
        assert re.search(expect, msg), (case.name, msg)
        assert str(app["root"]) not in msg  # no server paths in messages
    return c


def test_app_bad_files_on_load_image_and_compare(app, corpus, tmp_path):
    """Every bad file on /load_image and /compare (3 clients at once): a message for the user,
    never an unexpected error, no run folder left behind, and the app keeps serving."""
    from concurrent.futures import ThreadPoolExecutor

    n = 3
    with ThreadPoolExecutor(n) as ex:
        clients = list(ex.map(lambda k: _bad_file_calls(app, corpus, BAD[k::n]), range(n)))
    for c in clients:
        assert _run_dirs(app, c) == []  # failed calls leave nothing
    assert app["proc"].poll() is None
    p = tmp_path / "cells.png"
    Image.fromarray(blobs(64, 64)).save(p)
    c = clients[0]
    assert [r[5] for r in _compare(c, p)[2]["data"]] == ["ok", "ok"]  # the next request works
    assert _our_tracebacks(app["log"].read_text()) == [] and "sr.app ERROR" not in app["log"].read_text()


def test_app_good_files_on_load_image_and_compare(app, client, corpus, tmp_path):
    """Every odd-but-valid file: a preview, and correct 4x results from /compare (hr, or lr where
    the image is too small to downscale); only this session's last preview and run remain."""
    for c in GOOD:
        path = corpus[c.name]
        preview, text = client.predict(handle_file(str(path)), api_name="/load_image")[:2]
        w, h = c.shape[1], c.shape[0]
        assert text.startswith(f"{w}x{h} px"), (c.name, text)
        assert preview["orig_name"].endswith(".png")
        if c.hr_error:
            assert re.search(c.hr_error, _user_error(lambda: _compare(client, path)))
            out = _compare(client, path, "lr")
            oh, ow = h * 4, w * 4
        else:
            out = _compare(client, path)
            oh, ow = h - h % 4, w - w % 4
        rows = out[2]["data"]
        assert [r[5] for r in rows] == ["ok", "ok"], (c.name, rows)
        names = [f["orig_name"] for f in out[13]]
        assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names), names
        res = next(f for f in out[13] if "_srgan-improved_x4." in f["orig_name"])
        res = _fetch(app, res, tmp_path / res["orig_name"])
        a = tifffile.imread(res) if res.suffix == ".tif" else np.asarray(Image.open(res))
        assert a.shape[:2] == (oh, ow) or a.shape[1:] == (oh, ow), (c.name, a.shape)
    assert app["proc"].poll() is None
    assert 1 <= len(_run_dirs(app, client)) <= 2, _run_dirs(app, client)
    assert _our_tracebacks(app["log"].read_text()) == []


def test_app_upscale_endpoint_refuses_bad_files(app, client, corpus, tmp_path):
    for name in ("random_bytes.png", "bomb_100000x100000.png", "float32_nan.tif", "stack_5d_TZCYX.tif"):
        c = next(c for c in CORPUS if c.name == name)
        msg = _user_error(lambda: client.predict(handle_file(str(corpus[name])), "srgan-improved", 192,
                                                 api_name="/upscale"))
        assert re.search(c.error, msg), (name, msg)
    view, f, msg = client.predict(handle_file(str(corpus["uint16.tif"])), "srgan-improved", 192,
                                  api_name="/upscale")
    assert tifffile.imread(_fetch(app, f, tmp_path / "res.tif")).shape == (160, 192) and "Improved SRGAN" in msg


def test_app_other_endpoints_refuse_hostile_arguments(app, client):
    c = Client(app["url"], verbose=False, download_files=False)  # a fresh session: no run yet
    assert "Run a comparison first" in _user_error(lambda: c.predict("bicubic", "reference", api_name="/slider"))
    for bad in ("../../etc/passwd", "=1+1", "x" * 10000):
        assert "not in the list of choices" in str(pytest.raises(Exception, c.predict, bad, api_name="/model_card").value)
    with pytest.raises(Exception, match="not in the list of choices"):
        c.predict(handle_file(str(REPO / "examples" / "usaf_target.png")), "hr", ["../../app"], 32, 192,
                  api_name="/compare")
    for x, y, s in ((-5, 10**12, 64), (float("nan"), 0, 8)):
        try:  # no run yet: the region is kept (or refused); never a crash
            c.predict(x, y, s, api_name="/roi")
        except Exception as exc:  # noqa: BLE001
            assert "Unexpected error" not in str(exc)
    assert app["proc"].poll() is None


def test_app_upload_size_limit(app, client, tmp_path):
    import httpx

    cfg = httpx.get(app["url"] + "/config", timeout=30).json()
    assert cfg.get("max_file_size") == APP_MAX_FILE
    big = tmp_path / "big.png"
    big.write_bytes(_png(np.zeros((8, 8), np.uint8)) + os.urandom(APP_MAX_FILE + 1000))
    with pytest.raises(Exception) as e:
        client.predict(handle_file(str(big)), api_name="/load_image")
    assert "413" in str(e.value) or "size" in str(e.value).lower(), str(e.value)
    assert not any(p.name == "big.png" for p in app["gradio"].rglob("big.png"))  # not kept
    ok = tmp_path / "ok.png"
    Image.fromarray(blobs(16, 16)).save(ok)
    assert client.predict(handle_file(str(ok)), api_name="/load_image")[1].startswith("16x16 px")
