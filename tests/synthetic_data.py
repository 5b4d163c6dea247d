"""Tiny synthetic video datasets in the upstream layouts, for the data and training tests."""
import os

import numpy as np
from PIL import Image

from jittor_sbvsr.degrade import blur_downsample, fspecial_gaussian, quantize
from jittor_sbvsr.trainer.experiment import model_state


def textured_video(rng, n_frames, h, w):
    """uint8 frames [n, h, w, 3]: blocky random texture panning by (1, 2) pixels per frame."""
    base = rng.random((h // 4 + n_frames + 2, w // 4 + n_frames + 2, 3))
    big = np.kron(base, np.ones((4, 4, 1))) * 255
    return np.stack([big[f:f + h, 2 * f:2 * f + w] for f in range(n_frames)]).astype(np.uint8)


def write_frames(folder, frames):
    os.makedirs(folder, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(os.path.join(folder, f"{i:08d}.png"))


def write_train_set(root, n_videos=2, n_frames=7, h=72, w=80, seed=0):
    """<root>/HR/<video>/<frames>; returns root."""
    rng = np.random.default_rng(seed)
    for v in range(n_videos):
        write_frames(os.path.join(root, "HR", f"{v:03d}"), textured_video(rng, n_frames, h, w))
    return root


def write_val_set(root, n_videos=1, n_frames=6, h=64, w=96, seed=1):
    """<root>/HR and <root>/LR_blurdown_x4 (Gaussian sigma 1.2, uint8); returns root."""
    rng = np.random.default_rng(seed)
    for v in range(n_videos):
        hr = textured_video(rng, n_frames, h, w)
        write_frames(os.path.join(root, "HR", f"{v:03d}"), hr)
        write_frames(os.path.join(root, "LR_blurdown_x4", f"{v:03d}"),
                     [quantize(blur_downsample(f, fspecial_gaussian(1.2))) for f in hr])
    return root


def seeded_init(net, seed=0):
    """Initial weights from a numpy generator (uniform, bound 1/sqrt(fan-in)), PWC-Net zeroed (exactly zero
    flow, so no warp-mask threshold sits on a rounding edge). Drawn outside Jittor because Jittor's own
    initialisation depends on what its global random state went through in earlier tests, even after
    jt.set_global_seed."""
    rng = np.random.default_rng(seed)
    state, bound = {}, 1.0
    for key, value in model_state(net).items():
        if value.ndim > 1:
            bound = 1.0 / np.sqrt(np.prod(value.shape[1:]))
        state[key] = (np.zeros_like(value) if key.startswith("flow_net.")
                      else rng.uniform(-bound, bound, value.shape).astype(value.dtype))
    return state
