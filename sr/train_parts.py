"""Small pieces of training: the learning-rate schedule, EMA, frozen batch norm, DDP helpers
and the CSV log."""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import torch


FINAL_LR_FRACTION = 0.01


def lr_at(step: int, base: float, total: int, decay_from: int | None) -> float:
    """Learning rate for ``step``: constant, then cosine from ``decay_from`` down to 1% at ``total``.

    A pure function of the step, so a run resumed at any checkpoint follows the same schedule.
    """
    if decay_from is None or step < decay_from or total <= decay_from:
        return base
    t = min(1.0, (step - decay_from) / (total - decay_from))
    return base * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * t)))


def _dist_setup(device: str = "cpu") -> tuple[int, int]:
    """(rank, world) under torchrun: NCCL when the run is on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.device(device).type == "cuda" else "gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def _ddp(module: torch.nn.Module, world: int, device: str = "cpu"):
    if world > 1:
        dev = torch.device(device)
        if dev.type == "cuda":
            return torch.nn.parallel.DistributedDataParallel(module, device_ids=[dev.index or 0])
        return torch.nn.parallel.DistributedDataParallel(module)
    return module


def _unwrap(m):
    return getattr(m, "module", m)


LOG_FIELDS = ["step", "wall_s", "lr", "loss", "loss_pix", "loss_content", "loss_adv", "loss_d",
              "d_real", "d_fake", "adv_share", "acc", "val_psnr", "val_ssim", "val_dpsnr", "val_dpsnr_ci",
              "val_dssim", "val_dssim_ci", "val_lsd", "val_acc"]


@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """Exponential moving average of the parameters; buffers (BN statistics) are copied."""
    for pe, p in zip(ema.parameters(), net.parameters()):
        pe.lerp_(p.detach(), 1.0 - decay)
    for be, b in zip(ema.buffers(), net.buffers()):
        be.copy_(b)


def freeze_batchnorm(net: torch.nn.Module) -> None:
    """Put every BatchNorm layer of ``net`` in eval mode: normalise with the running statistics
    of the previous stage and stop updating them (the affine weights still train).

    GAN fine-tuning of a batch-norm generator otherwise drifts the running statistics away
    from what the batch statistics were during the update, and the eval-mode output swings
    by several dB from one validation to the next."""
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def _data_label(path: str) -> str:
    """A data path as others can read it: from ``shared/data/`` on when it lies there."""
    p = Path(path).resolve().as_posix()
    return p[p.index("shared/data/"):] if "shared/data/" in p else Path(path).name


def _truncate_log(log_path: Path, step: int) -> None:
    with open(log_path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    keep = [r for r in rows if r.get("step", "").isdigit() and int(r["step"]) <= step]
    if len(keep) == len(rows):
        return
    tmp = log_path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, LOG_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(keep)
    os.replace(tmp, log_path)


def _last_validation(log_path: Path) -> dict:
    out: dict = {}
    with open(log_path, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for k in ("val_psnr", "val_ssim", "val_acc"):
                if row.get(k):
                    out[k] = float(row[k])
    return out


def params_digest(module: torch.nn.Module) -> str:
    """sha256 of all parameters (used to check that DDP ranks agree).

    Buffers (BatchNorm running statistics) are left out: DDP broadcasts them from rank 0 at
    each forward, so after the last step each rank holds its own; only rank 0's are saved.
    """
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(_unwrap(module).named_parameters()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
