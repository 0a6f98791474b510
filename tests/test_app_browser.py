"""End to end in a real browser: Playwright drives Debian's chromium (headless) through the demo.

Open the page, click the HPA example, run Compare, check that the result images, the metrics
and the zoomed region appear, and save a full-page screenshot (path printed; also copied to
$SR_APP_SCREENSHOT if set). Skipped when /usr/bin/chromium or playwright is missing.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(f"{CHROMIUM} not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("gradio_client")

from test_app_api import app_server  # noqa: E402  (one shared `python app.py` per test session)

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser):
    url = app_server()
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(url, wait_until="domcontentloaded")
    yield pg
    pg.close()


def test_example_compare_metrics_zoom_and_screenshot(page, tmp_path):
    page.get_by_text("4x super-resolution for fluorescence microscopy").first.wait_for()
    page.get_by_text("HPA test image: protein stain (green)").first.click()
    page.locator("#preview img").first.wait_for()  # the example was loaded and previewed
    page.locator("#compare-btn").click()
    page.locator("#roi-gallery img").first.wait_for()  # the last output of the run

    results = page.locator("#results img")
    assert results.count() == 5  # LR input, bicubic, SRGAN, improved SRGAN, reference
    assert all((results.nth(i).get_attribute("src") or "").endswith(".png") for i in range(5))
    captions = page.locator("#results").inner_text()
    for name in ("Bicubic", "SRGAN (baseline)", "Improved SRGAN"):
        assert name in captions
    table = page.locator("#metrics").inner_text()
    assert "27.35" in table  # bicubic PSNR on this example (deterministic)
    assert "srgan-improved" in table and "PSNR (dB)" in table
    assert "Best PSNR" in page.locator("#status").inner_text()
    assert page.locator("#roi-gallery img").count() == 5
    assert page.locator("#slider img").count() >= 2

    for sel in ("#results", "#metrics", "#slider", "#roi-gallery", "#figure"):  # load lazy images
        page.locator(sel).scroll_into_view_if_needed()
    page.locator("#figure img").first.wait_for()
    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "app_compare.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    if os.environ.get("SR_APP_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["SR_APP_SCREENSHOT"])
    print(f"screenshot: {shot}")


def test_rater_page_on_a_phone(browser, tmp_path):
    """The rater's direct link (?rate=1) on a phone-sized viewport: start a blind session, rate
    two images, keep a screenshot as a test artefact; no method name reaches the page."""
    import time

    url = app_server()
    if True:  # one browser per module (sync Playwright cannot start twice in one thread)
        pg = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                              has_touch=True)
        pg.set_default_timeout(TIMEOUT_MS)
        pg.goto(url + "/?rate=1", wait_until="domcontentloaded")
        begin = pg.get_by_role("button", name="Begin rating")
        deadline = time.time() + 120  # the pool is built in the background at start
        while not begin.is_visible() and time.time() < deadline:
            pg.get_by_role("button", name="Start").click()
            try:
                begin.wait_for(state="visible", timeout=5000)
            except Exception:  # noqa: BLE001 - still being prepared
                pass
        begin.click()
        for k in (4, 2):
            pg.locator(".mos-img img").first.wait_for()
            pg.get_by_label(f"{k} - ", exact=False).first.check()
            time.sleep(1.2)  # SR_MOS_MIN_SECONDS: a vote needs at least a second of looking
            before = pg.locator("#mos-rate").inner_text()
            pg.get_by_role("button", name="Submit rating").click()
            pg.wait_for_function("b => document.querySelector('#mos-rate').innerText !== b", arg=before)
        text = pg.locator("#mos-rate").inner_text()
        for secret in ("bicubic", "srgan", "nearest", "reference", "msrgan", "mos_pool"):
            assert secret not in text.lower(), secret
        assert not pg.locator("#compare-btn").is_visible()  # the rating tab is open, the comparison hidden
        shot = tmp_path / "rater_phone.png"
        pg.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000
        if os.environ.get("SR_APP_SCREENSHOT"):
            shutil.copyfile(shot, Path(os.environ["SR_APP_SCREENSHOT"]).with_name("rater_phone.png"))
        print(f"screenshot: {shot}")
        pg.close()
