"""Training and held-out windows cut from a clip's own LR frames, for adapting the network to that clip.

Nothing is degraded here: the clip is used as it is. In 'train' mode the network blurs and decimates its
input with the kernel it estimates itself and learns to restore it, so the LR frames are the whole signal.
A window is 5 consecutive frames; every HOLD_OUT_EVERY-th window is held out to tell whether adapting helped
(a clip with fewer windows has none to spare, and is scored on its training windows). Training crops are
P x P LR pixels at random places with random flips, drawn from a generator seeded by (seed, step), so a
resumed run continues with the crops an uninterrupted one would have used. Held-out crops are fixed.
Frames are decoded once and kept as uint8; only crops are converted to float and sent to the network.
"""
import numpy as np

from ..video_io import InputError
from .train_set import augment, textured_crop

HOLD_OUT_EVERY = 5   # every 5th window of a clip is held out ...
HELD_OUT_CROPS = 16  # ... and scored on this many fixed crops


def read_clips(videos, limit=None, note=print):
    """[(video, uint8 frames [n, h, w, 3])]: the first ``limit`` frames (all when None) of each video, decoded
    once; ``note`` receives each conversion note (grayscale, alpha, ...) once per video."""
    clips = []
    for video in videos:
        frames, noted = [], set()
        decoded = video.frames()
        try:
            for _stem, img, message, path in decoded:
                if message and message not in noted:
                    noted.add(message)
                    note(f"note: {path}: {message}")
                frames.append(img)
                if limit and len(frames) == limit:
                    break
        finally:
            decoded.close()
        clips.append((video, np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)))
    return clips


def to_input(crops):
    """uint8 crops [B, 5, p, p, 3] -> float32 [B, 5, 3, p, p] in [0, 1], the network's input layout."""
    x = np.asarray(crops).transpose(0, 1, 4, 2, 3).astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(x)


class LRWindows:
    """The windows of one or more clips (``read_clips`` output) split into training and held-out ones."""

    def __init__(self, clips, patch_size, n_sequence=5, seed=1, held_out_crops=HELD_OUT_CROPS):
        for video, frames in clips:
            if len(frames) < n_sequence:
                raise InputError(video.path, f"{len(frames)} frame(s): adapting needs at least {n_sequence} "
                                             "consecutive frames (one input window)")
            h, w = frames.shape[1:3]
            if min(h, w) < patch_size:
                raise InputError(video.path, f"frames are {w}x{h}, smaller than the {patch_size}x{patch_size} "
                                             f"training crop; lower --patch-size to at most {min(h, w) // 4 * 4}")
        self.frames = [frames for _, frames in clips]
        self.patch_size, self.n_sequence, self.seed = patch_size, n_sequence, seed
        self.held_out_crops = held_out_crops
        windows = [(c, start) for c, frames in enumerate(self.frames)
                   for start in range(len(frames) - n_sequence + 1)]
        held = windows[HOLD_OUT_EVERY - 1::HOLD_OUT_EVERY]
        self.separate = bool(held)  # False: too few windows to hold any out
        self.train = [w for w in windows if w not in held] if held else windows
        self.held_out = held or windows

    def describe(self):
        """One line: frames, windows, what is held out."""
        sizes = sorted({f"{f.shape[2]}x{f.shape[1]}" for f in self.frames})
        held = (f"{len(self.held_out)} held out (every {HOLD_OUT_EVERY}th)" if self.separate else
                f"none held out (fewer than {HOLD_OUT_EVERY} windows: the guard scores training windows)")
        return (f"{sum(len(f) for f in self.frames)} frames of {', '.join(sizes)} in {len(self.frames)} clip(s): "
                f"{len(self.train)} training windows, {held}")

    def _crop(self, window, rng, flip):
        clip, start = window
        frames = self.frames[clip][start:start + self.n_sequence]
        crop = textured_crop(frames, self.patch_size, rng, self.n_sequence // 2)
        # flips only: they leave a blur symmetric about the axes (Gaussian, horizontal or vertical motion) as
        # it is, where rot90 would turn a horizontal motion blur into a vertical one the clip does not have
        return augment(crop, rng, rot90=False) if flip else crop

    def batch(self, step, batch_size):
        """Training batch number ``step``: float32 [B, 5, 3, p, p] from random windows, crops and flips."""
        rng = np.random.default_rng([self.seed, 0, step])
        picks = rng.integers(0, len(self.train), batch_size)
        return to_input([self._crop(self.train[i], rng, flip=True) for i in picks])

    def held_out_batches(self, batch_size):
        """The held-out crops (the same on every call) as float32 batches of at most ``batch_size``."""
        crops = [self._crop(self.held_out[i % len(self.held_out)], np.random.default_rng([self.seed, 1, i]),
                            flip=False) for i in range(self.held_out_crops)]
        return [to_input(crops[i:i + batch_size]) for i in range(0, len(crops), batch_size)]
