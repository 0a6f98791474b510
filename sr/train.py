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

import copy
import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .runtime import hardware
from .settings import settings
from . import checkpoint, data, degrade, metrics, runtime, spectral, zoo
from .arch import Discriminator, FeatureNet, Generator
from .losses import ContentLoss, adversarial_d, adversarial_g, d_probabilities, pixel_loss

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


def default_runs_dir() -> str:
    """Run state lives outside the work tree (``SR_RUNS_DIR``, default ``~/.cache/sr/runs``),
    so a new checkout resumes where the last one stopped."""
    return str(settings().runs_path)


@dataclass
class TrainArgs:
    model: str
    data: str
    steps: int
    out: str = field(default_factory=default_runs_dir)
    batch: int = 16
    patch: int = 96
    lr: float | None = None
    precision: str = "auto"
    seed: int = 0
    log_every: int = 10
    val_every: int = 200
    ckpt_every: int = 50
    val_images: int | None = None  # None: every validation field
    val_crop: int | None = None  # None: full fields
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

def _to_dtype(y: np.ndarray, like: np.ndarray) -> np.ndarray:
    top = 255 if like.dtype == np.uint8 else 65535
    return np.clip(np.rint(y * top), 0, top).astype(like.dtype)


def _val_lr(p: data.Plane, crop: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(LR input, HR reference) of a validation plane: the full field, or a centre crop."""
    if not crop:
        return p.lr, p.hr_raw
    hr = data.center_crop(p.hr_raw, crop)
    h0 = (p.hr_raw.shape[0] - hr.shape[0]) // 2 // 4 * 4
    w0 = (p.hr_raw.shape[1] - hr.shape[1]) // 2 // 4 * 4
    return p.lr[h0 // 4:(h0 + hr.shape[0]) // 4, w0 // 4:(w0 + hr.shape[1]) // 4], hr


def _grid_triple(lr: np.ndarray, out: np.ndarray, hr: np.ndarray, size: int = 256):
    """The same centre window (at most ``size`` HR pixels) of LR, output and reference."""
    h, w = hr.shape[:2]
    size = min(size, h, w) // 4 * 4
    y, x = (h - size) // 2 // 4 * 4, (w - size) // 2 // 4 * 4
    return (lr[y // 4:(y + size) // 4, x // 4:(x + size) // 4], out[y:y + size, x:x + size],
            hr[y:y + size, x:x + size])


_BICUBIC_CACHE: dict = {}


def _bicubic_scores(p: data.Plane, crop: int | None) -> tuple[float, float, float]:
    """(PSNR, SSIM, HF spectral distance) of bicubic on a validation plane (cached)."""
    key = (p.name, id(p.hr_raw), crop)
    if key not in _BICUBIC_CACHE:
        _, hr = _val_lr(p, crop)
        lr8 = degrade.degrade(hr)
        out = degrade.upscale_baseline(lr8, "bicubic")
        _BICUBIC_CACHE[key] = (metrics.psnr(hr, out), metrics.ssim(hr, out), spectral.hf_lsd(hr, out))
    return _BICUBIC_CACHE[key]


def _mean_ci(v: list[float]) -> tuple[float, float]:
    a = np.asarray(v, dtype=np.float64)
    if len(a) < 2:
        return float(a.mean()), float("nan")
    return float(a.mean()), float(1.96 * a.std(ddof=1) / np.sqrt(len(a)))


@torch.inference_mode()
def validate_generator(g: torch.nn.Module, planes: list[data.Plane], precision: str,
                       crop: int | None = None) -> dict:
    """Validation of ``g`` on every validation plane (full fields unless ``crop``).

    Scored as a paired difference to bicubic on the same planes (mean and 95% CI half-width),
    plus the high-frequency log-spectral distance to the reference (:mod:`sr.spectral`)."""
    modes = [(m, m.training) for m in g.modules()]  # per layer: frozen BatchNorm stays frozen
    g.eval()
    ps, ss, dps, dss, lsd, outs = [], [], [], [], [], []
    for p in planes:
        lr, hr = _val_lr(p, crop)
        with runtime.autocast(precision):
            y = g(torch.from_numpy(np.ascontiguousarray(lr))[None, None]).float()[0, 0].numpy()
        out = _to_dtype(y, hr)
        b_psnr, b_ssim, _ = _bicubic_scores(p, crop)
        ps.append(metrics.psnr(hr, out))
        ss.append(metrics.ssim(hr, out))
        dps.append(ps[-1] - b_psnr)
        dss.append(ss[-1] - b_ssim)
        lsd.append(spectral.hf_lsd(hr, out))
        if len(outs) < 3:
            outs.append(_grid_triple(lr, out, hr))
    for m, mode in modes:
        m.training = mode
    dp, dp_ci = _mean_ci(dps)
    ds, ds_ci = _mean_ci(dss)
    return {"val_psnr": float(np.mean(ps)), "val_ssim": float(np.mean(ss)),
            "val_dpsnr": dp, "val_dpsnr_ci": dp_ci, "val_dssim": ds, "val_dssim_ci": ds_ci,
            "val_lsd": float(np.mean(lsd)), "_images": outs}


def selection_score(select: str, v: dict, min_dpsnr: float = 0.0) -> float:
    """Higher is better. ``psnr``: paired PSNR gain over bicubic. ``lsd``: closest high-frequency
    spectrum to the reference among checks whose PSNR gain is at least ``min_dpsnr`` (others
    rank below, by PSNR gain)."""
    if select == "psnr":
        return v["val_dpsnr"]
    if select == "lsd":
        return -v["val_lsd"] if v["val_dpsnr"] >= min_dpsnr else -1000.0 + v["val_dpsnr"]
    raise ValueError(f"unknown selection criterion {select!r} (psnr | lsd)")


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
        val_planes = train_planes[: max(1, args.val_images or 8)]
    val_planes = val_planes[: args.val_images] if args.val_images else val_planes
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
    pix_kind = recipe.get("pixel_loss", "mse")
    gan_kind = recipe.get("gan_loss", "bce")
    ema_decay = recipe.get("ema")
    select = recipe.get("select", "lsd" if stage == "gan" else "psnr")

    info = {"step": 0, "wall_s": 0.0}
    if checkpoint.exists(run_dir):
        info = checkpoint.load(run_dir, modules, optimizers)
        if rank == 0:
            print(f"resumed {args.model} at step {info['step']} ({info['wall_s'] / 60:.1f} min so far)", flush=True)
    ema = None
    if ema_decay and stage != "featurenet":
        ema = copy.deepcopy(_unwrap(modules["g"])).requires_grad_(False)
        if checkpoint.exists(run_dir) and checkpoint.has_module(run_dir, "ema"):
            checkpoint.load_module(run_dir, "ema", ema)
        modules["ema"] = ema
    best = _read_best(run_dir)
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
            loss = pixel_loss(pix_kind, sr_t, hr_t)
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
            loss_d = adversarial_d(d_real, d_fake, gan_kind)
            optimizers["d"].zero_grad(set_to_none=True)
            loss_d.backward()
            optimizers["d"].step()
            d_plain = _unwrap(modules["d"])
            d_plain.requires_grad_(False)
            with runtime.autocast(precision):
                g_fake = d_plain(sr_t)
                loss_c = content(sr_t, hr_t) if r.get("content_weight", 0) > 0 else torch.zeros(())
            d_plain.requires_grad_(True)
            loss_pix = pixel_loss(pix_kind, sr_t, hr_t)
            loss_adv = adversarial_g(g_fake, d_real, gan_kind)
            adv_term = r["adv_weight"] * loss_adv
            loss = r["pixel_weight"] * loss_pix + r.get("content_weight", 0) * loss_c + adv_term
            optimizers["g"].zero_grad(set_to_none=True)
            loss.backward()
            optimizers["g"].step()
            p_real, p_fake = d_probabilities(d_real, d_fake, gan_kind)
            logs = {"loss": loss.item(), "loss_pix": loss_pix.item(), "loss_content": float(loss_c),
                    "loss_adv": loss_adv.item(), "loss_d": loss_d.item(), "d_real": p_real, "d_fake": p_fake,
                    "adv_share": adv_term.item() / max(loss.item(), 1e-12)}
        if ema is not None:
            ema_update(ema, _unwrap(modules["g"]), ema_decay)
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
                gv = ema if ema is not None else _unwrap(modules["g"])
                v = validate_generator(gv, val_planes, precision, args.val_crop)
                save_grid(run_dir / f"val_{step:06d}.png", v.pop("_images"))
                row.update({k: round(x, 4) for k, x in v.items()})
                score = selection_score(select, v, recipe.get("select_min_dpsnr", 0.0))
                if best is None or score > best["score"]:
                    best = {"step": step, "score": score, "criterion": select,
                            **{k: round(x, 4) for k, x in v.items()}}
                    _write_best(run_dir, gv, best)
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
        chosen: dict = {}
        if stage != "featurenet" and best is not None:
            net = _load_best(run_dir, entry)
            last = {k: best[k] for k in ("val_psnr", "val_ssim", "val_dpsnr", "val_dpsnr_ci",
                                          "val_dssim", "val_lsd") if k in best}
            chosen = {"selected_step": best["step"],
                      "selection": _SELECTION_TEXT[best["criterion"]],
                      **({"ema": ema_decay} if ema_decay else {})}
        init_id = args.init or recipe.get("init")
        if stage == "gan" and init_id and not Path(init_id).is_dir():
            chosen["init_sha256"] = zoo.get_entry(init_id).sha256
        card = {
            "training_data": f"{_data_label(args.data)} (train split: {len(train_s)} files, "
                             f"{len(val_s)} validation files held out by field id)",
            "steps": step, "batch": args.batch, "patch": args.patch, "lr": lr_rate,
            "lr_schedule": (f"constant, then cosine to {FINAL_LR_FRACTION:g}x from step {args.decay_from}"
                            if args.decay_from is not None else "constant"),
            "precision": precision, "processes": world,
            "wall_time_h": round(result["wall_s"] / 3600, 2), "hardware": "; ".join(hw) or hardware(),
            "seed": args.seed, **last, **chosen,
            "recipe": {k: v for k, v in recipe.items() if k not in ("stage",)},
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


_SELECTION_TEXT = {
    "psnr": "highest paired PSNR gain over bicubic on the validation fields",
    "lsd": "closest high-frequency spectrum to the reference (log-spectral distance) among "
           "validation checks with a PSNR gain over bicubic",
}
BEST_WEIGHTS = "best.safetensors"


def _read_best(run_dir: Path) -> dict | None:
    f = run_dir / "best.json"
    if f.is_file() and (run_dir / BEST_WEIGHTS).is_file():
        return json.loads(f.read_text(encoding="utf-8"))
    return None


def _write_best(run_dir: Path, net: torch.nn.Module, best: dict) -> None:
    from safetensors.torch import save_file

    sd = {k: v.detach().contiguous().clone() for k, v in _unwrap(net).state_dict().items()}
    save_file(sd, str(run_dir / (BEST_WEIGHTS + ".tmp")))
    (run_dir / "best.json.tmp").write_text(json.dumps(best, indent=1), encoding="utf-8")
    os.replace(run_dir / (BEST_WEIGHTS + ".tmp"), run_dir / BEST_WEIGHTS)
    os.replace(run_dir / "best.json.tmp", run_dir / "best.json")


def _load_best(run_dir: Path, entry) -> Generator:
    from safetensors.torch import load_model

    g = Generator(**entry.arch)
    load_model(g, str(run_dir / BEST_WEIGHTS), strict=True)
    return g.eval()


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
