"""Continuing an interrupted run (``infer --resume``): which outputs of the run folder are complete, and the
timings the earlier run measured for them.

A frame counts as done when its PNG decodes to the expected size (and, with kernels, its kernel files
load); everything else is computed again. Outputs are written atomically, so what an interrupted run
leaves is either complete or a ``*.partial-XXXXXXXX.*`` temporary, which is removed.
"""
import csv
import os
import re

import numpy as np

from .files import is_temporary

TIMES = ("pre", "forward", "post", "total")


def previous_times(run_dir):
    """{(video, frame): {pre, forward, post, total}} from the run's metrics.csv, and from the per-process
    ``metrics.rank<N>.csv`` of a run of several processes that was interrupted before merging them (empty
    when there is none)."""
    rows = []
    for name in sorted(os.listdir(run_dir)):
        if re.fullmatch(r"metrics(\.rank\d+)?\.csv", name):
            with open(os.path.join(run_dir, name), newline="", encoding="utf-8") as f:
                rows += list(csv.DictReader(f))
    out = {}
    for row in rows:
        try:
            out[(row["video"], row["frame"])] = {k: float(row[k + "_s"]) for k in TIMES}
        except (KeyError, TypeError, ValueError):
            continue  # a row cut short by the interruption: its frame just has no earlier timings
    return out


def remove_partials(run_dir):
    """Delete the temporaries an interrupted run left anywhere in its folder ``run_dir``."""
    for folder, _, names in os.walk(run_dir):
        for name in names:
            if is_temporary(name):
                os.remove(os.path.join(folder, name))


def finished_frame(out_dir, stem, shape, kernel):
    """The uint8 RGB image of ``<out_dir>/<stem>.png`` when it decodes with ``shape`` (and, with ``kernel``,
    its kernel .npy and .png load too), else None."""
    from PIL import Image

    try:
        with Image.open(os.path.join(out_dir, stem + ".png")) as im:
            img = np.asarray(im.convert("RGB") if im.mode != "RGB" else im)
        if kernel:
            base = os.path.join(out_dir, "kernels", stem)
            np.load(base + ".npy", allow_pickle=False)
            with Image.open(base + ".png") as im:
                im.load()
    except (OSError, ValueError, SyntaxError):
        return None
    return img if img.shape == tuple(shape) else None
