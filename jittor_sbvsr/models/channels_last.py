"""Channels-last (NHWC) execution of convolution stacks for CPU inference.

Jittor 1.3.11 hands an NCHW convolution to oneDNN, which computes it in NHWC: every call converts the input
to NHWC and the output back. ``apply`` runs a stack of this module's layers on NHWC tensors and converts
only at its two ends. Inside it, convolutions go straight to oneDNN (``cuda_ops.conv_onednn``: primitive
cached per shape, ReLU fused, fp32 or bf16 as ``precision`` says) when a oneDNN is installed, else
they are written as a reindex over NHWC tensors, which Jittor hands to oneDNN in that layout.
``tools/bench_peak.py`` measures both against oneDNN reached directly.

Only CPU inference uses it (``wanted``, after ``runtime.inference_layout``): Jittor does not map the backward
of the NHWC form to oneDNN's backward primitives (forward + backward is slower), and on CUDA the NCHW cuDNN
path is the one Jittor is built around. Results agree with the NCHW layers to float32 rounding (fp32).
"""
import contextlib

from ..runtime import inference_layout, jittor

jt = jittor()
nn = jt.nn

_active = False  # True while ``apply`` builds the graph of a channels-last stack
_precision = "fp32"  # of the convolutions inside ``apply``; set by ``precision``


def _direct():
    """Whether convolutions inside ``apply`` can go straight to oneDNN (``cuda_ops.conv_onednn``)."""
    from cuda_ops import conv_onednn

    return conv_onednn.available()


def wanted():
    """Whether stacks run channels-last now: on the CPU, without gradients."""
    return inference_layout() == "NHWC" and bool(jt.flags.no_grad)


def apply(layers, x, direct_only=False):
    """``layers(x)`` for an NCHW tensor x, computed channels-last when ``wanted()`` (and, with ``direct_only``,
    only when the convolutions go straight to oneDNN); returns NCHW (a tensor, or a tuple of tensors when
    ``layers`` returns one).

    ``layers`` may contain this module's ``Conv2d``, ``ConvLeakyReLU`` and ``PixelShuffle``, layout-free
    operations (activations, sums) and concatenations along ``channel_axis()``; nothing else that depends on
    where the channels are.
    """
    global _active
    if _active or not wanted() or (direct_only and not _direct()):
        return layers(x)
    _active = True
    try:
        out = layers(x.transpose(0, 2, 3, 1))
    finally:
        _active = False
    return tuple(t.transpose(0, 3, 1, 2) for t in out) if isinstance(out, tuple) else out.transpose(0, 3, 1, 2)


def channel_axis():
    """The axis of the channels now: 3 inside a channels-last ``apply``, else 1."""
    return 3 if _active else 1


@contextlib.contextmanager
def precision(name):
    """Within this block channels-last stacks convolve in ``name``: "fp32" or "bf16" (bfloat16 inputs and
    weights, float32 accumulation and outputs; CPU inference through oneDNN only)."""
    global _precision
    from cuda_ops.conv_onednn import PRECISIONS

    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r} (expected one of {', '.join(PRECISIONS)})")
    previous, _precision = _precision, name
    try:
        yield
    finally:
        _precision = previous


def conv2d_nhwc(x, weight, bias, stride, padding, dilation):
    """Convolution of x [N, H, W, C] with weight [O, C, kh, kw] (PyTorch layout) -> [N, oh, ow, O]."""
    from cuda_ops.conv_onednn import output_length

    n, h, w, c = x.shape
    o, _, kh, kw = weight.shape
    oh, ow = (output_length(*dims) for dims in zip((h, w), (kh, kw), stride, padding, dilation))
    with jt.flag_scope(amp_reg=jt.flags.amp_reg | 36):  # as nn.conv2d: keep float32 accumulation
        patches = x.reindex([n, oh, ow, o, c, kh, kw], [
            "i0",
            f"i1*{stride[0]}-{padding[0]}+i5*{dilation[0]}",
            f"i2*{stride[1]}-{padding[1]}+i6*{dilation[1]}",
            "i4",
        ])
        y = (patches * weight.broadcast(patches.shape, [0, 1, 2])).sum([4, 5, 6])
    return y if bias is None else y + bias.broadcast(y.shape, [0, 1, 2])


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and state-dict keys) that takes NHWC tensors inside ``apply`` and, inside
    ``precision("bf16")``, convolves in bfloat16 through oneDNN."""

    def execute(self, x, relu_slope=None):
        """The convolution of x, then, unless ``relu_slope`` is None, a ReLU with that negative slope (0: plain
        ReLU): straight through oneDNN inside ``apply`` when it is installed (activation fused), else Jittor's
        convolution. bf16 (``precision``) exists only on the first path."""
        if _active and _direct():
            from cuda_ops import conv_onednn

            assert self.groups == 1, "channels-last Conv2d supports groups=1 only"
            return conv_onednn.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                      _precision, relu_slope)
        if _precision != "fp32":
            raise RuntimeError(f"{_precision} convolutions run only in CPU inference through oneDNN")
        if not _active:
            y = super().execute(x)
        else:
            assert self.groups == 1, "channels-last Conv2d supports groups=1 only"
            y = conv2d_nhwc(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
        return y if relu_slope is None else nn.leaky_relu(y, relu_slope) if relu_slope else nn.relu(y)


class ConvLeakyReLU(nn.Sequential):
    """``nn.Sequential(Conv2d, LeakyReLU(slope))`` (the same state-dict keys: the convolution is item 0) whose
    activation is fused into the convolution when it goes straight to oneDNN."""

    def __init__(self, conv, slope):
        super().__init__(conv, nn.LeakyReLU(slope))
        self.slope = slope

    def execute(self, x):
        return self[0](x, relu_slope=self.slope)


class PixelShuffle(nn.PixelShuffle):
    """``nn.PixelShuffle`` that takes NHWC tensors inside ``apply``: out[h*r+i, w*r+j, c] = in[h, w, c*r*r+i*r+j]."""

    def execute(self, x):
        if not _active:
            return super().execute(x)
        n, h, w, c = x.shape
        r = self.upscale_factor
        return x.reshape(n, h, w, c // (r * r), r, r).transpose(0, 1, 4, 2, 5, 3).reshape(n, h * r, w * r, c // (r * r))
