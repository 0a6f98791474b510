"""The demo's named API endpoints, called with gradio_client against `python app.py` on loopback.

One server (tiny random zoo, see conftest.make_tiny_zoo) is started per test session and shared
with tests/test_app_browser.py through :func:`app_server`.
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import REPO, blobs, free_port, make_tiny_zoo, wait_until_serving

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

_SERVER: dict = {}


def _stop() -> None:
    proc = _SERVER.get("proc")
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if _SERVER.get("root") is not None:  # tiny zoo, app and Gradio temp files, downloads
        shutil.rmtree(_SERVER.pop("root"), ignore_errors=True)


def app_server(timeout: float = 120) -> str:
    """URL of `python app.py` started once for this test process (tiny zoo, loopback)."""
    if "url" in _SERVER:
        return _SERVER["url"]
    root = Path(tempfile.mkdtemp(prefix="sr_app_test_"))
    reg, weights = make_tiny_zoo(root)
    port = free_port()
    env = dict(os.environ, SR_REGISTRY=str(reg), SR_WEIGHTS_DIR=str(weights), SR_APP_TMP=str(root / "tmp"),
               GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1", GRADIO_TEMP_DIR=str(root / "gradio"),
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               SR_MOS_POOL=str(root / "mos_pool"), SR_MOS_VOTES=str(root / "mos_votes.csv"),
               SR_MOS_ACCESS_FILE=str(root / "mos_access.json"))  # never the repo's data/
    env.pop("SPACE_ID", None)
    log = open(root / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    _SERVER.update(proc=proc, root=root, log=root / "app.log")
    atexit.register(_stop)
    url = f"http://127.0.0.1:{port}"
    _SERVER["startup_s"] = wait_until_serving(proc, root / "app.log", timeout, _stop)
    _SERVER["url"] = url
    return url


@pytest.fixture(scope="session")
def app_url():
    yield app_server()
    _stop()


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False, download_files=str(_SERVER["root"] / "downloads"))


def _compare(client, path, mode="hr", models=("bicubic", "srgan", "srgan-improved"), roi_size=32):
    return client.predict(handle_file(str(path)), mode, list(models), roi_size, 192, api_name="/compare")


def test_endpoints_are_named(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/load_image", "/compare", "/roi", "/slider", "/upscale", "/model_card", "/models"} <= names
    assert "/roi_click" not in names  # the click is /roi with coordinates


def test_compare_hr_scores_against_the_original(client, tmp_path):
    # (the browser test runs the 512x512 HPA example; a small image keeps this one fast)
    p = tmp_path / "cells.png"
    hr = blobs(96, 80)
    Image.fromarray(hr).save(p)
    out = _compare(client, p)
    message, gallery, table, slider = out[:4]
    rows = {r[1]: r for r in table["data"]}
    assert set(rows) == {"bicubic", "srgan", "srgan-improved"}
    from sr import degrade, metrics

    bicubic = degrade.upscale_baseline(degrade.degrade(hr), "bicubic")
    assert rows["bicubic"][2] == pytest.approx(metrics.psnr(hr, bicubic), abs=0.01)
    assert all(r[5] == "ok" and 0 < r[3] <= 1 and r[4] >= 0 for r in rows.values())
    assert "Best PSNR" in message
    assert len(gallery) == 5 and all(g["image"].endswith(".png") for g in gallery)
    assert "SSIM" in gallery[1]["caption"]
    assert len(slider) == 2 and Image.open(slider[0]).size == Image.open(slider[1]).size == (80, 96)
    roi_gallery, fig, fig_file, downloads = out[10:14]
    assert len(roi_gallery) == 5 and Image.open(fig).format == "PNG"
    assert any(p.endswith("_srgan-improved_x4.png") for p in downloads)
    # the same session then zooms another region and picks another slider pair
    r = client.predict(20, 30, 24, api_name="/roi")
    assert tuple(r[4:7]) == (20, 30, 24) and len(r[1]) == 5
    a, b = client.predict("input", "reference", api_name="/slider")
    assert Path(a).name == "view_input.png" and Path(b).name == "view_reference.png"


def test_compare_lr_multichannel_16bit(client, tmp_path):
    a = blobs(24, 28, 3, np.uint16)
    p = tmp_path / "stack16.tif"
    tifffile.imwrite(p, np.moveaxis(a, -1, 0), photometric="minisblack")  # a (C,H,W) stack
    out = _compare(client, p, "lr", ("bicubic", "srgan-improved", "srresnet"))
    rows = {r[1]: r for r in out[2]["data"]}
    assert rows["bicubic"][2] is None and rows["bicubic"][3] is None and rows["bicubic"][5] == "ok"
    assert rows["srresnet"][5] == "not trained yet"
    assert "No PSNR/SSIM in low-resolution mode" in out[0]
    tifs = [f for f in out[13] if f.endswith("_x4.tif")]
    assert len(tifs) == 2
    for f in tifs:
        res = tifffile.imread(f)
        assert res.dtype == np.uint16 and res.shape == (3, 96, 112)


def test_bad_input_is_an_error_and_the_next_call_works(client, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    with pytest.raises(Exception, match="cannot read image"):
        _compare(client, bad)
    with pytest.raises(Exception, match="not in the list of choices"):
        _compare(client, bad, mode="medium")
    p = tmp_path / "lr.png"
    Image.fromarray(blobs(16, 16)).save(p)
    out = _compare(client, p, "lr", ("bicubic",))
    assert out[2]["data"][0][5] == "ok"


def test_upscale_load_image_and_zoo(client, tmp_path):
    p = tmp_path / "lr.png"
    Image.fromarray(blobs(16, 20)).save(p)
    view, f, msg = client.predict(handle_file(str(p)), "srgan-improved", 192, api_name="/upscale")
    assert Image.open(f).size == (80, 64) and "Improved SRGAN" in msg
    preview, info = client.predict(handle_file(str(p)), api_name="/load_image")[:2]
    assert Image.open(preview).size == (20 * 19, 16 * 19) and info.startswith("20x16 px, grey, uint8")
    assert "Training recipe" in client.predict("srgan", api_name="/model_card")
    zoo = client.predict(api_name="/models")[3]
    assert {r[0]: r[3] for r in zoo["data"]}["srresnet"] == "not trained yet"


def test_tiled_inference_reports_progress(client, tmp_path):
    p = tmp_path / "lr.png"
    Image.fromarray(blobs(192, 192)).save(p)  # 3x3 tiles of 64 low-resolution pixels
    job = client.submit(handle_file(str(p)), "lr", ["srgan", "srgan-improved"], 32, 64, api_name="/compare")
    seen = set()
    while not job.done():
        for pd in job.status().progress_data or []:
            seen.add(pd.desc or "")
        time.sleep(0.02)
    assert [r[5] for r in job.result()[2]["data"]] == ["ok", "ok"]
    assert any(": tile " in d and d.endswith("/9") for d in seen), seen
