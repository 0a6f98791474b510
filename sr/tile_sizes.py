"""Default tile and chunk sizes (low-resolution pixels), in one light module the CLI can import.

Two-stage tiles of 256 (trunk tiles of 3 x 256, :mod:`sr.staged`): on the 2-core EPYC the improved
SRGAN's int8 tiled 2048^2 run took 39.3 s at tile 256 vs 43.9 s at 192, with less RSS growth (809 vs
1026 MB; ``python scripts/tile_sweep.py --tiles 192,256``; ``sr bench``'s tiled rows in docs/bench.md).
"""
DEFAULT_TILE = 256
DEFAULT_CHUNK = 1536  # the chunked path's regions: a multiple of the tile (256) and of its trunk tile (768)
