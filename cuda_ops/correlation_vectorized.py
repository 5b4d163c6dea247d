"""81-channel PWC-Net correlation in plain Jittor operators (the portable fallback).

One ``reindex`` builds the 81 shifted copies of ``second`` (zero outside the image), a broadcast product with
``first`` and a mean over channels give the result; Jittor's autograd supplies the backward. It materialises a
[B, 81, C, H, W] intermediate, so it is slower and hungrier than the custom operator, but it needs no compiler.
"""
from .geometry import CHANNELS, GRID, MAX_DISPLACEMENT


def correlation(first, second):
    """corr[b, (dy+4)*9 + (dx+4), y, x] = mean_c first[b,c,y,x] * second[b,c,y+dy,x+dx] (zero outside)."""
    b, c, h, w = first.shape
    d, g = MAX_DISPLACEMENT, GRID
    shifted = second.reindex([b, CHANNELS, c, h, w],
                             ["i0", "i2", f"i3+i1/{g}-{d}", f"i4+i1%{g}-{d}"])
    return (shifted * first.unsqueeze(1)).mean(dim=2)
