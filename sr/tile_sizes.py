"""Default tile and chunk sizes (low-resolution pixels), in one light module the CLI can import.

Two-stage tiles of 256 (trunk tiles of 2 x 256, :mod:`sr.staged`): on the 2-core EPYC the improved
SRGAN's int8 tiled 2048^2 run, each run in a fresh process, was 2.22x the previous default path with
711 MB of peak RSS growth; tile 192 with trunk tiles of 3 x 192 2.14x and 850 MB
(``python scripts/tile_sweep.py --tiles 192,256 --trunk-factors 2,3 --rounds 2`` runs these; docs/bench.md:
2.22x, 727 MB in the full benchmark).
"""
DEFAULT_TILE = 256
DEFAULT_CHUNK = 1536  # the chunked path's regions: a multiple of the tile (256) and of its trunk tile (512)
