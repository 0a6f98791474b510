"""Training: SRResNet pretraining, SRGAN-family GAN fine-tuning and the feature network.

One entry point for every zoo model; the recipe comes from the model's registry entry::

    python -m sr train --model srresnet --data DIR --steps 3000
    python -m sr train --model srgan --data DIR --steps 1000        # starts from srresnet
    torchrun --nproc-per-node 2 -m sr train ...                     # gloo on CPU, NCCL on CUDA
    python -m sr train ... --device cuda                            # bf16 autocast on the GPU

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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .runtime import hardware
from .train_parts import (FINAL_LR_FRACTION, LOG_FIELDS, _data_label, _ddp, _dist_setup, _last_validation,  # noqa: F401
                          _truncate_log, _unwrap, ema_update, freeze_batchnorm, lr_at, params_digest)
from .settings import settings
from . import checkpoint, data, runtime, train_device, zoo
from .arch import Discriminator, FeatureNet, Generator
from .losses import ContentLoss, adversarial_d, adversarial_g, d_probabilities, pixel_loss
from .validation import (_SELECTION_TEXT, _load_best, _read_best, _write_best, rescore_best, save_grid, save_snapshot,
                         score_generator, validate_featurenet)

DEFAULT_LR = {"pretrain": 2e-4, "gan": 1e-4, "featurenet": 1e-3}


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
    export_now: bool = False  # export the run's chosen checkpoint as it is, without training
    device: str | None = None  # auto | cpu | cuda (default SR_DEVICE); see sr.train_device


def merge_recipe(base: dict, override: dict | None) -> dict:
    """The registry recipe with ``override`` applied (nested dicts such as the discriminator merged)."""
    out = dict(base)
    for k, v in (override or {}).items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ----------------------------------------------------------------------------- distributed


# ----------------------------------------------------------------------------- validation


# ----------------------------------------------------------------------------- training


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


@dataclass
class Run:
    """Everything one training run holds (built by :func:`setup`)."""

    args: TrainArgs
    entry: zoo.ModelEntry
    recipe: dict
    stage: str
    precision: str
    lr: float
    run_dir: Path
    rank: int
    world: int
    sampler: data.PatchSampler
    val_planes: list
    n_train: int
    n_val: int
    modules: dict = field(default_factory=dict)
    optimizers: dict = field(default_factory=dict)
    content: ContentLoss | None = None
    ema: torch.nn.Module | None = None
    best: dict | None = None
    val_batch: tuple | None = None
    info: dict = field(default_factory=lambda: {"step": 0, "wall_s": 0.0})
    device: str = "cpu"
    scaler: object = None  # GradScaler, fp16 on CUDA only

    @property
    def pix_kind(self) -> str:
        return self.recipe.get("pixel_loss", "mse")

    @property
    def gan_kind(self) -> str:
        return self.recipe.get("gan_loss", "bce")

    @property
    def select(self) -> str:
        return self.recipe.get("select", "lsd" if self.stage == "gan" else "psnr")

    @property
    def frozen_bn(self) -> bool:
        return self.stage == "gan" and self.recipe.get("generator_bn") == "frozen"


def setup(args: TrainArgs) -> Run:
    """Data, networks, optimizers and the resumed state of a run."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = train_device.run_device(args.device)
    rank, world = _dist_setup(device)
    entry = zoo.get_entry(args.model)
    if not entry.learned:
        raise SystemExit(f"{args.model} is a non-learned baseline; nothing to train")
    if args.recipe and args.export:
        raise SystemExit("recipe overrides are for experiments: add --no-export (or change the recipe in the registry)")
    recipe = merge_recipe(entry.recipe, args.recipe)
    stage = recipe["stage"]
    run_dir = Path(args.out) / args.model
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)

    train_s, val_s = data.split(data.scan(args.data), args.val_fraction)
    train_planes = data.load_planes(train_s, min_size=args.patch)
    val_planes = data.load_planes(val_s, min_size=args.patch)
    if not train_planes:
        raise SystemExit(f"no training images of at least {args.patch}px under {args.data}")
    if not val_planes:  # tiny data sets: validate on a few training images
        val_planes = train_planes[: max(1, args.val_images or 8)]
    val_planes = val_planes[: args.val_images] if args.val_images else val_planes
    precision = runtime.resolve_precision(args.precision, device)
    run = Run(args, entry, recipe, stage, precision, args.lr or DEFAULT_LR[stage],
              run_dir, rank, world, data.PatchSampler(train_planes, patch=args.patch, min_signal_fraction=float(
                  recipe.get("min_signal_fraction", data.PatchSampler.min_signal_fraction))), val_planes,
              len(train_s), len(val_s), device=device, scaler=train_device.make_scaler(precision, device))
    _build_networks(run)
    if checkpoint.exists(run_dir):
        run.info = checkpoint.load(run_dir, run.modules, run.optimizers)
        if rank == 0:
            print(f"resumed {args.model} at step {run.info['step']} ({run.info['wall_s'] / 60:.1f} min so far)", flush=True)
    if recipe.get("ema") and stage != "featurenet":
        run.ema = copy.deepcopy(_unwrap(run.modules["g"])).requires_grad_(False)
        if checkpoint.exists(run_dir) and checkpoint.has_module(run_dir, "ema"):
            checkpoint.load_module(run_dir, "ema", run.ema)
        run.modules["ema"] = run.ema
    run.best = _read_best(run_dir)
    if run.best is not None and stage != "featurenet" and rank == 0:
        run.best = rescore_best(run_dir, entry, run.best, val_planes, precision, args.val_crop,
                                recipe.get("consistency", 0), run.select, recipe.get("select_min_dpsnr", 0.0))
    for m in run.modules.values():
        m.train()
        if run.precision in ("bf16", "fp16"):
            m.to(memory_format=torch.channels_last)
    if run.frozen_bn:
        freeze_batchnorm(_unwrap(run.modules["g"]))
    return run


