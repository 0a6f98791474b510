"""One wrapper for every Gradio handler: user errors become ``gr.Error``; the app keeps serving.

A refusal (bad input, bad event data, a limit) is one line to the client and at most one line
in the log per handler and kind every :data:`LOG_INTERVAL_S` seconds (the rest are counted).
An unexpected error never sends exception text to the client; its traceback is logged once
per handler and exception type per :data:`TRACEBACK_INTERVAL_S`, otherwise one line.
Images read inside a handler are held to the app's decoding limits (:func:`sr.imio.app_limits`).
"""
from __future__ import annotations

import functools
import logging
import math
import threading
import time
import uuid

log = logging.getLogger("sr.app")

LOG_INTERVAL_S = 10.0
TRACEBACK_INTERVAL_S = 600.0
MAX_CLICK = 10**6  # preview pixels: anything larger is not a click on an image


class EventDataError(ValueError):
    """Event data (``gr.SelectData`` ...) that a browser would not send; the message is for the user."""


class _Limiter:
    def __init__(self):
        self.last: dict = {}
        self.count: dict = {}
        self.lock = threading.Lock()

    def allow(self, key, interval: float) -> tuple[bool, int]:
        """(whether to log now, how many were suppressed since the last line)."""
        now = time.monotonic()
        with self.lock:
            if now - self.last.get(key, -1e18) < interval:
                self.count[key] = self.count.get(key, 0) + 1
                return False, 0
            self.last[key] = now
            return True, self.count.pop(key, 0)


_limiter = _Limiter()


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text[:limit] + ("…" if len(text) > limit else "")


def log_refusal(handler: str, kind: str, message: str) -> None:
    ok, suppressed = _limiter.allow((handler, kind), LOG_INTERVAL_S)
    if ok:
        more = f" (+{suppressed} similar)" if suppressed else ""
        log.info("%s refused (%s): %s%s", handler, kind, _one_line(message, 200), more)


def click_xy(evt) -> tuple[float, float]:
    """The (x, y) of a click (``gr.SelectData.index``), validated: two finite numbers in
    [0, :data:`MAX_CLICK`]. Raises :class:`EventDataError` otherwise."""
    idx = getattr(evt, "index", None)
    if not isinstance(idx, (list, tuple)) or len(idx) != 2:
        raise EventDataError("That click could not be read; click on the image again.")
    out = []
    for v in idx:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= MAX_CLICK:
            raise EventDataError("That click could not be read; click on the image again.")
        out.append(float(v))
    return out[0], out[1]


class AppError(ValueError):
    """A problem with what the user asked for; the message is shown to the user."""


def user_errors(fn):
    """Turn errors into a message for the user (``gr.Error``); the app keeps serving."""
    import gradio as gr

    from .. import imio, zoo
    from ..device import DeviceError
    from .disk_quota import QuotaError

    name = getattr(fn, "__name__", "handler")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with imio.decode_limits(**imio.app_limits()):
                return fn(*args, **kwargs)
        except gr.Error as exc:
            log_refusal(name, "gr.Error", getattr(exc, "message", str(exc)))
            raise
        except (AppError, imio.ImageError, zoo.ZooError, EventDataError, QuotaError, DeviceError) as exc:
            msg = _one_line(exc, 500)
            log_refusal(name, type(exc).__name__, msg)
            raise gr.Error(msg, title="Cannot do that", print_exception=False) from None
        except MemoryError:
            log_refusal(name, "MemoryError", "out of memory")
            raise gr.Error("Out of memory: try a smaller image or a smaller tile size.",
                           print_exception=False) from None
        except Exception as exc:
            ref = uuid.uuid4().hex[:8]
            ok, suppressed = _limiter.allow((name, "tb", type(exc).__name__), TRACEBACK_INTERVAL_S)
            if ok:
                log.error("%s failed (ref %s)%s", name, ref,
                          f" (+{suppressed} similar)" if suppressed else "", exc_info=True)
            else:
                log_refusal(name, f"error {type(exc).__name__}", f"ref {ref}")
            raise gr.Error(f"Unexpected error (reference {ref}). The app is still running; "
                           "try another image or setting.", print_exception=False) from None

    return wrapper
