"""Numeric precision and the fast CPU inference path.

* ``bf16``: bfloat16 weights and activations in channels_last layout. Used by default on CPUs
  with native bf16 (AVX512-BF16 / AMX), where oneDNN runs these convnets several times faster.
* ``fp32``: plain float32 everywhere else. fp16 is never used on CPU.
* ``int8`` (CPU, OpenVINO): the model's quantised form (:mod:`sr.int8`), where one was made and
  pinned for exactly these weights; ``auto`` picks it on CPUs with int8 dot-product
  instructions (VNNI / AMX-INT8) when its validation drift is small (:func:`sr.int8.auto_ok`:
  the GANs' int8 forms move SSIM too much, so they run bf16 unless int8 is asked for). Asked for where there is none (another blend, the torch
  backend), the model runs in bf16 (or fp32) and says so in ``.fast_precision``.
* On CUDA (``SR_DEVICE``, :mod:`sr.device`): ``auto`` is bf16 (fp16 on GPUs without bf16);
  ``fp16`` is allowed there only.

``SR_PRECISION=fp32|bf16|fp16|int8|auto`` overrides the default.

:func:`optimize_for_inference` turns a zoo generator into a :class:`FastGenerator` computing
the same function (exactly, up to float rounding) faster:

* batch norm folded into the preceding convolutions;
* every x2 upsampling stage runs at its *input* resolution: ``conv3x3(nearest_x2(x))`` is
  rewritten as ``pixel_shuffle(conv3x3'(x))`` with 4x the output channels (the four sub-pixel
  phases; same FLOPs, no 4x-larger intermediate, GEMM-friendlier shapes), and the activation
  runs before the shuffle (PReLU weights repeated per phase);
* the output convolution of the last stage runs on the un-shuffled phase tensor
  (``conv(pixel_shuffle(z)) == pixel_shuffle(conv'(z))``: a 9x9 kernel becomes 5x5, a 3x3
  stays 3x3, with 4x the input and output channels), so nothing runs at output resolution
  but one final pixel shuffle of the 1-channel result;
* weights converted once to the compute dtype (bf16 weights beat autocast, which re-casts
  them every call), channels_last, called under ``inference_mode``.

What was measured and why (and what was tried and not used): ``docs/runtime_notes.md``.

``SR_THREADS=N`` sets torch's intra-op threads when a fast model is built.
"""
from __future__ import annotations

import contextlib
import copy
import logging
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from .settings import settings

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "int8", "bf16", "fp16", "fp32")
BACKENDS = ("torch", "openvino", "auto")


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    from .ovcache import cpu_features

    return "avx512_bf16" in cpu_features() or "amx_bf16" in cpu_features()


def _cuda_bf16() -> bool:
    try:
        return bool(torch.cuda.is_bf16_supported())
    except Exception:  # noqa: BLE001 - e.g. no driver in this process (ZeroGPU main process)
        return True


def resolve_precision(precision: str | None = None, device: str | torch.device = "cpu") -> str:
    """``bf16``, ``fp16`` or ``fp32`` for ``precision`` (default ``SR_PRECISION``) on ``device``."""
    precision = precision or settings().precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    cuda = torch.device(device).type == "cuda"
    if precision == "auto":
        if cuda:
            return "bf16" if _cuda_bf16() else "fp16"
        return "bf16" if cpu_has_bf16() else "fp32"
    if precision == "fp16" and not cuda:
        raise ValueError("fp16 runs on CUDA only (on CPU use bf16 or fp32)")
    if precision == "int8" and cuda:
        raise ValueError("int8 runs on the CPU only (OpenVINO); on CUDA use bf16, fp16 or fp32")
    return precision


def autocast(precision: str, device: str | torch.device = "cpu"):
    """Autocast context for ``precision`` (resolved) on ``device``, or a no-op for fp32."""
    kind = torch.device(device).type
    if precision == "bf16":
        return torch.autocast(device_type=kind, dtype=torch.bfloat16)
    if precision == "fp16":
        if kind != "cuda":
            raise ValueError("fp16 runs on CUDA only (on CPU use bf16 or fp32)")
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def dtype_of(precision: str) -> torch.dtype:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def configure_threads() -> int:
    """Apply ``SR_THREADS`` (if set) to torch's intra-op thread pool; returns the count."""
    n = settings().threads
    if n:
        n = int(n)
        if n < 1:
            raise ValueError("SR_THREADS must be >= 1")
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    return torch.get_num_threads()


def hardware(device: str | None = None) -> str:
    """CPU model, torch threads and version (recorded in model cards and benchmarks); the GPU
    first when ``device`` is a CUDA device."""
    import platform

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cpu = f"{name}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if device:
        from .device import describe

        gpu = describe(device)
        return f"{gpu}; host {cpu}" if gpu else cpu
    return cpu



# ---------------------------------------------------------------------------- exact rewrites

