"""The votes CSV: one locked, fsynced append per vote, a tolerant reader, optional Hub mirror.

File format: UTF-8 CSV, a header row, one row per vote::

    timestamp_utc,rater_id,item_id,image_id,method,score,seconds,app_version,study_id,role

``study_id`` names the study (:attr:`MosConfig.study_id`); ``role`` is ``rated``, or
``repeat`` for the hidden second showing of an item in the same session (a consistency
check, ITU-T P.808; not counted in the MOS). Files of the first version (the first eight
columns only) are still read, with ``study_id`` empty and ``role`` ``rated``.
``rater_id`` is random per rater session (no IP, no personal data). Cells that a spreadsheet
would run as a formula (starting with ``= + - @``, tab or CR) are written with a leading
``'``; the reader removes it again.

Writing: every row is encoded first and written with ONE ``write`` to a file opened with
``O_APPEND``, then ``fsync``-ed, while holding a process lock and a :class:`filelock.FileLock`
(``<votes>.lock``): threads, app processes and the CLI never interleave, lose or duplicate
a row. A writer that crashed mid-row leaves a line without its newline; the next writer
(holding the lock, so nobody else is writing) cuts that fragment off before appending, so a
crash loses at most the row that was being written, and the reader reports a damaged line
(any line that does not parse) instead of failing.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import secrets
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

OLD_COLUMNS = ("timestamp_utc", "rater_id", "item_id", "image_id", "method", "score", "seconds", "app_version")
COLUMNS = OLD_COLUMNS + ("study_id", "role")
OPTIONAL = {"study_id": "", "role": "rated"}  # columns a row may leave out (added in version 2)
HEADER = (",".join(COLUMNS) + "\n").encode()
OLD_HEADER = (",".join(OLD_COLUMNS) + "\n").encode()
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class StoreError(RuntimeError):
    """The votes file cannot be written (wrong columns, lock timeout, disk error)."""


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def escape_cell(value) -> str:
    s = "" if value is None else str(value)
    s = s.replace("\r", " ").replace("\n", " ")  # one physical line per row, always
    if s.startswith(_FORMULA_START):
        s = "'" + s
    return s


def unescape_cell(s: str) -> str:
    if len(s) > 1 and s[0] == "'" and s[1] in _FORMULA_START:
        return s[1:]
    return s


def format_row(row: dict) -> bytes:
    missing = [c for c in COLUMNS if c not in row and c not in OPTIONAL]
    if missing:
        raise ValueError(f"vote row lacks {missing}")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([escape_cell(row.get(c, OPTIONAL.get(c))) for c in COLUMNS])
    return buf.getvalue().encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class VoteStore:
    """Append-only votes CSV shared by threads and processes."""

    _locks_guard = threading.Lock()
    _thread_locks: dict[str, threading.Lock] = {}

    def __init__(self, path: str | Path, extra_lock=None, lock_timeout: float = 30.0):
        self.path = Path(path)
        self.extra_lock = extra_lock  # e.g. a CommitScheduler's lock: no upload of a half row
        self.lock_timeout = lock_timeout
        key = str(self.path.resolve())
        with self._locks_guard:
            self._tlock = self._thread_locks.setdefault(key, threading.Lock())
        self._header_ok = False

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def append(self, row: dict) -> None:
        """Write one vote row (dict with :data:`COLUMNS`) durably, or raise :class:`StoreError`."""
        from filelock import FileLock, Timeout

        data = format_row(row)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._tlock, FileLock(str(self.lock_path), timeout=self.lock_timeout), \
                    (self.extra_lock or nullcontext()):
                self._append_locked(data)
        except Timeout:
            raise StoreError(f"could not lock {self.lock_path} within {self.lock_timeout} s") from None
        except OSError as exc:
            raise StoreError(f"could not write {self.path}: {exc}") from None

    def _append_locked(self, data: bytes) -> None:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                data = HEADER + data
            else:
                if os.pread(fd, 1, size - 1) != b"\n":
                    size = self._cut_fragment(fd, size)
                    if size == 0:
                        data = HEADER + data
                if size and not self._header_ok:
                    head = os.pread(fd, len(HEADER), 0)
                    if head != HEADER:
                        raise StoreError(f"{self.path} is not a votes file of this version "
                                         f"(header {head[:80]!r}); use another SR_MOS_VOTES path")
                    self._header_ok = True
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            try:  # make the new directory entry durable too
                dfd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
            except OSError:
                pass

    def _cut_fragment(self, fd: int, size: int) -> int:
        """Drop a trailing partial row (left by a crashed writer); returns the new size."""
        pos = size
        while pos > 0:
            start = max(0, pos - 65536)
            chunk = os.pread(fd, pos - start, start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                pos = start + i + 1
                break
            pos = start
        log.warning("votes file %s: removed a damaged trailing fragment of %d bytes", self.path, size - pos)
        os.ftruncate(fd, pos)
        return pos


_stores_lock = threading.Lock()
_stores: dict[str, VoteStore] = {}


def get_store(path: str | Path) -> VoteStore:
    key = str(Path(path).resolve())
    with _stores_lock:
        if key not in _stores:
            _stores[key] = VoteStore(path)
        return _stores[key]


# ----------------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class Vote:
    timestamp: str
    rater_id: str
    item_id: str
    image_id: str
    method: str
    score: int
    seconds: float
    app_version: str
    study_id: str = ""
    role: str = "rated"  # "rated" | "repeat"

    @property
    def time(self) -> float:
        """POSIX seconds of the timestamp."""
        return parse_time(self.timestamp)


def parse_time(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@dataclass
class ReadResult:
    votes: list[Vote] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    duplicates: int = 0


def _parse_line(line: str, columns=COLUMNS) -> Vote:
    fields = next(csv.reader([line]))
    if len(fields) != len(columns):
        raise ValueError(f"{len(fields)} fields instead of {len(columns)}")
    d = dict(OPTIONAL)
    d.update(zip(columns, (unescape_cell(f) for f in fields)))
    if d["role"] not in ("rated", "repeat"):
        raise ValueError(f"role {d['role'][:20]!r} is not rated/repeat")
    if d["score"] not in ("1", "2", "3", "4", "5"):
        raise ValueError(f"score {d['score'][:20]!r} is not 1..5")
    seconds = float(d["seconds"])
    if not seconds >= 0:
        raise ValueError("negative or NaN time taken")
    parse_time(d["timestamp_utc"])
    for k in ("rater_id", "item_id", "image_id", "method"):
        if not d[k]:
            raise ValueError(f"empty {k}")
    return Vote(d["timestamp_utc"], d["rater_id"], d["item_id"], d["image_id"], d["method"],
                int(d["score"]), seconds, d["app_version"], d["study_id"], d["role"])


def _expand(paths) -> list[Path]:
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*.csv") if q.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"no such votes file or folder: {p}")
    return out


def read_votes(paths) -> ReadResult:
    """Read one or more votes CSVs (files or folders of ``*.csv``, e.g. a mirrored dataset).

    Damaged or invalid lines are skipped and reported in ``problems`` (never an exception);
    a vote present in several files (same rater, item and role: a rater rates an item once,
    plus once more if it is the session's hidden repeat) is counted once.
    """
    res = ReadResult()
    seen: set[tuple[str, str, str]] = set()
    for path in _expand(paths):
        data = path.read_bytes()
        if not data:
            continue
        res.files.append(path)
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        head = lines[0].rstrip(b"\r") + b"\n" if lines else b""
        columns = COLUMNS if head == HEADER else OLD_COLUMNS
        if lines and head not in (HEADER, OLD_HEADER):
            res.problems.append(f"{path}: not a votes file (header {lines[0][:80]!r}); skipped")
            continue
        if not lines:
            res.problems.append(f"{path}: damaged header line; skipped")
            continue
        for n, raw in enumerate(lines[1:], start=2):
            if not raw.strip():
                continue
            try:
                vote = _parse_line(raw.rstrip(b"\r").decode("utf-8"), columns)
            except (ValueError, UnicodeDecodeError, StopIteration, csv.Error) as exc:
                res.problems.append(f"{path}:{n}: damaged line skipped ({exc})")
                continue
            key = (vote.rater_id, vote.item_id, vote.role)
            if key in seen:
                res.duplicates += 1
                continue
            seen.add(key)
            res.votes.append(vote)
        if tail:
            res.problems.append(f"{path}:{len(lines) + 1}: damaged trailing line skipped "
                                f"({len(tail)} bytes without a newline: a write was interrupted)")
    return res


# ----------------------------------------------------------------------------------- mirror

_mirror_lock = threading.Lock()
_mirrors: dict[str, object] = {}


def start_mirror(votes: str | Path, repo_id: str | None, every: float = 5.0, token: str | None = None):
    """Mirror the votes CSV to a Hugging Face dataset repo with ``CommitScheduler``.

    Each process start writes to its own folder ``votes/<UTC time>-<random>/`` of the repo (a
    Space's disk is wiped on restart, so a fresh file must never overwrite an older one); the
    reader merges folders and drops duplicates. Only the votes file is uploaded. Appends and
    the scheduler's snapshot share the scheduler's lock, so no half row is ever uploaded.
    Returns the scheduler, or ``None`` (not configured, or the Hub is unreachable: voting
    goes on locally, with a warning in the log).
    """
    if not repo_id:
        return None
    votes = Path(votes)
    key = str(votes.resolve())
    with _mirror_lock:
        if key in _mirrors:
            return _mirrors[key]
        try:
            from huggingface_hub import CommitScheduler, HfApi

            api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None,
                        token=token or os.environ.get("HF_TOKEN") or None)
            instance = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)
            votes.parent.mkdir(parents=True, exist_ok=True)
            sched = CommitScheduler(repo_id=repo_id, repo_type="dataset", folder_path=votes.parent,
                                    every=every, path_in_repo=f"votes/{instance}",
                                    allow_patterns=[votes.name], private=True, hf_api=api)
        except Exception as exc:  # the study must run without the Hub
            log.warning("MOS votes will not be mirrored to %s: %s: %s", repo_id, type(exc).__name__, exc)
            return None
        get_store(votes).extra_lock = sched.lock
        _mirrors[key] = sched
        return sched
