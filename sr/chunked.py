"""Chunked 4x super-resolution of images larger than memory, on one machine or a Dask cluster.

The input (OME-TIFF / TIFF, OME-Zarr, plain Zarr: :mod:`sr.omezarr`) is read region by
region; each region of ``chunk x chunk`` low-resolution pixels is read with a margin of the
generator's receptive-field radius, cut into the *same* tiles, on the same global grid and
with the same margins as :func:`sr.tiling.run_tiled` uses for the whole image in memory, and
written into level 0 of an OME-Zarr pyramid; the lower levels are then filled region by
region. Two-stage tiling (:mod:`sr.staged`, the CPU fast path) runs in regions of whole trunk
tiles (``chunk`` is rounded up to a multiple of 3 x ``tile``). Every tile therefore sees exactly
the pixels it sees in memory, so the result equals ``sr.upscale`` bit for bit, while memory is
bounded by the chunk size (never the image size).

Intensity normalisation needs image-wide numbers: ``dtype`` is per-pixel; ``percentile`` of
8/16-bit images comes from an exact histogram (a first pass over the chunks), giving the same
numbers as numpy's percentile of the whole image; float images use a strided sample of
every 4th pixel (approximate).

Parallel: pass a ``distributed.Client`` (``--scheduler ADDRESS`` or a local cluster,
``--workers N``); every task is one region of one image (a plate of many images is one
queue), and each worker process loads the model once (``sr.api.fast_model``'s cache).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import omezarr
from .imio import ImageError, Norm
from .staged import trunk_tile
from .tile_sizes import DEFAULT_CHUNK, DEFAULT_TILE

SCALE = 4
OUT_CHUNK = 1024  # HR pixels of the Zarr chunks (a divisor of 4 * chunk is used)
PYRAMID_BLOCK = 2048  # largest side of one pyramid task (pixels of the level it writes)


@dataclass(frozen=True)
class Job:
    """One region of one image: what a worker needs (picklable)."""

    src: omezarr.Source
    dest: str
    model: str
    region: tuple  # LR y0, y1, x0, x1
    tile: int
    overlap: int | None
    precision: str | None
    blend: float | None
    lo: tuple
    hi: tuple
    consistency: int = 0


_heap_bounded = False


def bound_heap() -> None:
    """Fix glibc's mmap threshold at 1 MiB (once per process). Its default *dynamic* threshold
    rises to 32 MiB after the first large free, so the per-region float buffers then come
    from the heap and fragment it: peak RSS grew with the number of regions (1.5 GB for a
    32768^2 output), and stays flat (about 0.6 GB) with this. No-op off glibc."""
    global _heap_bounded
    if _heap_bounded:
        return
    _heap_bounded = True
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


# ---------------------------------------------------------------------------- scheduling

def run_all(fn: Callable, items: list, client=None, desc: str = "", progress: bool = True) -> list:
    """``[fn(i) for i in items]`` in this process or on a Dask cluster, with a progress bar."""
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc=desc, unit="chunk", disable=not progress, leave=False)
    out = []
    try:
        if client is None:
            for it in items:
                out.append(fn(it))
                bar.update(1)
        else:
            from distributed import as_completed

            futures = client.map(fn, items, pure=False)
            for f in as_completed(futures):
                out.append(f.result())
                bar.update(1)
    finally:
        bar.close()
    return out


def regions(h: int, w: int, step: int) -> list[tuple]:
    return [(y, min(y + step, h), x, min(x + step, w)) for y in range(0, h, step) for x in range(0, w, step)]


# ---------------------------------------------------------------------------- normalisation

def _hist_task(args) -> np.ndarray:
    src, (y0, y1, x0, x1) = args
    a = src.read(y0, y1, x0, x1)
    n = 256 if a.dtype == np.uint8 else 65536
    return np.stack([np.bincount(ch.ravel(), minlength=n) for ch in a]).astype(np.int64)


def _sample_task(args) -> np.ndarray:
    src, (y0, y1, x0, x1) = args
    return src.read(y0, y1, x0, x1)[:, ::4, ::4].astype(np.float32).reshape(src.shape[0], -1)


def _percentile_from_hist(counts: np.ndarray, q: float) -> np.float32:
    """numpy's ``percentile`` (linear method) of the float32 values a histogram counts."""
    n = int(counts.sum())
    quant = np.true_divide(q, 100)
    virtual = n * quant + (1 + quant * (1 - 1 - 1)) - 1  # numpy's _compute_virtual_index(n, q, 1, 1)
    prev = int(np.floor(virtual))
    prev, nxt = min(max(prev, 0), n - 1), min(max(prev + 1, 0), n - 1)
    gamma = float(virtual - np.floor(virtual))
    cum = np.cumsum(counts)
    a = np.float32(np.searchsorted(cum, prev, side="right"))
    b = np.float32(np.searchsorted(cum, nxt, side="right"))
    d = b - a
    return b - d * np.float32(1 - gamma) if gamma >= 0.5 else a + d * np.float32(gamma)


