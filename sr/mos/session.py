"""Rater sessions and server-side vote validation (no Gradio here: unit-testable).

A :class:`Session` lives in the rater's ``gr.State`` (server side); the browser only ever sees
pixels and *public* ids: random per session and per showing, mapped to the pool's item ids
only on the server (the same item has a different id in every session). A session plans
``items`` distinct items at start (balanced across methods, see
:meth:`sr.mos.pool.Pool.plan`) plus, with ``repeat``, one hidden second showing of one of them
at least three images later (consistency check, ITU-T P.808), serves them one at a time
(asking again returns the same pending item: no skipping to pick items), and accepts exactly
one vote per showing. A vote is rejected, with a message and without being stored, when:

* there is no session (never started in this browser tab), it has expired (idle longer than
  ``session_timeout``) or it was closed after ``max_rejects`` rejected votes;
* the item was not served to this session, or has been rated already (replay);
* the score is not an integer 1..5 (``"5"`` as text is accepted, ``"5; DROP"`` is not);
* it comes less than ``min_seconds`` after the item was shown (rate limit against scripts);
* the study already accepted ``votes_per_minute`` votes in the last minute (study-wide cap;
  not counted as a rejected vote: the item stays pending).
"""
from __future__ import annotations

import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .config import MosConfig
from .pool import Item, Pool, get_pool
from .store import StoreError, get_store, start_mirror, utc_now

NO_SESSION = "No rating session in this browser tab: press \u201cStart\u201d first."
EXPIRED = "This rating session has expired; press \u201cStart\u201d to begin a new one."
CLOSED = "This rating session was closed after too many rejected ratings; press \u201cStart\u201d to begin again."
NOT_SERVED = "That image was not shown in this session; rate the image on the screen."
ALREADY = "That image has already been rated."
BAD_SCORE = "A rating must be a whole number from 1 (Bad) to 5 (Excellent)."
NOT_SAVED = "Your rating could not be saved; please press Submit again."
POOL_CHANGED = "The set of images changed on the server; press \u201cStart\u201d to begin a new session."
BUSY = "The study is receiving very many ratings right now; please wait a minute, then submit again."


def too_fast(seconds: float) -> str:
    return f"Please look at each image for at least {seconds:g} s before rating it."


class VoteRejected(Exception):
    """A vote that is not stored; ``str(exc)`` is the message for the rater."""


def parse_score(value) -> int:
    """An integer 1..5 (int, or a string of exactly one digit 1-5), else :class:`VoteRejected`."""
    if isinstance(value, bool):
        raise VoteRejected(BAD_SCORE)
    if isinstance(value, (int, np.integer)) and 1 <= int(value) <= 5:
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[1-5]", value):
        return int(value)
    raise VoteRejected(BAD_SCORE)


def add_repeat(plan: list[str], rng: np.random.Generator, gap: int = 3) -> tuple[list[str], int | None]:
    """``plan`` with one item shown a second time, at least ``gap`` showings after the first.

    Returns the new plan and the index of the repeat (``None`` if the plan is too short)."""
    if len(plan) < 2:
        return list(plan), None
    gap = min(gap, len(plan))
    first = int(rng.integers(0, len(plan) - gap + 1))
    at = int(rng.integers(first + gap, len(plan) + 1))
    return plan[:at] + [plan[first]] + plan[at:], at


@dataclass(eq=False)
class Session:
    rater_id: str
    pool: Pool
    plan: list[str]  # pool item ids, in showing order (the repeat appears twice)
    started: float
    last_active: float
    repeat_at: int | None = None  # index in plan of the hidden second showing
    public: list[str] = field(default_factory=list)  # per showing: the id the client sees
    served: dict[str, float] = field(default_factory=dict)  # public id -> monotonic time shown
    rated: set[str] = field(default_factory=set)  # public ids
    pending: str | None = None
    rejects: int = 0
    closed: str | None = None
    rater_key: str | None = None  # hashed invite token / account (invite and hf-login modes)

    def __post_init__(self):
        if not self.public:
            ids: set[str] = set()
            while len(ids) < len(self.plan):
                ids.add(secrets.token_hex(8))
            self.public = list(ids)
        self._slot = {p: k for k, p in enumerate(self.public)}

    def item_of(self, public_id: str) -> str:
        """The pool item id behind a public id of this session (KeyError if none)."""
        return self.plan[self._slot[public_id]]

    def role_of(self, public_id: str) -> str:
        return "repeat" if self._slot[public_id] == self.repeat_at else "rated"

    @property
    def phase(self) -> str:
        if self.closed:
            return "closed"
        if not self.served:
            return "calibration"
        if len(self.rated) >= len(self.plan):
            return "done"
        return "rating"

    def progress(self) -> str:
        n = len(self.plan)
        if self.pending is not None:
            return f"Image {len(self.rated) + 1} of {n}"
        return f"{len(self.rated)} of {n} images rated"

    def __deepcopy__(self, memo):  # never copied: one live object per rater
        return self


