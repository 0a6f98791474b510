"""The demo's "Live" tab: webcam super-resolution frame by frame, and video files.

``live_tab()`` builds a ``gr.Tab("Live")`` inside the current ``gr.Blocks`` context:

* **Webcam**: a streaming ``gr.Image`` source; each frame is downscaled to a small
  low-resolution size (``SR_LIVE_SIDE``, default 128 px on the long side) and super-resolved
  4x by the live model (``srgan-lite`` when trained, else the cheapest trained generator,
  else bicubic; the status line names it), with the achieved frame rate (a per-session moving
  average kept in ``gr.State``). Endpoint ``/live_frame``.
* **Video file**: mp4 (anything ffmpeg reads) in, 4x H.264 mp4 out with the same frame count
  and fps (:func:`sr.video.upscale_video`), with a progress bar. Endpoint ``/upscale_video``.

Handlers are plain functions (:func:`live_frame`, :func:`video_file`) so they can be tested
without a browser.
"""
from __future__ import annotations

import logging
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from .errors import user_errors
from .gpu import on_gpu, video_seconds
from ..settings import settings
from .. import imio, zoo

log = logging.getLogger(__name__)

FPS_WINDOW = 20  # frames in the moving average
STATE_TTL_S = 6 * 3600


def live_side() -> int:
    """Long side (pixels) of the low-resolution frame the live model sees (``SR_LIVE_SIDE``)."""
    return max(16, settings().live_side)


def live_time_limit() -> int:
    """Seconds one webcam stream may run before it must be restarted (``SR_LIVE_TIME_LIMIT``)."""
    return max(5, settings().live_time_limit)


def live_concurrency() -> int:
    """Webcam streams served at once (``SR_LIVE_CONCURRENCY``, default 2)."""
    return max(1, settings().live_concurrency)


def inference_concurrency() -> int:
    """Same setting as the app's other inference events (``SR_APP_CONCURRENCY``, default 1)."""
    return max(1, settings().app_concurrency)


# ---------------------------------------------------------------------------- models

def relative_cost(arch: dict) -> float:
    """Multiply-accumulates per low-resolution pixel of a generator config (for ranking speed)."""
    w, b = arch["width"], arch["blocks"]
    up = arch.get("up_width") or w
    stages = {2: 1, 4: 2, 8: 3}[arch.get("scale", 4)]
    cost = arch["head_kernel"] ** 2 * arch.get("in_channels", 1) * w + (2 * b + 1) * 9 * w * w
    c = w
    for i in range(stages):
        cost += 4 ** (i + 1) * 9 * c * up
        c = up
    cost += 4 ** stages * arch["tail_kernel"] ** 2 * c * arch.get("out_channels", 1)
    return float(cost)


def live_model() -> tuple[str, str]:
    """(model id, a note for the user): ``srgan-lite`` if trained, else the cheapest trained
    generator, else ``bicubic``."""
    gens = [e for e in zoo.super_resolvers(available_only=True) if e.kind == "generator"]
    ids = [e.id for e in gens]
    preferred = (zoo.with_role("live") or ["srgan-lite"])[0]
    if preferred in ids:
        return preferred, ""
    if gens:
        best = min(gens, key=lambda e: relative_cost(e.arch))
        return best.id, f"`{preferred}` is not trained yet: using the fastest trained model."
    return "bicubic", f"`{preferred}` is not trained yet and no learned model is: using bicubic."


def model_choices() -> list[tuple[str, str]]:
    return [(f"{e.title} ({e.id})", e.id) for e in zoo.super_resolvers(available_only=True)]


# ---------------------------------------------------------------------------- webcam

def frame_device() -> str | None:
    """Webcam frames: the CPU on ZeroGPU (a GPU lease per frame costs more than the frame),
    else the app's device (``SR_DEVICE``)."""
    from ..device import on_zerogpu

    return "cpu" if on_zerogpu() else None


def shrink(frame: np.ndarray, side: int) -> np.ndarray:
    """Downscale ``frame`` so that its long side is at most ``side`` (area-like, fast)."""
    from PIL import Image

    h, w = frame.shape[:2]
    f = side / max(h, w)
    if f >= 1:
        return np.ascontiguousarray(frame)
    size = (max(2, round(w * f)), max(2, round(h * f)))
    im = Image.fromarray(frame)
    return np.asarray(im.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))


def _as_rgb8(frame) -> np.ndarray:
    a = np.asarray(frame)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise imio.ImageError(f"webcam frame has shape {a.shape}; expected an RGB image")
    a = a[:, :, :3]
    if a.dtype != np.uint8:
        a = imio.to_uint8_display(a)
    return np.ascontiguousarray(a)