def image_norm(src: omezarr.Source, mode: str = "auto", percentiles=(0.1, 99.9), client=None,
               progress: bool = False, chunk: int = DEFAULT_CHUNK) -> Norm:
    """The same :class:`sr.imio.Norm` that ``imio.normalize`` computes on the whole image."""
    dt = src.dtype
    if dt not in (np.uint8, np.uint16) and not np.issubdtype(dt, np.floating):
        raise ImageError(f"{src.path}: dtype {dt}; the chunked path reads uint8, uint16 and float images")
    c = src.shape[0]
    if mode == "auto":
        mode = "dtype" if dt == np.uint8 else "percentile"
    if mode == "dtype":
        top = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(np.dtype(dt), 1.0)
        lo, hi = np.zeros(c), np.full(c, top)
    elif mode == "percentile":
        items = [(src, r) for r in regions(src.height, src.width, chunk)]
        if dt in (np.uint8, np.uint16):
            counts = sum(run_all(_hist_task, items, client, "statistics", progress))
            lo = np.array([_percentile_from_hist(h, percentiles[0]) for h in counts])
            hi = np.array([_percentile_from_hist(h, percentiles[1]) for h in counts])
            fmin = np.array([float(np.flatnonzero(h)[0]) for h in counts])
            fmax = np.array([float(np.flatnonzero(h)[-1]) for h in counts])
        else:
            flat = np.concatenate(run_all(_sample_task, items, client, "statistics", progress), axis=1)
            lo, hi = np.percentile(flat, percentiles[0], axis=1), np.percentile(flat, percentiles[1], axis=1)
            fmin, fmax = flat.min(axis=1), flat.max(axis=1)
        same = hi - lo < 1e-6
        lo = np.where(same, fmin, lo)
        hi = np.where(same, np.maximum(fmax, fmin + 1.0), hi)
    else:
        raise ValueError(f"normalize mode {mode!r} is not one of auto, dtype, percentile")
    return Norm(lo.astype(np.float32), hi.astype(np.float32), np.dtype(dt))


# ---------------------------------------------------------------------------- one region

