"""The C++ warp of CPU inference (cuda_ops.warp) computes what the models' grid_sample formulation computes, for
both of the models' warps, flows reaching outside the image included."""
import numpy as np
import pytest

from conftest import jt
from cuda_ops import warp as warp_op
from jittor_sbvsr.models.pwc_net import Flow_PWC, backward_warp


def inputs(seed, b=2, c=5, h=11, w=14, reach=4.0):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((b, c, h, w)).astype(np.float32)
    flow = (rng.standard_normal((b, 2, h, w)) * reach).astype(np.float32)
    flow[:, :, ::3, ::3] = np.round(flow[:, :, ::3, ::3])  # whole-pixel samples: taps exactly on the edge
    return jt.array(image), jt.array(flow)


# the operator samples at x + flow directly, grid_sample through normalised coordinates: the sample positions
# differ by float rounding (~1e-6 px), and so do values of unit size (measured up to 4.2e-6 over 6 seeds)
TOLERANCE = 2e-5


def both_ways(function, *args):
    """(the C++ operator's result, the grid_sample formulation's result) as numpy arrays."""
    with jt.no_grad():
        assert warp_op.wanted()
        fast = function(*args)
    with jt.enable_grad():
        assert not warp_op.wanted()
        slow = function(*args)
    as_numpy = lambda out: [t.numpy() for t in out] if isinstance(out, tuple) else [out.numpy()]  # noqa: E731
    return as_numpy(fast), as_numpy(slow)


@pytest.mark.parametrize("seed", [0, 1])
def test_pwc_backward_warp_matches_grid_sample(seed):
    image, flow = inputs(seed)
    (fast,), (slow,) = both_ways(backward_warp, image, flow)
    assert fast.shape == slow.shape
    assert (slow == 0).mean() > 0.2 and (slow != 0).mean() > 0.2  # both masked and kept pixels
    assert np.abs(fast - slow).max() <= TOLERANCE


@pytest.mark.parametrize("seed", [0, 1])
def test_feature_warp_matches_grid_sample(seed):
    image, flow = inputs(seed)
    (fast, fast_mask), (slow, slow_mask) = both_ways(Flow_PWC.warp, image, flow)
    assert fast_mask.shape == slow_mask.shape == fast.shape
    assert 0.2 < slow_mask.mean() < 0.8
    assert np.array_equal(fast_mask, slow_mask)
    assert np.abs(fast - slow).max() <= TOLERANCE


def test_bad_arguments_are_refused():
    image, flow = inputs(0)
    with pytest.raises(ValueError, match="unknown padding 'reflection'"):
        warp_op.masked_warp(image, flow, "reflection")
    with pytest.raises(ValueError, match=r"flow of shape \(2, 2, 11, 13\)"):
        warp_op.masked_warp(image, flow[:, :, :, :13], "zeros")
