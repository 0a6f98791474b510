"""The server never fetches a URL that a client gives it (two layers).

1. :class:`NoRemoteFetch`, ASGI middleware, decides on what the server will actually parse:

   * a request with more than one ``Content-Type`` header is refused (400): Starlette reads the
     first, a naive guard the last;
   * every request body (any method, any ``Content-Type``, except a multipart upload to the
     ``/upload`` route, which Gradio only saves as files) is decoded with ``json.loads`` on the
     raw bytes, exactly as Starlette's ``Request.json()`` does: UTF-8/16/32 with or without a
     BOM, every ``\\/`` and ``\\uXXXX`` escape. If it is JSON, every ``path`` and ``url`` value
     anywhere in it is checked (:func:`is_url`, :func:`bad_file_reference`); a URL is refused
     with 400 and :data:`URL_REFUSED`;
   * ``/file=<url>`` and ``/proxy=`` routes answer 403, however the path is percent-encoded.

2. :func:`install_download_guard` replaces the functions Gradio downloads a URL into its cache
   with (``gradio.processing_utils.async_ssrf_protected_download`` and friends) by ones that
   refuse, so a request that got past the middleware still fetches nothing.

Settings (environment, read once per process): ``SR_URL_GUARD_MAX_BODY`` (bytes of a non-upload
request body, default 32 MiB).
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

log = logging.getLogger("sr.app")

URL_REFUSED = "This app does not fetch URLs: upload the image file itself (PNG, JPEG or TIFF)."
AMBIGUOUS = "Ambiguous request: send exactly one Content-Type header."

# a scheme of at least 2 characters (``C:\x`` is a Windows drive, not a URL), then ':'
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.\-]+:", re.IGNORECASE)
_FILE_ROUTE_RE = re.compile(r"/file=(.*)$", re.DOTALL)


@dataclass(frozen=True)
class GuardSettings:
    max_body: int = 32 * 2**20

    @classmethod
    def from_env(cls, env=None) -> "GuardSettings":
        from ..settings import Settings

        return cls(max_body=Settings.from_env(env).url_guard_max_body)


def _spellings(value: str) -> list[str]:
    """The string as a server or URL library might read it: stripped of whitespace and control
    characters, NFKC-normalised, backslashes as slashes, percent-decoded (repeatedly)."""
    out = []
    s = value
    for _ in range(4):
        t = unicodedata.normalize("NFKC", s)
        t = "".join(ch for ch in t if unicodedata.category(ch)[0] != "C").strip()
        out += [t, t.replace("\\", "/")]
        u = unquote(s)
        if u == s:
            break
        s = u
    return out


def is_url(value) -> bool:
    """True for anything a client could mean as a remote or non-file resource: any scheme of 2+
    characters (``http:``, ``HTTPS:``, ``file:``, ``data:``, ``ftp:``, ``s3:``...), a
    protocol-relative ``//host`` or UNC ``\\\\host``, also when percent-encoded, padded with
    whitespace or control characters, or written with backslashes. ``C:\\x`` is not a URL."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        return False
    for s in _spellings(value):
        if _SCHEME_RE.match(s) or s.startswith("//"):
            return True
    return False


def bad_file_reference(key: str, value) -> bool:
    """Whether a ``path``/``url`` value in a request asks the server for a URL.

    ``path`` must be a server path (no URL of any kind). ``url`` may be a link to this server's
    own file route (``.../gradio_api/file=/tmp/gradio/...``, what browsers send back), never
    anything else with a scheme."""
    if not isinstance(value, str):
        return False
    if key == "url":
        for s in _spellings(value):
            m = _FILE_ROUTE_RE.search(s)
            if m and not is_url(m.group(1)) and "proxy=" not in s:
                return False
    return is_url(value)


def file_references(data) -> list[tuple[str, str]]:
    """Every (key, value) of a ``path`` or ``url`` key anywhere in decoded JSON (any nesting)."""
    found, stack = [], [data]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("path", "url") and isinstance(v, str):
                    found.append((k, v))
                if isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(x, list):
            stack.extend(v for v in x if isinstance(v, (dict, list)))
    return found


def url_references(data) -> list[str]:
    return [v for k, v in file_references(data) if bad_file_reference(k, v)]


def refused_route(path: str) -> bool:
    """``file=<url>`` and any ``proxy=`` route, after percent-decoding (repeatedly)."""
    for s in _spellings(path):
        for key in ("file=", "proxy="):
            i = s.find(key)
            if i >= 0 and (key == "proxy=" or is_url(s[i + len(key):])):
                return True
    return False


