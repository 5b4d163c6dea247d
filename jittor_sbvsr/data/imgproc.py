"""numpy versions of the few OpenCV / SciPy operations upstream's training data pipeline uses.

They follow the libraries' conventions exactly (border rules, rounding, float32 interpolation weights), so
the package needs neither OpenCV nor SciPy; tests/test_data.py compares them with the originals where those
are installed.
"""
import numpy as np


def _sobel_abs(img, axis):
    """|Sobel derivative| along ``axis`` (1 = x, 0 = y) of an H x W x C image: ksize 3, BORDER_REFLECT_101,
    int16 output with rounding and saturation, then absolute value saturated to uint8 (cv2.Sobel to CV_16S
    followed by cv2.convertScaleAbs)."""
    padded = np.pad(img.astype(np.float64), ((1, 1), (1, 1), (0, 0)), mode="reflect")
    h, w = img.shape[:2]
    if axis == 1:
        diff = padded[:, 2:] - padded[:, :-2]                        # [-1, 0, 1] along x
        grad = diff[:-2] + 2.0 * diff[1:-1] + diff[2:]               # [1, 2, 1] along y
    else:
        diff = padded[2:] - padded[:-2]
        grad = diff[:, :-2] + 2.0 * diff[:, 1:-1] + diff[:, 2:]
    grad16 = np.clip(np.rint(grad[:h, :w]), -32768, 32767)
    return np.minimum(np.abs(grad16), 255.0)


def edge_mean(img):
    """Mean of 0.5 |Sobel_x| + 0.5 |Sobel_y| over all pixels and channels of an H x W x C image in 0..255.

    Equals upstream's flat-patch measure (cv2.Sobel CV_16S, convertScaleAbs, addWeighted with uint8
    round-half-even), used to reject crops with a mean below 7.
    """
    img = img if img.ndim == 3 else img[:, :, None]
    combined = np.rint(0.5 * _sobel_abs(img, 1) + 0.5 * _sobel_abs(img, 0))
    return float(combined.mean())


def _cubic_weights(t):
    """OpenCV's INTER_CUBIC taps (Keys, a = -0.75) for fractional offsets ``t``, in float32 like OpenCV."""
    a = np.float32(-0.75)
    one = np.float32(1.0)
    t = t.astype(np.float32)
    w0 = ((a * (t + one) - np.float32(5) * a) * (t + one) + np.float32(8) * a) * (t + one) - np.float32(4) * a
    w1 = ((a + np.float32(2)) * t - (a + np.float32(3))) * t * t + one
    w2 = ((a + np.float32(2)) * (one - t) - (a + np.float32(3))) * (one - t) * (one - t) + one
    w3 = one - w0 - w1 - w2
    return np.stack([w0, w1, w2, w3], axis=1)


def _cubic_matrix(n_in, n_out):
    """[n_out, n_in] resampling matrix of cv2.resize INTER_CUBIC along one axis (no antialiasing).

    Source position (d + 0.5) * n_in / n_out - 0.5 in float32, 4 taps starting one left of its floor,
    out-of-range taps clamped to the edge (OpenCV's replicate border for resize).
    """
    scale = n_in / n_out
    pos = ((np.arange(n_out) + 0.5) * scale - 0.5).astype(np.float32)
    left = np.floor(pos).astype(np.int64)
    weights = _cubic_weights(pos - left.astype(np.float32)).astype(np.float64)
    matrix = np.zeros((n_out, n_in), np.float64)
    for k in range(4):
        np.add.at(matrix, (np.arange(n_out), np.clip(left - 1 + k, 0, n_in - 1)), weights[:, k])
    return matrix


def resize_cubic(img, out_h, out_w):
    """cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_CUBIC) of a 2-D float image, in float64."""
    img = np.asarray(img, np.float64)
    return _cubic_matrix(img.shape[0], out_h) @ img @ _cubic_matrix(img.shape[1], out_w).T


def center_of_mass(img):
    """(row, col) centre of mass of a 2-D array (scipy.ndimage.center_of_mass)."""
    img = np.asarray(img, np.float64)
    total = img.sum()
    return (float((img.sum(axis=1) * np.arange(img.shape[0])).sum() / total),
            float((img.sum(axis=0) * np.arange(img.shape[1])).sum() / total))


def _spline_prefilter_matrix(n):
    """[n, n] map from samples to cubic B-spline coefficients with mirror boundaries (SciPy's spline_filter
    for mode 'constant'): solves (c[i-1] + 4 c[i] + c[i+1]) / 6 = x[i] with c[-1] = c[1], c[n] = c[n-2]."""
    a = np.zeros((n, n))
    idx = np.arange(n)
    a[idx, idx] = 4.0 / 6.0
    a[idx[1:], idx[:-1]] = 1.0 / 6.0
    a[idx[:-1], idx[1:]] = 1.0 / 6.0
    a[0, 1] = a[n - 1, n - 2] = 2.0 / 6.0
    return np.linalg.inv(a)


def _spline_shift_matrix(n, shift):
    """[n, n] map from spline coefficients to samples shifted by ``shift`` along one axis.

    Output i reads input position i - shift; positions outside [0, n - 1] give 0 (mode 'constant'),
    coefficient indices beyond the edges are mirrored.
    """
    matrix = np.zeros((n, n))
    for i in range(n):
        x = i + (-shift)
        if x < 0 or x > n - 1:
            continue
        start = int(np.floor(x)) - 1
        t = x - np.floor(x)
        z = 1.0 - t
        weights = [z * z * z / 6.0, (t * t * (t - 2.0) * 3.0 + 4.0) / 6.0,
                   (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0, t * t * t / 6.0]
        for k, w in enumerate(weights):
            j = start + k
            j = -j if j < 0 else (2 * n - 2 - j if j > n - 1 else j)
            matrix[i, j] += w
    return matrix


def spline_shift(img, shift):
    """scipy.ndimage.shift(img, shift, order=3, mode='constant', cval=0) of a 2-D array, float64."""
    img = np.asarray(img, np.float64)
    rows = _spline_shift_matrix(img.shape[0], shift[0]) @ _spline_prefilter_matrix(img.shape[0])
    cols = _spline_shift_matrix(img.shape[1], shift[1]) @ _spline_prefilter_matrix(img.shape[1])
    return rows @ img @ cols.T
