"""Training losses of Self-Blind-VSR (upstream-conventions §4).

total = L1(recons_down, input) + L1(input_cycle, input) + 0.5 * boundary + 0.04 * sparse + 1 * center
"""
import numpy as np

from .runtime import jittor

jt = jittor()

LOSS_WEIGHTS = {"L1": 1.0, "cycle": 1.0, "boundaries": 0.5, "sparse": 0.04, "center": 1.0}


def boundary_mask(ksize=13):
    """[ksize, ksize] weights 30 * (1 - g / max g), g a Gaussian of sigma ksize, on the outer 2-pixel ring only."""
    z = np.arange(ksize, dtype=np.float64) - ksize // 2
    g = np.exp(-(z[:, None] ** 2 + z[None, :] ** 2) / (2.0 * ksize ** 2))
    mask = 30.0 * (1.0 - g / g.max())
    margin = (ksize - 7) // 2 - 1
    mask[margin:ksize - margin, margin:ksize - margin] = 0.0
    return mask.astype(np.float32)


def l1_loss(a, b):
    return (a - b).abs().mean()


def kernel_boundary_loss(kernel):
    """Mean of |k * M|: penalises mass on the kernel's outer ring."""
    return (kernel * jt.array(boundary_mask(kernel.shape[-1]))).abs().mean()


def kernel_sparse_loss(kernel):
    """Mean of |k|^0.5 where k != 0 (zeros contribute 0 and no infinite gradient)."""
    magnitude = kernel.abs()
    nonzero = magnitude > 0
    return jt.ternary(nonzero, jt.ternary(nonzero, magnitude, jt.ones_like(magnitude)).sqrt(),
                      jt.zeros_like(magnitude)).mean()


def kernel_center_loss(kernel):
    """Batch mean of the squared distance (per coordinate, averaged) of each kernel's centre of mass
    from the central tap (ksize // 2, ksize // 2)."""
    b, ksize = kernel.shape[0], kernel.shape[-1]
    k = kernel.reshape(b, ksize, ksize)
    idx = jt.arange(ksize).float32()
    total = k.sum(dims=(1, 2))
    centre_row = (k.sum(dim=2) * idx).sum(dim=1) / total
    centre_col = (k.sum(dim=1) * idx).sum(dim=1) / total
    want = float(ksize // 2)
    return (((centre_row - want) ** 2 + (centre_col - want) ** 2) / 2.0).mean()


def train_loss(out):
    """(total, {term: value}) for a 'train'-mode output dict of PWC_Recons."""
    kernel = out["est_kernel"]
    terms = {
        "L1": l1_loss(out["recons_down"], out["input"]),
        "cycle": l1_loss(out["input_cycle"], out["input"]),
        "boundaries": kernel_boundary_loss(kernel),
        "sparse": kernel_sparse_loss(kernel),
        "center": kernel_center_loss(kernel),
    }
    total = sum(LOSS_WEIGHTS[name] * value for name, value in terms.items())
    return total, terms