class _RateLimitedLog:
    """At most one log line per ``interval`` seconds per kind; the rest are counted."""

    def __init__(self, interval: float = 10.0):
        self.interval = interval
        self.last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def warning(self, kind: str, msg: str, *args) -> bool:
        now = time.monotonic()
        if now - self.last.get(kind, -1e9) < self.interval:
            self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
            return False
        n = self.suppressed.pop(kind, 0)
        self.last[kind] = now
        log.warning(msg + (f" ({n} more since the last line)" if n else ""), *args)
        return True


refusal_log = _RateLimitedLog()


async def json_answer(send, status: int, detail: str) -> None:
    """Answer an ASGI request with a small JSON error (the app's middlewares' refusals)."""
    body = json.dumps({"detail": detail, "error": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class NoRemoteFetch:
    """ASGI middleware (see the module doc). Install with
    ``demo.launch(app_kwargs={"middleware": [starlette.middleware.Middleware(NoRemoteFetch)]})``."""

    settings = GuardSettings.from_env()
    MAX_BODY = settings.max_body

    def __init__(self, app):
        self.app = app
        install_download_guard()  # defence in depth, wherever the middleware is installed

    refuses = staticmethod(refused_route)

    _answer = staticmethod(json_answer)

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http":
            return await self.app(scope, receive, send)
        if refused_route(scope.get("path", "")) or refused_route(scope.get("raw_path", b"").decode("latin-1")):
            refusal_log.warning("route", "refused a file=/proxy= route to a URL")
            return await self._answer(send, 403, URL_REFUSED)
        headers = scope.get("headers") or []
        ctypes = [v for k, v in headers if k.lower() == b"content-type"]
        if len(ctypes) > 1 or any(b"," in v.split(b";")[0] for v in ctypes):
            refusal_log.warning("ambiguous", "refused a request with %d Content-Type headers", len(ctypes))
            return await self._answer(send, 400, AMBIGUOUS)
        ctype = ctypes[0].lower().strip() if ctypes else b""
        method = scope.get("method", "GET")
        has_body = any(k.lower() in (b"content-length", b"transfer-encoding") for k, _ in headers)
        if method in ("GET", "HEAD", "OPTIONS") and not has_body:
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if ctype.startswith(b"multipart/") and path.rstrip("/").endswith("/upload"):
            return await self.app(scope, receive, send)  # saved as files only; may be large
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
        if body:
            try:
                data = json.loads(body)  # what Starlette's Request.json() does: same bytes, same decoder
            except (ValueError, RecursionError):
                data = None  # not JSON: the server cannot read it as JSON either
            urls = url_references(data) if data is not None else []
            if urls:
                refusal_log.warning("url", "refused a request asking the server to fetch %s", urls[0][:200])
                return await self._answer(send, 400, URL_REFUSED)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


# ---------------------------------------------------------------------------- gradio's downloaders

class RemoteFetchRefused(Exception):
    pass


_DOWNLOADERS = ("async_ssrf_protected_download", "ssrf_protected_download", "save_url_to_cache",
                "unsafe_download", "async_ssrf_protected_get")


def _refusal(name: str):
    import inspect

    def refuse_error(url):
        refusal_log.warning("download", "refused gradio.processing_utils.%s(%s)", name, str(url)[:200])
        try:
            from gradio.exceptions import Error

            return Error(URL_REFUSED, print_exception=False)
        except Exception:  # pragma: no cover - gradio not importable
            return RemoteFetchRefused(URL_REFUSED)

    from gradio import processing_utils as pu

    if inspect.iscoroutinefunction(getattr(pu, name, None)):
        async def refuse_async(url, *args, **kwargs):
            raise refuse_error(url)

        refuse_async.__sr_url_guard__ = True
        return refuse_async

    def refuse(url, *args, **kwargs):
        raise refuse_error(url)

    refuse.__sr_url_guard__ = True
    return refuse


def install_download_guard() -> list[str]:
    """Make Gradio's URL downloaders refuse (idempotent). Returns the names replaced."""
    try:
        from gradio import processing_utils as pu
    except ImportError:  # pragma: no cover
        return []
    done = []
    for name in _DOWNLOADERS:
        fn = getattr(pu, name, None)
        if fn is None or getattr(fn, "__sr_url_guard__", False):
            continue
        setattr(pu, name, _refusal(name))
        done.append(name)
    return done
