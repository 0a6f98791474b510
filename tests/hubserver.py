"""A loopback fake of the Hugging Face Hub HTTP API, for tests. Standard library only.

It speaks exactly the subset of the Hub protocol that ``huggingface_hub`` (2.x) uses for:

* downloads: ``HEAD``/``GET /{prefix}{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag``
  (git blob sha1 for regular files; the sha256 for LFS files, also in ``X-Linked-Etag`` and
  ``X-Linked-Size``), ``Content-Length``, ``Range`` (resume), ``X-Error-Code`` on 404
  (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``); optionally a 302 ``Location`` to a
  "CDN" host for LFS files (``cdn_host="localhost"``);
* ``POST /api/repos/create``, ``POST /api/validate-yaml``, ``GET /api/whoami-v2``;
* ``GET /api/{type}s/{repo}[/revision/{rev}]`` (repo info), ``GET .../tree/{rev}[/{path}]``;
* commits: ``POST /api/{type}s/{repo}/preupload/{rev}`` (answers ``regular`` or ``lfs``, never
  xet), the LFS *basic* transfer (``POST /{prefix}{repo}.git/info/lfs/objects/batch`` ->
  ``PUT`` upload -> ``POST`` verify), ``POST /api/{type}s/{repo}/commit/{rev}`` (ndjson), and
  ``POST .../super-squash/{branch}`` (``CommitScheduler(squash_history=True)``).

It never answers with xet metadata (no ``X-Xet-Hash``), so downloads take the plain HTTP path.
Uploads of ``lfs`` files take the LFS basic path only when the client has xet disabled
(``HF_HUB_DISABLE_XET=1``; in-process set ``huggingface_hub.constants.HF_HUB_DISABLE_XET = True``):
with ``hf_xet`` installed and xet enabled the client would ask ``/xet-write-token/`` (answered 501
with a message saying so). Small text files (CSV, JSON, README) are ``regular`` and never need xet.

Repos live in memory: each is a chain of commits (40-hex oids) with branch refs. Every request is
recorded (``hub.requests``, ``hub.count(...)``), and faults can be injected by method + path glob:

    hub.fail(500, path="*/model.safetensors")           # an HTTP error (optionally X-Error-Code)
    hub.delay(5, path="*/resolve/*", method="HEAD")     # answer late (beyond a client timeout)
    hub.hang(path="/api/models")                        # never answer (until the server stops)
    hub.disconnect(path=...)                            # close the connection without an answer
    hub.truncate(path=..., mode="short")                # body shorter than the advertised size
    hub.truncate(path=..., mode="drop", times=1)        # connection dropped mid-body (client resumes)
    hub.corrupt(path="*/model.safetensors")             # flip a byte of the served content
    hub.clear_faults()                                  # "fix the server"

Usage (pytest): ``from hubserver import fake_hub, hub_env`` in a test module makes both fixtures
available; ``hub_env`` points ``huggingface_hub`` (and ``sr.zoo``) at the server with a temporary
cache, xet disabled and no token. For a subprocess, pass ``hub.client_env(tmp_path)``.
Outside pytest: ``with FakeHub() as hub: ... hub.endpoint ...``.
"""
from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import socket
import threading
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_TYPES = {"model": "models", "dataset": "datasets", "space": "spaces"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
DEFAULT_LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz", ".npy", ".h5", ".onnx",
                        ".png", ".tif", ".tiff", ".zip", ".gz", ".parquet", ".arrow")
LFS_THRESHOLD = 10 * 1024 * 1024
USER = "fake-user"
GITATTRIBUTES = b"".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n".encode() for s in DEFAULT_LFS_SUFFIXES)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ----------------------------------------------------------------------------------- storage

@dataclass(frozen=True)
class Blob:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_oid(self) -> str:
        return git_blob_sha1(self.data)

    @property
    def oid(self) -> str:
        """What the preupload endpoint reports (the client compares it with its local oid)."""
        return self.sha256 if self.lfs else self.git_oid


@dataclass
class Commit:
    oid: str
    parent: str | None
    message: str
    files: dict[str, Blob]
    date: str = field(default_factory=_now)


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool = False
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    created: str = field(default_factory=_now)

    def resolve(self, rev: str | None) -> Commit | None:
        rev = rev or "main"
        oid = self.refs.get(rev, rev)
        return self.commits.get(oid)


