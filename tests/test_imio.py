import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from sr import imio
from conftest import blobs


def _png_bytes(a, **kw):
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", **kw)
    return buf.getvalue()


def test_png_gray_rgb_rgba_palette(tmp_path):
    g = blobs(20, 30)
    a, info = imio.read_image(_png_bytes(g))
    assert a.dtype == np.uint8 and np.array_equal(a, g) and info.channel_axis == "none"
    rgb = blobs(20, 30, c=3)
    a, _ = imio.read_image(_png_bytes(rgb))
    assert a.shape == (20, 30, 3)
    rgba = np.concatenate([rgb, np.full((20, 30, 1), 7, np.uint8)], -1)
    a, info = imio.read_image(_png_bytes(rgba))
    assert a.shape == (20, 30, 3) and "alpha" in info.note
    pal = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE)
    buf = io.BytesIO(); pal.save(buf, format="PNG")
    a, info = imio.read_image(buf.getvalue())
    assert a.shape == (20, 30, 3) and "palette" in info.note


def test_png_16bit_roundtrip(tmp_path):
    g16 = blobs(20, 30, dtype=np.uint16)
    p = tmp_path / "x.png"
    imio.write_image(p, g16)
    a, _ = imio.read_image(p)
    assert a.dtype == np.uint16 and np.array_equal(a, g16)


def test_jpeg():
    buf = io.BytesIO()
    Image.fromarray(blobs(20, 30, c=3)).save(buf, format="JPEG")
    a, info = imio.read_image(buf.getvalue())
    assert a.shape == (20, 30, 3) and info.format == "jpeg"


@pytest.mark.parametrize("layout", ["chw", "hwc"])
def test_tiff_stacks_keep_layout(tmp_path, layout):
    stack = blobs(40, 36, c=4, dtype=np.uint16)  # H,W,C
    data = np.moveaxis(stack, -1, 0) if layout == "chw" else stack
    p = tmp_path / "s.tif"
    tifffile.imwrite(p, data, photometric="minisblack")
    a, info = imio.read_image(p)
    assert a.shape == (40, 36, 4) and np.array_equal(a, stack)
    assert info.channel_axis == ("first" if layout == "chw" else "last")
    out = tmp_path / "o.tif"
    imio.write_image(out, a, info)
    assert tifffile.imread(out).shape == data.shape


def test_normalize_roundtrip_16bit():
    g16 = blobs(20, 30, dtype=np.uint16)
    x, norm = imio.normalize(g16)
    assert x.dtype == np.float32 and x.shape == (1, 20, 30)
    assert 0.0 <= np.percentile(x, 50) <= 1.0
    back = imio.denormalize(x, norm, g16.ndim)
    assert back.dtype == np.uint16 and np.array_equal(back, g16)
    x8, n8 = imio.normalize(blobs(8, 8))
    assert x8.max() <= 1.0 and n8.hi[0] == 255


def test_size_limits(monkeypatch):
    monkeypatch.setenv("SR_MAX_PIXELS", "100")
    with pytest.raises(imio.ImageError, match="over the limit"):
        imio.read_image(_png_bytes(blobs(20, 30)))
    with pytest.raises(imio.ImageError, match="over the limit"):
        imio.check_array(np.zeros((11, 10), np.uint8))


def test_decompression_bomb_refused_before_decoding():
    # a PNG header declaring 100000x100000 with almost no data
    im = Image.new("L", (1, 1))
    raw = bytearray(_png_bytes(np.zeros((1, 1), np.uint8)))
    import struct, zlib
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    raw[8:8 + 25] = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    with pytest.raises(imio.ImageError):
        imio.read_image(bytes(raw))


@pytest.mark.parametrize("payload", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_garbage_is_a_clear_error(payload, tmp_path):
    p = tmp_path / "bad.png"
    p.write_bytes(payload)
    with pytest.raises(imio.ImageError):
        imio.read_image(p)


def test_float_nan_rejected():
    a = np.zeros((8, 8), np.float32)
    a[0, 0] = np.nan
    with pytest.raises(imio.ImageError, match="NaN"):
        imio.check_array(a)


def test_display_conversion():
    assert imio.to_uint8_display(blobs(8, 8, dtype=np.uint16)).dtype == np.uint8
    assert imio.to_uint8_display(blobs(8, 8, c=5)).shape == (8, 8, 3)
