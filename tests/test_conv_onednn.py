"""The oneDNN convolution operator behind ``--precision bf16``: fp32 mode equals Jittor's convolution, bf16 mode
is within bfloat16 rounding of it, in both layouts; the engine and the CLI use it when asked."""
import re

import numpy as np
import pytest

from conftest import jt
from cuda_ops import conv_onednn
from infer_support import pan_clip, run_cli, tiny, write_frames  # noqa: F401 (tiny is a fixture)

pytestmark = pytest.mark.skipif(not conv_onednn.available(), reason="needs oneDNN on the CPU")


def reference(x, weight, bias, stride, padding, dilation):
    """Jittor's own NCHW convolution."""
    return jt.nn.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 2, 2)])
def test_matches_jittors_convolution(stride, padding, dilation):
    rng = np.random.default_rng(0)
    x = jt.array(rng.standard_normal((2, 24, 19, 21)).astype(np.float32))
    weight = jt.array(rng.standard_normal((40, 24, 3, 3)).astype(np.float32) * 0.1)
    bias = jt.array(rng.standard_normal(40).astype(np.float32))
    want = reference(x, weight, bias, stride, padding, dilation).numpy()
    nhwc = x.transpose(0, 2, 3, 1)
    with jt.no_grad():
        got = {p: conv_onednn.conv2d(nhwc, weight, bias, stride, padding, dilation, p).numpy().transpose(0, 3, 1, 2)
               for p in conv_onednn.PRECISIONS}
        relu, leaky = (conv_onednn.conv2d(nhwc, weight, bias, stride, padding, dilation, relu_slope=slope)
                       .numpy().transpose(0, 3, 1, 2) for slope in (0.0, 0.1))
    scale = np.abs(want).max()
    assert got["fp32"].shape == want.shape
    assert np.abs(got["fp32"] - want).max() <= 1e-5 * scale
    assert np.abs(relu - np.maximum(want, 0)).max() <= 1e-5 * scale
    assert np.abs(leaky - np.where(want > 0, want, 0.1 * want)).max() <= 1e-5 * scale and (want < 0).any()
    # bfloat16 keeps 8 bits of mantissa: each product is off by up to ~2^-8 relative, sums of 216 terms average
    error = np.abs(got["bf16"] - want)
    assert 1e-4 * scale < error.max() <= 2e-2 * scale  # really reduced, and only by rounding


def test_unequal_strides_are_refused():
    x = jt.zeros((1, 4, 4, 2))
    with pytest.raises(ValueError, match="only equal stride"):
        conv_onednn.conv2d(x, jt.zeros((2, 2, 3, 3)), None, (1, 2), 1, 1)
    with pytest.raises(ValueError, match="unknown precision"):
        conv_onednn.conv2d(x, jt.zeros((2, 2, 3, 3)), None, 1, 1, 1, "fp16")


def test_engine_in_bf16_is_within_rounding_of_fp32(tiny):  # noqa: F811
    from jittor_sbvsr.engine import WindowEngine

    _, lr = pan_clip(6)
    outs = {p: np.stack(WindowEngine(tiny, precision=p).restore_clip(len(lr), lr.__getitem__))
            for p in ("fp32", "bf16")}
    a, b = (np.round(np.clip(outs[p], 0, 1) * 255) for p in ("fp32", "bf16"))
    assert not np.array_equal(outs["fp32"], outs["bf16"])  # the bf16 path really ran
    assert np.mean(np.abs(a - b) <= 1) >= 0.999 and np.abs(a - b).max() <= 8


def test_infer_precision_option(tmp_path, tiny, capsys):  # noqa: F811
    _, lr = pan_clip(5)
    inp = write_frames(tmp_path / "lr", lr)
    code, out, err = run_cli([inp, "--output", tmp_path, "--run-name", "r", "--precision", "bf16", "--quiet"], tiny,
                             capsys)
    assert code == 0, err
    assert "precision: bf16" in out and re.search(r"bf16 convolutions: (wheel|jittor): oneDNN \d", out)
