"""Training: SRResNet pretraining, SRGAN-family GAN fine-tuning and the feature network.

One entry point for every zoo model; the recipe comes from the model's registry entry::

    python -m sr train --model srresnet --data DIR --steps 3000
    python -m sr train --model srgan --data DIR --steps 1000        # starts from srresnet
    torchrun --nproc-per-node 2 -m sr train ...                     # gloo on CPU

Runs are resumable (``runs/<model>/state.*``, safetensors + JSON), log a CSV of losses and
validation PSNR/SSIM (``log.csv``), save validation image grids, and stop cleanly after
``--max-minutes`` so long runs can be split over sessions. At the end (``--export``) the
generator goes to ``weights/<model>/`` with its model card and its sha256 is pinned in the
registry.
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from . import checkpoint, data, metrics, runtime, zoo
from .arch import Discriminator, FeatureNet, Generator
from .losses import ContentLoss, adversarial_d, adversarial_g

DEFAULT_LR = {"pretrain": 2e-4, "gan": 1e-4, "featurenet": 1e-3}
FINAL_LR_FRACTION = 0.01


def lr_at(step: int, base: float, total: int, decay_from: int | None) -> float:
    """Learning rate for ``step``: constant, then cosine from ``decay_from`` down to 1% at ``total``.

    A pure function of the step, so a run resumed at any checkpoint follows the same schedule.
    """
    if decay_from is None or step < decay_from or total <= decay_from:
        return base
    t = min(1.0, (step - decay_from) / (total - decay_from))
    return base * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * t)))


@dataclass
class TrainArgs:
    model: str
    data: str
    steps: int
    out: str = "runs"
    batch: int = 16
    patch: int = 96
    lr: float | None = None
    precision: str = "auto"
    seed: int = 0
    log_every: int = 10
    val_every: int = 200
    ckpt_every: int = 50
    val_images: int = 8
    val_crop: int = 256
    threads: int | None = None
    init: str | None = None
    decay_from: int | None = None
    max_minutes: float | None = None
    export: bool = True
    val_fraction: float = 0.1
    recipe: dict | None = None  # overrides of the registry recipe, for experiments (no export)


def merge_recipe(base: dict, override: dict | None) -> dict:
    """The registry recipe with ``override`` applied (nested dicts such as the discriminator merged)."""
    out = dict(base)
    for k, v in (override or {}).items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def hardware() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {torch.get_num_threads()} threads, torch {torch.__version__}"


# ----------------------------------------------------------------------------- distributed

def _dist_setup() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def _ddp(module: torch.nn.Module, world: int):
    if world > 1:
        return torch.nn.parallel.DistributedDataParallel(module)
    return module


def _unwrap(m):
    return getattr(m, "module", m)


# ----------------------------------------------------------------------------- validation

@torch.inference_mode()
def validate_generator(g: torch.nn.Module, planes: list[data.Plane], precision: str, crop: int) -> dict:
    """Mean PSNR/SSIM of ``g`` on centre crops of the validation planes (8/16-bit metrics)."""
    modes = [(m, m.training) for m in g.modules()]  # per layer: frozen BatchNorm stays frozen
    g.eval()
    ps, ss, outs = [], [], []
    for p in planes:
        hr = data.center_crop(p.hr_raw, crop)
        h0 = (p.hr_raw.shape[0] - hr.shape[0]) // 2 // 4 * 4
        w0 = (p.hr_raw.shape[1] - hr.shape[1]) // 2 // 4 * 4
        lr = p.lr[h0 // 4:(h0 + hr.shape[0]) // 4, w0 // 4:(w0 + hr.shape[1]) // 4]
        with runtime.autocast(precision):
            y = g(torch.from_numpy(np.ascontiguousarray(lr))[None, None]).float()[0, 0].numpy()
        top = 255 if hr.dtype == np.uint8 else 65535
        out = np.clip(np.rint(y * top), 0, top).astype(hr.dtype)
        ps.append(metrics.psnr(hr, out))
        ss.append(metrics.ssim(hr, out))
        outs.append((lr, out, hr))
    for m, mode in modes:
        m.training = mode
    return {"val_psnr": float(np.mean(ps)), "val_ssim": float(np.mean(ss)), "_images": outs}


def save_grid(path: Path, triples, n: int = 3) -> None:
    """LR (nearest x4) | SR | HR rows for a few validation crops."""
    from PIL import Image

    rows = []
    for lr, sr_img, hr in triples[:n]:
        top = 255 if hr.dtype == np.uint8 else 65535
        to8 = lambda a: np.clip(a.astype(np.float32) / top * 255, 0, 255).astype(np.uint8)  # noqa: E731
        lr_up = np.repeat(np.repeat(np.clip(lr * 255, 0, 255).astype(np.uint8), 4, 0), 4, 1)
        rows.append(np.concatenate([lr_up, to8(sr_img), to8(hr)], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


@torch.inference_mode()
def validate_featurenet(net: torch.nn.Module, batch) -> dict:
    was_training = net.training
    net.eval()
    _, hr, y = batch
    logits = net(torch.from_numpy(hr))
    acc = float((logits.argmax(1).numpy() == y).mean())
    net.train(was_training)
    return {"val_acc": acc}


# ----------------------------------------------------------------------------- training

LOG_FIELDS = ["step", "wall_s", "lr", "loss", "loss_pix", "loss_content", "loss_adv", "loss_d",
              "d_real", "d_fake", "acc", "val_psnr", "val_ssim", "val_acc"]


def freeze_batchnorm(net: torch.nn.Module) -> None:
    """Put every BatchNorm layer of ``net`` in eval mode: normalise with the running statistics
    of the previous stage and stop updating them (the affine weights still train).

    GAN fine-tuning of a batch-norm generator otherwise drifts the running statistics away
    from what the batch statistics were during the update, and the eval-mode output swings
    by several dB from one validation to the next."""
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def _init_generator(entry: zoo.ModelEntry, source: str | None) -> Generator:
    g = Generator(**entry.arch)
    if source is None:
        return g
    if Path(source).is_dir():
        from safetensors.torch import load_model

        load_model(g, str(Path(source) / zoo.WEIGHT_FILE), strict=True)
    else:
        g.load_state_dict(zoo.load(source).state_dict(), strict=True)
    return g


def train(args: TrainArgs) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world = _dist_setup()
    entry = zoo.get_entry(args.model)
    if not entry.learned:
        raise SystemExit(f"{args.model} is a non-learned baseline; nothing to train")
    if args.recipe and args.export:
        raise SystemExit("recipe overrides are for experiments: add --no-export (or change the recipe in the registry)")
    recipe = merge_recipe(entry.recipe, args.recipe)
    stage = recipe["stage"]
    precision = runtime.resolve_precision(args.precision)
    lr_rate = args.lr or DEFAULT_LR[stage]
    run_dir = Path(args.out) / args.model
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)

    samples = data.scan(args.data)
    train_s, val_s = data.split(samples, args.val_fraction)
    train_planes = data.load_planes(train_s, min_size=args.patch)
    val_planes = data.load_planes(val_s, min_size=args.patch)
    if not train_planes:
        raise SystemExit(f"no training images of at least {args.patch}px under {args.data}")
    if not val_planes:  # tiny data sets: validate on a few training images, and say so
        val_planes = train_planes[: max(1, args.val_images)]
    val_planes = val_planes[: args.val_images]
    sampler = data.PatchSampler(train_planes, patch=args.patch)

    modules: dict = {}
    optimizers: dict = {}
    torch.manual_seed(args.seed)  # same initial weights for the same seed (and on every rank)
    if stage == "featurenet":
        net = FeatureNet(**entry.arch)
        modules["net"] = _ddp(net, world)
        optimizers["net"] = torch.optim.Adam(net.parameters(), lr=lr_rate)
        val_batch = data.PatchSampler(val_planes, patch=args.patch).sample(np.random.default_rng(1234), 256)
    else:
        g = _init_generator(entry, args.init or recipe.get("init")) if not checkpoint.exists(run_dir) else Generator(**entry.arch)
        modules["g"] = _ddp(g, world)
        optimizers["g"] = torch.optim.Adam(g.parameters(), lr=lr_rate, betas=(0.9, 0.999))
        if stage == "gan":
            dcfg = dict(recipe["discriminator"])
            dcfg["patch_size"] = args.patch
            d = Discriminator(in_channels=entry.arch["out_channels"], **dcfg)
            modules["d"] = _ddp(d, world)
            optimizers["d"] = torch.optim.Adam(d.parameters(), lr=lr_rate, betas=(0.9, 0.999))
            spec = recipe.get("content", "mse")
            fnet = zoo.load(spec.split(":", 1)[1]) if spec.startswith("featurenet:") else None
            content = ContentLoss(spec, fnet)

    info = {"step": 0, "wall_s": 0.0}
    if checkpoint.exists(run_dir):
        info = checkpoint.load(run_dir, modules, optimizers)
        if rank == 0:
            print(f"resumed {args.model} at step {info['step']} ({info['wall_s'] / 60:.1f} min so far)", flush=True)
    for m in modules.values():
        m.train()
        if precision == "bf16":
            m.to(memory_format=torch.channels_last)
    frozen_bn = stage == "gan" and recipe.get("generator_bn") == "frozen"
    if frozen_bn:
        freeze_batchnorm(_unwrap(modules["g"]))

    log_path = run_dir / "log.csv"
    if rank == 0 and log_path.exists():
        _truncate_log(log_path, info["step"])  # rows past the checkpoint are redone
    new_log = not log_path.exists()
    log_f = open(log_path, "a", newline="", encoding="utf-8") if rank == 0 else None
    writer = csv.DictWriter(log_f, LOG_FIELDS) if log_f else None
    if writer and new_log:
        writer.writeheader()

    from tqdm import tqdm

    start_step = info["step"]
    if start_step >= args.steps and rank == 0:
        print(f"{args.model}: run already at step {start_step} >= {args.steps}; nothing to train", flush=True)
    hw = info.get("hardware", [])
    if start_step < args.steps and hardware() not in hw:
        hw = hw + [hardware()]
    t_session = time.time()
    wall0 = info["wall_s"]
    acc: dict = {}
    bar = tqdm(total=args.steps, initial=start_step, disable=rank != 0, mininterval=20,
               desc=f"train {args.model}", dynamic_ncols=True)
    step = start_step
    stopped_early = False
    while step < args.steps:
        lr_now = lr_at(step, lr_rate, args.steps, args.decay_from)
        for opt in optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr_now
        rng = np.random.default_rng([args.seed, step, rank])
        lr_np, hr_np, y_np = sampler.sample(rng, args.batch)
        lr_t, hr_t = torch.from_numpy(lr_np), torch.from_numpy(hr_np)
        if precision == "bf16":
            lr_t = lr_t.contiguous(memory_format=torch.channels_last)
            hr_t = hr_t.contiguous(memory_format=torch.channels_last)
        logs: dict = {}
        if stage == "featurenet":
            with runtime.autocast(precision):
                logits = modules["net"](hr_t)
            loss = F.cross_entropy(logits.float(), torch.from_numpy(y_np))
            optimizers["net"].zero_grad(set_to_none=True)
            loss.backward()
            optimizers["net"].step()
            logs = {"loss": loss.item(), "acc": float((logits.argmax(1).numpy() == y_np).mean())}
        elif stage == "pretrain":
            with runtime.autocast(precision):
                sr_t = modules["g"](lr_t)
            loss = F.mse_loss(sr_t.float(), hr_t)
            optimizers["g"].zero_grad(set_to_none=True)
            loss.backward()
            optimizers["g"].step()
            logs = {"loss": loss.item(), "loss_pix": loss.item()}
        else:
            r = recipe
            with runtime.autocast(precision):
                sr_t = modules["g"](lr_t)
                d_real = modules["d"](hr_t)
                d_fake = modules["d"](sr_t.detach())
            loss_d = adversarial_d(d_real, d_fake)
            optimizers["d"].zero_grad(set_to_none=True)
            loss_d.backward()
            optimizers["d"].step()
            d_plain = _unwrap(modules["d"])
            d_plain.requires_grad_(False)
            with runtime.autocast(precision):
                g_fake = d_plain(sr_t)
                loss_c = content(sr_t, hr_t) if r.get("content_weight", 0) > 0 else torch.zeros(())
            d_plain.requires_grad_(True)
            loss_pix = F.mse_loss(sr_t.float(), hr_t)
            loss_adv = adversarial_g(g_fake)
            loss = r["pixel_weight"] * loss_pix + r.get("content_weight", 0) * loss_c + r["adv_weight"] * loss_adv
            optimizers["g"].zero_grad(set_to_none=True)
            loss.backward()
            optimizers["g"].step()
            logs = {"loss": loss.item(), "loss_pix": loss_pix.item(), "loss_content": float(loss_c),
                    "loss_adv": loss_adv.item(), "loss_d": loss_d.item(),
                    "d_real": torch.sigmoid(d_real.float()).mean().item(),
                    "d_fake": torch.sigmoid(d_fake.float()).mean().item()}
        if not all(math.isfinite(v) for v in logs.values()):
            raise FloatingPointError(f"non-finite loss at step {step}: {logs}")
        step += 1
        bar.update(1)
        for k, v in logs.items():
            acc.setdefault(k, []).append(v)
        wall = wall0 + time.time() - t_session
        row = None
        if step % args.log_every == 0 or step == args.steps:
            row = {"step": step, "wall_s": round(wall, 1), "lr": lr_now,
                   **{k: round(float(np.mean(v)), 6) for k, v in acc.items()}}
            acc = {}
        if rank == 0 and (step % args.val_every == 0 or step == args.steps):
            row = row or {"step": step, "wall_s": round(wall, 1), "lr": lr_now}
            if stage == "featurenet":
                row.update(validate_featurenet(_unwrap(modules["net"]), val_batch))
            else:
                v = validate_generator(_unwrap(modules["g"]), val_planes, precision, args.val_crop)
                save_grid(run_dir / f"val_{step:06d}.png", v.pop("_images"))
                row.update({k: round(x, 4) for k, x in v.items()})
            bar.set_postfix({k: row[k] for k in row if k.startswith("val_")})
        if writer and row:
            writer.writerow(row)
            log_f.flush()
        out_of_time = args.max_minutes is not None and (time.time() - t_session) > args.max_minutes * 60
        if rank == 0 and (step % args.ckpt_every == 0 or step == args.steps or out_of_time):
            checkpoint.save(run_dir, modules, optimizers, {"step": step, "wall_s": wall, "args": asdict(args),
                                                           "precision": precision, "world": world,
                                                           "hardware": hw})
        if out_of_time:
            stopped_early = step < args.steps
            break
    bar.close()
    if log_f:
        log_f.close()
    result = {"model": args.model, "step": step, "wall_s": wall0 + time.time() - t_session,
              "finished": not stopped_early}
    already = start_step >= args.steps and zoo.get_entry(args.model).card.get("steps") == step
    if rank == 0 and args.export and not stopped_early and not already:
        from .publish import export

        net = _unwrap(modules["net"] if stage == "featurenet" else modules["g"])
        net = net.to(memory_format=torch.contiguous_format)
        last = _last_validation(log_path)
        card = {
            "training_data": f"{_data_label(args.data)} (train split: {len(train_s)} files, "
                             f"{len(val_s)} validation files held out by field id)",
            "steps": step, "batch": args.batch, "patch": args.patch, "lr": lr_rate,
            "lr_schedule": (f"constant, then cosine to {FINAL_LR_FRACTION:g}x from step {args.decay_from}"
                            if args.decay_from is not None else "constant"),
            "precision": precision, "processes": world,
            "wall_time_h": round(result["wall_s"] / 3600, 2), "hardware": "; ".join(hw) or hardware(),
            "seed": args.seed, **last,
            **({"generator_bn": "frozen during GAN fine-tuning (running statistics of the pretrained "
                                "generator; affine weights trained)"} if frozen_bn else {}),
        }
        export(args.model, net, card)
        result["exported"] = str(zoo.weights_dir() / args.model)
    if world > 1:
        # every rank must hold the same weights after DDP training: gather and record digests
        net = modules["net"] if stage == "featurenet" else modules["g"]
        digests = [None] * world
        torch.distributed.all_gather_object(digests, params_digest(net))
        result["rank_digests"] = digests
        if rank == 0:
            (run_dir / "rank_digests.json").write_text(json.dumps(digests), encoding="utf-8")
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result


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
        h.update(v.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()
