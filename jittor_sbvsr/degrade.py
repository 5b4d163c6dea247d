"""Blur-and-decimate degradation of HR frames, numpy only (upstream-conventions §3, §4).

The upstream test sets were made with one fixed MATLAB-``fspecial`` Gaussian (sigma 1.2, 9x9) per video:
replicate padding, per-channel 2-D cross-correlation, keep ``[::4, ::4]`` starting at pixel 0, then clamp
and round to uint8. Training uses the same blur-decimate step without quantisation.
"""
import math

import numpy as np

TEST_SIGMA = 1.2


def gaussian_size(sigma):
    """Upstream kernel size ceil(3 sigma) * 2 + 1, computed in floating point (0.7 -> 7, 1.2 -> 9)."""
    return int(math.ceil(3 * sigma)) * 2 + 1


def fspecial_gaussian(sigma, size=None):
    """MATLAB ``fspecial('gaussian', size, sigma)``: taps below eps * max set to 0, sum 1, float64.
    ValueError for a sigma that is not a positive finite number (0 would give NaN taps)."""
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"Gaussian sigma must be a positive finite number (got {sigma})")
    size = gaussian_size(sigma) if size is None else size
    m = (size - 1) / 2.0
    y, x = np.mgrid[-m:m + 1, -m:m + 1]
    h = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    h[h < np.spacing(1.0) * h.max()] = 0  # eps(float64); np.finfo warns once Jittor is loaded
    return h / h.sum()


def blur_downsample(hr, kernel, scale=4):
    """Blur every channel of ``hr`` (H x W [x C]) with ``kernel`` and keep ``[::scale, ::scale]``.

    Replicate padding by k//2 and cross-correlation as in upstream ``blur_down``; only the kept samples
    are computed. Returns float32, ceil(H/scale) x ceil(W/scale) [x C], unclipped.
    """
    k = kernel.shape[0]
    p = k // 2
    img = hr.astype(np.float64)
    pad = ((p, p), (p, p)) + ((0, 0),) * (img.ndim - 2)
    padded = np.pad(img, pad, mode="edge")
    out_h, out_w = -(-hr.shape[0] // scale), -(-hr.shape[1] // scale)
    out = np.zeros((out_h, out_w) + hr.shape[2:], np.float64)
    for dy in range(k):
        for dx in range(k):
            if kernel[dy, dx] != 0:
                out += kernel[dy, dx] * padded[dy::scale, dx::scale][:out_h, :out_w]
    return out.astype(np.float32)


def quantize(img):
    """Clamp to [0, 255] and round (half to even, like torch.round) to uint8."""
    return np.round(np.clip(img, 0, 255)).astype(np.uint8)


def degrade_gaussian(hr, sigma=TEST_SIGMA, scale=4):
    """The upstream Gaussian test-set degradation of one uint8 HR frame -> uint8 LR frame."""
    return quantize(blur_downsample(hr, fspecial_gaussian(sigma), scale))
