"""Tiled 2048^2 -> 8192^2 runs of one model at several two-stage tile sizes, against the previous
default path (bf16, one-stage tiles of 256), with `sr bench`'s timing and RSS measurement.

    python scripts/tile_sweep.py [--model srgan-improved] [--precision int8] [--tiles 192,256] [--rounds 1]

Run it on an idle machine (pause training); each run takes tens of seconds.
"""
from __future__ import annotations

import argparse

from sr import bench, bench_precision as bp, zoo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="srgan-improved")
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--tiles", default="192,256")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    configs = [bp.PREVIOUS_TILED]
    configs += [(args.precision, int(t), True, f"{args.precision}, two-stage, tile {t}") for t in args.tiles.split(",")]
    rows = bp.bench_tiled(zoo.get_entry(args.model), configs, bench._rss_peak_reset, bench._rss_mb, rounds=args.rounds)
    for r in rows:
        print(f"{r['path']}: {r['seconds']} s, peak RSS growth {r['peak_rss_growth_mb']} MB, "
              f"{r['speedup_vs_previous']}x the previous default ({r['precision']} ran)")


if __name__ == "__main__":
    main()
