"""Displacement grid of the PWC-Net correlation, shared by every implementation.

Displacements dx, dy run over -4..4; output channel (dy + 4) * 9 + (dx + 4) (dy-major, dx-minor), 81 in all.
"""
MAX_DISPLACEMENT = 4
GRID = 2 * MAX_DISPLACEMENT + 1
CHANNELS = GRID * GRID