def upscale_luma(lr: np.ndarray, model_id: str) -> np.ndarray:
    """Super-resolve only the brightness (Y of YCbCr) with the model; colour (Cb, Cr) bicubic.

    About 3x faster than running the model on R, G and B; for natural (webcam) scenes, where
    colour carries little detail. Microscopy composites keep per-channel processing.
    """
    from PIL import Image

    from .. import api

    h, w = lr.shape[:2]
    y, cb, cr = Image.fromarray(lr).convert("YCbCr").split()
    y4 = Image.fromarray(api.upscale(np.asarray(y), model_id, tile=None, device=frame_device()))
    size = (4 * w, 4 * h)
    out = Image.merge("YCbCr", (y4, cb.resize(size, Image.Resampling.BICUBIC),
                                cr.resize(size, Image.Resampling.BICUBIC)))
    return np.asarray(out.convert("RGB"))


def live_frame(frame, model_id: str | None, state: dict | None, side: int | None = None,
               luma: bool = False):
    """One webcam frame -> (low-resolution view (nearest 4x), super-resolved frame, status, state).

    ``luma``: super-resolve brightness only (:func:`upscale_luma`), else R, G and B.
    ``state`` keeps, per session, the model and the last frames' arrival and processing
    times; the status line shows their moving averages.
    """
    from .. import api

    if frame is None:
        return None, None, "Waiting for the webcam...", state
    arrival = time.perf_counter()
    note = ""
    if not model_id:
        model_id, note = live_model()
    entry = zoo.get_entry(model_id)
    if not entry.available or not entry.upscales:
        model_id, note = live_model()
        entry = zoo.get_entry(model_id)
    st = dict(state or {})
    side = int(side or live_side())
    if (st.get("model"), st.get("side"), st.get("luma")) != (model_id, side, bool(luma)):
        st = {"model": model_id, "side": side, "luma": bool(luma), "arrivals": [], "proc": []}
    if st["arrivals"] and arrival - st["arrivals"][-1] > 2.0:  # the stream was paused: start over
        st["arrivals"], st["proc"] = [], []
    lr = shrink(_as_rgb8(frame), side)
    t0 = time.perf_counter()
    out = upscale_luma(lr, model_id) if luma else api.upscale(lr, model_id, tile=None, device=frame_device())
    dt = time.perf_counter() - t0
    st["arrivals"] = (st["arrivals"] + [arrival])[-FPS_WINDOW:]
    st["proc"] = (st["proc"] + [dt])[-FPS_WINDOW:]
    model_fps = len(st["proc"]) / sum(st["proc"])
    arr = st["arrivals"]
    achieved = (len(arr) - 1) / (arr[-1] - arr[0]) if len(arr) > 1 and arr[-1] > arr[0] else None
    h, w = lr.shape[:2]
    status = (f"**{entry.title}** (`{model_id}`): {w}x{h} -> {4 * w}x{4 * h}, "
              f"model {1e3 * sum(st['proc']) / len(st['proc']):.0f} ms/frame ({model_fps:.1f} fps)"
              + (f", achieved {achieved:.1f} fps end to end" if achieved else "")
              + ("; brightness by the model, colour bicubic" if luma else "")
              + f" (average of the last {len(st['proc'])} frames)." + (f" {note}" if note else ""))
    view = np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1)
    return view, out, status, st


# ---------------------------------------------------------------------------- video file

def _tmp_root() -> Path:
    return settings().app_tmp_path / "live"


def cleanup(state: dict | None) -> None:
    """Delete a previous video result (the ``gr.State`` delete callback)."""
    if isinstance(state, dict) and state.get("dir"):
        d = Path(state["dir"])
        if d.is_dir() and d.resolve().parent == _tmp_root().resolve():
            shutil.rmtree(d, ignore_errors=True)


def video_file(path: str | None, model_id: str | None, old_state: dict | None = None, progress=None):
    """Super-resolve an uploaded video -> (mp4 path, summary Markdown, state).

    ``progress(fraction, desc)`` is called per frame.
    """
    from .. import video

    if not path:
        raise imio.ImageError("upload a video first (mp4, mov, avi, webm, ...)")
    model_id = model_id or live_model()[0]
    entry = zoo.get_entry(model_id)
    cleanup(old_state)
    d = _tmp_root() / uuid.uuid4().hex[:12]
    d.mkdir(parents=True, exist_ok=False)
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in Path(path).stem)[:60] or "video"
    dst = d / f"{stem}_{model_id}_x4.mp4"

    def cb(done, total):
        if progress is not None:
            progress(done / max(total, 1), desc=f"{entry.title}: frame {done}/{total}")

    try:
        r = video.upscale_video(path, dst, model_id, progress=cb)
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    w, h = r["input_size"]
    summary = (f"**{entry.title}** (`{model_id}`): {r['frames']} frames at {r['fps']:g} fps, "
               f"{w}x{h} -> {4 * w}x{4 * h}, in {r['seconds']:.1f} s "
               f"({r['frames_per_second']} frames/s). H.264 mp4; audio is not copied.")
    return str(dst), summary, {"dir": str(d)}


