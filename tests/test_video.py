"""Video super-resolution (sr.video): frame count, fps and 4x size preserved; limits."""
from __future__ import annotations

import numpy as np
import pytest

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

from sr import imio, video  # noqa: E402

W, H, N, FPS = 32, 24, 12, 8


def _clip(path, grey: bool = False, n: int = N, fps: float = FPS, size=(W, H)):
    w, h = size
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", macro_block_size=1,
                                         pix_fmt_out="yuv444p" if not grey else "yuv420p")
    writer.send(None)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        blob = 255 * np.exp(-((yy - h / 2) ** 2 + (xx - 4 - 2 * i) ** 2) / 18.0)
        f = np.stack([blob, blob if grey else blob[::-1], blob if grey else 0 * blob + 40 + 10 * i], -1)
        writer.send(np.ascontiguousarray(f.clip(0, 255).astype(np.uint8)))
    writer.close()
    return path


def _frames(path):
    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    return meta, [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in gen]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return _clip(tmp_path_factory.mktemp("video") / "clip.mp4")


def test_bicubic_video_preserves_frames_fps_and_is_4x(clip, tmp_path):
    calls = []
    out = tmp_path / "sub" / "out.mp4"
    info = video.upscale_video(clip, out, "bicubic", progress=lambda d, t: calls.append((d, t)))
    assert info["frames"] == N and info["output_size"] == [4 * W, 4 * H]
    got = video.probe(out)
    assert (got["width"], got["height"], got["frames"]) == (4 * W, 4 * H, N)
    assert got["fps"] == pytest.approx(FPS) and got["codec"] == "h264"
    assert calls[-1] == (N, N) and [d for d, _ in calls] == list(range(1, N + 1))
    # the content is the input upscaled (H.264 is lossy: compare downscaled means, loosely)
    _, src = _frames(clip)
    _, dst = _frames(out)
    small = dst[5].reshape(H, 4, W, 4, 3).mean(axis=(1, 3))
    assert np.abs(small - src[5].astype(float)).mean() < 12
    assert not list(out.parent.glob(".*part*"))  # no temporary file left behind


def test_learned_model_video_grey_and_colour(tiny_zoo, tmp_path, clip):
    grey = _clip(tmp_path / "grey.mp4", grey=True, n=5)
    for src in (clip, grey):
        out = tmp_path / f"{src.stem}_x4.mp4"
        info = video.upscale_video(src, out, "srgan-improved")
        got = video.probe(out)
        assert (got["width"], got["height"]) == (4 * W, 4 * H)
        assert got["frames"] == info["frames"] == video.probe(src)["frames"]
        assert got["fps"] == pytest.approx(FPS)
    _, frames = _frames(tmp_path / "grey_x4.mp4")
    f = frames[2].astype(int)
    assert np.abs(f[..., 0] - f[..., 1]).max() <= 3  # grey stays grey (one plane, replicated)


def test_limits_and_bad_input(clip, tmp_path, monkeypatch):
    monkeypatch.setenv("SR_VIDEO_MAX_FRAMES", "5")
    with pytest.raises(imio.ImageError, match="SR_VIDEO_MAX_FRAMES"):
        video.upscale_video(clip, tmp_path / "o.mp4", "bicubic")
    monkeypatch.delenv("SR_VIDEO_MAX_FRAMES")
    monkeypatch.setenv("SR_VIDEO_MAX_PIXELS", str(W * H - 1))
    with pytest.raises(imio.ImageError, match="SR_VIDEO_MAX_PIXELS"):
        video.upscale_video(clip, tmp_path / "o.mp4", "bicubic")
    monkeypatch.delenv("SR_VIDEO_MAX_PIXELS")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(imio.ImageError, match="cannot read video"):
        video.upscale_video(bad, tmp_path / "o.mp4", "bicubic")
    assert not (tmp_path / "o.mp4").exists()
