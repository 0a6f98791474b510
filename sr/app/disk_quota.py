"""Disk caps for the app: Gradio's upload cache and the per-run result folders.

Age alone (the 6 h sweep) does not bound disk use, so:

* **Run folders** (``SR_APP_TMP``/<session>/<run>): before a new run, :func:`make_room_for_run`
  evicts the session's oldest runs until the session holds less than ``SR_RUNS_SESSION_MAX_BYTES``,
  then everyone's oldest runs until all hold less than ``SR_RUNS_MAX_BYTES``. A run younger than
  ``SR_QUOTA_MIN_AGE_S`` is never evicted (it may be in use); if that is not enough the request
  is refused with :data:`FULL` (a user whose run was evicted is told to run it again).
* **Uploads** (Gradio's cache, ``GRADIO_TEMP_DIR``): :class:`UploadQuota`, ASGI middleware on
  the ``/upload`` route, refuses an upload without a Content-Length (411), one that would take a
  client (by IP) over ``SR_UPLOADS_CLIENT_MAX_BYTES`` within ``SR_UPLOADS_CLIENT_WINDOW_S`` (413),
  and evicts the cache's oldest entries to keep it under ``SR_UPLOADS_MAX_BYTES`` (507 if it cannot).
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .security import json_answer

log = logging.getLogger("sr.app")

FULL = "The server's storage is full right now; try again in a few minutes."


class QuotaError(ValueError):
    """A disk cap refuses the request; the message is for the user."""


@dataclass(frozen=True)
class QuotaSettings:
    runs_total_bytes: int = 2 * 2**30
    runs_session_bytes: int = 512 * 2**20
    uploads_total_bytes: int = 2 * 2**30
    uploads_client_bytes: int = 1 * 2**30
    uploads_client_window_s: float = 3600.0
    min_age_s: float = 30.0

    @classmethod
    def from_env(cls, env=None) -> "QuotaSettings":
        from ..settings import Settings

        s = Settings.from_env(env)
        return cls(runs_total_bytes=s.runs_max_bytes, runs_session_bytes=s.runs_session_max_bytes,
                   uploads_total_bytes=s.uploads_max_bytes, uploads_client_bytes=s.uploads_client_max_bytes,
                   uploads_client_window_s=s.uploads_client_window_s, min_age_s=s.quota_min_age_s)


def tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (or of the file), not following links."""
    total = 0
    try:
        if path.is_file() and not path.is_symlink():
            return path.stat().st_size
        for dirpath, _dirs, files in os.walk(path):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
    except OSError:
        pass
    return total


def _entries(parent: Path) -> list[tuple[float, int, Path]]:
    """(mtime, bytes, path) of the children of ``parent``, oldest first."""
    out = []
    try:
        children = list(parent.iterdir())
    except OSError:
        return out
    for c in children:
        try:
            out.append((c.stat().st_mtime, tree_bytes(c), c))
        except OSError:
            continue
    return sorted(out, key=lambda e: e[0])


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def evict_oldest(entries: list[tuple[float, int, Path]], cap: int, min_age_s: float,
                 now: float | None = None) -> tuple[int, list[Path]]:
    """Delete entries oldest first until their total is below ``cap`` (never ones younger than
    ``min_age_s``). Returns (bytes left, paths removed)."""
    now = time.time() if now is None else now
    total = sum(b for _, b, _ in entries)
    removed = []
    for mtime, b, p in entries:
        if total < cap:
            break
        if now - mtime < min_age_s:
            continue
        _remove(p)
        total -= b
        removed.append(p)
    return total, removed


_runs_lock = threading.Lock()


