"""Validation set of pre-degraded videos (upstream-conventions §4): ``<root>/HR/<video>/*`` and
``<root>/LR_blurdown_x4/<video>/*`` (same video names), every window of 5 consecutive frames, no padding, so
the first and last two frames of each video are never a centre frame (as upstream's training validation)."""
import os

import numpy as np

from ..video_io import InputError, frame_stem, read_image
from .folders import frame_sizes, video_frames, windows
from .workers import WorkerSafeDataset


class HRLRValSet(WorkerSafeDataset):
    """Yields (LR window [1, 5, 3, h, w], HR centre frame [1, 3, H, W], name '<video>/<frame stem>'), in [0, 1]."""

    def __init__(self, root, n_sequence=5, num_workers=0):
        super().__init__()
        if not os.path.isdir(root):
            raise InputError(root, "validation folder not found (expected HR/<video>/<frames> and "
                                   "LR_blurdown_x4/<video>/<frames> inside)")
        self.hr = video_frames(root, "HR")
        self.lr = video_frames(root, "LR_blurdown_x4")
        hr_names, lr_names = [n for n, _ in self.hr], [n for n, _ in self.lr]
        if hr_names != lr_names:
            raise InputError(root, f"HR videos {hr_names[:4]} and LR_blurdown_x4 videos {lr_names[:4]} differ")
        for (name, hr), (_, lr) in zip(self.hr, self.lr):
            if len(hr) != len(lr):
                raise InputError(os.path.join(root, "HR", name), f"{len(hr)} HR frames but {len(lr)} LR frames")
        for videos in (self.hr, self.lr):
            frame_sizes(videos)  # every frame readable, one size per video, before training starts
        self.n_sequence = n_sequence
        self.windows = windows(self.lr, n_sequence)
        self.set_attrs(total_len=len(self.windows), batch_size=1, shuffle=False, num_workers=num_workers)

    def load(self, index):
        v, start = self.windows[index]
        centre = start + self.n_sequence // 2
        lr = np.stack([read_image(p)[0] for p in self.lr[v][1][start:start + self.n_sequence]])
        hr = read_image(self.hr[v][1][centre])[0]
        name = f"{self.hr[v][0]}/{frame_stem(self.hr[v][1][centre])}"
        return (lr.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0),
                hr.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0), name)
