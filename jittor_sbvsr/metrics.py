"""PSNR and SSIM exactly as upstream inference.py computes them (upstream-conventions §3), numpy only.

Default ("rgb"): uint8 RGB images, ``crop`` (4) pixels removed from every border of both images, PSNR over
all H*W*3 values in float64, and the MATLAB-style SSIM of EDVR/BasicSR: 11x11 Gaussian window with
sigma 1.5, C1 = (0.01*255)^2, C2 = (0.03*255)^2, statistics on the "valid" region only (5 pixels lost on
each side), mean of the SSIM map, averaged over the channels.

Option "y": the same on the BT.601 luma Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (R, G, B in
0..255, Y unrounded), as BasicSR's ``test_y_channel``.
"""
import numpy as np

CROP_BORDER = 4
SPACES = ("rgb", "y")
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def gaussian_window(size=11, sigma=1.5):
    """1-D normalised Gaussian (``cv2.getGaussianKernel(size, sigma)``), float64."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def filter_valid(img, taps):
    """Separable correlation of a 2-D float64 image with ``taps`` on both axes, "valid" output only.

    Equals ``cv2.filter2D(img, -1, outer(taps, taps))[r:-r, r:-r]`` (r = len(taps) // 2): the border
    mode never matters because the border is cut off.
    """
    k = len(taps)
    rows = np.lib.stride_tricks.sliding_window_view(img, k, axis=0) @ taps
    return np.lib.stride_tricks.sliding_window_view(rows, k, axis=1) @ taps


def crop_border(img, n=CROP_BORDER):
    """Remove ``n`` pixels from each border of an H x W (x C) image."""
    return img[n:-n, n:-n] if n > 0 else img


def psnr(a, b, peak=255.0):
    """20 log10(peak / sqrt(MSE)) over all values (float64); inf when the images are equal."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(20.0 * np.log10(peak / np.sqrt(mse)))


def ssim_channel(a, b):
    """Mean MATLAB-style SSIM of two 2-D images in the 0..255 range (valid region)."""
    g = gaussian_window()
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = filter_valid(a, g), filter_valid(b, g)
    var_a = filter_valid(a * a, g) - mu_a ** 2
    var_b = filter_valid(b * b, g) - mu_b ** 2
    cov = filter_valid(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + _C1) * (2 * cov + _C2)) / ((mu_a ** 2 + mu_b ** 2 + _C1) * (var_a + var_b + _C2))
    return float(ssim_map.mean())


def ssim(a, b):
    """SSIM of H x W or H x W x C images: the mean over channels of ``ssim_channel``."""
    if a.ndim == 2:
        return ssim_channel(a, b)
    return float(np.mean([ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def y_channel(img):
    """BT.601 luma (BasicSR ``rgb2ycbcr(y_only=True)``) of an RGB image in 0..255, float64, unrounded."""
    return img.astype(np.float64) @ _Y_WEIGHTS + 16.0


def evaluate(sr, gt, space="rgb", crop=CROP_BORDER):
    """(PSNR, SSIM) of an SR image against its ground truth (uint8 RGB, equal shapes)."""
    if sr.shape != gt.shape:
        raise ValueError(f"evaluate: shapes differ: {sr.shape} vs {gt.shape}")
    if space not in SPACES:
        raise ValueError(f"evaluate: space must be one of {SPACES}, not {space!r}")
    if space == "y":
        sr, gt = y_channel(sr), y_channel(gt)
    sr, gt = crop_border(sr, crop), crop_border(gt, crop)
    return psnr(sr, gt), ssim(sr, gt)


def common_size(sr_shape, gt_shape, tolerance):
    """(H, W) both images are cropped to (top-left anchored) before comparing, or None when they differ by
    ``tolerance`` pixels or more in either dimension.

    Upstream LR sets are ceil(H/4) x ceil(W/4), so 4x the LR can exceed an HR size that is not a multiple of
    4 by up to 3 pixels (upstream-conventions §5); the decimation grid starts at pixel 0, hence top-left anchoring.
    """
    if any(abs(s - g) >= tolerance for s, g in zip(sr_shape[:2], gt_shape[:2])):
        return None
    return min(sr_shape[0], gt_shape[0]), min(sr_shape[1], gt_shape[1])
