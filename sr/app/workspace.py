"""Per-run temporary folders: created per session, deleted with it or after a while."""
from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

from ..settings import settings
from .inputs import safe_stem


def tmp_root() -> Path:
    """Folder of the per-run folders (``SR_APP_TMP``, default ``$TMPDIR/sr-app``)."""
    return settings().app_tmp_path

def new_run_dir(session: str | None = None) -> Path:
    d = tmp_root() / (safe_stem(session or "") if session else "nosession") / uuid.uuid4().hex[:12]
    d.mkdir(parents=True, exist_ok=False)
    return d

def _is_run_dir(path: Path) -> bool:
    try:
        path.resolve().relative_to(tmp_root().resolve())
    except ValueError:
        return False
    return path.resolve() != tmp_root().resolve()

def cleanup_state(state: dict | None) -> None:
    """Delete a run's folder (the ``gr.State`` delete callback and before a new run)."""
    if isinstance(state, dict) and state.get("run_dir"):
        d = Path(state["run_dir"])
        if d.is_dir() and _is_run_dir(d):
            shutil.rmtree(d, ignore_errors=True)
            try:
                d.parent.rmdir()  # the session folder, if now empty
            except OSError:
                pass

def sweep_old(max_age_s: float = 6 * 3600, now: float | None = None) -> int:
    """Delete run folders older than ``max_age_s`` (left over by closed sessions or a crash)."""
    root = tmp_root()
    now = time.time() if now is None else now
    removed = 0
    if not root.is_dir():
        return 0
    for sess in root.iterdir():
        if not sess.is_dir():
            continue
        for run in sess.iterdir():
            try:
                if now - run.stat().st_mtime > max_age_s:
                    shutil.rmtree(run, ignore_errors=True) if run.is_dir() else run.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        try:
            sess.rmdir()
        except OSError:
            pass
    return removed
