"""Shared fixtures: a tiny zoo of randomly initialised models (never committed as weights)."""
from __future__ import annotations

import contextlib
from http.server import BaseHTTPRequestHandler
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

from sr.testing import TINY_ARCHS, make_tiny_zoo  # noqa: F401,E402


@pytest.fixture(autouse=True, scope="session")
def _model_cache(tmp_path_factory):
    """Converted/compiled models go to one folder per test session, never the user's cache."""
    old = os.environ.get("SR_CACHE_DIR")
    os.environ["SR_CACHE_DIR"] = str(tmp_path_factory.mktemp("sr-compiled"))
    yield
    if old is None:
        os.environ.pop("SR_CACHE_DIR", None)
    else:
        os.environ["SR_CACHE_DIR"] = old


@contextlib.contextmanager
def zoo_env(monkeypatch, reg, weights):
    """Use the registry ``reg`` and weights folder ``weights`` inside the block (caches cleared
    on entry and exit)."""
    from sr import api, blend, zoo

    def clear():
        zoo.reload_registry()
        zoo.clear_shared()
        api._fast.clear()
        blend._cache.clear()

    monkeypatch.setenv("SR_REGISTRY", str(reg))
    monkeypatch.setenv("SR_WEIGHTS_DIR", str(weights))
    clear()
    try:
        yield reg, weights
    finally:
        clear()


@pytest.fixture
def tiny_zoo(tmp_path, monkeypatch):
    with zoo_env(monkeypatch, *make_tiny_zoo(tmp_path)) as z:
        yield z


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def hpa_sample(name_glob: str = "*_blue.png") -> Path | None:
    folder = SHARED_DATA / "hpa" / "sanch7_kaggle2018_singlechannel" / "test_sample"
    files = sorted(folder.glob(name_glob)) if folder.is_dir() else []
    return files[0] if files else None


def blobs(h: int, w: int, c: int | None = None, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    """A fluorescence-like test image: smooth blobs on a dark background."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    chans = []
    for _ in range(c or 1):
        img = np.zeros((h, w), np.float64)
        for _ in range(12):
            cy, cx, s = r.uniform(0, h), r.uniform(0, w), r.uniform(2, max(3, min(h, w) / 6))
            img += r.uniform(0.3, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        img = img / max(img.max(), 1e-9)
        chans.append(img)
    a = np.stack(chans, -1) if c else chans[0]
    if dtype == np.uint8:
        return (a * 255).round().astype(np.uint8)
    if dtype == np.uint16:
        return (a * 4000 + 100).round().astype(np.uint16)
    return a.astype(dtype)


os.environ.setdefault("SR_HUB_PROBE_TIMEOUT", "2")
# Tests build many small models: the torch fast path needs no per-model conversion. The OpenVINO
# backend (the default where it is installed) is tested explicitly (tests/test_fastpath.py).
os.environ.setdefault("SR_BACKEND", "torch")


def free_port() -> int:
    """A free TCP port on the loopback interface (for servers the tests start)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(proc, log_path, timeout: float, stop) -> float:
    """Wait for a started ``app.py`` to log "Running on"; returns the seconds it took. If it
    exits or times out, ``stop()`` is called (on timeout) and RuntimeError says why."""
    import time

    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        if "Running on" in log_path.read_text():
            return time.time() - t0
        time.sleep(0.25)
    stop()
    raise RuntimeError(f"app.py did not start in {timeout} s:\n{log_path.read_text()[-3000:]}")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` need a GPU: skipped where ``torch.cuda.is_available()`` is False."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run scripts/gpu_check.sh on a GPU machine)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


class CountingPngHandler(BaseHTTPRequestHandler):
    """A loopback web server's handler that serves a valid PNG at any path and lists the requests
    in ``hits`` (tests that the app never fetches a URL a client gives it)."""

    hits: list = []

    def do_GET(self):  # noqa: N802
        import io

        from PIL import Image

        type(self).hits.append(self.path)
        buf = io.BytesIO()
        Image.fromarray(blobs(32, 32)).save(buf, format="PNG")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(buf.getvalue())))
        self.end_headers()
        self.wfile.write(buf.getvalue())

    do_HEAD = do_GET

    def log_message(self, *args):
        pass
