"""Online blur-down training set (upstream-conventions §4): 5-frame HR windows -> LR windows with one random
kernel each.

Layout ``<root>/HR/<video>/<frames>``, the first ``n_frames_per_video`` frames of each video. A sample is 5
consecutive frames: one (4 * patch_size)^2 HR crop shared by the 5 frames (re-drawn up to 5 times while the
centre frame is flat, Sobel mean < 7), flips / rot90 augmentation, one blur kernel shared by the 5 frames,
replicate-pad blur and ``[::4, ::4]`` decimation, no noise, no quantisation; LR in [0, 1].

Randomness: every sample draws from its own numpy Generator seeded by (seed, epoch, sample index), and the
epoch's order is a permutation seeded by (seed, epoch). Worker processes therefore never share a random
stream and each epoch gets fresh crops and kernels (upstream's workers repeated one numpy stream,
upstream-conventions §5), while a run is reproducible from ``--seed`` whatever the number of workers, and
resuming at an epoch needs no saved RNG state.
"""
import os

import numpy as np

from ..degrade import blur_downsample
from ..video_io import InputError, read_image
from .folders import frame_sizes, video_frames, windows
from .imgproc import edge_mean
from .kernels import KERNEL_TYPES, OUT_SIZE, pad_kernel, random_kernel
from .workers import WorkerSafeDataset

FLAT_EDGE_MEAN = 7.0   # crops whose centre frame has a smaller mean Sobel magnitude are re-drawn ...
CROP_TRIES = 5         # ... at most this many crops in all (the last one is kept)


def augment(frames, rng, rot90=True):
    """Same random horizontal flip, vertical flip and (with ``rot90``) rot90, each with probability 1/2, for
    all frames [n, h, w, c]."""
    if rng.random() < 0.5:
        frames = frames[:, :, ::-1]
    if rng.random() < 0.5:
        frames = frames[:, ::-1]
    if rot90 and rng.random() < 0.5:
        frames = np.rot90(frames, axes=(1, 2))
    return frames


def textured_crop(frames, size, rng, centre):
    """One size x size crop of frames [n, h, w, c] (h, w >= size), the same for all frames, re-drawn up to
    CROP_TRIES times while frame ``centre`` of it is flat (the last draw is kept): flat crops teach nothing."""
    _, h, w, _ = frames.shape
    for _ in range(CROP_TRIES):
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        patch = frames[:, y:y + size, x:x + size]
        if edge_mean(patch[centre]) >= FLAT_EDGE_MEAN:
            break
    return patch


class EpochShuffle:
    """Jittor sampler: the epoch's permutation, each index encoded as ``epoch * n + index`` so that the
    sample (and its random stream) can be decoded in a worker process forked before the epoch began."""

    def __init__(self, n, seed, shuffle=True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 1

    def order(self, epoch):
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, epoch, 1]).permutation(self.n)

    def __iter__(self):
        return iter((self.epoch * self.n + self.order(self.epoch)).tolist())

    def __len__(self):
        return self.n


class BlurDownTrainSet(WorkerSafeDataset):
    """Training windows with online degradation; yields (LR [B, 5, 3, p, p], kernel [B, 13, 13]) float32."""

    def __init__(self, root, kernel="gaussian", patch_size=160, scale=4, n_frames_per_video=50, n_sequence=5,
                 augment=True, seed=1, batch_size=8, num_workers=4, test_every=1000, shuffle=True):
        super().__init__()
        if kernel not in KERNEL_TYPES:
            raise ValueError(f"unknown kernel type {kernel!r} (expected one of {', '.join(KERNEL_TYPES)})")
        self.videos = video_frames(root, "HR", n_frames_per_video)
        self.windows = windows(self.videos, n_sequence)
        crop_size, sizes = patch_size * scale, frame_sizes(self.videos)
        for name, frames in self.videos:
            h, w = sizes[name]
            if h < crop_size or w < crop_size:
                raise InputError(os.path.dirname(frames[0]), f"frames are {w}x{h}, smaller than the {crop_size}x"
                                                              f"{crop_size} HR crop (--patch-size {patch_size} x "
                                                              f"scale {scale}); lower --patch-size")
        self.kernel, self.patch_size, self.scale = kernel, patch_size, scale
        self.n_sequence, self.augment, self.seed = n_sequence, augment, seed
        # upstream repeats a small set so that an epoch has about test_every batches
        self.repeat = max(test_every // max(len(self.windows) // batch_size, 1), 1)
        n = len(self.windows) * self.repeat
        sample_bytes = 4 * n_sequence * 3 * patch_size * patch_size + 4 * OUT_SIZE * OUT_SIZE
        self.set_attrs(total_len=n, batch_size=batch_size, shuffle=False, drop_last=False,
                       num_workers=num_workers, sampler=EpochShuffle(n, seed, shuffle),
                       buffer_size=max(16 << 20, 4 * batch_size * sample_bytes))

    def set_epoch(self, epoch):
        """Select the order and random streams of ``epoch`` (1-based) for the next iteration.

        Jittor's worker processes start loading the next pass while the current one ends, with the order of
        that moment; they are stopped here so that they restart with the new epoch's order.
        """
        if epoch != self.sampler.epoch:
            self.sampler.epoch = epoch
            self.reset()

    def load(self, code):
        epoch, index = divmod(int(code), self.total_len)
        return self.sample(epoch, index)

    def sample(self, epoch, index):
        """(LR [5, 3, p, p] in [0, 1], kernel [13, 13]) of sample ``index`` in ``epoch``."""
        rng = np.random.default_rng([self.seed, epoch, 0, index])
        v, start = self.windows[index % len(self.windows)]
        paths = self.videos[v][1][start:start + self.n_sequence]
        frames = self.crop(np.stack([self.read(p) for p in paths]), rng)
        if self.augment:
            frames = augment(frames, rng)
        kernel = random_kernel(self.kernel, rng)
        lr = np.stack([blur_downsample(f, kernel, self.scale) for f in frames])
        return (np.ascontiguousarray(lr.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0),
                pad_kernel(kernel))

    @staticmethod
    def read(path):
        img, _ = read_image(path)
        return img.astype(np.float64)

    def crop(self, frames, rng):
        """One HR crop of (scale * patch_size)^2 pixels, the same for all frames, avoiding flat areas."""
        return textured_crop(frames, self.patch_size * self.scale, rng, self.n_sequence // 2)