@dataclass
class Request:
    method: str
    path: str  # unquoted URL path
    raw_path: str  # as sent (quoted), with the query string
    query: dict
    headers: dict
    status: int | None = None


@dataclass
class Fault:
    kind: str  # status | delay | hang | disconnect | truncate | corrupt
    path: str = "*"  # fnmatch glob on the unquoted URL path (e.g. "*/resolve/*/model.safetensors")
    method: str | None = None
    times: int | None = None  # None: forever
    status: int = 500
    error_code: str | None = None
    message: str | None = None
    seconds: float = 0.0
    mode: str = "short"  # truncate: "short" (consistent short body) | "drop" (connection closed mid-body)
    keep: float = 0.5  # truncate: fraction of the body that is sent
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return fnmatch.fnmatchcase(path, self.path)


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


# ------------------------------------------------------------------------------------ server

class FakeHub:
    """An in-memory Hub on ``http://127.0.0.1:<ephemeral port>`` (threaded)."""

    def __init__(self, *, tokens: set[str] | None = None, lfs_suffixes=DEFAULT_LFS_SUFFIXES,
                 upload_mode: str | None = None, cdn_host: str | None = None, gitattributes: bool = True):
        self.tokens = tokens  # None: any bearer token may write; a set: only these
        self.lfs_suffixes = tuple(lfs_suffixes)
        self.upload_mode = upload_mode  # None: decided per file; "regular" / "lfs": forced
        self.cdn_host = cdn_host  # e.g. "localhost": LFS files are 302-redirected to another origin
        self.gitattributes = gitattributes  # new repos get an initial ".gitattributes" commit, like the Hub
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_store: dict[str, bytes] = {}  # sha256 -> content (uploaded LFS objects)
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.errors: list[str] = []  # server-side bugs (unexpected exceptions), for assertions
        self._lock = threading.RLock()
        self._counter = 0
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging/delayed handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeHub":
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    url = endpoint

    def client_env(self, tmp_path: str | Path | None = None) -> dict[str, str]:
        """Environment variables that point a (sub)process's ``huggingface_hub`` at this server."""
        env = {"HF_ENDPOINT": self.endpoint, "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_OFFLINE": "0"}
        if tmp_path is not None:
            env["HF_HOME"] = str(Path(tmp_path) / "hf_home")
            env["HF_HUB_CACHE"] = str(Path(tmp_path) / "hf_home" / "hub")
        return env

    # -- repos
    def _repo(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def has_repo(self, repo_id: str, repo_type: str = "model") -> bool:
        return self._repo(repo_id, repo_type) is not None

    def create_repo(self, repo_id: str, repo_type: str = "model", private: bool = False) -> Repo:
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                return self.repos[(repo_type, repo_id)]
            repo = self.repos[(repo_type, repo_id)] = Repo(repo_id, repo_type, private)
            if self.gitattributes:
                self._new_commit(repo, "main", {".gitattributes": Blob(GITATTRIBUTES, False)}, (), "initial commit")
            return repo

    def add_repo(self, repo_id: str, files: dict | None = None, *, repo_type: str = "model",
                 private: bool = False, message: str = "add files") -> str | None:
        """Create a repo (and commit ``files`` to main); returns the head commit oid."""
        repo = self.create_repo(repo_id, repo_type, private)
        if files:
            return self.commit(repo_id, files, repo_type=repo_type, message=message)
        return repo.refs.get("main")

    def commit(self, repo_id: str, files: dict | None = None, *, deletes=(), repo_type: str = "model",
               branch: str = "main", message: str = "update") -> str:
        """Commit ``{path: bytes | str | Path}`` (LFS by suffix or size, like the Hub) to ``branch``."""
        repo = self._repo(repo_id, repo_type) or self.create_repo(repo_id, repo_type)
        blobs = {}
        for path, content in (files or {}).items():
            if isinstance(content, Path):
                content = content.read_bytes()
            elif isinstance(content, str):
                content = content.encode()
            blobs[path] = Blob(bytes(content), self._is_lfs(path, len(content), content[:512]))
        with self._lock:
            return self._new_commit(repo, branch, blobs, deletes, message).oid

    def upload_folder(self, repo_id: str, folder: str | Path, *, patterns=("*",), **kw) -> str:
        folder = Path(folder)
        files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
                 if p.is_file() and any(fnmatch.fnmatch(p.name, pat) for pat in patterns)}
        return self.commit(repo_id, files, **kw)

    def head(self, repo_id: str, branch: str = "main", repo_type: str = "model") -> str | None:
        repo = self._repo(repo_id, repo_type)
        return repo.refs.get(branch) if repo else None

    def files(self, repo_id: str, revision: str | None = None, repo_type: str = "model") -> dict[str, bytes]:
        repo = self._repo(repo_id, repo_type)
        c = repo.resolve(revision) if repo else None
        if c is None:
            raise KeyError(f"{repo_type} {repo_id}@{revision or 'main'} does not exist")
        return {p: b.data for p, b in c.files.items()}

    def file(self, repo_id: str, path: str, revision: str | None = None, repo_type: str = "model") -> bytes:
        return self.files(repo_id, revision, repo_type)[path]

    def history(self, repo_id: str, branch: str = "main", repo_type: str = "model") -> list[Commit]:
        repo = self._repo(repo_id, repo_type)
        out, oid = [], repo.refs.get(branch) if repo else None
        while oid:
            out.append(repo.commits[oid])
            oid = repo.commits[oid].parent
        return out

    def delete_repo(self, repo_id: str, repo_type: str = "model") -> None:
        with self._lock:
            self.repos.pop((repo_type, repo_id), None)

    def _is_lfs(self, path: str, size: int, sample: bytes) -> bool:
        if self.upload_mode is not None:
            return self.upload_mode == "lfs"
        return path.lower().endswith(self.lfs_suffixes) or size >= LFS_THRESHOLD or b"\0" in sample

    def _new_commit(self, repo: Repo, branch: str, blobs: dict, deletes, message: str,
                    parent: str | None = "head") -> Commit:
        if parent == "head":
            parent = repo.refs.get(branch)
        files = dict(repo.commits[parent].files) if parent else {}
        for d in deletes:
            d = d.rstrip("/")
            for p in [p for p in files if p == d or p.startswith(d + "/")]:
                del files[p]
        files.update(blobs)
        self._counter += 1
        seed = f"{repo.repo_type}/{repo.repo_id}|{parent}|{message}|{self._counter}|{time.time_ns()}"
        seed += "".join(f"|{p}:{b.git_oid}" for p, b in sorted(files.items()))
        c = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, message, files)
        repo.commits[c.oid] = c
        repo.refs[branch] = c.oid
        return c

    # -- request log
    def count(self, method: str | None = None, path: str = "*") -> int:
        """Requests seen so far, filtered by method and an fnmatch glob on the unquoted path."""
        return len(self.seen(method, path))

    def seen(self, method: str | None = None, path: str = "*") -> list[Request]:
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method.upper()) and fnmatch.fnmatchcase(r.path, path)]

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- faults
    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def fail(self, status: int = 500, *, path: str = "*", method: str | None = None, times: int | None = None,
             error_code: str | None = None, message: str | None = None) -> Fault:
        return self._add(Fault("status", path, method, times, status=status, error_code=error_code,
                               message=message))

    def delay(self, seconds: float, *, path: str = "*", method: str | None = None,
              times: int | None = None) -> Fault:
        return self._add(Fault("delay", path, method, times, seconds=seconds))

    def hang(self, *, path: str = "*", method: str | None = None, times: int | None = None) -> Fault:
        return self._add(Fault("hang", path, method, times))

    def disconnect(self, *, path: str = "*", method: str | None = None, times: int | None = None) -> Fault:
        return self._add(Fault("disconnect", path, method, times))

    def truncate(self, *, path: str = "*", mode: str = "short", keep: float = 0.5, times: int | None = None) -> Fault:
        assert mode in ("short", "drop")
        return self._add(Fault("truncate", path, "GET", times, mode=mode, keep=keep))

    def corrupt(self, *, path: str = "*", times: int | None = None) -> Fault:
        return self._add(Fault("corrupt", path, "GET", times))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_faults(self, method: str, path: str, kinds: tuple[str, ...]) -> list[Fault]:
        with self._lock:
            hit = [f for f in self.faults if f.kind in kinds and f.matches(method, path)]
            for f in hit:
                f.hits += 1
            return hit


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # clients hanging up mid-answer are expected
        pass


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"

    def log_message(self, format, *args):  # quiet
        pass

    # every method goes through one dispatcher
    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # -- plumbing
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
              content_type: str = "application/json") -> None:
        self.record.status = status
        self.send_response(status)
        hdrs = {"Content-Type": content_type, "Content-Length": str(len(body))}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, obj, status: int = 200, headers: dict | None = None,
              content_type: str = "application/json") -> None:
        self._send(status, json.dumps(obj).encode(), headers, content_type)

    def _error(self, err: HubError) -> None:
        headers = {"X-Error-Message": err.message.replace("\n", " ")[:300], **err.headers}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._json({"error": err.message}, err.status, headers)

    def _authorized(self, required: bool) -> bool:
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        if token is not None and self.hub.tokens is not None and token not in self.hub.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        if required and not token:
            raise HubError(401, "Invalid username or password.")
        return bool(token)

    def _dispatch(self, method: str) -> None:
        hub = self.hub
        parts = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parts.path)
        self.record = Request(method, path, self.path, dict(urllib.parse.parse_qsl(parts.query)),
                              {k.lower(): v for k, v in self.headers.items()})
        with hub._lock:
            hub.requests.append(self.record)
        try:
            body = self._read_body()
        except Exception:
            self.close_connection = True
            return
        for f in hub._take_faults(method, path, ("hang", "delay", "disconnect", "status")):
            if f.kind == "hang":
                hub._stopping.wait()
                self.close_connection = True
                return
            if f.kind == "delay":
                if hub._stopping.wait(f.seconds):
                    self.close_connection = True
                    return
            elif f.kind == "disconnect":
                self.close_connection = True
                return
            elif f.kind == "status":
                msg = f.message or f"fake hub: injected HTTP {f.status}"
                self._error(HubError(f.status, msg, f.error_code))
                return
        try:
            self._route(method, path, parts.path, body)
        except HubError as err:
            self._error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the fake: make it visible to the test
            import traceback

            hub.errors.append(f"{method} {self.path}: {traceback.format_exc()}")
            try:
                self._error(HubError(500, f"fake hub bug: {type(exc).__name__}: {exc}"))
            except OSError:
                self.close_connection = True

    # -- routing
    def _route(self, method: str, path: str, raw: str, body: bytes) -> None:
        segs = [urllib.parse.unquote(s) for s in raw.strip("/").split("/")]  # keeps quoted "/" in a rev
        hub = self.hub
        if segs[:2] == ["api", "models"] and len(segs) == 2 and method in ("GET", "HEAD"):
            return self._json([{"id": r.repo_id, "sha": r.refs.get("main"), "private": r.private}
                               for (t, _), r in sorted(hub.repos.items()) if t == "model"])
        if segs == ["api", "whoami-v2"]:
            if not self._authorized(True):
                return
            return self._json({"type": "user", "name": USER, "fullname": "Fake User", "orgs": [],
                               "auth": {"type": "access_token", "accessToken": {"role": "write"}}})
        if segs == ["api", "validate-yaml"] and method == "POST":
            return self._json({"errors": [], "warnings": []})
        if segs == ["api", "repos", "create"] and method == "POST":
            return self._create_repo(json.loads(body or b"{}"))
        if segs == ["api", "repos", "delete"] and method == "DELETE":
            self._authorized(True)
            p = json.loads(body or b"{}")
            rid = f"{p.get('organization') or USER}/{p['name']}"
            if not hub.has_repo(rid, p.get("type") or "model"):
                raise HubError(404, f"Repository {rid} not found", "RepoNotFound")
            hub.delete_repo(rid, p.get("type") or "model")
            return self._json({})
        if segs[:2] == ["__lfs", "upload"] and method == "PUT":
            return self._lfs_put(segs[2], body)
        if segs == ["__lfs", "verify"] and method == "POST":
            p = json.loads(body)
            if hub.lfs_store.get(p["oid"]) is None or len(hub.lfs_store[p["oid"]]) != p["size"]:
                raise HubError(404, f"LFS object {p['oid']} not found")
            return self._json({})
        if segs[0] == "__cdn" and method in ("GET", "HEAD"):
            data = hub.lfs_store.get(segs[1])
            if data is None:
                raise HubError(404, "no such object")
            return self._serve_content(path, data, {"ETag": f'"{segs[1]}"'})
        if segs[0] == "api" and len(segs) >= 4 and segs[1] in REPO_TYPES.values():
            repo_type = next(t for t, p in REPO_TYPES.items() if p == segs[1])
            return self._api_repo(method, repo_type, f"{segs[2]}/{segs[3]}", segs[4:], body)
        # /{prefix}{ns}/{name}.git/info/lfs/objects/batch  and  /{prefix}{ns}/{name}/resolve/{rev}/{path}
        repo_type = "model"
        if segs[0] in ("datasets", "spaces") and len(segs) > 3:
            repo_type, segs = {"datasets": "dataset", "spaces": "space"}[segs[0]], segs[1:]
        if len(segs) >= 6 and segs[1].endswith(".git") and segs[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(repo_type, f"{segs[0]}/{segs[1][:-4]}", json.loads(body))
        if len(segs) >= 5 and segs[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(repo_type, f"{segs[0]}/{segs[1]}", segs[3], "/".join(segs[4:]))
        raise HubError(404, f"fake hub: no route for {method} {path}")

    def _get_repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.hub._repo(repo_id, repo_type)
        if repo is None or (repo.private and not self._authorized(False)):
            raise HubError(404, f"Repository Not Found for {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def _get_commit(self, repo: Repo, rev: str) -> Commit:
        c = repo.resolve(rev)
        if c is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return c

    def _create_repo(self, p: dict) -> None:
        self._authorized(True)
        repo_type = p.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"invalid repo type {repo_type}")
        repo_id = f"{p.get('organization') or USER}/{p['name']}"
        url = f"{self.hub.endpoint}/{URL_PREFIXES[repo_type]}{repo_id}"
        if self.hub.has_repo(repo_id, repo_type):  # the Hub's 409 also carries the url (exist_ok uses it)
            msg = f"You already created this {repo_type} repo: {repo_id}"
            return self._json({"error": msg, "url": url}, 409, {"X-Error-Message": msg})
        private = p.get("private") or p.get("visibility") == "private"
        self.hub.create_repo(repo_id, repo_type, bool(private))
        self._json({"url": url, "name": repo_id, "id": repo_id})

    def _api_repo(self, method: str, repo_type: str, repo_id: str, rest: list[str], body: bytes) -> None:
        hub = self.hub
        if not rest or rest[0] == "revision":
            if method not in ("GET", "HEAD"):
                raise HubError(405, "method not allowed")
            repo = self._get_repo(repo_type, repo_id)
            c = self._get_commit(repo, rest[1] if len(rest) > 1 else "main")
            return self._json({
                "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24], "id": repo_id,
                **({"modelId": repo_id} if repo_type == "model" else {}),
                "author": repo_id.split("/")[0], "sha": c.oid, "private": repo.private, "gated": False,
                "disabled": False, "downloads": 0, "likes": 0, "tags": [], "createdAt": repo.created,
                "lastModified": c.date, "siblings": [{"rfilename": p} for p in sorted(c.files)]})
        action, args = rest[0], rest[1:]
        if action == "tree" and method == "GET":
            repo = self._get_repo(repo_type, repo_id)
            c = self._get_commit(repo, args[0] if args else "main")
            recursive = self.record.query.get("recursive") in ("True", "true", "1")
            return self._json(self._tree(c, "/".join(args[1:]), recursive))
        if action in ("preupload", "commit", "super-squash") and method == "POST":
            self._authorized(True)
            repo = self._get_repo(repo_type, repo_id)
            rev = args[0] if args else "main"
            if self.record.query.get("create_pr"):
                raise HubError(501, "fake hub: create_pr is not supported")
            if action == "preupload":
                return self._preupload(repo, rev, json.loads(body))
            if action == "commit":
                return self._commit(repo, rev, body)
            with hub._lock:
                c = self._get_commit(repo, rev)
                msg = json.loads(body or b"{}").get("message", "super-squash")
                hub._new_commit(repo, rev, dict(c.files), (), msg, parent=None)
            return self._json({})
        if action.startswith("xet-"):
            raise HubError(501, "fake hub: xet storage is not supported; set HF_HUB_DISABLE_XET=1 "
                                "(in-process: huggingface_hub.constants.HF_HUB_DISABLE_XET = True)")
        raise HubError(404, f"fake hub: no route for {method} api/{repo_type}s/{repo_id}/{'/'.join(rest)}")

    def _tree(self, c: Commit, prefix: str, recursive: bool) -> list[dict]:
        prefix = prefix.strip("/")
        base = prefix + "/" if prefix else ""
        entries, dirs = [], set()
        for p, b in sorted(c.files.items()):
            if not p.startswith(base):
                continue
            rest = p[len(base):]
            if "/" in rest:
                parts = rest.split("/")
                for i in range(1, len(parts) if recursive else 2):
                    dirs.add(base + "/".join(parts[:i]))
                if not recursive:
                    continue
            e = {"type": "file", "oid": b.git_oid, "size": len(b.data), "path": p}
            if b.lfs:
                e["lfs"] = {"oid": b.sha256, "size": len(b.data), "pointerSize": 134}
            entries.append(e)
        if prefix and not entries and not dirs:
            raise HubError(404, f"{prefix} does not exist", "EntryNotFound")
        dir_entries = [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                       for d in sorted(dirs)]
        return dir_entries + entries

    def _preupload(self, repo: Repo, rev: str, p: dict) -> None:
        c = repo.resolve(rev)
        if c is None and repo.refs:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        out = []
        for f in p.get("files", []):
            sample = base64.b64decode(f.get("sample") or b"")
            lfs = self.hub._is_lfs(f["path"], int(f.get("size") or 0), sample)
            existing = c.files.get(f["path"]) if c else None
            oid = None
            if existing is not None:
                oid = existing.sha256 if lfs else existing.git_oid
            out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                        "oid": oid})
        self._json({"files": out, "commitOid": c.oid if c else None})

    def _lfs_batch(self, repo_type: str, repo_id: str, p: dict) -> None:
        self._authorized(True)
        self._get_repo(repo_type, repo_id)
        if p.get("operation") != "upload":
            raise HubError(400, "fake hub: only LFS uploads are supported")
        if "basic" not in p.get("transfers", ["basic"]):
            raise HubError(400, "fake hub: only the basic LFS transfer is supported")
        objs = []
        for o in p.get("objects", []):
            e = {"oid": o["oid"], "size": int(o["size"]), "authenticated": True}
            if o["oid"] not in self.hub.lfs_store:
                e["actions"] = {"upload": {"href": f"{self.hub.endpoint}/__lfs/upload/{o['oid']}", "header": {}},
                                "verify": {"href": f"{self.hub.endpoint}/__lfs/verify", "header": {}}}
            objs.append(e)
        self._json({"transfer": "basic", "objects": objs}, content_type="application/vnd.git-lfs+json")

    def _lfs_put(self, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"fake hub: uploaded content does not match sha256 {oid}")
        with self.hub._lock:
            self.hub.lfs_store[oid] = body
        self._send(200)

    def _commit(self, repo: Repo, rev: str, body: bytes) -> None:
        hub = self.hub
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((x["value"] for x in lines if x.get("key") == "header"), {})
        blobs, deletes = {}, []
        for item in lines:
            key, v = item.get("key"), item.get("value", {})
            if key == "file":
                if v.get("encoding", "base64") != "base64":
                    raise HubError(400, "fake hub: only base64 file content is supported")
                data = base64.b64decode(v["content"])
                blobs[v["path"]] = Blob(data, hub._is_lfs(v["path"], len(data), data[:512]))
            elif key == "lfsFile":
                data = hub.lfs_store.get(v["oid"])
                if data is None:
                    raise HubError(422, f"fake hub: LFS object {v['oid']} of {v['path']} was never uploaded")
                blobs[v["path"]] = Blob(data, True)
            elif key in ("deletedFile", "deletedFolder"):
                deletes.append(v["path"])
            elif key != "header":
                raise HubError(400, f"fake hub: unsupported commit operation {key!r}")
        with hub._lock:
            head = repo.refs.get(rev)
            if head is None and rev in repo.commits:
                raise HubError(400, "fake hub: cannot commit on a detached commit; use a branch")
            if head is None and repo.refs:
                raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            if header.get("parentCommit") and header["parentCommit"] != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            c = self.hub._new_commit(repo, rev, blobs, deletes, header.get("summary") or "commit")
        url = f"{hub.endpoint}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}/commit/{c.oid}"
        self._json({"success": True, "commitOid": c.oid, "commitUrl": url, "commitMessage": c.message,
                    "hookOutput": "", "pullRequestUrl": None})

    def _resolve(self, repo_type: str, repo_id: str, rev: str, filename: str) -> None:
        repo = self._get_repo(repo_type, repo_id)
        c = self._get_commit(repo, rev)
        blob = c.files.get(filename)
        if blob is None:
            raise HubError(404, f"Entry not found: {filename}", "EntryNotFound", {"X-Repo-Commit": c.oid})
        headers = {"X-Repo-Commit": c.oid, "Accept-Ranges": "bytes"}
        if blob.lfs:
            headers.update({"ETag": f'"{blob.sha256}"', "X-Linked-Etag": f'"{blob.sha256}"',
                            "X-Linked-Size": str(len(blob.data))})
            if self.hub.cdn_host:
                with self.hub._lock:
                    self.hub.lfs_store.setdefault(blob.sha256, blob.data)
                loc = f"http://{self.hub.cdn_host}:{self.hub.port}/__cdn/{blob.sha256}"
                return self._send(302, b"", {**headers, "Location": loc})
        else:
            headers["ETag"] = f'"{blob.git_oid}"'
        self._serve_content(self.record.path, blob.data, headers)

    def _serve_content(self, path: str, data: bytes, headers: dict) -> None:
        """A file body, with Range support and the truncate/corrupt faults applied."""
        method = self.command
        if method == "GET":
            for f in self.hub._take_faults("GET", path, ("corrupt",)):
                if data:
                    b = bytearray(data)
                    b[len(b) // 2] ^= 0xFF
                    data = bytes(b)
        status, start, end = 200, 0, len(data)
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].split(",")[0].partition("-")
            if a:
                start, end = int(a), (int(b) + 1 if b else len(data))
            elif b:
                start = max(0, len(data) - int(b))
            if start >= len(data) and len(data) > 0:
                raise HubError(416, "range not satisfiable")
            status = 206
            headers = {**headers, "Content-Range": f"bytes {start}-{max(end - 1, start)}/{len(data)}"}
        part = data[start:end]
        headers = {**headers, "Content-Type": "application/octet-stream", "Content-Length": str(len(part))}
        trunc = self.hub._take_faults("GET", path, ("truncate",)) if method == "GET" else []
        self.record.status = status
        self.send_response(status)
        if trunc and trunc[0].mode == "short":  # a consistent, but short, answer
            part = part[: int(len(part) * trunc[0].keep)]
            headers["Content-Length"] = str(len(part))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if method == "HEAD":
            return
        if trunc and trunc[0].mode == "drop":  # promise everything, send a part, hang up
            self.wfile.write(part[: int(len(part) * trunc[0].keep)])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(part)