# ---------------------------------------------------------------------------- the tab

INTRO = """Real-time super-resolution. **Webcam**: press record; every frame is shrunk to a small
low-resolution image ({side} px on its long side, left) and enlarged 4x by the live model
(right). **Video**: upload a short clip (mp4, mov, webm...); every frame is enlarged 4x and
written to an H.264 mp4 with the same frame count and frame rate (at most {frames} frames of at
most {pixels:,} pixels). The models were trained on fluorescence microscopy, so natural scenes
show what they do to textures they never saw."""


def live_tab():
    """Build the "Live" tab in the current ``gr.Blocks`` context; returns the ``gr.Tab``."""
    import gradio as gr

    from .. import video

    model, note = live_model()
    choices = model_choices()
    with gr.Tab("Live", id="live") as tab:
        gr.Markdown(INTRO.format(side=live_side(), frames=video.max_frames(), pixels=video.max_frame_pixels()))
        with gr.Row():
            live_model_dd = gr.Dropdown(choices, value=model, label="Model (webcam and video)",
                                        info=note or "srgan-lite is built for speed", elem_id="live-model")
            side = gr.Slider(32, 256, value=live_side(), step=16, label="Webcam: low-resolution size (px)")
            luma = gr.Checkbox(True, label="Webcam: model on brightness only, colour bicubic (3x faster)")
        with gr.Row():
            cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam",
                           elem_id="live-webcam")
            lr_view = gr.Image(label="What the model sees (nearest 4x)", format="jpeg", interactive=False,
                               elem_classes=["pixelated"])
            sr_view = gr.Image(label="Super-resolved 4x", format="jpeg", interactive=False)
        live_status = gr.Markdown(elem_id="live-status")
        live_state = gr.State(None)
        gr.Markdown("### Video file")
        with gr.Row():
            video_in = gr.Video(sources=["upload"], label="Video (mp4, mov, webm, ...)", elem_id="live-video-in")
            video_out = gr.Video(label="Super-resolved 4x (mp4)", interactive=False, elem_id="live-video-out")
        with gr.Row():
            video_btn = gr.Button("Upscale video", variant="primary", elem_id="live-video-btn")
        video_msg = gr.Markdown()
        video_state = gr.State(None, time_to_live=STATE_TTL_S, delete_callback=cleanup)

        @user_errors
        def on_frame(frame, model_id, size, luma_only, state):
            """Super-resolve one webcam frame (numpy RGB); returns the LR view, the 4x frame, a status."""
            return live_frame(frame, model_id, state, side=size, luma=luma_only)

        cam.stream(on_frame, [cam, live_model_dd, side, luma, live_state], [lr_view, sr_view, live_status, live_state],
                   api_name="live_frame", stream_every=0.1, time_limit=live_time_limit(),
                   concurrency_limit=live_concurrency(), concurrency_id="live", show_progress="hidden")

        @on_gpu(video_seconds)  # ZeroGPU only (see sr.app.gpu)
        @user_errors
        def on_video(path, model_id, old, progress=gr.Progress()):
            """Super-resolve every frame of a video 4x; returns the mp4, a summary and the state."""
            return video_file(path, model_id, old, progress=lambda f, desc: progress(f, desc=desc))

        @user_errors
        def check_video(path):
            """Probe the video's size and length (fast, no decoding) before it waits for inference."""
            from .. import video

            if not path:
                raise imio.ImageError("upload a video first (mp4, mov, avi, webm, ...)")
            video.check_limits(video.probe(path))

        # the probe runs outside the inference slot; the (cached) result is reused by upscale_video
        video_btn.click(check_video, [video_in], None, api_name="check_video", api_visibility="undocumented",
                        concurrency_limit=4, show_progress="hidden").success(
            on_video, [video_in, live_model_dd, video_state], [video_out, video_msg, video_state],
            api_name="upscale_video", concurrency_limit=inference_concurrency(), concurrency_id="inference")

        def refresh():
            m, n = live_model()
            return gr.Dropdown(choices=model_choices(), value=m, info=n or "srgan-lite is built for speed")

        tab.select(refresh, None, live_model_dd, api_visibility="private", queue=False)
    return tab
