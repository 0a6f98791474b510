"""The server never fetches a URL that a client gives it."""
from __future__ import annotations

import logging
import os
import re

log = logging.getLogger("sr.app")


URL_REFUSED = ("This app does not fetch URLs: upload the image file itself (PNG, JPEG or TIFF).")

_URL_RE = re.compile(r"^\s*[a-z][a-z0-9+.-]*://", re.IGNORECASE)

def is_url(value) -> bool:
    """True for anything with a URL scheme (``http://``, ``HTTPS://``, ``ftp://``, ...)."""
    return isinstance(value, (str, os.PathLike)) and bool(_URL_RE.match(os.fspath(value)))

def _url_file_paths(data) -> list[str]:
    """``path`` values that are URLs anywhere in decoded JSON (Gradio's FileData, ImageData, ...)."""
    found, stack = [], [data]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            if is_url(x.get("path")):
                found.append(x["path"])
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return found

class NoRemoteFetch:
    """ASGI middleware: the server never fetches a URL that a client gives it.

    Gradio would: a file input whose ``path`` is a URL is downloaded before the app's function
    runs, and ``/gradio_api/file=<url>`` streams any public URL through the server. This
    refuses (403) ``file=<url>`` and ``proxy=<url>`` routes, and (400, :data:`URL_REFUSED`)
    any request body (JSON API calls of every endpoint, present and future) with a URL as a
    file ``path``; uploads (multipart) pass untouched. Install it with
    ``demo.launch(app_kwargs={"middleware": [starlette.middleware.Middleware(NoRemoteFetch)]})``.
    """

    MAX_BODY = 32 * 2**20  # JSON API calls are small; files come through /upload (multipart)

    def __init__(self, app):
        self.app = app

    @staticmethod
    def refuses(path: str) -> bool:
        from urllib.parse import unquote

        path = unquote(path)
        for key in ("file=", "proxy="):
            i = path.find(key)
            if i >= 0 and (key == "proxy=" or is_url(path[i + len(key):])):
                return True
        return False

    @staticmethod
    async def _answer(send, status: int, detail: str) -> None:
        import json

        body = json.dumps({"detail": detail, "error": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http":
            return await self.app(scope, receive, send)
        if self.refuses(scope.get("path", "")):
            return await self._answer(send, 403, URL_REFUSED)
        ctype = dict(scope.get("headers") or []).get(b"content-type", b"").lower()
        if scope.get("method") != "POST" or ctype.startswith(b"multipart/"):
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.MAX_BODY:
                return await self._answer(send, 413, "Request too large.")
        body = b"".join(chunks)
        if b"://" in body or b":\\/\\/" in body or b"\\u" in body:  # a URL could be in there: look
            import json

            try:
                urls = _url_file_paths(json.loads(body))
            except (ValueError, RecursionError):
                urls = []  # not JSON: Gradio refuses it anyway
            if urls:
                log.warning("refused a request asking the server to fetch %s", urls[0][:200])
                return await self._answer(send, 400, URL_REFUSED)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)