def _build_networks(run: Run) -> None:
    args, entry, recipe, world = run.args, run.entry, run.recipe, run.world
    torch.manual_seed(args.seed)  # same initial weights for the same seed (and on every rank)
    adam = dict(lr=run.lr, betas=(0.9, 0.999))
    if run.stage == "featurenet":
        net = FeatureNet(**entry.arch).to(run.device)
        run.modules["net"] = _ddp(net, world, run.device)
        run.optimizers["net"] = torch.optim.Adam(net.parameters(), **adam)
        run.val_batch = data.PatchSampler(run.val_planes, patch=args.patch).sample(np.random.default_rng(1234), 256)
        return
    fresh = not checkpoint.exists(run.run_dir)
    g = _init_generator(entry, args.init or recipe.get("init")) if fresh else Generator(**entry.arch)
    g = g.to(run.device)  # before the optimizer; a checkpoint is then copied in wherever g lives
    run.modules["g"] = _ddp(g, world, run.device)
    run.optimizers["g"] = torch.optim.Adam(g.parameters(), **adam)
    if run.stage == "gan":
        dcfg = {**recipe["discriminator"], "patch_size": args.patch}
        d = Discriminator(in_channels=entry.arch["out_channels"], **dcfg).to(run.device)
        run.modules["d"] = _ddp(d, world, run.device)
        run.optimizers["d"] = torch.optim.Adam(d.parameters(), **adam)
        spec = recipe.get("content", "mse")
        fnet = zoo.load(spec.split(":", 1)[1]) if spec.startswith("featurenet:") else None
        run.content = ContentLoss(spec, fnet).to(run.device)


# ----------------------------------------------------------------------------- one step per stage

def step_featurenet(run: Run, lr_t, hr_t, y_np) -> dict:
    with runtime.autocast(run.precision, run.device):
        logits = run.modules["net"](hr_t)
    loss = F.cross_entropy(logits.float(), torch.from_numpy(y_np).to(logits.device))
    train_device.update(run, loss, "net")
    return {"loss": loss.item(), "acc": float((logits.argmax(1).cpu().numpy() == y_np).mean())}


def step_pretrain(run: Run, lr_t, hr_t, y_np) -> dict:
    with runtime.autocast(run.precision, run.device):
        sr_t = run.modules["g"](lr_t)
    loss = pixel_loss(run.pix_kind, sr_t, hr_t)
    train_device.update(run, loss, "g")
    return {"loss": loss.item(), "loss_pix": loss.item()}


