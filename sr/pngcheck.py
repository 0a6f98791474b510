"""Refuse truncated PNG image data before Pillow fills the missing scanlines with zeros."""
from __future__ import annotations

import struct
import zlib

from .imlimits import ImageError


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}

_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))

def _png_raw_size(w: int, h: int, depth: int, ctype: int, interlace: int) -> int:
    """Bytes of the filtered scanlines a complete PNG image stream inflates to."""
    bpp = _PNG_CHANNELS.get(ctype, 4) * depth
    if not interlace:
        return h * (1 + (w * bpp + 7) // 8)
    total = 0
    for x0, y0, dx, dy in _ADAM7:
        pw, ph = (w - x0 + dx - 1) // dx, (h - y0 + dy - 1) // dy
        if pw > 0 and ph > 0:
            total += ph * (1 + (pw * bpp + 7) // 8)
    return total

def check_png_stream(fh) -> None:
    """Refuse a PNG whose image data (IDAT) inflates to fewer bytes than its header declares
    (Pillow would fill the rest with zeros). Inflates in 1 MiB pieces, keeping nothing."""
    fh.seek(0)
    if fh.read(8) != b"\x89PNG\r\n\x1a\n":
        return
    d = zlib.decompressobj()
    need = got = 0
    seen_idat = False
    while True:
        head = fh.read(8)
        if len(head) < 8:
            break
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IHDR":
            body = fh.read(length)
            if len(body) < 13:
                raise ImageError("PNG header is damaged")
            w, h, depth, ctype, _c, _f, interlace = struct.unpack(">IIBBBBB", body[:13])
            need = _png_raw_size(w, h, depth, ctype, interlace)
            fh.seek(4, 1)
            continue
        if kind == b"IDAT":
            seen_idat = True
            left = length
            while left > 0 and got < need:
                piece = fh.read(min(left, 1 << 20))
                if not piece:
                    break
                left -= len(piece)
                try:
                    buf = d.decompress(piece, 1 << 20)
                    got += len(buf)
                    while d.unconsumed_tail and got < need:
                        buf = d.decompress(d.unconsumed_tail, 1 << 20)
                        got += len(buf)
                except zlib.error:
                    raise ImageError("PNG image data are damaged (bad compressed stream)") from None
            if got >= need:
                return
            fh.seek(left + 4, 1)
            continue
        if seen_idat:
            break  # the image data ended
        fh.seek(length + 4, 1)
    if got < need:
        raise ImageError(f"PNG image data are truncated: {got:,} of {need:,} bytes of scanlines "
                         f"(the file is damaged or incomplete)")
