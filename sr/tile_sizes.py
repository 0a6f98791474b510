"""Default tile and chunk sizes (low-resolution pixels), in one light module the CLI can import.

Two-stage tiles of 256 (trunk tiles of 3 x 256, :mod:`sr.staged`): on the 2-core EPYC the improved
SRGAN's int8 tiled 2048^2 run was 2.31x the previous default path at tile 256 and 2.09x at 192, with
850 vs 868 MB of RSS growth (``python scripts/tile_sweep.py --tiles 192,256 --rounds 2``); the full
``sr bench`` read 2.16x and 1201 MB in-process for tile 256 (docs/bench.md).
"""
DEFAULT_TILE = 256
DEFAULT_CHUNK = 1536  # the chunked path's regions: a multiple of the tile (256) and of its trunk tile (768)
