"""Reading a comparison run's state (the per-user ``gr.State`` dict)."""
from __future__ import annotations

from pathlib import Path

from ..figure import _fmt_time  # noqa: F401 (used by single)
from .errors import AppError


def caption(item: dict) -> str:
    """Name, then PSNR/SSIM (mode hr) and time: "Bicubic: 27.35 dB, SSIM 0.683, 3 ms"."""
    parts = []
    if item.get("psnr") is not None:
        parts.append(f"{item['psnr']:.2f} dB, SSIM {item['ssim']:.3f}")
    if item.get("time_s") is not None:
        parts.append(_fmt_time(item["time_s"]))
    return item["label"] + (": " + ", ".join(parts) if parts else "")


def _item(state: dict, key: str) -> dict:
    for it in state["items"]:
        if it["key"] == key or it["label"] == key:
            return it
    raise AppError(f"No image {key!r} in this run; choose one of: "
                   + ", ".join(it["key"] for it in state["items"]))


def _require(state: dict | None) -> dict:
    if not state or not state.get("items"):
        raise AppError("Run a comparison first.")
    if not Path(state["run_dir"]).is_dir():
        raise AppError("This run's files have expired; run the comparison again.")
    return state
