"""On-disk cache of OpenVINO models, so no process pays a model's conversion twice.

Converting a rewritten generator (:class:`sr.runtime.FastGenerator`) from torch to OpenVINO
takes seconds (tracing); compiling it for this CPU takes more. Both results are kept under
``SR_CACHE_DIR`` (default ``~/.cache/sr/compiled``):

* ``ir/<key>/model.xml|.bin``: the converted fp32 model. ``key`` hashes the rewritten core's
  weights (:func:`fingerprint`: names, dtypes, shapes and bytes of every tensor), the input
  channels, this module's format version and the torch and OpenVINO versions, so changed
  weights (a new checkpoint, another blend) or another converter never hit a stale entry.
* ``blobs/``: OpenVINO's own compiled-model cache (``CACHE_DIR``; it keys its blobs by the
  model, the compile options, the plugin version and the CPU), under a folder named for this
  CPU's instruction-set features, so a folder shared between machines cannot mix them.

Entries are written to a temporary folder and renamed into place (a reader never sees half a
model; two processes converting the same model at once both succeed). The least recently used
are removed when the folder grows past ``SR_CACHE_MAX_BYTES``. A corrupt entry is deleted and
rebuilt. Nothing here is needed for correctness: with the cache unwritable, models are
converted in memory as before (logged once).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path

import torch

from .settings import settings

log = logging.getLogger(__name__)

FORMAT = 3  # 2: pixel shuffles as DepthToSpace; 3: phase-window upsampling (sr.ovgraph)
_FEATURES = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
_lock = threading.Lock()


def fingerprint(module: torch.nn.Module) -> str:
    """sha256 over every tensor of ``module``'s state dict (name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@lru_cache(maxsize=1)
def cpu_features() -> tuple[str, ...]:
    """The instruction-set features that decide which kernels OpenVINO compiles."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return tuple(x for x in _FEATURES if x in have)
    except OSError:
        pass
    import platform

    return (platform.machine(),)


def _versions() -> dict:
    import openvino

    return {"format": FORMAT, "torch": torch.__version__, "openvino": openvino.__version__}


def ir_key(core_fingerprint: str, in_channels: int) -> str:
    text = json.dumps({"core": core_fingerprint, "in_channels": in_channels, **_versions()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def ir_file(core_fingerprint: str, in_channels: int) -> Path | None:
    """The cached converted model of a core, when the cache holds it."""
    xml = root() / "ir" / ir_key(core_fingerprint, in_channels) / "model.xml"
    return xml if xml.is_file() else None


def root() -> Path:
    return settings().cache_path


def blob_dir() -> Path:
    """OpenVINO's compiled-blob cache for this CPU (feature set in the folder name)."""
    tag = hashlib.sha256(",".join(cpu_features()).encode()).hexdigest()[:12]
    return root() / "blobs" / tag


def _convert(core: torch.nn.Module, in_channels: int, phase_windows: bool = True):
    """The fp32 OpenVINO model of ``core`` with :mod:`sr.ovgraph`'s rewrites (``phase_windows``:
    the 2x2-window upsampling convolutions, for bf16/fp32 compilation; not for int8)."""
    import openvino as ov

    from .ovgraph import nearest_upsampling_as_phase_windows, pixel_shuffles_to_depth_to_space

    ex = torch.zeros(1, in_channels, 32, 32)
    with torch.no_grad():
        model = ov.convert_model(core, example_input=ex, input=[ov.PartialShape([-1, in_channels, -1, -1])])
    model = pixel_shuffles_to_depth_to_space(model)[0]
    return nearest_upsampling_as_phase_windows(model)[0] if phase_windows else model


def _store(model, final: Path, fp: str, in_channels: int) -> Path | None:
    import openvino as ov

    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
        ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)
        (tmp / "source.json").write_text(json.dumps({"core_sha256": fp, "in_channels": in_channels,
                                                     **_versions()}, indent=1), encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:  # another process stored it first: theirs is the same model
            shutil.rmtree(tmp, ignore_errors=True)
        prune()
        return final / "model.xml"
    except OSError as exc:
        log.warning("cannot write the model cache %s (%s); converting in memory", root(), exc)
        return None


def compiled(core: torch.nn.Module, in_channels: int, precision: str, threads: int,
             core_fingerprint: str | None = None):
    """``(compiled model, cache hit)`` for the fp32 torch ``core``: its converted model is read
    from the cache when there, else converted and stored; compilation uses OpenVINO's blob
    cache. A cached entry that fails to load is deleted and rebuilt."""
    fp = core_fingerprint or fingerprint(core)
    final = root() / "ir" / ir_key(fp, in_channels)
    xml = final / "model.xml"
    if xml.is_file():
        try:
            out = compile_model(xml, precision, threads)
            os.utime(final)  # least recently used goes first
            return out, True
        except Exception as exc:  # noqa: BLE001 - a torn or foreign file: rebuild it
            log.warning("cached OpenVINO model %s unusable (%s); converting again", final, exc)
            shutil.rmtree(final, ignore_errors=True)
    model = _convert(core, in_channels)
    path = _store(model, final, fp, in_channels)
    return compile_model(path or model, precision, threads), False


def compile_model(model_or_path, precision: str, threads: int, streams: int = 1):
    """Compile for this CPU with OpenVINO's blob cache (a restart skips the compilation).
    ``streams`` > 1: that many parallel streams sharing ``threads`` (throughput form)."""
    import openvino as ov

    cfg = {"INFERENCE_PRECISION_HINT": "bf16" if precision in ("bf16", "int8") else "f32",
           "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": int(threads)}
    if streams > 1:
        cfg.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": int(streams)})
    if precision == "int8":
        from .runtime import cpu_has_bf16

        if not cpu_has_bf16():  # the layers kept out of int8 run in fp32 there
            cfg["INFERENCE_PRECISION_HINT"] = "f32"
    try:
        d = blob_dir()
        d.mkdir(parents=True, exist_ok=True)
        cfg["CACHE_DIR"] = str(d)
    except OSError:
        pass
    src = str(model_or_path) if isinstance(model_or_path, Path) else model_or_path
    return ov.Core().compile_model(src, "CPU", cfg)


def _size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size


def prune(max_bytes: int | None = None) -> int:
    """Remove least recently used entries until the cache fits; returns the bytes removed."""
    limit = settings().cache_max_bytes if max_bytes is None else max_bytes
    with _lock:
        entries = []
        for sub in ("ir", "blobs"):
            d = root() / sub
            if d.is_dir():
                for p in d.iterdir():
                    if not p.name.startswith(".tmp-"):
                        items = [p] if sub == "ir" else list(p.iterdir()) if p.is_dir() else [p]
                        entries += [(q.stat().st_mtime, _size(q), q) for q in items]
        total, removed = sum(e[1] for e in entries), 0
        for mtime, size, p in sorted(entries, key=lambda e: e[0]):
            if total <= limit:
                break
            if time.time() - mtime < 5:  # being written or just used
                continue
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            total -= size
            removed += size
        return removed