def run_region(job: Job) -> int:
    """Super-resolve one region into level 0 of ``job.dest``; returns LR pixels done."""
    import torch

    from . import api
    from .tiling import default_overlap

    bound_heap()
    net = api.fast_model(job.model, job.precision, job.blend, consistency=job.consistency)
    precision = net.fast_precision
    cfg = getattr(net, "config", {})
    in_c = cfg.get("in_channels", 1)
    src = job.src
    h, w = src.height, src.width
    stages = net.stages() if callable(getattr(net, "stages", None)) and max(h, w) > job.tile else None
    if stages is not None:  # two-stage tiling, as sr.tiling.run_tiled does in memory
        m = ((stages.trunk_radius if job.overlap is None else int(job.overlap)) + stages.up_radius
             + (stages.post_radius if stages.post is not None else 0))
    else:
        m = default_overlap(net) if job.overlap is None else int(job.overlap)
    y0, y1, x0, x1 = job.region
    ry0, ry1, rx0, rx1 = max(0, y0 - m), min(h, y1 + m), max(0, x0 - m), min(w, x1 + m)
    lo, hi = np.asarray(job.lo, np.float32), np.asarray(job.hi, np.float32)
    c = src.read(ry0, ry1, rx0, rx1).astype(np.float32)
    x = ((c - lo[:, None, None]) / (hi - lo)[:, None, None]).astype(np.float32)  # as imio.normalize
    if in_c == 1:
        batch = x[:, None]
    elif in_c == x.shape[0]:
        batch = x[None]
    else:
        raise ImageError(f"the model takes {in_c} channels; the image has {x.shape[0]}")
    xt = torch.as_tensor(batch)
    out_c = cfg.get("out_channels", xt.shape[1])
    out = np.empty((xt.shape[0], out_c, (y1 - y0) * SCALE, (x1 - x0) * SCALE), np.float32)
    if stages is not None:
        from .staged import run_staged

        with torch.inference_mode():
            run_staged(stages, xt, out, SCALE, job.tile, job.overlap, region=(y0, y1, x0, x1),
                       offset=(ry0, rx0), size=(h, w))
    else:
        _one_stage(net, xt, out, job, precision, (h, w), (y0, y1, x0, x1), (ry0, rx0), m)
    y = out[:, 0] if in_c == 1 else out[0]
    y = y * (hi - lo)[:, None, None] + lo[:, None, None]  # as imio.denormalize
    dt = src.dtype
    if dt == np.uint8:
        y = np.clip(np.rint(y), 0, 255).astype(np.uint8)
    elif dt == np.uint16:
        y = np.clip(np.rint(y), 0, 65535).astype(np.uint16)
    else:
        y = y.astype(np.float32)
    omezarr.write_region(job.dest, 0, y, y0 * SCALE, x0 * SCALE)
    return (y1 - y0) * (x1 - x0)


def _one_stage(net, xt, out, job: Job, precision, size, region, offset, m) -> None:
    """Every tile through the whole model, on the global tile grid of :func:`sr.tiling.run_tiled`."""
    import torch

    from .runtime import autocast

    (h, w), (y0, y1, x0, x1), (ry0, rx0) = size, region, offset
    self_casting = getattr(net, "self_casting", False)
    channels_last = precision == "bf16" and not self_casting
    amp = "fp32" if self_casting else precision
    with torch.inference_mode():
        for ty0 in range(y0, y1, job.tile):  # the global tile grid of sr.tiling.run_tiled
            ty1 = min(ty0 + job.tile, h)
            for tx0 in range(x0, x1, job.tile):
                tx1 = min(tx0 + job.tile, w)
                py0, py1, px0, px1 = max(0, ty0 - m), min(h, ty1 + m), max(0, tx0 - m), min(w, tx1 + m)
                patch = xt[:, :, py0 - ry0:py1 - ry0, px0 - rx0:px1 - rx0]
                if channels_last:
                    patch = patch.contiguous(memory_format=torch.channels_last)
                with autocast(amp):
                    y = net(patch).float()
                oy, ox = (ty0 - py0) * SCALE, (tx0 - px0) * SCALE
                out[:, :, (ty0 - y0) * SCALE:(ty1 - y0) * SCALE, (tx0 - x0) * SCALE:(tx1 - x0) * SCALE] = (
                    y[:, :, oy:oy + (ty1 - ty0) * SCALE, ox:ox + (tx1 - tx0) * SCALE].numpy())


def _pyramid_task(args) -> int:
    return omezarr.downsample_region(*args)


# ---------------------------------------------------------------------------- images

