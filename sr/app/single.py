"""Single-model upscaling and the upload preview."""
from __future__ import annotations

import shutil
import time

from .. import imio, zoo
from ..display import Stretch, save_preview, save_view
from ..tiling import DEFAULT_TILE
from .comparison import _lossless_suffix
from .runstate import _fmt_time
from .config import LOSSLESS_NOTE, MODE_LR, Progress
from .errors import AppError
from .inputs import describe_image, output_size, read_input
from .workspace import new_run_dir


def upscale_file(path, model_id: str, *, tile: int | None = DEFAULT_TILE, session: str | None = None,
                 progress: Progress | None = None) -> dict:
    """Upscale one image with one model: ``{"file": lossless result, "view": png, "message"}``."""
    from .. import api

    if not model_id:
        raise AppError("Choose a model.")
    entry = zoo.get_entry(model_id)
    if not entry.upscales:
        raise AppError(f"{model_id!r} is not a super-resolution model.")
    if not entry.available:
        raise AppError(f"Model {model_id!r} is not trained yet (no weights pinned); choose another.")
    a, info, name = read_input(path)
    output_size(a, MODE_LR)
    run_dir = new_run_dir(session)
    try:
        if entry.kind == "generator":
            api.fast_model(model_id)
        t0 = time.perf_counter()
        out = api.upscale(a, model_id, tile=int(tile) if tile else None,
                          progress=(lambda d, t: progress(d / max(t, 1), f"tile {d}/{t}")) if progress else None)
        dt = time.perf_counter() - t0
        f = run_dir / f"{name}_{model_id}_x4{_lossless_suffix(info, out)}"
        imio.write_image(f, out, info)
        view = save_view(run_dir / f"view_{model_id}.png", Stretch.of(a).apply(out))
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    msg = (f"**{entry.title}**: {a.shape[1]}x{a.shape[0]} -> {out.shape[1]}x{out.shape[0]} px, {out.dtype}, "
           f"in {_fmt_time(dt)}. Download: `{f.name}` (lossless; {LOSSLESS_NOTE}).")
    return {"file": str(f), "view": str(view), "message": msg, "run_dir": str(run_dir)}

def preview_input(path, session: str | None = None) -> dict:
    """Preview PNG and a one-line description of an uploaded image."""
    a, info, name = read_input(path)
    d = new_run_dir(session)
    view = d / f"preview_{name}.png"
    factor = save_preview(view, Stretch.of(a).apply(a))
    return {"view": str(view), "text": describe_image(a, info), "run_dir": str(d),
            "shape": list(a.shape), "factor": factor}
