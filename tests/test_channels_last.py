"""Channels-last execution (models/channels_last.py) against Jittor's own NCHW layers.

Pixel shuffles only move values, so they must agree exactly; convolutions are the same sums computed by
oneDNN from another memory layout, so they agree to float32 rounding (tolerances 1e-5 relative).
"""
import numpy as np
import pytest

from jittor_sbvsr.models import channels_last
from jittor_sbvsr.models.pwc_recons import ResBlock
from jittor_sbvsr.runtime import jittor

jt = jittor()
nn = jt.nn


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_pixel_shuffle_exact(rng):
    x = jt.array(rng.standard_normal((2, 12, 5, 7)).astype(np.float32))
    shuffle = channels_last.PixelShuffle(2)
    with jt.no_grad():
        got = channels_last.apply(shuffle, x).numpy()
    want = nn.PixelShuffle(2)(x).numpy()
    assert got.shape == (2, 3, 10, 14)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("stride,padding,dilation,bias", [(1, 1, 1, True), (2, 1, 1, True), (1, 2, 2, False),
                                                          (2, 0, 1, True)])
def test_conv_matches_nchw(rng, stride, padding, dilation, bias):
    conv = channels_last.Conv2d(6, 5, 3, stride=stride, padding=padding, dilation=dilation, bias=bias)
    x = jt.array(rng.standard_normal((2, 6, 11, 13)).astype(np.float32))
    want = nn.conv2d(x, conv.weight, conv.bias, stride, padding, dilation).numpy()
    with jt.no_grad():
        got = channels_last.apply(conv, x).numpy()
    assert got.shape == want.shape
    assert rel_err(got, want) < 1e-5


def test_resblock_stack_no_grad_vs_grad(rng):
    """Under no_grad on the CPU the stack runs NHWC; with gradients it runs the NCHW layers."""
    blocks = nn.Sequential(*[ResBlock(8) for _ in range(3)])
    x = jt.array(rng.standard_normal((1, 8, 9, 10)).astype(np.float32))
    assert not channels_last.wanted()
    want = channels_last.apply(blocks, x).numpy()
    with jt.no_grad():
        assert channels_last.wanted() == (not jt.flags.use_cuda)
        got = channels_last.apply(blocks, x).numpy()
    assert rel_err(got, want) < 1e-5


def test_layers_are_nchw_outside_apply_even_after_an_error(rng):
    conv = channels_last.Conv2d(3, 4, 3, padding=1)

    def failing(t):
        conv(t)
        raise RuntimeError("inside the stack")

    x = jt.array(rng.standard_normal((1, 3, 6, 8)).astype(np.float32))
    with jt.no_grad(), pytest.raises(RuntimeError):
        channels_last.apply(failing, x)
    assert conv(x).shape == (1, 4, 6, 8)  # NCHW again: the NHWC form would read 6 as channels


def test_pwc_flow_channels_last_matches_nchw(rng):
    """PWC-Net's dense decoders and refiner run channels-last (leaky ReLU fused) in CPU inference; the flow
    agrees with the NCHW layers (run with gradients) to float32 rounding."""
    from jittor_sbvsr.models.pwc_net import Flow_PWC
    from synthetic_data import seeded_init

    net = Flow_PWC()
    net.load_state_dict(seeded_init(net))
    first, second = (jt.array(rng.random((1, 3, 40, 72)).astype(np.float32)) for _ in range(2))
    want = net(first, second).numpy()
    with jt.no_grad():
        assert channels_last.wanted() == (not jt.flags.use_cuda)
        got = net(first, second).numpy()
    assert got.shape == want.shape == (1, 2, 40, 72) and np.abs(want).max() > 0.1
    assert rel_err(got, want) < 1e-4