def output_name(src_path: str | Path, model: str) -> str:
    name = Path(src_path).name
    for suf in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".ome.zarr", ".zarr"):
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
            break
    return f"{name}_x4_{model}.ome.zarr"


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files and Zarr folders; a plain folder (a plate) stands for the images inside it."""
    out = []
    for p in map(Path, inputs):
        if p.is_dir() and not omezarr.is_zarr(p):
            out += sorted(q for q in p.iterdir() if omezarr.is_zarr(q) or q.suffix.lower() in (".tif", ".tiff"))
        else:
            out.append(p)
    return out


def upscale_chunked(inputs, out_dir: str | Path, model: str, chunk: int = DEFAULT_CHUNK, tile: int = DEFAULT_TILE,
                    overlap: int | None = None, precision: str | None = None, normalize: str = "auto",
                    blend: float | None = None, client=None, progress: bool = True,
                    consistency: int | None = None) -> list[Path]:
    """Super-resolve every input (a path, a list, or plate folders) into ``out_dir`` as OME-Zarr."""
    from . import api, zoo

    entry = zoo.get_entry(model)
    if entry.kind != "generator":
        raise zoo.ZooError(f"the chunked path runs zoo generators; {model!r} is a {entry.kind}")
    if tile <= 0 or chunk % tile:
        raise ValueError(f"--chunk ({chunk}) must be a positive multiple of --tile ({tile})")
    bound_heap()
    blend = api.resolve_blend(model, blend)
    consistency = api.resolve_consistency(model, consistency)
    net = api.fast_model(model, precision, blend, consistency=consistency)  # fail early here (weights), not on a worker
    if callable(getattr(net, "stages", None)) and net.stages() is not None:
        chunk = -(-chunk // trunk_tile(tile)) * trunk_tile(tile)  # regions of whole trunk tiles
    paths = expand_inputs([inputs] if isinstance(inputs, (str, Path)) else inputs)
    if not paths:
        raise ImageError("no TIFF or Zarr images among the inputs")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_chunk = math.gcd(SCALE * chunk, OUT_CHUNK)
    jobs, dests, pyramids = [], [], []
    for p in paths:
        src = omezarr.open_source(p)
        norm = image_norm(src, normalize, client=client, progress=progress, chunk=chunk)
        dest = out_dir / output_name(p, model)
        size = tuple(s / SCALE for s in src.pixel_size) if src.pixel_size else None
        levels = omezarr.create(dest, (src.shape[0], src.height * SCALE, src.width * SCALE), src.dtype, out_chunk,
                                size, src.unit or ("micrometer" if size else None), name=dest.name,
                                channel_names=src.channel_names,
                                extra={"model": model, "source": str(p), "blend": blend, "consistency": consistency,
                                       "normalize": normalize,
                                       "lo": norm.lo.tolist(), "hi": norm.hi.tolist()})
        jobs += [Job(src, str(dest), model, r, tile, overlap, precision, blend,
                     tuple(norm.lo.tolist()), tuple(norm.hi.tolist()), consistency) for r in regions(src.height, src.width, chunk)]
        pyramids.append((dest, levels))
        dests.append(dest)
    try:
        run_all(run_region, jobs, client, "upscale", progress)
    finally:
        for j in {id(j.src): j for j in jobs}.values():
            j.src.close()  # local TIFF handles (workers hold their own copies)
    for level in range(1, max(len(lv) for _, lv in pyramids)):
        items = [(str(d), level, *r) for d, lv in pyramids if level < len(lv)
                 for r in regions(lv[level][1], lv[level][2], min(PYRAMID_BLOCK, SCALE * chunk))]
        run_all(_pyramid_task, items, client, f"pyramid level {level}", progress)
    return dests


def read_level(dest: str | Path, level: int = 0) -> np.ndarray:
    """A whole pyramid level as ``(C, H, W)`` (for tests and small images)."""
    import zarr

    return np.asarray(zarr.open_array(str(Path(dest) / str(level)), mode="r")[:])


# ---------------------------------------------------------------------------- clusters

def make_client(scheduler: str | None = None, workers: int | None = None, processes: bool = True,
                torch_threads: int = 1):
    """A ``distributed.Client``: to ``scheduler`` if given, else a local cluster of ``workers``
    single-threaded workers (loopback only; in-process threads with ``processes=False``).
    ``None`` when neither is asked for."""
    if not scheduler and not workers:
        return None
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler)
    else:
        where = {"host": "127.0.0.1"} if processes else {}  # in-process workers talk inproc://
        cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=processes,
                               dashboard_address=None, **where)
        client = Client(cluster)
    if torch_threads:
        def _threads(n=torch_threads):
            import torch

            torch.set_num_threads(n)

        if processes or scheduler:
            client.run(_threads)
    return client


def close_client(client) -> None:
    if client is None:
        return
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def bench_dask(side: int = 512, workers=(1, 2), model: str = "srgan-lite", chunk: int = 192,
               out_dir: str | Path | None = None, processes: bool = True) -> list[dict]:
    """Throughput (LR megapixels per second) of the chunked path on a local cluster of 1 and 2
    workers, on a synthetic ``side x side`` uint8 TIFF; the first run of each cluster warms it."""
    import tempfile

    import tifffile

    tile = chunk // 3 if chunk % 3 == 0 else chunk  # regions = one trunk tile (sr.staged) of 3 x tile
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(out_dir or tmp)
        src = base / "bench_input.ome.tif"
        rng = np.random.default_rng(0)
        tifffile.imwrite(src, (rng.random((side, side)) * 255).astype(np.uint8), tile=(256, 256), ome=True)
        for n in workers:
            client = make_client(workers=n, processes=processes)
            try:
                upscale_chunked(src, base / f"warm{n}", model, chunk=chunk, tile=tile, client=client, progress=False)
                t = time.perf_counter()
                upscale_chunked(src, base / f"run{n}", model, chunk=chunk, tile=tile, client=client, progress=False)
                dt = time.perf_counter() - t
            finally:
                close_client(client)
            rows.append({"workers": n, "side": side, "seconds": round(dt, 2),
                         "lr_mpx_per_s": round(side * side / dt / 1e6, 4)})
    return rows


# ---------------------------------------------------------------------------- command line

def wants_chunked(args) -> bool:
    """``sr upscale`` takes the chunked path for (OME-)Zarr, OME-TIFF, folders, or when asked."""
    return bool(getattr(args, "ome_zarr", False) or getattr(args, "workers", None)
                or getattr(args, "scheduler", None)
                or any(omezarr.is_zarr(s) or omezarr.is_ome_tiff(s) or Path(s).is_dir() for s in args.inputs))


def cli_upscale(args) -> int:
    from . import zoo

    model = args.model or (zoo.with_role("cli-default") or ["srgan-lite"])[0]
    client = make_client(args.scheduler, args.workers)
    try:
        dests = upscale_chunked(args.inputs, args.out, model, chunk=args.chunk, tile=args.tile, overlap=args.overlap,
                                precision=args.precision, normalize=args.normalize, blend=args.blend, client=client,
                                consistency=args.consistency)
    finally:
        close_client(client)
    for d in dests:
        c, h, w = read_shape(d)
        print(f"-> {d} ({w}x{h}, {c} channel{'s' if c > 1 else ''}, OME-Zarr pyramid)")
    return 0


def read_shape(dest: str | Path) -> tuple:
    import zarr

    return tuple(zarr.open_array(str(Path(dest) / "0"), mode="r").shape)


def bench_cli(args) -> int:
    import json

    rows = bench_dask(side=args.side, workers=tuple(int(n) for n in args.workers.split(",")), model=args.model,
                      chunk=args.chunk)
    for r in rows:
        print(f"{r['workers']} worker(s): {r['side']}x{r['side']} LR in {r['seconds']} s = "
              f"{r['lr_mpx_per_s']} LR Mpx/s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0