class Study:
    """One per (pool, votes file) and process: shared pool, store and served counts."""

    def __init__(self, cfg: MosConfig):
        self.cfg = cfg
        self.store = get_store(cfg.votes)
        self._lock = threading.Lock()
        self._served: dict[str, int] = {}
        self._rng = np.random.default_rng(secrets.randbits(128))
        self._mirror_started = False
        self._recent_votes: deque[float] = deque()  # monotonic times of accepted votes, last minute

    @property
    def pool(self) -> Pool:
        return get_pool(self.cfg.pool)  # PoolMissing (a FileNotFoundError) if there is none

    def ensure_mirror(self) -> None:
        """Start mirroring the votes to ``cfg.hf_repo`` (once; a no-op when not configured)."""
        with self._lock:
            if self._mirror_started or not self.cfg.hf_repo:
                return
            self._mirror_started = True
        start_mirror(self.cfg.votes, self.cfg.hf_repo, self.cfg.hf_every)

    # -- sessions
    def start(self, rater_key: str | None = None) -> tuple[Session, tuple[Item, Item] | None]:
        """A new session and the calibration pair (low anchor, high anchor) to show first."""
        pool = self.pool
        now = time.monotonic()
        with self._lock:
            plan = pool.plan(self.cfg.items, self._rng, self._served)
            for i in plan:
                self._served[i] = self._served.get(i, 0) + 1
            repeat_at = None
            if self.cfg.repeat:
                plan, repeat_at = add_repeat(plan, self._rng)
            cal = pool.calibration[int(self._rng.integers(len(pool.calibration)))] if pool.calibration else None
        return Session(secrets.token_hex(8), pool, plan, now, now, repeat_at, rater_key=rater_key), cal

    def _check(self, session, now: float) -> Session:
        if not isinstance(session, Session):
            raise VoteRejected(NO_SESSION)
        if session.closed:
            raise VoteRejected(session.closed)
        if now - session.last_active > self.cfg.session_timeout:
            session.closed = EXPIRED
            raise VoteRejected(EXPIRED)
        return session

    def next_item(self, session) -> str | None:
        """The pending item (shown again), else the next planned one; ``None`` when done."""
        now = time.monotonic()
        with self._lock:
            s = self._check(session, now)
            if s.pending is not None:
                return s.pending
            for item_id, public in zip(s.plan, s.public):
                if public not in s.served:
                    if item_id not in s.pool.items:
                        s.closed = POOL_CHANGED
                        raise VoteRejected(POOL_CHANGED)
                    s.served[public] = now
                    s.pending = public
                    s.last_active = now
                    return public
            return None

    def vote(self, session, item_id, score) -> dict:
        """Validate and store one vote for the showing ``item_id`` (a public id of the session);
        returns the stored row or raises :class:`VoteRejected`."""
        now = time.monotonic()
        with self._lock:
            s = self._check(session, now)
            while self._recent_votes and now - self._recent_votes[0] > 60.0:
                self._recent_votes.popleft()
            try:
                value = parse_score(score)
                if not isinstance(item_id, str) or len(item_id) > 64 or item_id not in s.served:
                    raise VoteRejected(NOT_SERVED)
                if item_id in s.rated:
                    raise VoteRejected(ALREADY)
                if item_id != s.pending:
                    raise VoteRejected(NOT_SERVED)
                waited = now - s.served[item_id]
                if waited < self.cfg.min_seconds:
                    raise VoteRejected(too_fast(self.cfg.min_seconds))
            except VoteRejected:
                s.rejects += 1
                if s.rejects >= self.cfg.max_rejects:
                    s.closed = CLOSED
                raise
            if len(self._recent_votes) >= self.cfg.votes_per_minute:
                raise VoteRejected(BUSY)  # the study's cap, not this rater's fault: no reject counted
            self._recent_votes.append(now)
            s.rated.add(item_id)
            s.pending = None
            s.last_active = now
        item = s.pool.items[s.item_of(item_id)]
        from .. import __version__

        row = {"timestamp_utc": utc_now(), "rater_id": s.rater_id, "item_id": item.item_id,
               "image_id": item.image_id, "method": item.method, "score": value,
               "seconds": f"{waited:.3f}", "app_version": __version__, "study_id": self.cfg.study_id,
               "role": s.role_of(item_id)}
        try:
            self.store.append(row)
        except (StoreError, OSError) as exc:
            with self._lock:
                s.rated.discard(item_id)
                s.pending = item_id
            raise VoteRejected(NOT_SAVED) from exc
        return row


_studies_lock = threading.Lock()
_studies: dict[MosConfig, Study] = {}


def get_study(cfg: MosConfig) -> Study:
    with _studies_lock:
        if cfg not in _studies:
            _studies[cfg] = Study(cfg)
        return _studies[cfg]
