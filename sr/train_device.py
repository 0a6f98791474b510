"""Training on a device: which device a run (or a torchrun rank) uses, mixed precision updates,
and batches that keep a GPU fed.

* :func:`run_device`: ``--device`` / ``SR_DEVICE`` (:mod:`sr.device`); under ``torchrun`` on
  CUDA each rank takes ``cuda:$LOCAL_RANK`` and the process group is NCCL (gloo on CPU).
* :func:`update`: one optimizer update; with fp16 (CUDA only) through a ``GradScaler``, with
  bf16 or fp32 a plain ``backward()`` + ``step()``.
* :class:`Batches`: the numpy patch sampler's batch for a step, as tensors on the run's device.
  On the CPU it samples in the loop, exactly as before; on CUDA a background thread samples
  the next batches into pinned memory while the GPU works, and they are copied with
  ``non_blocking=True``. Every batch is a pure function of (seed, step, rank), so prefetching
  changes no result and a resumed run sees the same batches.

Checkpoints stay portable: :mod:`sr.checkpoint` writes CPU tensors (safetensors) and loading
copies them into the modules wherever they live; the optimizers' state follows their
parameters' device (``Optimizer.load_state_dict``).
"""
from __future__ import annotations

import os
import queue
import threading

import numpy as np
import torch

from .device import resolve_device


def run_device(device: str | None) -> str:
    """The device of this process's run (a torchrun rank on CUDA gets its own GPU)."""
    device = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if torch.device(device).type == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(torch.device(device))
    return device


def dist_backend(device: str) -> str:
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def move_modules(modules: dict, device: str) -> None:
    """Move every module of a run to ``device`` in place (parameters keep their identity, so
    optimizers built on them stay valid)."""
    for m in modules.values():
        getattr(m, "module", m).to(device)


def make_scaler(precision: str, device: str):
    """A ``GradScaler`` for fp16 on CUDA; ``None`` otherwise (bf16 and fp32 need none)."""
    if precision == "fp16" and torch.device(device).type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def update(run, loss: torch.Tensor, name: str) -> None:
    """zero_grad, backward and step of optimizer ``name`` (scaled under fp16)."""
    opt = run.optimizers[name]
    opt.zero_grad(set_to_none=True)
    scaler = getattr(run, "scaler", None)
    if scaler is None:
        loss.backward()
        opt.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(opt)


def end_step(run) -> None:
    """After all updates of a step: let the fp16 scaler adapt its scale."""
    scaler = getattr(run, "scaler", None)
    if scaler is not None:
        scaler.update()


class Batches:
    """Batches of a run by step: ``get(step) -> (lr, hr, labels)`` (tensors on the run's
    device, labels numpy). Prefetched in a thread on CUDA; call :meth:`close` at the end."""

    def __init__(self, sampler, seed: int, rank: int, batch: int, device: str, channels_last: bool,
                 start: int, stop: int, depth: int = 3, prefetch: bool | None = None):
        self.sampler, self.seed, self.rank, self.batch = sampler, seed, rank, batch
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.cuda = self.device.type == "cuda"
        self._q: queue.Queue | None = None
        self._stop = threading.Event()
        if (self.cuda if prefetch is None else prefetch) and start < stop:
            self._q = queue.Queue(maxsize=depth)
            self._thread = threading.Thread(target=self._fill, args=(start, stop), daemon=True,
                                            name="sr-batches")
            self._thread.start()

    def _sample(self, step: int):
        return self.sampler.sample(np.random.default_rng([self.seed, step, self.rank]), self.batch)

    def _fill(self, start: int, stop: int) -> None:
        for step in range(start, stop):
            try:
                lr_np, hr_np, y_np = self._sample(step)
                lr_t, hr_t = torch.from_numpy(lr_np), torch.from_numpy(hr_np)
                if self.cuda:  # page-locked: the copy to the GPU runs asynchronously
                    lr_t, hr_t = lr_t.pin_memory(), hr_t.pin_memory()
                item = (step, lr_t, hr_t, y_np)
            except Exception as exc:  # noqa: BLE001 - handed to the training loop
                item = (step, exc, None, None)
            while not self._stop.is_set():
                try:
                    self._q.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set():
                return

    def get(self, step: int):
        if self._q is not None:
            got, lr_t, hr_t, y_np = self._q.get()
            if isinstance(lr_t, Exception):
                raise lr_t
            if got != step:
                raise RuntimeError(f"batch prefetch out of order: got step {got}, wanted {step}")
            lr_t = lr_t.to(self.device, non_blocking=True)
            hr_t = hr_t.to(self.device, non_blocking=True)
        else:
            lr_np, hr_np, y_np = self._sample(step)
            lr_t, hr_t = torch.from_numpy(lr_np).to(self.device), torch.from_numpy(hr_np).to(self.device)
        if self.channels_last:
            lr_t = lr_t.contiguous(memory_format=torch.channels_last)
            hr_t = hr_t.contiguous(memory_format=torch.channels_last)
        return lr_t, hr_t, y_np

    def close(self) -> None:
        self._stop.set()
        if self._q is not None:
            while True:  # unblock a producer waiting on a full queue
                try:
                    self._q.get_nowait()
                except queue.Empty:
                    break
            self._thread.join(timeout=5)