def _phase_taps(k: int, f: int = 2) -> tuple[int, list[tuple[int, int, int, int]]]:
    """Taps of a ``k x k`` kernel on an ``f``-times finer grid, seen from the coarse grid.

    Returns ``R`` (the coarse kernel radius) and, for every output phase ``a`` and fine tap
    ``t``: ``(a, t, coarse tap index, source phase)``.
    """
    r = k // 2
    R = -(-r // f)  # ceil(r / f)
    out = []
    for a in range(f):
        for t in range(k):
            s = a + t - r
            out.append((a, t, s // f + R, s % f))
    return R, out


def _new_conv(c_in: int, c_out: int, k: int, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=True)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


@torch.no_grad()
def nearest_conv_to_subpixel(conv: nn.Conv2d) -> nn.Conv2d:
    """``conv(nearest_x2(x)) == pixel_shuffle(new(x), 2)`` for a stride-1 'same' conv."""
    w = conv.weight.double()
    co, ci, k, _ = w.shape
    R, taps = _phase_taps(k)
    kk = 2 * R + 1
    K = torch.zeros(co, 4, ci, kk, kk, dtype=w.dtype)
    for a, ty, oy, _ in taps:
        for b, tx, ox, _ in taps:
            K[:, a * 2 + b, :, oy, ox] += w[:, :, ty, tx]
    bias = conv.bias if conv.bias is not None else torch.zeros(co)
    return _new_conv(ci, 4 * co, kk, K.reshape(4 * co, ci, kk, kk), bias.repeat_interleave(4))


@torch.no_grad()
def conv_on_shuffled(conv: nn.Conv2d) -> nn.Conv2d:
    """``conv(pixel_shuffle(z, 2)) == pixel_shuffle(new(z), 2)`` for a stride-1 'same' conv."""
    w = conv.weight.double()
    co, ci, k, _ = w.shape
    R, taps = _phase_taps(k)
    kk = 2 * R + 1
    K = torch.zeros(co, 4, ci, 4, kk, kk, dtype=w.dtype)
    for a, ty, oy, pa in taps:
        for b, tx, ox, pb in taps:
            K[:, a * 2 + b, :, pa * 2 + pb, oy, ox] += w[:, :, ty, tx]
    bias = conv.bias if conv.bias is not None else torch.zeros(co)
    return _new_conv(4 * ci, 4 * co, kk, K.reshape(4 * co, 4 * ci, kk, kk), bias.repeat_interleave(4))


def _per_phase(act: nn.Module) -> nn.Module:
    """The activation applied before a x2 pixel shuffle instead of after it."""
    act = copy.deepcopy(act)
    if isinstance(act, nn.PReLU) and act.weight.numel() > 1:
        act.weight = nn.Parameter(act.weight.detach().repeat_interleave(4), requires_grad=False)
        act.num_parameters = act.weight.numel()
    return act


class SubpixelStage(nn.Module):
    """One x2 stage at its input resolution: conv to 4 phases, activation, [pixel shuffle]."""

    def __init__(self, conv: nn.Conv2d, act: nn.Module, shuffle: bool):
        super().__init__()
        self.conv, self.act, self.shuffle = conv, act, shuffle

    def forward(self, x):
        y = self.act(self.conv(x))
        return F.pixel_shuffle(y, 2) if self.shuffle else y


class PhaseTail(nn.Module):
    """The output conv run on the un-shuffled phase tensor, then one pixel shuffle."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, z):
        return F.pixel_shuffle(self.conv(z), 2)


class _Core(nn.Module):
    def __init__(self, head, body, body_tail, upsample, tail):
        super().__init__()
        self.head, self.body, self.body_tail, self.upsample, self.tail = head, body, body_tail, upsample, tail

    def trunk(self, x):  # at the input's resolution, up to the global skip sum
        h = self.head(x)
        return h + self.body_tail(self.body(h))

    def up(self, h):  # the upsampling stages and the output convolution
        return self.tail(self.upsample(h))

    def forward(self, x):
        return self.up(self.trunk(x))


class FastGenerator(nn.Module):
    """Inference-only form of :class:`sr.arch.Generator` (see the module docstring).

    Takes any float ``(N,C,H,W)`` tensor, returns float32; casts to its compute dtype and
    channels_last itself, so no autocast is needed around it.
    """

    self_casting = True

    def __init__(self, gen: nn.Module, precision: str, device: str | torch.device = "cpu"):
        super().__init__()
        from .arch import fold_batchnorm

        g = fold_batchnorm(copy.deepcopy(gen).eval())
        stages = list(g.upsample)
        new = []
        for i, st in enumerate(stages):
            last = i == len(stages) - 1
            conv = nearest_conv_to_subpixel(st.conv) if st.mode == "nearest-conv" else copy.deepcopy(st.conv)
            new.append(SubpixelStage(conv, _per_phase(st.act), shuffle=not last))
        self.core = _Core(g.head, g.body, g.body_tail, nn.Sequential(*new), PhaseTail(conv_on_shuffled(g.tail)))
        self.dtype = dtype_of(precision)
        self.device = torch.device(device)
        self.core.to(device=self.device, dtype=self.dtype, memory_format=torch.channels_last)
        self.core.eval().requires_grad_(False)
        self._radius = gen.receptive_radius() if hasattr(gen, "receptive_radius") else 32
        self._radii = gen.receptive_radii() if hasattr(gen, "receptive_radii") else None
        self.config = dict(getattr(gen, "config", {}))
        self.fast_precision = precision
        self.backend = "torch"
        self.memory_format = torch.channels_last

    def receptive_radius(self) -> int:
        return self._radius

    def stages(self):
        """:class:`sr.staged.Stages` (the trunk and the upsampler as two callables, with their
        receptive radii) for two-stage tiling on the CPU, or ``None``."""
        if self._radii is None or self.device.type != "cpu":
            return None
        parts = self.core.stages() if hasattr(self.core, "stages") else (
            lambda x: self._run(self.core.trunk, x), lambda h: self._run(self.core.up, h))
        if parts is None:
            return None
        from .staged import Stages

        return Stages(parts[0], parts[1], *self._radii)

    def _run(self, fn, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return fn(x.to(device=self.device, dtype=self.dtype, memory_format=self.memory_format)).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(device=self.device, dtype=self.dtype, memory_format=self.memory_format)
        return self.core(x).float()


def _is_generator(model: nn.Module) -> bool:
    from .arch import Generator, UpsampleX2

    return (isinstance(model, Generator) and isinstance(model.tail, nn.Conv2d)
            and all(isinstance(s, UpsampleX2) for s in model.upsample))


def resolve_backend(backend: str | None = None) -> str:
    """``SR_BACKEND``: ``auto`` (default: openvino when installed, as the requirements do, else
    torch), ``openvino`` or ``torch``."""
    backend = backend or settings().backend
    if backend not in BACKENDS:
        raise ValueError(f"SR_BACKEND={backend!r} is not one of {BACKENDS}")
    if backend == "auto":
        import importlib.util

        backend = "openvino" if importlib.util.find_spec("openvino") is not None else "torch"
    return backend


def optimize_for_inference(model: torch.nn.Module, precision: str | None = "auto",
                           backend: str | None = None, device: str | None = None) -> torch.nn.Module:
    """A fast inference copy of ``model`` (the original is left untouched) on ``device``
    (default ``SR_DEVICE``; see :mod:`sr.device`).

    Generators become a :class:`FastGenerator`; any other module gets BN folding (and
    channels_last when bf16/fp16) and is run under autocast by :func:`sr.tiling.run_tiled`.
    OpenVINO is a CPU backend: on CUDA the torch core runs. With OpenVINO the model is
    converted and compiled here (not on its first call), through the disk cache of
    :mod:`sr.ovcache`; ``.first_use`` says how long that took and whether the cache had it.
    The result has ``.fast_precision`` (the precision it really runs in), ``.config`` and
    ``.zoo_entry`` (when ``model`` has them).
    """
    from .arch import fold_batchnorm
    from .device import resolve_device

    device = resolve_device(device)
    cuda = torch.device(device).type == "cuda"
    requested = precision or settings().precision
    precision = resolve_precision(requested, device)
    configure_threads()
    if _is_generator(model):
        chosen = resolve_backend(backend)
        if chosen == "openvino" and not cuda and _openvino_installed():
            from .openvino_path import openvino_generator

            fast = openvino_generator(model, requested, precision)
        else:
            if precision == "int8":
                precision = _int8_fallback(model, "the torch backend has no int8 path")
            fast = FastGenerator(model, precision, device)
            if settings().compile:
                fast.core = torch.compile(fast.core, dynamic=False)
            if chosen == "openvino" and cuda and (backend or settings().backend) == "openvino":
                log.warning("SR_BACKEND=openvino is CPU-only; on %s the torch core runs", device)
    else:
        if precision == "int8":
            precision = _int8_fallback(model, "only zoo generators have an int8 form")
        fast = fold_batchnorm(copy.deepcopy(model).eval()).to(device)
        if precision in ("bf16", "fp16"):
            fast = fast.to(memory_format=torch.channels_last)
        fast.fast_precision = precision
    for attr in ("config", "zoo_entry"):
        if hasattr(model, attr):
            setattr(fast, attr, getattr(model, attr))
    return fast


def _int8_fallback(model: nn.Module, why: str) -> str:
    entry = getattr(model, "zoo_entry", None)
    fallback = "bf16" if cpu_has_bf16() else "fp32"
    log.warning("int8 asked for %s, but %s; running %s", getattr(entry, "id", "this model"), why, fallback)
    return fallback


def _openvino_installed() -> bool:
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        log.warning("SR_BACKEND=openvino but the openvino package is not installed; using torch")
        return False
    return True
