"""The demo's logic (sr/app/) without Gradio: tiny zoo, small synthetic images."""
from __future__ import annotations

import csv
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import REPO, blobs

from sr import display
from sr.figure import FIG_CELL
from sr.app import comparison, errors, single, workspace
from sr.app import config as cfg
from sr.app import examples as examples_
from sr.app import models as zoo_ui
from sr.app import roi as roi_ui
from sr import api, degrade, imio, metrics


@pytest.fixture(autouse=True)
def app_tmp(tmp_path, monkeypatch):
    root = tmp_path / "app_tmp"
    monkeypatch.setenv("SR_APP_TMP", str(root))
    return root


def _png(path: Path, a: np.ndarray) -> str:
    Image.fromarray(a).save(path)
    return str(path)


@pytest.fixture
def hr_png(tmp_path):
    return _png(tmp_path / "cells.png", blobs(66, 70))  # not a multiple of 4: cropped to 64x68


# ---------------------------------------------------------------------------- settings

def test_server_settings_defaults_env_and_space():
    assert cfg.server_settings({}) == {"server_name": "127.0.0.1", "server_port": 7860}
    assert cfg.server_settings({"SPACE_ID": "org/demo"})["server_name"] == "0.0.0.0"
    s = cfg.server_settings({"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "9000", "SPACE_ID": "x"})
    assert s == {"server_name": "0.0.0.0", "server_port": 9000}
    with pytest.raises(errors.AppError):
        cfg.server_settings({"GRADIO_SERVER_PORT": "http"})


# ---------------------------------------------------------------------------- comparison

def test_compare_hr_scores_every_model_against_the_original(tiny_zoo, hr_png):
    calls = []
    st = comparison.run_comparison(hr_png, "hr", ["bicubic", "srgan", "srgan-improved"],
                          progress=lambda f, d: calls.append(f))
    assert st["out_hw"] == [64, 68] and st["lr_hw"] == [16, 17]
    assert [it["key"] for it in st["items"]] == ["input", "bicubic", "srgan", "srgan-improved", "reference"]
    rows = comparison.table_rows(st)
    assert [r[1] for r in rows] == ["bicubic", "srgan", "srgan-improved"]
    assert all(r[5] == "ok" and r[2] is not None and r[3] is not None and r[4] >= 0 for r in rows)
    # the numbers are the project's metrics of the project's degradation + model
    hr = degrade.crop_to_multiple(imio.read_image(hr_png)[0])
    bic = api.upscale(degrade.degrade(hr), "bicubic")
    assert rows[0][2] == round(metrics.psnr(hr, bic), 2)
    assert rows[0][9] == round(comparison.checkerboard(bic), 3) and all(r[9] >= 0 for r in rows)
    # lossless download = the model output, bit for bit
    f = next(p for p in st["downloads"] if p.endswith("_bicubic_x4.png"))
    assert np.array_equal(imio.read_image(f)[0], bic)
    assert "cropped from 70x66 to 68x64" in st["message"]
    assert calls and calls[-1] == 1.0 and calls == sorted(calls)
    # zip holds every lossless file and the metrics
    with zipfile.ZipFile(st["downloads"][0]) as z:
        names = set(z.namelist())
    assert {"cells_bicubic_x4.png", "cells_srgan_x4.png", "cells_lr_input.png", "metrics.csv"} <= names
    with open(next(p for p in st["downloads"] if p.endswith("metrics.csv"))) as fh:
        assert len(list(csv.DictReader(fh))) == 3
    # views are PNG files, all the size of the results (slider pairs match)
    for path, cap in comparison.gallery(st):
        assert path.endswith(".png") and Image.open(path).size == (68, 64) and cap


def test_compare_lr_has_no_metrics_and_says_why(tiny_zoo, tmp_path):
    p = _png(tmp_path / "small.png", blobs(20, 24, 3))
    seen = []
    st = comparison.run_comparison(p, "lr", ["bicubic", "srgan-improved"], tile=16,
                          progress=lambda f, d: seen.append(d))
    assert "Improved SRGAN (arXiv 2010.04634): tile 4/4" in seen  # tiled inference reports tiles
    assert st["out_hw"] == [80, 96]
    assert all(r[2] is None and r[3] is None for r in comparison.table_rows(st))
    assert all(r[9] is not None for r in comparison.table_rows(st))  # the checkerboard needs no reference
    assert cfg.NO_METRICS_WHY in st["message"]
    assert [it["key"] for it in st["items"]] == ["input", "bicubic", "srgan-improved"]


def test_16bit_channel_stack_downloads_are_16bit_tiff_in_the_same_layout(tiny_zoo, tmp_path):
    a = blobs(32, 36, 4, np.uint16)  # 4 channels: more than RGB
    p = tmp_path / "stack.tif"
    tifffile.imwrite(p, np.moveaxis(a, -1, 0), photometric="minisblack")  # (C,H,W) on disk
    st = comparison.run_comparison(str(p), "hr", ["bicubic", "srgan"])
    outs = [f for f in st["downloads"] if f.endswith("_x4.tif")]
    assert len(outs) == 2
    for f in outs:
        arr = tifffile.imread(f)
        assert arr.dtype == np.uint16 and arr.shape == (4, 32, 36)
    assert "use the reference's own range" in st["message"]
    assert "Per channel (PSNR / SSIM)" in st["message"] and "ch3:" in st["message"]  # per-channel metrics
    assert all(len(r.get("channels", [])) == 4 for r in st["rows"])
    assert np.load(st["items"][0]["npy"]).shape == (32, 36, 3)  # displayed as RGB


def test_untrained_and_unknown_models_are_reported_not_fatal(tiny_zoo, hr_png):
    st = comparison.run_comparison(hr_png, "hr", ["srresnet", "bicubic", "no-such-model", "bicubic"])
    status = {r[1]: r[5] for r in comparison.table_rows(st)}
    assert status["srresnet"] == "not trained yet"
    assert status["no-such-model"].startswith("unavailable: unknown model")
    assert status["bicubic"] == "ok" and len(status) == 3  # duplicates run once
    assert "not trained yet" in st["message"]


def test_only_untrained_models_still_returns_a_run(tiny_zoo, hr_png):
    st = comparison.run_comparison(hr_png, "hr", ["srresnet"])
    assert st["message"].startswith("**No model could run.**")
    assert [it["key"] for it in st["items"]] == ["input", "reference"]


def test_a_failing_model_does_not_stop_the_others(tiny_zoo, hr_png, monkeypatch):
    real = api.upscale

    def flaky(image, model, **kw):
        if model == "srgan":
            raise RuntimeError("boom")
        return real(image, model, **kw)

    monkeypatch.setattr(api, "upscale", flaky)
    st = comparison.run_comparison(hr_png, "hr", ["srgan", "bicubic"])
    status = {r[1]: r[5] for r in comparison.table_rows(st)}
    assert status == {"srgan": "failed: RuntimeError: boom", "bicubic": "ok"}


@pytest.mark.parametrize("mode,shape,env,match", [
    ("hr", (7, 40), None, "too small to downscale"),
    ("lr", (40, 40), "10000", "over this demo's limit"),
    ("xx", (40, 40), None, "Unknown mode"),
])
def test_user_errors(tiny_zoo, tmp_path, monkeypatch, mode, shape, env, match):
    if env:
        monkeypatch.setenv("SR_APP_MAX_OUTPUT_PIXELS", env)
    p = _png(tmp_path / "x.png", blobs(*shape))
    with pytest.raises(errors.AppError, match=match):
        comparison.run_comparison(p, mode, ["bicubic"])
    assert not any(workspace.tmp_root().rglob("*.png"))  # nothing left behind


def test_bad_files_and_missing_input(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(imio.ImageError) as e:
        comparison.run_comparison(str(bad), "hr", ["bicubic"])
    assert "bad.png" in str(e.value)
    with pytest.raises(errors.AppError, match="No image"):
        comparison.run_comparison(None, "hr", ["bicubic"])
    with pytest.raises(errors.AppError, match="at least one model"):
        comparison.run_comparison(str(bad), "hr", [])


# ---------------------------------------------------------------------------- display, ROI, figure

def test_stretch_is_shared_across_images():
    ref = blobs(16, 16, dtype=np.uint16)
    s = display.Stretch.of(ref)
    dark = (ref // 2).astype(np.uint16)
    assert display.Stretch.of(ref).apply(ref).mean() > s.apply(dark).mean()  # not re-stretched per image
    assert display.Stretch.of(blobs(8, 8)).apply(blobs(8, 8)).dtype == np.uint8


def test_roi_views_are_nearest_neighbour_crops(tiny_zoo, hr_png):
    st = comparison.run_comparison(hr_png, "hr", ["bicubic"])
    r = roi_ui.roi_views(st, 10, 20, 16)
    assert r["roi"] == (10, 20, 16)
    assert [Path(p).name for p, _ in r["gallery"]] == ["roi_input.png", "roi_bicubic.png", "roi_reference.png"]
    disp = np.load(st["items"][1]["npy"])
    zoom = np.asarray(Image.open(r["gallery"][1][0]))
    k = roi_ui._zoom_factor(16)
    assert zoom.shape[:2] == (16 * k, 16 * k)
    assert np.array_equal(zoom, np.repeat(np.repeat(disp[20:36, 10:26], k, 0), k, 1))
    fig = Image.open(r["figure"])
    assert fig.width == 3 * FIG_CELL + 4 * 10 and fig.mode == "RGB"
    assert Image.open(r["preview"]).size == (68 * 5, 64 * 5)  # small: enlarged to click on it
    assert st["preview_scale"] == pytest.approx(0.2)
    # out-of-range requests are clamped inside the image
    assert roi_ui.roi_views(st, 1000, -5, 999)["roi"] == (4, 0, 64)


def test_roi_from_click_and_clamp():
    st = {"items": [1], "preview_scale": 4.0, "out_hw": [64, 64]}  # lr mode: preview is the input
    assert roi_ui.roi_from_click(st, 8, 8, 16) == (26, 26, 16)
    assert roi_ui.roi_from_click(st, 0, 0, 16) == (0, 0, 16)
    assert roi_ui.roi_from_click(None, 10, 10, 8, "hr") == (6, 6, 8)
    assert roi_ui.roi_from_click(None, 39, 39, 16, "lr", preview_factor=8.0) == (12, 12, 16)
    assert roi_ui.clamp_roi(None, None, None, 100, 200) == (0, 0, 20)
    with pytest.raises(errors.AppError):
        roi_ui.clamp_roi("a", 0, 8, 10, 10)


def test_auto_roi_finds_the_detail():
    img = np.zeros((128, 128), np.uint8)
    img[80:112, 16:48] = (np.indices((32, 32)).sum(0) % 2) * 255  # a checkerboard, bottom left
    x, y = roi_ui.auto_roi(img, 32)
    assert abs(x - 16) <= 4 and abs(y - 80) <= 4


def test_slider_pair(tiny_zoo, hr_png):
    st = comparison.run_comparison(hr_png, "hr", ["bicubic", "srgan-improved"])
    assert comparison.default_slider_keys(st) == ("bicubic", "srgan-improved")
    a, b = comparison.slider_pair(st, "input", "reference")
    assert a.endswith("view_input.png") and b.endswith("view_reference.png")
    with pytest.raises(errors.AppError, match="No image"):
        comparison.slider_pair(st, "input", "msrgan")
    with pytest.raises(errors.AppError, match="Run a comparison first"):
        comparison.slider_pair(None, "input", "reference")


# ---------------------------------------------------------------------------- single model, preview

def test_upscale_file_and_preview(tiny_zoo, tmp_path):
    p = _png(tmp_path / "lr.png", blobs(12, 10))
    r = single.upscale_file(p, "srgan-improved")
    out = imio.read_image(r["file"])[0]
    assert out.shape == (48, 40) and r["file"].endswith("lr_srgan-improved_x4.png")
    with pytest.raises(errors.AppError, match="not trained yet"):
        single.upscale_file(p, "srresnet")
    pv = single.preview_input(p)
    assert pv["text"].startswith("10x12 px, grey, uint8")
    assert pv["factor"] == 32 and Image.open(pv["view"]).size == (10 * 32, 12 * 32)


# ---------------------------------------------------------------------------- temp files

def test_cleanup_and_sweep(tiny_zoo, hr_png):
    st = comparison.run_comparison(hr_png, "hr", ["bicubic"], session="abc")
    d = Path(st["run_dir"])
    assert d.is_dir() and d.parent.name == "abc"
    workspace.cleanup_state(st)
    assert not d.exists()
    workspace.cleanup_state({"run_dir": "/"})  # never outside the app's folder
    old = comparison.run_comparison(hr_png, "hr", ["bicubic"], session="old")
    past = time.time() - 7200
    os.utime(old["run_dir"], (past, past))
    assert workspace.sweep_old(3600) == 1 and not Path(old["run_dir"]).exists()


# ---------------------------------------------------------------------------- zoo and examples

def test_zoo_table_and_cards(tiny_zoo):
    rows = {r[0]: r for r in zoo_ui.zoo_rows()}
    assert rows["bicubic"][3] == "built in"
    assert rows["srgan-improved"][3] == "weights pinned" and "no batch norm" in rows["srgan-improved"][4]
    assert rows["srresnet"][3] == "not trained yet"
    assert "global-average-pooling" in rows["srgan-improved"][5]
    assert "Not trained yet" in zoo_ui.model_card_markdown("srresnet")
    card = zoo_ui.model_card_markdown("srgan")
    assert card.startswith("**Weights:**") and "## Training recipe" in card and not card.startswith("---")
    assert "always available" in zoo_ui.model_card_markdown("bicubic")
    labels = dict((v, k) for k, v in zoo_ui.model_choices())
    assert labels["srresnet"].endswith("(not trained yet)") and zoo_ui.default_models() == list(zoo_ui.default_model_ids())


def test_examples_are_small_readable_and_attributed():
    files = [p for p in cfg.EXAMPLES_DIR.iterdir() if p.suffix.lower() in imio.SUFFIXES]
    assert sum(p.stat().st_size for p in cfg.EXAMPLES_DIR.iterdir()) < 5 * 2**20
    assert {e.file for e in examples_.examples()} == {p.name for p in files}
    attribution = (cfg.EXAMPLES_DIR / "ATTRIBUTION.md").read_text()
    for p in files:
        assert f"`{p.name}`" in attribution or p.name in attribution, p.name
        a, _ = imio.read_image(p)
        assert a.shape[0] >= 100
    assert not any("train_sample" in e.file for e in examples_.EXAMPLES)
    assert (REPO / "app.py").is_file()


def test_warm_up_loads_available_default_models(tiny_zoo):
    assert zoo_ui.warm_up(("bicubic", "srgan", "srresnet", "nope")) == ["bicubic", "srgan"]


def test_batch_zip_paired_statistics(tiny_zoo, tmp_path, monkeypatch):
    """A zip of HR images: per-model means and paired differences to bicubic; bombs refused."""
    import io
    from PIL import Image
    from sr.app import batch

    monkeypatch.setenv("SR_APP_TMP", str(tmp_path / "runs"))
    zpath = tmp_path / "imgs.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for i in range(3):
            buf = io.BytesIO()
            Image.fromarray(blobs(48, 40, seed=i)).save(buf, format="PNG")
            z.writestr(f"../../evil/{i}.png", buf.getvalue())  # names are never used as paths
        z.writestr("notes.txt", "not an image")
    r = batch.run_batch(str(zpath), ["srgan-improved"])
    rows = {row[0]: row for row in r["rows"]}
    assert set(rows) == {"bicubic", "srgan-improved"} and rows["bicubic"][1] == 3
    assert rows["srgan-improved"][6] is not None and rows["srgan-improved"][8].count("/") == 2
    assert Path(r["csv"]).read_text().count("\n") == 1 + 2 * 3
    assert not (tmp_path / "evil").exists()
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.png", b"\0" * (70 * 2**20))
    with pytest.raises(errors.AppError, match="refused|expand"):
        batch.read_zip(str(bomb))
    with pytest.raises(errors.AppError):
        batch.read_zip(str(tmp_path / "imgs.zip").replace("imgs", "missing"))


def test_first_use_is_reported_apart_from_the_time_column(tiny_zoo, hr_png, monkeypatch):
    """Loading/converting a model is not in its time column; the run says what it cost."""
    real = api.fast_model

    def slow_first(mid, *a, **kw):
        if (mid, "slow") not in seen:
            seen.add((mid, "slow"))
            time.sleep(0.3)  # a conversion
        return real(mid, *a, **kw)

    seen = set()
    monkeypatch.setattr(api, "fast_model", slow_first)
    st = comparison.run_comparison(hr_png, "hr", ["bicubic", "srgan-improved"])
    row = next(r for r in st["rows"] if r["id"] == "srgan-improved")
    assert row["load_s"] >= 0.3 and row["time_s"] < row["load_s"]
    assert "First use" in st["message"] and "**srgan-improved**" in st["message"]
    again = comparison.run_comparison(hr_png, "hr", ["srgan-improved"])
    assert "First use" not in again["message"]
