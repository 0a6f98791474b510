"""A pool out of the box: build the study's pool in the background when there is none.

At app start :func:`ensure_pool` looks for a pool at ``cfg.pool``; if there is none and
``cfg.auto_build`` is on, a daemon thread builds one from ``cfg.hr_dir`` (default: the HR
crops shipped in ``examples/mos_hr``) with the study's methods (``cfg.methods``; learned
models without weights are skipped) and crop. Meanwhile the rating tab says the study is
being prepared; the pool is picked up by :func:`sr.mos.pool.get_pool` as soon as its manifest
exists (the manifest is written last, atomically), with no restart. One build at a time per
pool folder, also across processes (a file lock). Errors go to the server log only.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from .config import MosConfig
from .pool import LOW_ANCHOR, REFERENCE, PoolMissing, build_pool, get_pool

log = logging.getLogger(__name__)


@dataclass
class BuildState:
    state: str = "idle"  # "idle" | "building" | "ready" | "failed" | "off"
    detail: str = ""  # server-side only (may name paths): never shown to a rater


_lock = threading.Lock()
_states: dict[str, BuildState] = {}


def available_methods(methods) -> list[str]:
    """The study's methods that can run here (learned models need their weights)."""
    from .. import zoo

    out = []
    for m in methods:
        if m == REFERENCE:
            continue
        try:
            e = zoo.get_entry(m)
            if e.kind not in ("baseline", "generator"):
                raise zoo.ZooError(f"{m} is a {e.kind}")
            if e.learned:
                zoo.resolve(m)
        except Exception as exc:  # unknown id, no weights: skip (logged)
            log.warning("MOS pool: method %s skipped: %s", m, exc)
            continue
        out.append(m)
    if LOW_ANCHOR not in out:
        out.insert(0, LOW_ANCHOR)
    return out


def build_now(cfg: MosConfig, state: BuildState | None = None) -> BuildState:
    """Build ``cfg.pool`` from ``cfg.hr_dir`` in this thread (unless another process is at it)."""
    from filelock import FileLock, Timeout

    state = state or BuildState()
    cfg.pool.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(cfg.pool.parent / f".{cfg.pool.name}.build.lock"), timeout=0)
    try:
        with lock:
            try:
                get_pool(cfg.pool)
                state.state, state.detail = "ready", "found"
                return state
            except PoolMissing:
                pass
            state.state = "building"
            models = available_methods(cfg.methods)
            _build_on_gpu(cfg)(cfg.hr_dir, cfg.pool, models=models, crop=cfg.crop, force=True, study_id=cfg.study_id,
                       log=_log_progress)
            get_pool(cfg.pool)
            state.state, state.detail = "ready", "built"
    except Timeout:
        state.state, state.detail = "building", "another process is building the pool"
    except Exception as exc:
        state.state, state.detail = "failed", f"{type(exc).__name__}: {exc}"
        log.exception("MOS pool could not be built from %s", cfg.hr_dir)
    return state


def _log_progress(msg: str) -> None:  # a module function: picklable (ZeroGPU sends the arguments)
    log.info("MOS pool: %s", msg)


def _build_on_gpu(cfg: MosConfig):
    """:func:`build_pool`, with a GPU lent for it on ZeroGPU (sized to the pool; see sr.app.gpu)."""
    from ..app.gpu import on_gpu, pool_seconds

    return on_gpu(lambda *a, **k: pool_seconds(cfg))(build_pool)


def ensure_pool(cfg: MosConfig, background: bool = True) -> BuildState:
    """The pool's state; starts a background build when there is no pool (once per folder)."""
    key = str(Path(cfg.pool).resolve())
    with _lock:
        st = _states.get(key)
        if st is not None and st.state in ("building", "ready"):
            return st
        try:
            get_pool(cfg.pool)
            st = _states[key] = BuildState("ready", "found")
            return st
        except PoolMissing:
            pass
        if not cfg.auto_build or not Path(cfg.hr_dir).is_dir():
            st = _states[key] = BuildState("off", f"no pool and no auto-build (hr_dir={cfg.hr_dir})")
            return st
        if st is not None and st.state == "failed":
            return st  # do not retry in a loop; a restart retries
        st = _states[key] = BuildState("building", "started")
    if background:
        threading.Thread(target=build_now, args=(cfg, st), name="mos-pool-build", daemon=True).start()
    else:
        build_now(cfg, st)
    return st


def pool_state(cfg: MosConfig) -> str:
    """``ready`` | ``building`` | ``failed`` | ``off`` (starts nothing; a pool found counts as ready)."""
    try:
        get_pool(cfg.pool)
        return "ready"
    except PoolMissing:
        st = _states.get(str(Path(cfg.pool).resolve()))
        if st is None or st.state == "ready":
            return "off"
        return st.state