def step_gan(run: Run, lr_t, hr_t, y_np) -> dict:
    """One discriminator update, then one generator update (pixel + content + adversarial)."""
    r, g, d, kind = run.recipe, run.modules["g"], run.modules["d"], run.gan_kind
    with runtime.autocast(run.precision, run.device):
        sr_t = g(lr_t)
        d_real = d(hr_t)
        d_fake = d(sr_t.detach())
    loss_d = adversarial_d(d_real, d_fake, kind)
    train_device.update(run, loss_d, "d")
    d_plain = _unwrap(d)
    d_plain.requires_grad_(False)
    with runtime.autocast(run.precision, run.device):
        g_fake = d_plain(sr_t)
        loss_c = run.content(sr_t, hr_t) if r.get("content_weight", 0) > 0 else torch.zeros((), device=sr_t.device)
    d_plain.requires_grad_(True)
    loss_pix = pixel_loss(run.pix_kind, sr_t, hr_t)
    loss_adv = adversarial_g(g_fake, d_real, kind)
    adv_term = r["adv_weight"] * loss_adv
    loss = r["pixel_weight"] * loss_pix + r.get("content_weight", 0) * loss_c + adv_term
    train_device.update(run, loss, "g")
    p_real, p_fake = d_probabilities(d_real, d_fake, kind)
    return {"loss": loss.item(), "loss_pix": loss_pix.item(), "loss_content": float(loss_c),
            "loss_adv": loss_adv.item(), "loss_d": loss_d.item(), "d_real": p_real, "d_fake": p_fake,
            "adv_share": adv_term.item() / max(loss.item(), 1e-12)}


STEPS = {"featurenet": step_featurenet, "pretrain": step_pretrain, "gan": step_gan}


def validate(run: Run, step: int) -> dict:
    """Validation row fields; keeps the best generator by the recipe's criterion."""
    if run.stage == "featurenet":
        return validate_featurenet(_unwrap(run.modules["net"]), run.val_batch)
    gv = run.ema if run.ema is not None else _unwrap(run.modules["g"])
    row, score, images = score_generator(gv, run.val_planes, run.precision, run.args.val_crop,
                                         run.recipe.get("consistency", 0), run.select,
                                         run.recipe.get("select_min_dpsnr", 0.0))
    save_grid(run.run_dir / f"val_{step:06d}.png", images)
    save_snapshot(run.run_dir, gv, step)
    if run.best is None or score > run.best["score"]:
        run.best = {"step": step, "score": score, "criterion": run.select, **row,
                    "consistency": int(run.recipe.get("consistency", 0))}
        _write_best(run.run_dir, gv, run.best)
    return row


# ----------------------------------------------------------------------------- the loop

def train(args: TrainArgs) -> dict:
    run = setup(args)
    rank = run.rank
    if args.export_now:  # ship what a stopped run has chosen so far (the card says at which step)
        if not checkpoint.exists(run.run_dir):
            raise SystemExit(f"no run of {args.model} under {args.out} to export")
        hw = run.info.get("hardware", []) or [hardware()]
        path = export_run(run, run.info["step"], run.info["wall_s"], hw, run.run_dir / "log.csv")
        return {"model": args.model, "step": run.info["step"], "exported": str(path), "finished": False}
    log_path = run.run_dir / "log.csv"
    if rank == 0 and log_path.exists():
        _truncate_log(log_path, run.info["step"])  # rows past the checkpoint are redone
    new_log = not log_path.exists()
    log_f = open(log_path, "a", newline="", encoding="utf-8") if rank == 0 else None
    writer = csv.DictWriter(log_f, LOG_FIELDS) if log_f else None
    if writer and new_log:
        writer.writeheader()

    from tqdm import tqdm

    start_step = run.info["step"]
    if start_step >= args.steps and rank == 0:
        print(f"{args.model}: run already at step {start_step} >= {args.steps}; nothing to train", flush=True)
    hw = run.info.get("hardware", [])
    if start_step < args.steps and hardware(run.device) not in hw:
        hw = hw + [hardware(run.device)]
    t_session, wall0 = time.time(), run.info["wall_s"]
    acc: dict = {}
    bar = tqdm(total=args.steps, initial=start_step, disable=rank != 0, mininterval=20,
               desc=f"train {args.model}", dynamic_ncols=True)
    step, stopped_early, step_fn = start_step, False, STEPS[run.stage]
    batches = train_device.Batches(run.sampler, args.seed, rank, args.batch, run.device,
                                   run.precision in ("bf16", "fp16"), start_step, args.steps)
    while step < args.steps:
        lr_now = lr_at(step, run.lr, args.steps, args.decay_from)
        for opt in run.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr_now
        lr_t, hr_t, y_np = batches.get(step)  # sampled from (seed, step, rank); prefetched on CUDA
        logs = step_fn(run, lr_t, hr_t, y_np)
        train_device.end_step(run)
        if run.ema is not None:
            ema_update(run.ema, _unwrap(run.modules["g"]), run.recipe["ema"])
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
            row.update(validate(run, step))
            bar.set_postfix({k: row[k] for k in row if k.startswith("val_")})
        if writer and row:
            writer.writerow(row)
            log_f.flush()
        out_of_time = args.max_minutes is not None and (time.time() - t_session) > args.max_minutes * 60
        if rank == 0 and (step % args.ckpt_every == 0 or step == args.steps or out_of_time):
            checkpoint.save(run.run_dir, run.modules, run.optimizers,
                            {"step": step, "wall_s": wall, "args": asdict(args), "precision": run.precision,
                             "world": run.world, "hardware": hw, "device": run.device})
        if out_of_time:
            stopped_early = step < args.steps
            break
    bar.close()
    batches.close()
    if log_f:
        log_f.close()
    result = {"model": args.model, "step": step, "wall_s": wall0 + time.time() - t_session,
              "finished": not stopped_early}
    already = start_step >= args.steps and zoo.get_entry(args.model).card.get("steps") == step
    if rank == 0 and args.export and not stopped_early and not already:
        result["exported"] = str(export_run(run, step, result["wall_s"], hw, log_path))
    if run.world > 1:
        _gather_digests(run, result)
    return result


