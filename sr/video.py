"""Video super-resolution: mp4 (or anything ffmpeg reads) in, 4x H.264 mp4 out.

Frames are decoded and encoded with the ffmpeg binary that the ``imageio-ffmpeg`` package
ships (no system ffmpeg needed). Every decoded frame is super-resolved and written once
(``-fps_mode passthrough``), at the source's frame rate, so frame count and fps are preserved;
the output is ``libx264``/``yuv420p`` (plays everywhere; 4x sizes are always even). Audio is
not copied.

Frames are RGB; one-channel models run each colour plane separately. Grey frames (R == G == B,
most microscopy recordings) are super-resolved once and replicated. Planes of several frames
are run as one batch.

Limits (checked before any frame is processed, :class:`sr.imio.ImageError` otherwise):
``SR_VIDEO_MAX_FRAMES`` (default 900) and ``SR_VIDEO_MAX_PIXELS`` (pixels of one input frame,
default 640x480).
"""
from __future__ import annotations

import os
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from . import imio, zoo

SCALE = 4
BATCH_PLANES = 15  # <= imio.MAX_CHANNELS
BATCH_PIXELS = 1 << 20  # LR pixels per batch (bounds the float32 output buffer to ~64 MB)


def max_frames() -> int:
    from .settings import settings

    return settings().video_max_frames


def max_frame_pixels() -> int:
    from .settings import settings

    return settings().video_max_pixels


def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a runtime requirement
        raise imio.ImageError("video needs the imageio-ffmpeg package (pip install imageio-ffmpeg)") from exc
    return imageio_ffmpeg


def probe_timeout_s() -> float:
    """Seconds a probe (header read and packet count) may take (``SR_VIDEO_PROBE_TIMEOUT_S``)."""
    from .settings import settings

    return settings().video_probe_timeout_s


def count_frames(path: str | os.PathLike, stop_after: int) -> tuple[int, float]:
    """Video packets of the first video stream, counted without decoding (``-c copy``) and
    stopped after ``stop_after``: (frames, seconds). Bounded in time by :func:`probe_timeout_s`."""
    import re
    import subprocess

    cmd = [_ffmpeg().get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0",
           "-c", "copy", "-frames:v", str(int(stop_after)), "-f", "null", "-"]
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=probe_timeout_s(), check=False)
    except subprocess.TimeoutExpired:
        raise imio.ImageError("video takes too long to read (damaged or unusual file)") from None
    err = r.stderr.decode("utf-8", "replace")
    frames = re.findall(r"frame=\s*(\d+)", err)
    times = re.findall(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)", err)
    if r.returncode != 0 or not frames:
        last = err.strip().splitlines()[-1][:300] if err.strip() else f"ffmpeg exit status {r.returncode}"
        raise imio.ImageError(f"cannot read video: {last}")
    secs = 0.0
    if times:
        h, m, sec = times[-1]
        secs = int(h) * 3600 + int(m) * 60 + float(sec)
    return int(frames[-1]), secs


_PROBES: dict = {}  # (path, size, mtime) -> probe result: a checked upload is not probed again


def probe(path: str | os.PathLike) -> dict:
    """Cached :func:`probe_uncached` (keyed by path, size and modification time)."""
    try:
        st = os.stat(path)
    except OSError:
        raise imio.ImageError(f"video file not found: {path}") from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _PROBES:
        info = probe_uncached(path)
        if len(_PROBES) >= 64:
            _PROBES.pop(next(iter(_PROBES)))
        _PROBES[key] = info
    return dict(_PROBES[key])


