"""Every training-loss term (upstream-conventions §4) against the PyTorch reference: values and gradients."""
import numpy as np
import pytest
import torch

from conftest import jt
from jittor_sbvsr import losses
from reference import torch_sbvsr as ref

APPENDIX_A_ROW0 = [5.75575, 4.95375, 4.27788, 3.73962, 3.34827, 3.11066, 3.03099,
                   3.11066, 3.34827, 3.73962, 4.27788, 4.95375, 5.75575]
APPENDIX_A_ROW1 = [4.95375, 4.12523, 3.42700, 2.87093, 2.46663, 2.22117, 2.13886,
                   2.22117, 2.46663, 2.87093, 3.42700, 4.12523, 4.95375]

TERMS = {
    "boundaries": (losses.kernel_boundary_loss, ref.kernel_boundary_loss),
    "sparse": (losses.kernel_sparse_loss, ref.kernel_sparse_loss),
    "center": (losses.kernel_center_loss, ref.kernel_center_loss),
}


def kernels(rng, batch=3, ksize=13, zeros=False):
    """Kernels summing to 1, off-centre, strictly positive like KernelNet's softmax output; with ``zeros`` the
    first two rows are exactly 0 (the sparse loss's edge case; |x| has no derivative there)."""
    k = rng.random((batch, 1, ksize, ksize)) ** 3
    if zeros:
        k[:, :, :2, :] = 0.0
    return (k / k.sum(axis=(2, 3), keepdims=True)).astype(np.float32)


def test_boundary_mask_matches_appendix_a():
    m = losses.boundary_mask(13)
    assert np.allclose(m[0], APPENDIX_A_ROW0, atol=1e-5) and np.allclose(m[12], APPENDIX_A_ROW0, atol=1e-5)
    assert np.allclose(m[1], APPENDIX_A_ROW1, atol=1e-5) and np.allclose(m[11], APPENDIX_A_ROW1, atol=1e-5)
    assert np.allclose(m[:, 0], APPENDIX_A_ROW0, atol=1e-5) and np.allclose(m[:, 1], APPENDIX_A_ROW1, atol=1e-5)
    assert not m[2:11, 2:11].any()
    assert np.array_equal(m, ref.boundary_mask(13).numpy())


@pytest.mark.parametrize("name", sorted(TERMS))
def test_kernel_term_value_and_gradient(rng, name):
    jt_fn, ref_fn = TERMS[name]
    k = kernels(rng, zeros=name == "sparse")
    kj = jt.array(k)
    kt = torch.from_numpy(k).requires_grad_(True)
    value_j, value_t = jt_fn(kj), ref_fn(kt)
    assert abs(value_j.item() - value_t.item()) <= 1e-5 * abs(value_t.item())  # float32 summation order
    value_t.backward()
    grad_j = jt.grad(value_j, kj).numpy()
    assert np.isfinite(grad_j).all()
    grad_t = kt.grad.numpy()
    assert np.linalg.norm(grad_j - grad_t) <= 1e-5 * np.linalg.norm(grad_t)


def test_sparse_loss_zero_taps_have_zero_gradient(rng):
    k = jt.array(kernels(rng, zeros=True))
    grad = jt.grad(losses.kernel_sparse_loss(k), k).numpy()
    assert (grad[:, :, :2, :] == 0).all()


def test_center_loss_is_zero_for_a_centred_kernel():
    k = np.zeros((2, 1, 13, 13), np.float32)
    k[:, :, 6, 6] = 1.0
    assert losses.kernel_center_loss(jt.array(k)).item() == 0.0
    k[1, 0, 6, 6], k[1, 0, 6, 8] = 0.0, 1.0  # centre of mass 2 columns right: (0 + 4) / 2 = 2, batch mean 1
    assert abs(losses.kernel_center_loss(jt.array(k)).item() - 1.0) < 1e-6


def test_l1_terms_and_weighted_total(rng):
    b, h, w = 2, 12, 16
    out_np = {"input": rng.random((b, 3, h, w)), "recons_down": rng.random((b, 3, h, w)),
              "input_cycle": rng.random((b, 3, h, w)), "est_kernel": kernels(rng, batch=b)}
    out_np = {k: v.astype(np.float32) for k, v in out_np.items()}
    total_j, terms_j = losses.train_loss({k: jt.array(v) for k, v in out_np.items()})
    total_t, terms_t = ref.train_loss({k: torch.from_numpy(v) for k, v in out_np.items()})
    assert sorted(terms_j) == sorted(terms_t) == sorted(losses.LOSS_WEIGHTS)
    assert losses.LOSS_WEIGHTS == ref.LOSS_WEIGHTS
    for name in terms_t:
        assert abs(terms_j[name].item() - terms_t[name].item()) <= 1e-5 * abs(terms_t[name].item()), name
    assert abs(total_j.item() - total_t.item()) <= 1e-5 * abs(total_t.item())
    assert abs(terms_j["L1"].item() - np.abs(out_np["recons_down"] - out_np["input"]).mean()) < 1e-6
