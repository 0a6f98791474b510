"""Large-image check of the chunked path: peak memory and equality with the in-memory path.

    OMP_NUM_THREADS=1 nice -n 15 python scripts/large_image_check.py --side 8192 --model srgan-lite

1. writes a synthetic tiled uint8 OME-TIFF of ``side x side`` LR pixels (tile by tile, never
   whole in memory; cell-like blobs plus noise, pixel size 0.65 um);
2. runs ``python -m sr upscale IN --out OUT`` (the chunked path, OME-Zarr out) as a child
   process and reports its wall time and peak RSS (``getrusage(RUSAGE_CHILDREN)``);
3. reads an interior crop of the input with a margin, runs ``sr.upscale`` on it in memory and
   checks that every tile whose receptive field lies inside the crop is identical in the
   OME-Zarr (same tile grid: the crop starts on a tile boundary);
4. prints one JSON line with the numbers (and writes it to ``--json``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def synthetic_tile(y0: int, x0: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Deterministic cell-like content of any region (same pixels whatever the tiling)."""
    yy, xx = np.mgrid[y0:y0 + h, x0:x0 + w].astype(np.float32)
    v = (np.sin(yy / 23.0) * np.cos(xx / 31.0)) ** 2 * 120 + (np.sin((yy + 2 * xx) / 57.0) + 1) * 30
    noise = np.random.default_rng([seed, y0, x0]).normal(0, 6, (h, w))
    return np.clip(v + noise + 10, 0, 255).astype(np.uint8)


def write_input(path: Path, side: int, tile: int = 512) -> None:
    import tifffile

    def tiles():
        for y in range(0, side, tile):
            for x in range(0, side, tile):
                t = np.zeros((tile, tile), np.uint8)
                h, w = min(tile, side - y), min(tile, side - x)
                t[:h, :w] = synthetic_tile(y, x, h, w)
                yield t

    tifffile.imwrite(path, tiles(), shape=(side, side), dtype=np.uint8, tile=(tile, tile), ome=True,
                     compression="zlib", bigtiff=True,
                     metadata={"axes": "YX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65, "PhysicalSizeXUnit": "µm"})


def crop_check(src: Path, dest: Path, model: str, tile: int, crop: int) -> dict:
    """Interior crop starting on a tile boundary; compares the tiles whose margins stay inside."""
    import tifffile
    import zarr

    from sr import api, zoo

    side = tifffile.TiffFile(src).series[0].shape[0]
    m = zoo.load(model).receptive_radius()
    cs = max(0, (side // 2 // tile) * tile - tile)  # crop start: a tile boundary near the centre
    ce = min(side, cs + crop + 2 * m + 2 * tile)
    with tifffile.TiffFile(src) as tf:
        lr = zarr.open(tf.series[0].aszarr(), mode="r")[cs:ce, cs:ce]
    mem = api.upscale(np.asarray(lr), model, tile=tile)
    a = cs + tile * math.ceil(m / tile)  # first tile whose top margin is inside the crop
    b = cs + ((ce - m - cs) // tile) * tile if ce < side else ce  # last tile end whose margin is inside
    out = zarr.open_array(str(dest / "0"), mode="r")[0, 4 * a:4 * b, 4 * a:4 * b]
    ref = mem[4 * (a - cs):4 * (b - cs), 4 * (a - cs):4 * (b - cs)]
    return {"crop_lr": [a, b], "crop_hr_pixels": int(out.size), "identical": bool(np.array_equal(out, ref)),
            "max_abs_diff": int(np.abs(out.astype(np.int32) - ref.astype(np.int32)).max())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--side", type=int, default=8192, help="LR side of the synthetic input")
    p.add_argument("--model", default="srgan-lite")
    p.add_argument("--chunk", type=int, default=768)
    p.add_argument("--tile", type=int, default=192)
    p.add_argument("--crop", type=int, default=384, help="LR side of the compared crop")
    p.add_argument("--work", default="/tmp/sr_large_check", help="folder for the input and output")
    p.add_argument("--json", default=None)
    p.add_argument("--keep", action="store_true", help="keep the input and the output")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"synthetic_{args.side}.ome.tif"
    t0 = time.perf_counter()
    if not src.exists():
        write_input(src, args.side)
    t_write = time.perf_counter() - t0
    out = work / "out"
    cmd = [sys.executable, "-m", "sr", "upscale", str(src), "--model", args.model, "--out", str(out),
           "--chunk", str(args.chunk), "--tile", str(args.tile)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    from sr.chunked import output_name

    dest = out / output_name(src, args.model)
    import zarr

    shape = list(zarr.open_array(str(dest / "0"), mode="r").shape)
    res = {"side_lr": args.side, "output_shape": shape, "model": args.model, "chunk": args.chunk,
           "tile": args.tile, "input_write_s": round(t_write, 1), "upscale_wall_s": round(wall, 1),
           "peak_rss_mb": round(peak_kib / 1024, 1), "lr_mpx_per_s": round(args.side ** 2 / wall / 1e6, 3),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), **crop_check(src, dest, args.model, args.tile, args.crop)}
    print(json.dumps(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    if not args.keep:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        src.unlink(missing_ok=True)
    return 0 if res["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
