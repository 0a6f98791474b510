"""Who may start a rating session (``SR_MOS_ACCESS``), with nothing personal stored.

* ``open`` (default): anyone; a client (keyed hash of its IP address and user agent, kept in
  memory only and never written anywhere) may start at most ``sessions_per_hour`` sessions in
  any hour. (The study-wide cap on votes per minute is in :class:`sr.mos.session.Study`.)
* ``invite``: ``python -m sr mos invite --n N`` prints N one-time tokens; only their salted
  SHA-256 hashes are kept (in ``access_file``). Starting a session uses the token up: a token
  starts one session, once.
* ``hf-login``: the rater signs in with a Hugging Face account (``gr.LoginButton``); only a
  salted hash of the account name is kept, and each account starts one session per study.

The access file (JSON, written atomically under a file lock) holds the salt, the token hashes
with the study each one was used in, and per study the hashes of accounts that took part.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import deque
from pathlib import Path

TOO_MANY_SESSIONS = ("This browser has started {n} rating sessions in the last hour, the most allowed; "
                     "thank you, please come back later.")
NEED_TOKEN = "This study is by invitation: enter your invitation code, then press \u201cStart\u201d."
BAD_TOKEN = "This invitation code is not valid or has already been used."
NEED_LOGIN = "Sign in with your Hugging Face account first, then press \u201cStart\u201d."
ALREADY_TOOK_PART = "You have already taken part in this study; thank you!"


class AccessDenied(Exception):
    """A session that may not start; ``str(exc)`` is the one-line message for the rater."""


def salted_hash(salt: str, kind: str, value: str) -> str:
    return hashlib.sha256(f"{salt}\0{kind}\0{value}".encode("utf-8")).hexdigest()


class ClientLimiter:
    """At most ``limit`` events per key in a sliding ``window`` (seconds); memory only."""

    def __init__(self, limit: int, window: float = 3600.0):
        self.limit, self.window = limit, window
        self._secret = secrets.token_bytes(32)  # fingerprints are unlinkable across restarts
        self._lock = threading.Lock()
        self._events: dict[str, deque[float]] = {}

    def fingerprint(self, ip: str | None, user_agent: str | None) -> str:
        msg = f"{ip or ''}\0{(user_agent or '')[:512]}".encode("utf-8", "replace")
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Count one event for ``key`` if it is under the limit; ``False`` (nothing counted) if not."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for k in [k for k, q in self._events.items() if q and now - q[-1] > self.window]:
                del self._events[k]  # forget idle clients
            q = self._events.setdefault(key, deque())
            while q and now - q[0] > self.window:
                q.popleft()
            if len(q) >= self.limit:
                return False
            q.append(now)
            return True


class AccessFile:
    """The salted hashes of invite tokens and of accounts that took part (one JSON file)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._tlock = threading.Lock()

    def _locked(self):
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path.with_name(self.path.name + ".lock")), timeout=30)

    def _read(self) -> dict:
        try:
            d = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            d = {}
        d.setdefault("salt", secrets.token_hex(16))
        d.setdefault("tokens", {})
        d.setdefault("accounts", {})
        return d

    def _write(self, d: dict) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(d, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def create_tokens(self, n: int, study_id: str) -> list[str]:
        """``n`` new one-time tokens for ``study_id``; only their salted hashes are stored."""
        if n < 1:
            raise ValueError("--n must be at least 1")
        tokens = [secrets.token_urlsafe(12) for _ in range(n)]
        with self._tlock, self._locked():
            d = self._read()
            for t in tokens:
                d["tokens"][salted_hash(d["salt"], "token", t)] = {"study": study_id, "used": None}
            self._write(d)
        return tokens

    def use_token(self, token, study_id: str) -> str:
        """Mark the token used; returns its hash (the rater key) or raises :class:`AccessDenied`."""
        if not isinstance(token, str) or not token.strip():
            raise AccessDenied(NEED_TOKEN)
        token = token.strip()
        if len(token) > 64:
            raise AccessDenied(BAD_TOKEN)
        with self._tlock, self._locked():
            d = self._read()
            key = salted_hash(d["salt"], "token", token)
            entry = d["tokens"].get(key)
            if entry is None or entry.get("used") or entry.get("study") != study_id:
                raise AccessDenied(BAD_TOKEN)
            entry["used"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self._write(d)
        return key

    def use_account(self, account, study_id: str) -> str:
        """Record that an account takes part in ``study_id`` (once); returns its salted hash."""
        if not isinstance(account, str) or not account.strip():
            raise AccessDenied(NEED_LOGIN)
        with self._tlock, self._locked():
            d = self._read()
            key = salted_hash(d["salt"], "account", account.strip().lower())
            seen = d["accounts"].setdefault(study_id, [])
            if key in seen:
                raise AccessDenied(ALREADY_TOOK_PART)
            seen.append(key)
            self._write(d)
        return key


class Gate:
    """Admission to a study under ``cfg.access``: one object per app (holds the open-mode limiter)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.limiter = ClientLimiter(cfg.sessions_per_hour, 3600.0)
        self.file = AccessFile(cfg.access_file)

    def admit(self, *, ip: str | None = None, user_agent: str | None = None, token=None,
              account: str | None = None) -> str | None:
        """The rater key to record with the session (``None`` in open mode), or :class:`AccessDenied`."""
        mode = self.cfg.access
        if mode == "invite":
            return self.file.use_token(token, self.cfg.study_id)
        if mode == "hf-login":
            return self.file.use_account(account, self.cfg.study_id)
        if not self.limiter.allow(self.limiter.fingerprint(ip, user_agent)):
            raise AccessDenied(TOO_MANY_SESSIONS.format(n=self.cfg.sessions_per_hour))
        return None
