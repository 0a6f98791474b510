"""sr.app.security: the server never fetches a URL a client gives it (issue 15, item 1).

Raw-ASGI tests of the middleware, a check of Gradio's downloaders, and a real Gradio server
(in-process, with the middleware as app.py installs it) fed the three bypasses of the issue.
"""
from __future__ import annotations

import asyncio
import json
import threading
from http.server import ThreadingHTTPServer

import pytest

from conftest import CountingPngHandler

from sr.app import security as G

FD = '{"data": [{"path": "%s", "meta": {"_type": "gradio.FileData"}}, "hr"], "session_hash": "abc"}'


def _asgi(body: bytes = b"", path="/gradio_api/call/load_image", method="POST",
          headers=((b"content-type", b"application/json"),), chunks=1):
    seen = []

    async def inner(scope, receive, send):
        msg = await receive()
        seen.append(msg["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    n = max(1, len(body) // chunks) if body else 1
    parts = [body[i:i + n] for i in range(0, len(body), n)] or [b""]
    queue = [{"type": "http.request", "body": b, "more_body": i < len(parts) - 1} for i, b in enumerate(parts)]
    out = []

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(m):
        out.append(m)

    scope = {"type": "http", "method": method, "path": path, "headers": list(headers)}
    asyncio.run(G.NoRemoteFetch(inner)(scope, receive, send))
    return out[0]["status"], seen


URL_SPELLINGS = [
    "http://127.0.0.1:9/config",
    "http:\\/\\/127.0.0.1:9\\/config",          # JSON-escaped slashes (issue: bypass a)
    "http:/\\/127.0.0.1:9/config",             # one escaped slash
    "\\u0068ttp://127.0.0.1:9/config",        # unicode escape
    "\\u0068\\u0074\\u0074\\u0070\\u003a//x/y",  # all escaped
    "HtTpS://example.com/big.png",            # mixed case
    "file:///etc/passwd",
    "FILE:/etc/passwd",
    "data:image/png;base64,iVBORw0KGgo=",
    "http%3A%2F%2Fexample.com%2Fbig.png",     # percent-encoded
    "http%253A%252F%252Fexample.com",        # twice
    "//example.com/big.png",                  # protocol-relative
    "\\\\\\\\example.com\\\\share\\\\x.png",  # UNC \\host\share
    " \\t https://example.com/x.png",        # leading whitespace
    "\\u200bhttps://example.com/x.png",       # zero-width space first
    "ｈｔｔｐｓ://example.com/x.png",            # full-width letters
    "ftp://example.com/x",
    "s3://bucket/key",
]


@pytest.mark.parametrize("u", URL_SPELLINGS)
def test_every_url_spelling_in_path_is_refused(u):
    body = (FD % u).encode("utf-8")
    assert _asgi(body)[0] == 400, u
    assert _asgi(body, path="/gradio_api/queue/join", chunks=3)[0] == 400, u


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be",
                                      "utf-8-sig"])
def test_json_in_any_encoding_is_read_as_the_server_reads_it(encoding):
    """Issue bypass c: json.loads (Starlette's Request.json) decodes UTF-16/32, BOM or not."""
    body = (FD % "https://example.com/big.png").encode(encoding)
    assert json.loads(body)["data"][0]["path"] == "https://example.com/big.png"  # what the server sees
    assert _asgi(body)[0] == 400


def test_duplicate_or_conflicting_content_type_is_refused():
    """Issue bypass b: Starlette reads the first Content-Type, a naive guard the last."""
    body = (FD % "http://127.0.0.1:9/x.png").encode()
    two = ((b"content-type", b"application/json"), (b"content-type", b"multipart/form-data; boundary=x"))
    assert _asgi(body, headers=two)[0] == 400
    assert _asgi(b'{"data": []}', headers=two)[0] == 400  # ambiguous even without a URL
    assert _asgi(body, headers=((b"content-type", b"application/json, multipart/form-data"),))[0] == 400
    # multipart alone to a non-upload route: the body is still read as JSON and refused
    assert _asgi(body, headers=((b"content-type", b"multipart/form-data; boundary=x"),))[0] == 400
    # no Content-Type, text/plain: the same
    assert _asgi(body, headers=())[0] == 400
    assert _asgi(body, headers=((b"content-type", b"text/plain"),))[0] == 400


def test_url_key_anywhere_and_nested():
    nested = {"data": [{"a": [{"b": {"path": "/tmp/gradio/x.png", "url": "https://example.com/x.png"}}]}]}
    assert _asgi(json.dumps(nested).encode())[0] == 400
    gallery = {"data": [[{"image": {"path": "http://example.com/x.png"}, "caption": None}]]}
    assert _asgi(json.dumps(gallery).encode())[0] == 400
    no_meta = {"data": [{"path": "http://example.com/x.png"}]}
    assert _asgi(json.dumps(no_meta).encode())[0] == 400


