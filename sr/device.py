"""Where the models run: ``SR_DEVICE=auto|cpu|cuda`` (``--device`` on the CLI, ``device=`` in the API).

* ``auto`` (default): CUDA when ``torch.cuda.is_available()`` (or on a ZeroGPU Space, where
  ``spaces`` lends a GPU to each request), else the CPU.
* ``cpu``: always the CPU (the OpenVINO backend, bf16 where the CPU has it, never fp16).
* ``cuda`` (or ``cuda:N``): the GPU; bf16 autocast by default (fp16 where bf16 is missing),
  channels_last, the same exact rewrites as on CPU. Without a GPU this is a
  :class:`DeviceError` (one line: the CLI prints ``error: ...`` and exits 2, the app shows it).

On CUDA the tile size of tiled inference comes from the free GPU memory
(:func:`cuda_tile`): the CPU default (256, `sr.tile_sizes`) is sized for CPU caches, a GPU wants large tiles.
"""
from __future__ import annotations

import os

import torch

from .settings import settings

DEVICES = ("auto", "cpu", "cuda")
MAX_CUDA_TILE = 2048  # LR pixels per side; a larger tile gains nothing measurable
MIN_CUDA_TILE = 64


class DeviceError(ValueError):
    """The requested device is not there (e.g. ``SR_DEVICE=cuda`` on a machine without a GPU)."""


def on_zerogpu() -> bool:
    """Running on a Hugging Face ZeroGPU Space (``SPACES_ZERO_GPU`` set by the platform)."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true", "yes")


def cuda_available() -> bool:
    return bool(torch.cuda.is_available())


_default: str | None = None  # set by the CLI's --device for the whole process


def set_default(device: str | None) -> None:
    """Make ``device`` the process default (the CLI's ``--device``; it wins over ``SR_DEVICE``)."""
    global _default
    if device:
        resolve_device(device)  # refuse a bad or missing device at once
    _default = device or None


def resolve_device(device: str | torch.device | None = None) -> str:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` for ``device`` (default: ``--device``, else
    ``SR_DEVICE``, else ``auto``)."""
    if isinstance(device, torch.device):
        device = str(device)
    device = (device or _default or settings().device or "auto").strip().lower()
    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise DeviceError(f"device {device!r} is not one of auto, cpu, cuda, cuda:N")
    if kind == "auto":
        return "cuda" if cuda_available() or on_zerogpu() else "cpu"
    if kind == "cuda":
        if not (cuda_available() or on_zerogpu()):
            raise DeviceError(f"device {device!r} was asked for (SR_DEVICE / --device) but no CUDA GPU "
                              "is available here (torch.cuda.is_available() is False); use cpu or auto")
        if index and cuda_available() and int(index) >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def device_type(device: str | torch.device) -> str:
    """``"cuda"`` or ``"cpu"`` (for ``torch.autocast(device_type=...)``)."""
    return torch.device(device).type


def module_device(model: torch.nn.Module) -> torch.device:
    """Where ``model`` computes: its ``.device`` attribute, else its first parameter's device."""
    dev = getattr(model, "device", None)
    if isinstance(dev, (str, torch.device)):
        return torch.device(dev)
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def cuda_tile(width: int, batch: int, elem_bytes: int, device: torch.device | str = "cuda",
              fraction: float = 0.5) -> int:
    """Largest tile side (LR pixels, multiple of 32) whose activations fit in ``fraction`` of
    the free memory of ``device``.

    Peak memory per LR pixel of one image is bounded by ~64 x ``width`` values: the body holds
    a few ``width``-channel maps, the two x2 stages ``4 x width`` channels at 1x and 2x
    resolution (16 x ``width`` per LR pixel), and the caching allocator keeps some slack."""
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    per_pixel = max(1, batch) * 64 * max(1, width) * elem_bytes
    side = int((free * fraction / per_pixel) ** 0.5) // 32 * 32
    return max(MIN_CUDA_TILE, min(MAX_CUDA_TILE, side))


def describe(device: str) -> str:
    """The GPU's name for records (``hardware`` in model cards and benchmarks), else ``""``."""
    if device_type(device) != "cuda" or not cuda_available():
        return ""
    d = torch.device(device)
    return f"{torch.cuda.get_device_name(d)}, CUDA {torch.version.cuda}"
