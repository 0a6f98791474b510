"""Disk caps on run folders and uploads (issue 15, item 4)."""
from __future__ import annotations

import asyncio
import os
import time

import pytest

from sr.app import disk_quota as Q


def _run(root, session, name, nbytes, age_s):
    d = root / session / name
    d.mkdir(parents=True)
    (d / "result.tif").write_bytes(b"x" * nbytes)
    t = time.time() - age_s
    os.utime(d, (t, t))
    return d


def test_runs_total_cap_evicts_oldest_first(tmp_path):
    st = Q.QuotaSettings(runs_total_bytes=1000, runs_session_bytes=10**9, min_age_s=5)
    old = _run(tmp_path, "alice", "r1", 400, 300)
    mid = _run(tmp_path, "bob", "r2", 400, 200)
    new = _run(tmp_path, "carol", "r3", 400, 100)
    removed = Q.make_room_for_run(tmp_path, "dave", st)
    assert removed == [old] and not old.exists() and mid.exists() and new.exists()


def test_runs_session_cap_evicts_that_sessions_runs(tmp_path):
    st = Q.QuotaSettings(runs_total_bytes=10**9, runs_session_bytes=500, min_age_s=5)
    a1 = _run(tmp_path, "alice", "r1", 300, 300)
    a2 = _run(tmp_path, "alice", "r2", 300, 100)
    b1 = _run(tmp_path, "bob", "r1", 300, 1000)
    Q.make_room_for_run(tmp_path, "alice", st)
    assert not a1.exists() and a2.exists() and b1.exists()


def test_young_runs_are_never_evicted_and_the_user_is_told(tmp_path):
    st = Q.QuotaSettings(runs_total_bytes=500, runs_session_bytes=10**9, min_age_s=60)
    a = _run(tmp_path, "alice", "r1", 400, 1)
    b = _run(tmp_path, "bob", "r1", 400, 1)
    with pytest.raises(Q.QuotaError, match="storage is full"):
        Q.make_room_for_run(tmp_path, "carol", st)
    assert a.exists() and b.exists()
    st = Q.QuotaSettings(runs_total_bytes=10**9, runs_session_bytes=300, min_age_s=60)
    with pytest.raises(Q.QuotaError, match="the most one session"):
        Q.make_room_for_run(tmp_path, "alice", st)


def test_settings_from_env():
    st = Q.QuotaSettings.from_env({"SR_RUNS_MAX_BYTES": "5", "SR_UPLOADS_CLIENT_WINDOW_S": "2.5"})
    assert st.runs_total_bytes == 5 and st.uploads_client_window_s == 2.5
    assert st.uploads_total_bytes == Q.QuotaSettings().uploads_total_bytes


def _asgi_upload(mw, length: int | None, client="1.2.3.4", path="/gradio_api/upload"):
    passed = []

    async def inner(scope, receive, send):
        passed.append(1)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]"})

    out = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m):
        out.append(m)

    headers = [(b"content-type", b"multipart/form-data; boundary=x")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    mw.app = inner
    asyncio.run(mw({"type": "http", "method": "POST", "path": path, "headers": headers,
                    "client": (client, 5555)}, receive, send))
    return out[0]["status"], (out[1]["body"] if len(out) > 1 else b"")


def test_upload_quota_per_client_and_total(tmp_path):
    cache = tmp_path / "gradio"
    cache.mkdir()
    st = Q.QuotaSettings(uploads_total_bytes=2500, uploads_client_bytes=1500, uploads_client_window_s=3600,
                         min_age_s=5)
    mw = Q.UploadQuota(None, st, folder=cache)
    assert _asgi_upload(mw, None)[0] == 411
    assert _asgi_upload(mw, 1000)[0] == 200
    status, body = _asgi_upload(mw, 1000)  # 2000 > 1500 from this address
    assert status == 413 and b"Upload limit reached" in body
    assert _asgi_upload(mw, 1000, client="5.6.7.8")[0] == 200  # another client is fine
    # the cache: old entries are evicted to make room, young ones are not
    old = cache / "aaa"
    old.mkdir()
    (old / "x.png").write_bytes(b"x" * 2000)
    t = time.time() - 3600
    os.utime(old, (t, t))
    assert _asgi_upload(mw, 1000, client="9.9.9.9")[0] == 200 and not old.exists()
    young = cache / "bbb"
    young.mkdir()
    (young / "y.png").write_bytes(b"y" * 2400)
    status, body = _asgi_upload(mw, 1000, client="8.8.8.8")
    assert status == 507 and b"storage is full" in body and young.exists()
    # other routes pass untouched
    assert _asgi_upload(mw, None, path="/gradio_api/call/compare")[0] == 200


def test_client_window_expires():
    st = Q.QuotaSettings(uploads_client_bytes=100, uploads_client_window_s=10, uploads_total_bytes=10**12)
    mw = Q.UploadQuota(None, st, folder=None)
    mw.folder = type("F", (), {"iterdir": lambda self: iter(())})()
    assert mw.admit("c", 80, now=1000.0) is None
    assert mw.admit("c", 80, now=1005.0)[0] == 413
    assert mw.admit("c", 80, now=1011.0) is None


def test_quota_refusal_is_a_one_line_user_error(tmp_path, monkeypatch):
    import gradio as gr

    from sr.app.errors import user_errors

    @user_errors
    def handler():
        Q.make_room_for_run(tmp_path, "s", Q.QuotaSettings(runs_session_bytes=0, min_age_s=1e9))

    _run(tmp_path, "s", "r", 10, 0)
    with pytest.raises(gr.Error) as ei:
        handler()
    assert "the most one session" in ei.value.message and "\n" not in ei.value.message


def test_settings_follow_the_environment_at_once(monkeypatch):
    """settings() is cached on the raw SR_* values: any change is seen on the next call."""
    from sr.settings import settings

    monkeypatch.delenv("SR_MOS_CROP", raising=False)
    a = settings()
    assert settings() is a and a.mos_crop == 256
    monkeypatch.setenv("SR_MOS_CROP", "128")
    assert settings().mos_crop == 128
    monkeypatch.setenv("SR_MOS_CROP", "not a number")
    with pytest.raises(ValueError, match="SR_MOS_CROP"):
        settings()
    monkeypatch.delenv("SR_MOS_CROP")
    assert settings() is a