def make_room_for_run(root: Path, session_dir: str, settings: QuotaSettings | None = None) -> list[Path]:
    """Keep the run folders under the per-session and total caps before a new run (see the
    module doc). Raises :class:`QuotaError` when no old enough run can be evicted."""
    st = settings or QuotaSettings.from_env()
    root = Path(root)
    removed: list[Path] = []
    with _runs_lock:
        sess = root / session_dir
        left, r = evict_oldest(_entries(sess), st.runs_session_bytes, st.min_age_s)
        removed += r
        if left >= st.runs_session_bytes:
            raise QuotaError(f"This session's results take {left / 2**20:,.0f} MiB, the most one session "
                             f"may keep ({st.runs_session_bytes / 2**20:,.0f} MiB); try again in a minute.")
        runs = [e for s in _entries(root) if s[2].is_dir() for e in _entries(s[2])]
        left, r = evict_oldest(sorted(runs, key=lambda e: e[0]), st.runs_total_bytes, st.min_age_s)
        removed += r
        if left >= st.runs_total_bytes:
            raise QuotaError(FULL)
    if removed:
        log.info("disk quota: evicted %d run folder(s)", len(removed))
    return removed


def make_room_for_app_run(session: str | None) -> list[Path]:
    """:func:`make_room_for_run` for the app's run folders (``sr.app.workspace.tmp_root``)."""
    from .inputs import safe_stem
    from .workspace import tmp_root

    return make_room_for_run(tmp_root(), safe_stem(session) if session else "nosession")


# ---------------------------------------------------------------------------- uploads

def upload_folder() -> Path:
    from gradio import utils

    return Path(utils.get_upload_folder())


class UploadQuota:
    """ASGI middleware: caps on uploads per client and on Gradio's upload cache (module doc)."""

    def __init__(self, app, settings: QuotaSettings | None = None, folder: Path | None = None):
        self.app = app
        self.settings = settings or QuotaSettings.from_env()
        self.folder = folder
        self.clients: dict[str, deque] = {}
        self.lock = threading.Lock()

    _answer = staticmethod(json_answer)

    def _client_used(self, client: str, now: float) -> int:
        q = self.clients.setdefault(client, deque())
        while q and now - q[0][0] > self.settings.uploads_client_window_s:
            q.popleft()
        return sum(b for _, b in q)

    def admit(self, client: str, length: int, now: float | None = None) -> tuple[int, str] | None:
        """None to accept an upload of ``length`` bytes, else (status, message)."""
        st = self.settings
        now = time.time() if now is None else now
        with self.lock:
            used = self._client_used(client, now)
            if used + length > st.uploads_client_bytes:
                mins = max(1, round(st.uploads_client_window_s / 60))
                return 413, (f"Upload limit reached: at most {st.uploads_client_bytes / 2**20:,.0f} MiB per "
                             f"{mins} min from one address; try again later.")
            folder = self.folder or upload_folder()
            left, _ = evict_oldest(_entries(folder), max(0, st.uploads_total_bytes - length), st.min_age_s, now)
            if left + length > st.uploads_total_bytes:
                return 507, FULL
            self.clients[client].append((now, length))
            if len(self.clients) > 10000:  # forget idle clients
                for k in [k for k, q in self.clients.items() if not q][:5000]:
                    del self.clients[k]
        return None

    async def __call__(self, scope, receive, send):
        if (scope.get("type") != "http" or scope.get("method") != "POST"
                or not scope.get("path", "").rstrip("/").endswith("/upload")):
            return await self.app(scope, receive, send)
        lengths = [v for k, v in scope.get("headers") or [] if k.lower() == b"content-length"]
        try:
            if len(lengths) != 1:
                raise ValueError
            length = int(lengths[0])
            if length < 0:
                raise ValueError
        except ValueError:
            return await self._answer(send, 411, "Uploads need one valid Content-Length header.")
        client = (scope.get("client") or ("unknown", 0))[0]
        import anyio

        refused = await anyio.to_thread.run_sync(self.admit, client, length)
        if refused:
            log.info("upload refused for %s: %s", client, refused[1])
            return await self._answer(send, *refused)
        return await self.app(scope, receive, send)