# --------------------------------------------------------------- endpoints that never work

def closed_port_endpoint() -> str:
    """An endpoint on a loopback port where nothing listens (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@contextmanager
def silent_endpoint():
    """An endpoint that accepts TCP connections (kernel backlog) but never answers a byte."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    try:
        yield f"http://127.0.0.1:{s.getsockname()[1]}"
    finally:
        s.close()


# ------------------------------------------------------------------------------- fixtures

try:
    import pytest
except ImportError:  # pragma: no cover - the module also works outside pytest
    pytest = None

if pytest is not None:
    @pytest.fixture
    def fake_hub():
        """A running :class:`FakeHub`, stopped after the test."""
        with FakeHub() as hub:
            yield hub
        assert not hub.errors, "fake hub raised:\n" + "\n".join(hub.errors)

    @pytest.fixture
    def hub_env(fake_hub, tmp_path, monkeypatch):
        """Point ``huggingface_hub`` and ``sr.zoo`` at ``fake_hub``: temp cache, no token, xet off.

        Writes need a token (any value, unless ``fake_hub.tokens`` is set): pass ``token=...`` or
        set ``HF_TOKEN`` with monkeypatch.

        ``huggingface_hub.constants`` are read at import time, so the values that matter in-process
        are patched there too; the environment variables are set for subprocesses.
        """
        from huggingface_hub import constants

        for k, v in fake_hub.client_env(tmp_path).items():
            monkeypatch.setenv(k, v)
        for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
            monkeypatch.delenv(k, raising=False)
        home = tmp_path / "hf_home"
        monkeypatch.setattr(constants, "HF_HOME", str(home))
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
        monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        _reset_sr()
        yield fake_hub
        _reset_sr()

    def _reset_sr():
        try:
            from sr import zoo
        except ImportError:  # pragma: no cover
            return
        zoo.reload_registry()
        zoo.reset_hub_probe()
        zoo.clear_shared()
