"""Tiled 2048^2 -> 8192^2 runs of one model at several two-stage tile sizes and trunk factors,
against the previous default path (bf16, one-stage tiles of 256), each run in a fresh process
with `sr bench`'s timing and RSS measurement (`sr.bench_tiled`).

    python scripts/tile_sweep.py [--model srgan-improved] [--precision int8] [--tiles 192,256] \
        [--trunk-factors 2,3] [--rounds 1]

Run it on an idle machine (pause training); each run takes tens of seconds.
"""
from __future__ import annotations

import argparse

from sr import zoo
from sr.bench_tiled import PREVIOUS_TILED, TiledPath, bench_tiled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="srgan-improved")
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--tiles", default="192,256")
    ap.add_argument("--trunk-factors", default="", help="trunk tile / tile, e.g. 2,3 (default: sr.staged's)")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    factors = [int(f) for f in args.trunk_factors.split(",") if f] or [None]
    paths = [PREVIOUS_TILED]
    paths += [TiledPath(args.precision, int(t), True, f"{args.precision}, two-stage, tile {t}"
                        + (f", trunk x{f}" if f else ""), f)
              for t in args.tiles.split(",") for f in factors]
    for r in bench_tiled(zoo.get_entry(args.model), paths, rounds=args.rounds):
        print(f"{r['path']}: {r['seconds']} s, peak RSS growth {r['peak_rss_growth_mb']} MB, "
              f"{r['speedup_vs_previous']}x the previous default ({r['precision']} ran, trunk tile {r['trunk_tile']})")


if __name__ == "__main__":
    main()
