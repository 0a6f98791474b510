"""The zoo as the app shows it: choices, the zoo table, model cards, warm-up."""
from __future__ import annotations

import logging

from pathlib import Path

import numpy as np

from .. import metrics, zoo
from ..display import nearest
from .config import SCALE

log = logging.getLogger("sr.app")


def default_model_ids() -> tuple[str, ...]:
    """The models the app compares by default (registry role ``app-default``)."""
    return tuple(zoo.with_role("app-default"))


def model_label(entry: zoo.ModelEntry) -> str:
    return f"{entry.title} [{entry.id}]" + ("" if entry.available else " (not trained yet)")

def model_choices() -> list[tuple[str, str]]:
    """(label, id) of every super-resolution model; unavailable ones say "not trained yet"."""
    return [(model_label(e), e.id) for e in zoo.super_resolvers(available_only=False)]

def default_models() -> list[str]:
    ids = {e.id for e in zoo.super_resolvers(available_only=False)}
    return [m for m in default_model_ids() if m in ids]

def _recipe_summary(e: zoo.ModelEntry) -> str:
    r = e.recipe or {}
    if e.kind == "baseline":
        return "none (interpolation)"
    if r.get("stage") == "pretrain":
        return f"pixel loss ({r.get('pixel_loss', 'mse')}) only"
    if r.get("stage") == "gan":
        d = r.get("discriminator", {})
        head = {"gap": "global-average-pooling", "dense": "flatten+dense"}.get(d.get("head"), d.get("head", "?"))
        content = r.get("content", "mse")
        content = "pixel MSE" if content == "mse" else f"features of {content.split(':', 1)[-1]}"
        return (f"GAN from {r.get('init', 'scratch')}; {head} discriminator; content: {content}; "
                f"adversarial weight {r.get('adv_weight')}")
    return r.get("stage", "")

def _card_metric(card: dict, name: str):
    """A test metric from the model card: a key mentioning ``name`` (``test`` keys first)."""
    keys = [k for k, v in (card or {}).items() if name in k.lower() and isinstance(v, (int, float))]
    keys.sort(key=lambda k: (not k.lower().startswith("test"), "val" in k.lower(), k))
    return round(float(card[keys[0]]), 4) if keys else None

def zoo_rows() -> list[list]:
    """The model-zoo table (:data:`ZOO_HEADERS`): every super-resolution model."""
    from ..arch import describe

    rows = []
    for e in zoo.super_resolvers(available_only=False):
        arch = (f"no learning ({e.method})" if e.kind == "baseline" else describe(e.arch))
        status = "built in" if e.kind == "baseline" else ("weights pinned" if e.available else "not trained yet")
        psnr, ssim = _card_metric(e.card, "psnr"), _card_metric(e.card, "ssim")
        scores = " / ".join(f"{v:g}" for v in (psnr, ssim) if v is not None)
        hub = "" if e.repo_id is None else f"{e.repo_id} @ {e.revision or 'not published'}"
        rows.append([e.id, e.title, e.kind, status, arch, _recipe_summary(e), scores, hub])
    return rows

def model_card_markdown(model_id: str | None) -> str:
    """The model's card (the same text as its Hub README, without the YAML header)."""
    if not model_id:
        return "Choose a model to see its card."
    e = zoo.get_entry(model_id)
    if e.kind == "baseline":
        return (f"# {e.title} (`{e.id}`)\n\n{e.description}\n\nA non-learned baseline: "
                f"Pillow `{e.method}` 4x upscaling of each channel (`sr.degrade.upscale_baseline`). "
                "It has no weights and is always available.")
    from ..publish import render_card

    text = render_card(e)
    if text.startswith("---"):
        end = text.find("\n---", 3)
        text = text[end + 4:].lstrip() if end >= 0 else text
    if e.available:
        status = (f"**Weights:** `model.safetensors` sha256 `{e.sha256[:16]}…`, Hub repo "
                  f"`{e.repo_id}`, revision `{e.revision or 'not published yet'}`.")
    else:
        status = (f"**Not trained yet:** no weights are pinned in the registry, so the demo cannot "
                  f"run this model. Train it with `python -m sr train --model {e.id}`. "
                  f"Hub repo: `{e.repo_id}`.")
    return status + "\n\n" + text

def warm_up(model_ids=None) -> list[str]:
    """Load the default models (shared, read-only) and run each once on a tiny image, so the
    first user does not pay for loading and first-call initialisation. Returns the models
    warmed; never raises (a model that cannot load is reported when a user asks for it).

    On a GPU the models are built on CUDA (``SR_DEVICE=auto``). On ZeroGPU there is no GPU
    outside a request: the models are only built (``spaces`` moves them to the GPU of each
    request), not run."""
    from .. import api
    from ..device import on_zerogpu

    model_ids = default_model_ids() if model_ids is None else model_ids
    done = []
    tiny = np.zeros((24, 24), np.uint8)
    for mid in model_ids:
        try:
            e = zoo.get_entry(mid)
            if e.available and e.upscales and on_zerogpu():
                if e.learned:  # baselines need no warming
                    api.fast_model(mid)
                    done.append(mid)
            elif e.available and e.upscales:
                out = api.upscale(tiny, mid)
                metrics.score(nearest(tiny, SCALE), out)
                if "live" in e.roles:  # video frames run in batches: their parallel-streams form too
                    api.upscale(np.zeros((24, 24, 2), np.uint8), mid)
                done.append(mid)
        except Exception as exc:  # noqa: BLE001 - best effort only
            log.info("warm-up of %s skipped: %s", mid, exc)
    return done


def warm_up_comparison(model_ids=None) -> bool:
    """One tiny comparison with its zoomed views, run and deleted, so a restarted app's first
    user does not pay for the code paths' first use (lazy imports, fonts, encoders). Never raises."""
    import tempfile

    from .. import imio
    from . import comparison, roi, workspace

    model_ids = default_model_ids() if model_ids is None else model_ids
    try:
        with tempfile.TemporaryDirectory(prefix="sr-warm-") as tmp:
            path = Path(tmp) / "warm.png"
            yy, xx = np.mgrid[:48, :48]
            imio.write_image(path, (120 * np.exp(-((yy - 20) ** 2 + (xx - 28) ** 2) / 60.0)).astype(np.uint8))
            state = comparison.run_comparison(str(path), "hr", list(model_ids), session="warm-up")
            roi.roi_views(state, *state["roi"])
            workspace.cleanup_state(state)
        return True
    except Exception as exc:  # noqa: BLE001 - best effort only
        log.info("warm-up comparison skipped: %s", exc)
        return False


def featured_model() -> str | None:
    """The model whose card the zoo tab opens with: the last learned default model."""
    learned = [m for m in default_model_ids() if zoo.get_entry(m).learned]
    return learned[-1] if learned else None