def export_run(run: Run, step: int, wall_s: float, hw: list, log_path: Path) -> Path:
    """Write the chosen network to ``weights/<model>/`` with its card (and pin it)."""
    from .publish import export

    args, recipe = run.args, run.recipe
    net = _unwrap(run.modules["net"] if run.stage == "featurenet" else run.modules["g"])
    net = copy.deepcopy(net).to("cpu", memory_format=torch.contiguous_format)  # CPU weights wherever it ran
    last, chosen = _last_validation(log_path), {}
    if run.stage != "featurenet" and run.best is not None:
        net = _load_best(run.run_dir, run.entry)
        last = {k: run.best[k] for k in ("val_psnr", "val_ssim", "val_dpsnr", "val_dpsnr_ci",
                                         "val_dssim", "val_lsd") if k in run.best}
        chosen = {"selected_step": run.best["step"], "selection": _SELECTION_TEXT[run.best["criterion"]],
                  **({"ema": recipe["ema"]} if recipe.get("ema") else {}),
                  **({"lr_consistency": recipe["consistency"]} if recipe.get("consistency") else {})}
    init_id = args.init or recipe.get("init")
    if init_id and not Path(init_id).is_dir():
        chosen["init"] = init_id
        chosen["init_sha256"] = zoo.get_entry(init_id).sha256
    card = {
        "training_data": f"{_data_label(args.data)} (train split: {run.n_train} files, "
                         f"{run.n_val} validation files held out by field id)",
        "steps": step, "batch": args.batch, "patch": args.patch, "lr": run.lr,
        "lr_schedule": (f"constant, then cosine to {FINAL_LR_FRACTION:g}x from step {args.decay_from}"
                        if args.decay_from is not None else "constant"),
        "precision": run.precision, "processes": run.world,
        "wall_time_h": round(wall_s / 3600, 2), "hardware": "; ".join(hw) or hardware(run.device),
        "seed": args.seed, **last, **chosen,
        "recipe": {k: v for k, v in recipe.items() if k != "stage"},
        **({"generator_bn": "frozen during GAN fine-tuning (running statistics of the pretrained "
                            "generator; affine weights trained)"} if run.frozen_bn else {}),
    }
    export(args.model, net, card)
    return zoo.weights_dir() / args.model


def _gather_digests(run: Run, result: dict) -> None:
    """Every rank must hold the same weights after DDP training: gather and record digests."""
    net = run.modules["net"] if run.stage == "featurenet" else run.modules["g"]
    digests = [None] * run.world
    torch.distributed.all_gather_object(digests, params_digest(net))
    result["rank_digests"] = digests
    if run.rank == 0:
        (run.run_dir / "rank_digests.json").write_text(json.dumps(digests), encoding="utf-8")
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


