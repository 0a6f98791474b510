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


# ------------------------------------------------------------------------------ issue 15.3: long videos

def _long(path, frames: int, rate: int = 1000):
    import subprocess

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"color=c=gray:s=16x16:r={rate}", "-frames:v", str(frames), "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True, timeout=120)
    return path


def test_long_video_is_refused_fast_without_decoding(tmp_path, monkeypatch):
    """A small mp4 of 20,000 16x16 frames: refused in well under a second, no frame decoded."""
    import time

    p = _long(tmp_path / "long.mp4", 20000)
    monkeypatch.setattr(imageio_ffmpeg, "count_frames_and_secs",
                        lambda *a, **k: pytest.fail("frames counted by decoding"))
    t0 = time.perf_counter()
    with pytest.raises(imio.ImageError, match="over the limit of 900"):
        video.check_limits(video.probe_uncached(p))
    assert time.perf_counter() - t0 < 1.0


def test_header_lies_packets_are_counted_up_to_the_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("SR_VIDEO_MAX_FRAMES", "50")
    p = _long(tmp_path / "mid.mp4", 300, rate=25)
    calls = []
    real = video.count_frames
    monkeypatch.setattr(video, "count_frames", lambda path, stop: calls.append(stop) or real(path, stop))
    info = video.probe_uncached(p)  # header: 12 s x 25 fps = 300 frames > 50 + 10: refused from the header
    assert calls == [] and info["frames"] >= 290
    with pytest.raises(imio.ImageError, match="frames, over the limit of 50"):
        video.check_limits(info)
    p2 = _long(tmp_path / "near.mp4", 55, rate=25)  # 55 frames: within the header slack, counted to 51
    info = video.probe_uncached(p2)
    assert calls == [51] and info["frames"] == 51
    with pytest.raises(imio.ImageError, match="has more than 50 frames"):
        video.check_limits(info)
    assert video.count_frames(p2, 1000) == (55, pytest.approx(2.2, abs=0.1))


def test_probe_is_cached(clip, monkeypatch):
    video._PROBES.clear()
    a = video.probe(clip)
    monkeypatch.setattr(video, "probe_uncached", lambda p: pytest.fail("probed twice"))
    assert video.probe(clip) == a and a["frames"] == N
