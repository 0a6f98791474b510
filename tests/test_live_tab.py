"""The Live tab (sr.app.live_tab): webcam frame handler, video handler, and the /upscale_video
endpoint called with gradio_client on a loopback server."""
from __future__ import annotations


import numpy as np
import pytest

pytest.importorskip("imageio_ffmpeg")
gr = pytest.importorskip("gradio")

from sr import video  # noqa: E402
from sr.app import live_tab as live_ui  # noqa: E402
from test_video import FPS, H, W, _clip  # noqa: E402
from conftest import free_port  # noqa: E402


def test_live_model_choice_and_cost(tiny_zoo):
    # tiny zoo: srgan-lite is not trained; the cheapest trained generator is chosen
    mid, note = live_ui.live_model()
    assert mid in ("srgan", "srgan-improved", "msrgan") and "srgan-lite" in note
    lite = dict(width=32, blocks=6, up_width=16, head_kernel=5, tail_kernel=3)
    big = dict(width=64, blocks=16, up_width=64, head_kernel=9, tail_kernel=9)
    assert live_ui.relative_cost(lite) * 8 < live_ui.relative_cost(big)


def test_live_frame_moving_average(tiny_zoo):
    frame = (np.random.default_rng(0).random((240, 320, 3)) * 255).astype(np.uint8)
    state = None
    for _ in range(3):
        lr, out, status, state = live_ui.live_frame(frame, None, state, side=64)
    assert lr.shape == out.shape == (48 * 4, 64 * 4, 3) and out.dtype == np.uint8
    assert len(state["proc"]) == 3 and "fps" in status and state["model"] in status
    _, out, status, state = live_ui.live_frame(frame, "bicubic", state, side=64)
    assert state["model"] == "bicubic" and len(state["proc"]) == 1 and out.shape == (192, 256, 3)
    assert live_ui.live_frame(None, None, state)[2].startswith("Waiting")
    lr, out, status, state = live_ui.live_frame(frame, "srgan-improved", state, side=64, luma=True)
    assert out.shape == (192, 256, 3) and "colour bicubic" in status and state["luma"]
    lr = live_ui.shrink(frame, 64)
    rgb = live_ui.live_frame(frame, "bicubic", None, side=64)[1].astype(int)
    assert np.abs(live_ui.upscale_luma(lr, "bicubic").astype(int) - rgb).mean() < 3  # same up to YCbCr rounding


def test_video_endpoint_over_http(tiny_zoo, tmp_path, monkeypatch):
    from gradio_client import Client, handle_file

    monkeypatch.setenv("SR_APP_TMP", str(tmp_path / "app"))
    src = _clip(tmp_path / "in.mp4", n=6)
    with gr.Blocks() as demo:
        live_ui.live_tab()
    demo.queue()
    deps = {d.get("api_name"): d for d in demo.config["dependencies"]}
    live = deps["live_frame"]
    assert live["stream_every"] == 0.1 and live["time_limit"] == live_ui.live_time_limit()
    assert live["targets"][0][1] == "stream" and "upscale_video" in deps
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                ssr_mode=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        out, msg = client.predict(handle_file(str(src)), "srgan-improved", api_name="/upscale_video")
        path = out["video"] if isinstance(out, dict) else out
        info = video.probe(path)
        assert (info["width"], info["height"], info["frames"]) == (4 * W, 4 * H, 6)
        assert info["fps"] == pytest.approx(FPS) and "6 frames" in msg
        with pytest.raises(Exception, match="upload a video"):
            client.predict(None, "bicubic", api_name="/upscale_video")
    finally:
        demo.close()
    # the per-session result folder is removed by the state's delete callback / next run
    d = next((tmp_path / "app" / "live").iterdir())
    live_ui.cleanup({"dir": str(d)})
    assert not d.exists()
