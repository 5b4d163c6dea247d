"""Random blur kernels for online training degradation (upstream-conventions §4); one kernel per sample.

* ``gaussian``: isotropic MATLAB-fspecial Gaussian, sigma drawn uniformly from 0.4, 0.5, ..., 2.0, size
  ceil(3 sigma) * 2 + 1 (5 to 13).
* ``realistic``: upstream's "realistic" kernel, a KernelGAN-style anisotropic Gaussian with multiplicative
  noise on a 31x31 grid, re-centred with a cubic-spline shift, resized to 13x13 with OpenCV-convention bicubic.

Every draw comes from the numpy Generator passed in, so a sample's kernel is reproducible from its seed.
"""
import numpy as np

from ..degrade import fspecial_gaussian
from .imgproc import center_of_mass, resize_cubic, spline_shift

KERNEL_TYPES = ("gaussian", "realistic")
GAUSSIAN_SIGMAS = tuple(round(0.4 + 0.1 * i, 1) for i in range(17))
REALISTIC_SIZE = 31       # working grid of the realistic kernel
REALISTIC_NOISE = 0.25    # multiplicative noise amplitude
OUT_SIZE = 13             # size of the realistic kernel (and of KernelNet's estimate)


def pad_kernel(kernel, size=OUT_SIZE):
    """Centre a k x k kernel (k <= size, odd) in a size x size zero array, float32."""
    k = kernel.shape[0]
    out = np.zeros((size, size), np.float32)
    o = (size - k) // 2
    out[o:o + k, o:o + k] = kernel
    return out


def random_gaussian_kernel(rng):
    """Isotropic Gaussian with sigma drawn from GAUSSIAN_SIGMAS (float64, sums to 1)."""
    return fspecial_gaussian(GAUSSIAN_SIGMAS[rng.integers(len(GAUSSIAN_SIGMAS))])


def anisotropic_gaussian(lambda_1, lambda_2, theta, noise, scale=4):
    """Noisy anisotropic Gaussian on the grid of ``noise`` (n x n): covariance Q diag(l1, l2) Q^T with Q the
    rotation by theta, mean n // 2 + (scale - n % 2) / 2 in x = column and y = row, values multiplied by
    (1 + noise)."""
    n = noise.shape[0]
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inv_sigma = np.linalg.inv(rotation @ np.diag([lambda_1, lambda_2]) @ rotation.T)
    mu = n // 2 + 0.5 * (scale - n % 2)
    rows, cols = np.mgrid[0:n, 0:n]
    z = np.stack([cols - mu, rows - mu], axis=-1)
    mahalanobis = np.einsum("...i,ij,...j->...", z, inv_sigma, z)
    return np.exp(-0.5 * mahalanobis) * (1 + noise)


def centre_kernel(raw):
    """Shift ``raw`` (cubic spline, zero outside) so its centre of mass lands on shape / 2, drop negative
    taps and normalise to sum 1."""
    wanted = np.array(raw.shape) / 2.0
    shifted = spline_shift(raw, wanted - np.array(center_of_mass(raw)))
    shifted[shifted < 0] = 0
    return shifted / shifted.sum()


def random_realistic_kernel(rng, scale=4):
    """One draw of upstream's realistic kernel: 13 x 13, non-negative, sums to 1 (float64)."""
    min_var, max_var = 0.6 * scale, 5.0 * scale
    lambda_1 = min_var + rng.random() * (max_var - min_var)
    lambda_2 = min_var + rng.random() * (max_var - min_var)
    theta = rng.random() * np.pi
    noise = -REALISTIC_NOISE + rng.random((REALISTIC_SIZE, REALISTIC_SIZE)) * 2 * REALISTIC_NOISE
    kernel = centre_kernel(anisotropic_gaussian(lambda_1, lambda_2, theta, noise, scale))
    kernel = np.clip(resize_cubic(kernel, OUT_SIZE, OUT_SIZE), 0, None)
    return kernel / kernel.sum()


def random_kernel(kind, rng):
    """A kernel of type ``kind`` ('gaussian' or 'realistic') drawn from ``rng``."""
    if kind == "gaussian":
        return random_gaussian_kernel(rng)
    if kind == "realistic":
        return random_realistic_kernel(rng)
    raise ValueError(f"unknown kernel type {kind!r} (expected one of {', '.join(KERNEL_TYPES)})")
