"""User errors and the one wrapper every Gradio handler uses: the app keeps serving."""
from __future__ import annotations

import functools
import logging

log = logging.getLogger("sr.app")


class AppError(ValueError):
    """A problem with what the user asked for; the message is shown to the user."""


def user_errors(fn):
    """Turn errors into a message for the user (``gr.Error``); the app keeps serving."""
    import gradio as gr

    from .. import imio, zoo

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (AppError, imio.ImageError, zoo.ZooError) as exc:
            raise gr.Error(str(exc), title="Cannot do that", print_exception=False) from None
        except MemoryError:
            raise gr.Error("Out of memory: try a smaller image or a smaller tile size.",
                           print_exception=False) from None
        except Exception as exc:
            log.exception("%s failed", fn.__name__)
            raise gr.Error(f"Unexpected error ({type(exc).__name__}: {exc}). The app is still running; "
                           "try another image or setting.") from None

    return wrapper