def test_legitimate_requests_pass_unchanged():
    own = {"data": [{"path": "/tmp/gradio/abc/cells.png", "orig_name": "cells.png",
                     "url": "http://127.0.0.1:7860/gradio_api/file=/tmp/gradio/abc/cells.png",
                     "meta": {"_type": "gradio.FileData"}}, "see http://x/ in text", "hr"],
           "session_hash": "abc"}
    body = json.dumps(own).encode()
    status, seen = _asgi(body, chunks=4)
    assert status == 200 and seen[-1] == body
    for p in ("/tmp/a.png", "a.png", "C:\\x.png", "http_cells.png", "/tmp/gradio/x/my file%20.png"):
        assert not G.is_url(p), p
    # uploads pass (not buffered, saved as files only)
    up = b"--x\r\n" + (FD % "http://x/y").encode()
    assert _asgi(up, path="/gradio_api/upload", headers=((b"content-type", b"multipart/form-data; boundary=x"),))[0] == 200
    assert _asgi(b"", method="GET", path="/gradio_api/info", headers=())[0] == 200
    assert _asgi(b"x" * (G.NoRemoteFetch.MAX_BODY + 1))[0] == 413


def test_url_pointing_elsewhere_in_url_key_is_refused():
    for u in ("https://example.com/x.png", "http://h/gradio_api/proxy=http://e/x", "http://h/file=http://e/x"):
        assert G.bad_file_reference("url", u), u
    assert not G.bad_file_reference("url", "https://space.hf.space/gradio_api/file=/tmp/gradio/a/b.png")


def test_file_and_proxy_routes():
    r = G.refused_route
    for p in ("/gradio_api/file=https://x/y.png", "/gradio_api/file=%68ttps://x", "/gradio_api/file=%2568ttps://x",
              "/gradio_api/file=//x/y", "/gradio_api/file=data:text/plain,hi", "/gradio_api/proxy=http://x",
              "/gradio_api/pr%6Fxy=http://x", "/file=HTTP://x"):
        assert r(p), p
    assert not r("/gradio_api/file=/tmp/gradio/abc/cells.png") and not r("/gradio_api/upload")


def test_gradio_downloaders_refuse():
    """Defence in depth: Gradio's URL-to-cache functions themselves refuse once installed."""
    from gradio import processing_utils as pu
    from gradio.exceptions import Error

    G.install_download_guard()
    assert G.install_download_guard() == []  # idempotent
    with pytest.raises(Error, match="does not fetch URLs"):
        pu.save_url_to_cache("http://127.0.0.1:9/x.png", "/tmp")
    with pytest.raises(Error, match="does not fetch URLs"):
        pu.ssrf_protected_download("http://127.0.0.1:9/x.png", "/tmp")
    with pytest.raises(Error, match="does not fetch URLs"):
        asyncio.run(pu.async_ssrf_protected_download("http://127.0.0.1:9/x.png", "/tmp"))
    with pytest.raises(Error, match="does not fetch URLs"):
        asyncio.run(pu.async_ssrf_protected_get("http://127.0.0.1:9/x.png"))


# ------------------------------------------------------------------------------ a real Gradio server

_Counter = CountingPngHandler  # a loopback server that counts the requests it gets


@pytest.fixture(scope="module")
def server():
    import gradio as gr
    from starlette.middleware import Middleware

    _Counter.hits = []
    target = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    calls = []

    def load_image(f):
        calls.append(f)
        return "ok"

    with gr.Blocks(analytics_enabled=False) as demo:
        inp = gr.File(type="filepath")
        out = gr.Textbox()
        inp.change(load_image, inp, out, api_name="load_image")
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", ssr_mode=False,
                            app_kwargs={"middleware": [Middleware(G.NoRemoteFetch)]})
    yield {"url": url.rstrip("/"), "target": f"127.0.0.1:{target.server_address[1]}",
           "hits": _Counter.hits, "calls": calls}
    demo.close()
    target.shutdown()


def _post(server, body: bytes, headers, events: list | None = None) -> int:
    import httpx

    with httpx.Client(timeout=30) as h:
        r = h.post(f"{server['url']}/gradio_api/call/load_image", content=body, headers=headers)
        if r.status_code == 200:  # accepted: wait for the event to finish
            text = h.get(f"{server['url']}/gradio_api/call/load_image/{r.json()['event_id']}").text
            if events is not None:
                events.append(text)
        return r.status_code


def test_the_three_bypasses_of_issue_15_on_a_real_server(server):
    t = server["target"]
    a = ('{"data":[{"path":"http:/\\/%s/config","meta":{"_type":"gradio.FileData"}}],"session_hash":"abc"}'
         % t).encode()
    assert _post(server, a, [("content-type", "application/json")]) == 400
    b = (FD % f"http://{t}/b.png").replace(', "hr"', "").encode()
    assert _post(server, b, [("content-type", "application/json"),
                             ("content-type", "multipart/form-data")]) == 400
    for enc in ("utf-16", "utf-16-le", "utf-32-be"):
        c = (FD % f"http://{t}/c.png").replace(', "hr"', "").encode(enc)
        assert _post(server, c, [("content-type", "application/json")]) == 400, enc
    assert server["hits"] == [] and server["calls"] == []


def test_downloader_guard_alone_on_a_real_server(server, monkeypatch):
    """With the middleware's body check switched off, Gradio's own downloader still refuses."""
    monkeypatch.setattr(G, "url_references", lambda data: [])
    t = server["target"]
    body = (FD % f"http://{t}/d.png").replace(', "hr"', "").encode()
    events = []
    assert _post(server, body, [("content-type", "application/json")], events) == 200
    assert "event: error" in events[0] and "does not fetch URLs" in events[0], events[0][:500]
    assert server["hits"] == [] and server["calls"] == []