def probe_uncached(path: str | os.PathLike) -> dict:
    """Width, height, fps, frame count and duration of a video, without decoding its frames.

    The container's header gives size, fps and duration; a header announcing more than
    :func:`max_frames` frames is refused at once. Otherwise the packets are counted without
    decoding (stream copy), stopping at the limit plus one, so a long video is refused in well
    under a second whatever its header says."""
    ff = _ffmpeg()
    path = str(path)
    if not Path(path).is_file():
        raise imio.ImageError(f"video file not found: {path}")
    try:
        gen = ff.read_frames(path)
        meta = next(gen)
        gen.close()
    except Exception as exc:
        raise imio.ImageError(f"cannot read video: {type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}") from None
    w, h = (int(v) for v in meta["size"])
    fps = float(meta.get("fps") or 0.0)
    duration = float(meta.get("duration") or 0.0)
    info = {"width": w, "height": h, "fps": fps, "frames": 0, "duration_s": duration,
            "codec": meta.get("codec")}
    announced = int(fps * duration) if fps > 0 and duration > 0 else 0
    if announced > max_frames() + max(10, max_frames() // 10):  # the header alone is too long
        info["frames"] = announced
        return info
    frames, secs = count_frames(path, max_frames() + 1)
    info["frames"], info["duration_s"] = frames, secs or duration
    return info


def check_limits(info: dict) -> None:
    w, h, n = info["width"], info["height"], info["frames"]
    if w < 2 or h < 2:
        raise imio.ImageError(f"video frames are {w}x{h}; at least 2x2 pixels are needed")
    limit = max_frame_pixels()
    if w * h > limit:
        raise imio.ImageError(f"video frames are {w}x{h} = {w * h:,} pixels, over the limit of {limit:,} "
                              f"(downscale the video or set SR_VIDEO_MAX_PIXELS)")
    if n < 1:
        raise imio.ImageError("video has no frames")
    if n > max_frames():
        count = f"more than {max_frames():,}" if n == max_frames() + 1 else f"{n:,}"
        raise imio.ImageError(f"video has {count} frames, over the limit of {max_frames():,} "
                              f"(cut the video or set SR_VIDEO_MAX_FRAMES)")


def _fps_fraction(fps: float) -> Fraction:
    if not fps or fps <= 0:
        return Fraction(25)
    return Fraction(fps).limit_denominator(1001)


class _PlaneBatcher:
    """Collects frames' planes, super-resolves them in batches, hands back whole frames in order."""

    def __init__(self, model_id: str, h: int, w: int):
        from . import api

        self.upscale = api.upscale
        self.model_id = model_id
        self.h, self.w = h, w
        self.limit = max(1, min(BATCH_PLANES, BATCH_PIXELS // (h * w)))
        self.pending: list[tuple[np.ndarray, bool]] = []  # (planes (H,W,k), grey?)

    def planes(self) -> int:
        return sum(p.shape[2] for p, _ in self.pending)

    def add(self, frame: np.ndarray) -> list[np.ndarray]:
        grey = bool((frame[:, :, 0] == frame[:, :, 1]).all() and (frame[:, :, 0] == frame[:, :, 2]).all())
        planes = frame[:, :, :1] if grey else frame
        out = []
        if self.pending and self.planes() + planes.shape[2] > self.limit:
            out = self.flush()
        self.pending.append((planes, grey))
        return out

    def flush(self) -> list[np.ndarray]:
        if not self.pending:
            return []
        stack = np.concatenate([p for p, _ in self.pending], axis=2)
        sr = self.upscale(stack if stack.shape[2] > 1 else stack[:, :, 0], self.model_id)
        if sr.ndim == 2:
            sr = sr[:, :, None]
        frames, i = [], 0
        for planes, grey in self.pending:
            k = planes.shape[2]
            f = sr[:, :, i:i + k]
            i += k
            frames.append(np.ascontiguousarray(np.repeat(f, 3, axis=2) if grey else f))
        self.pending = []
        return frames


def upscale_video(
    src_path: str | os.PathLike,
    dst_path: str | os.PathLike,
    model_id: str,
    progress: Callable[[int, int], None] | None = None,
    quality: float = 8,
) -> dict:
    """Super-resolve every frame of ``src_path`` 4x with zoo model ``model_id``; write ``dst_path``.

    Returns a summary dict (frames, fps, sizes, seconds, achieved frames per second).
    ``progress(done, total)`` is called after every written frame. The output file appears
    only when complete.
    """
    entry = zoo.get_entry(model_id)
    if entry.kind not in ("baseline", "generator"):
        raise zoo.ZooError(f"model {model_id!r} is a {entry.kind}, not a super-resolution model")
    if not entry.available:
        raise zoo.ZooError(f"model {model_id!r} has no published weights yet (not trained)")
    info = probe(src_path)
    check_limits(info)
    ff = _ffmpeg()
    w, h, total = info["width"], info["height"], info["frames"]
    fps = _fps_fraction(info["fps"])
    dst = Path(dst_path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.part{os.getpid()}{dst.suffix or '.mp4'}")
    from . import api  # imports torch: before the clock starts

    if entry.kind == "generator":
        api.fast_model(model_id)  # load once (shared), not timed
    t0 = time.perf_counter()
    reader = ff.read_frames(str(src_path), pix_fmt="rgb24", output_params=["-fps_mode", "passthrough"])
    writer = ff.write_frames(str(tmp), (w * SCALE, h * SCALE), pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
                             fps=fps, quality=quality, codec="libx264", macro_block_size=1,
                             output_params=["-movflags", "+faststart"])
    done = 0
    ok = False
    try:
        next(reader)  # metadata
        writer.send(None)
        batcher = _PlaneBatcher(model_id, h, w)

        def emit(frames):
            nonlocal done
            for f in frames:
                writer.send(f)
                done += 1
                if progress is not None:
                    progress(done, max(total, done))

        seen = 0
        for raw in reader:
            seen += 1
            if seen > max_frames():
                raise imio.ImageError(f"video has more than {max_frames():,} frames "
                                      f"(cut the video or set SR_VIDEO_MAX_FRAMES)")
            frame = np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
            emit(batcher.add(frame))
        emit(batcher.flush())
        ok = True
    finally:
        reader.close()
        try:
            writer.close()
        except Exception:
            if ok:
                raise
        if ok:
            os.replace(tmp, dst)
        else:
            tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    if done == 0:
        dst.unlink(missing_ok=True)
        raise imio.ImageError("video has no decodable frames")
    return {"model": model_id, "frames": done, "fps": float(fps), "input_size": [w, h],
            "output_size": [w * SCALE, h * SCALE], "seconds": round(seconds, 3),
            "frames_per_second": round(done / seconds, 2) if seconds > 0 else None,
            "path": str(dst)}
