"""jittor_sbvsr.metrics and jittor_sbvsr.degrade against independent implementations (scikit-image, SciPy).

scikit-image's SSIM with gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255 is the
same definition as the upstream MATLAB-style SSIM (11x11 window = 2*int(3.5*1.5+0.5)+1, valid region).
"""
import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from jittor_sbvsr import degrade, metrics


def image_pair(rng, h=40, w=52, c=3):
    """A textured uint8 image and a noisy copy of it."""
    a = ndimage.zoom(rng.random((h // 4, w // 4, c)) * 255, (4, 4, 1), order=1)[:h, :w]
    b = np.clip(a + rng.normal(0, 12, a.shape), 0, 255)
    return np.round(a).astype(np.uint8), np.round(b).astype(np.uint8)


def skimage_ssim(a, b):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255, channel_axis=2 if a.ndim == 3 else None)


def test_gaussian_window_is_normalised_gaussian():
    g = metrics.gaussian_window()
    assert g.shape == (11,) and abs(g.sum() - 1) < 1e-15
    assert np.allclose(g / g[5], np.exp(-(np.arange(11) - 5) ** 2 / 4.5), rtol=0, atol=1e-15)


def test_filter_valid_equals_2d_correlation(rng):
    img = rng.random((23, 31))
    g = metrics.gaussian_window()
    want = ndimage.correlate(img, np.outer(g, g), mode="reflect")[5:-5, 5:-5]
    assert np.abs(metrics.filter_valid(img, g) - want).max() < 1e-13


def test_psnr_against_skimage(rng):
    a, b = image_pair(rng)
    got = metrics.psnr(metrics.crop_border(a), metrics.crop_border(b))
    assert abs(got - peak_signal_noise_ratio(a[4:-4, 4:-4], b[4:-4, 4:-4], data_range=255)) < 1e-9
    assert metrics.psnr(a, a) == math.inf


@pytest.mark.parametrize("shape", [(40, 52, 3), (33, 47, 3), (30, 30)])
def test_ssim_against_skimage(rng, shape):
    a, b = image_pair(rng, shape[0], shape[1], 3)
    if len(shape) == 2:
        a, b = a[..., 0], b[..., 0]
    assert abs(metrics.ssim(a, b) - skimage_ssim(a, b)) < 1e-6
    assert abs(metrics.ssim(a, a) - 1) < 1e-12


def test_evaluate_rgb_crops_four_pixels(rng):
    a, b = image_pair(rng)
    p, s = metrics.evaluate(a, b)
    assert abs(p - peak_signal_noise_ratio(a[4:-4, 4:-4], b[4:-4, 4:-4], data_range=255)) < 1e-9
    assert abs(s - skimage_ssim(a[4:-4, 4:-4], b[4:-4, 4:-4])) < 1e-6
    c = a.copy()
    c[:4] = 0
    c[:, -4:] = 255
    assert metrics.evaluate(c, a) == (math.inf, pytest.approx(1.0, abs=1e-12))


def test_evaluate_y_channel_basicsr_convention(rng):
    a, b = image_pair(rng)
    ya, yb = (rgb2ycbcr(x)[..., 0] for x in (a, b))  # 16 + 65.481 R' + 128.553 G' + 24.966 B', R' in [0, 1]
    assert np.abs(metrics.y_channel(a) - ya).max() < 1e-9
    p, s = metrics.evaluate(a, b, "y")
    crop = (slice(4, -4), slice(4, -4))
    mse = np.mean((ya[crop] - yb[crop]) ** 2)
    assert abs(p - 10 * math.log10(255 ** 2 / mse)) < 1e-9
    assert abs(s - skimage_ssim(ya[crop], yb[crop])) < 1e-6


def test_evaluate_rejects_mismatch(rng):
    a, b = image_pair(rng)
    with pytest.raises(ValueError):
        metrics.evaluate(a, b[:-1])
    with pytest.raises(ValueError):
        metrics.evaluate(a, b, "lab")


def test_common_size():
    assert metrics.common_size((100, 200, 3), (100, 200, 3), 4) == (100, 200)
    assert metrics.common_size((100, 200, 3), (97, 203, 3), 4) == (97, 200)
    assert metrics.common_size((100, 200, 3), (96, 200, 3), 4) is None
    assert metrics.common_size((100, 200, 3), (100, 204, 3), 4) is None


# ---- degrade -------------------------------------------------------------------------------------------

def test_gaussian_kernel_sizes_appendix_b():
    sizes = {round(0.4 + 0.1 * i, 1): degrade.gaussian_size(0.4 + 0.1 * i) for i in range(17)}
    want = {5: (0.4, 0.6), 7: (0.7, 1.0), 9: (1.1, 1.3), 11: (1.4, 1.6), 13: (1.7, 2.0)}
    for k, (lo, hi) in want.items():
        assert all(sizes[s] == k for s in sizes if lo <= s <= hi), (k, sizes)


def test_fspecial_gaussian():
    k = degrade.fspecial_gaussian(1.2)
    assert k.shape == (9, 9) and abs(k.sum() - 1) < 1e-15
    x = np.arange(-4, 5)
    g = np.exp(-x ** 2 / (2 * 1.2 ** 2))
    assert np.abs(k - np.outer(g, g) / np.outer(g, g).sum()).max() < 1e-16
    assert np.array_equal(k, k.T) and np.array_equal(k, k[::-1])


@pytest.mark.parametrize("shape", [(37, 50, 3), (40, 48)])
def test_blur_downsample_against_scipy(rng, shape):
    hr = rng.random(shape) * 255
    kernel = rng.random((7, 7))
    kernel /= kernel.sum()
    k2 = kernel if len(shape) == 2 else kernel[:, :, None]
    want = ndimage.correlate(hr, k2, mode="nearest")[::4, ::4]
    got = degrade.blur_downsample(hr, kernel)
    assert got.dtype == np.float32 and got.shape == (math.ceil(shape[0] / 4), math.ceil(shape[1] / 4)) + shape[2:]
    assert np.abs(got - want).max() < 1e-4


def test_degrade_gaussian_quantises():
    hr = np.full((16, 20, 3), 200, np.uint8)
    lr = degrade.degrade_gaussian(hr)
    assert lr.dtype == np.uint8 and lr.shape == (4, 5, 3) and np.all(lr == 200)
    assert np.array_equal(degrade.quantize(np.array([-3.0, 0.5, 1.5, 254.6, 300.0])), [0, 0, 2, 255, 255])
