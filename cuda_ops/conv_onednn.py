"""Channels-last 2-D convolution on the CPU through oneDNN directly (``conv_onednn.cc``), fp32 or bf16.

One ``jt.code`` operator per (precision, activation) variant, compiled on first use against the oneDNN that Jittor
itself installed and links (``<Jittor home>/.cache/jittor/mkl/dnnl*``); shapes are read at run time, so one
compiled operator serves every layer. Inference only: the operator has no backward.
"""
import glob
import os
from functools import lru_cache
from pathlib import Path

from .host import loaded_jittor

PRECISIONS = ("fp32", "bf16")
_SOURCE = (Path(__file__).resolve().parent / "conv_onednn.cc").read_text(encoding="utf-8")
# (n, h, w, c, o, kh, kw, oh, ow) of conv_onednn.cc's forward
_SHAPES = ("in0_shape0, in0_shape1, in0_shape2, in0_shape3, in1_shape0, in1_shape2, in1_shape3, "
           "out0_shape1, out0_shape2")


@lru_cache(maxsize=None)
def onednn_home():
    """The folder of the oneDNN Jittor installed (``include/``, ``lib/``), or None."""
    import jittor_utils

    found = sorted(glob.glob(os.path.join(jittor_utils.home(), ".cache", "jittor", "mkl", "dnnl*", "include")))
    return os.path.dirname(found[0]) if found else None


def available():
    """Whether this operator can run now: on the CPU, with Jittor's oneDNN present."""
    jt = loaded_jittor()
    return not jt.flags.use_cuda and bool(jt.compile_extern.use_mkl) and onednn_home() is not None


def bf16_support():
    """How this CPU runs oneDNN's bf16 convolutions: "native" (AVX512-BF16 instructions), "emulated" (AVX-512
    without them: slower than fp32) or "none"."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return "none"
    return "native" if "avx512_bf16" in flags else "emulated" if "avx512bw" in flags else "none"


def conv2d(x, weight, bias, stride, padding, dilation, precision="fp32", relu_slope=None):
    """x [N, H, W, C] conv weight [O, C, kh, kw] (+ bias [O]) -> [N, oh, ow, O] float32, then, unless
    ``relu_slope`` is None, a ReLU with that negative slope (0: plain ReLU), fused.

    Square strides, paddings and dilations only (``stride`` etc. may be pairs of equal values). ``precision``
    "bf16" converts source and weights to bfloat16 and accumulates in float32."""
    jt = loaded_jittor()
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (expected one of {', '.join(PRECISIONS)})")
    stride, padding, dilation = (_square(v, name) for v, name in ((stride, "stride"), (padding, "padding"),
                                                                  (dilation, "dilation")))
    n, h, w, _ = x.shape
    o, _, kh, kw = weight.shape
    oh, ow = (output_length(size, k, stride, padding, dilation) for size, k in ((h, kh), (w, kw)))
    if bias is None:
        bias = jt.zeros((o,), "float32")
    home = onednn_home()
    flags = f"{str(precision == 'bf16').lower()}, {str(relu_slope is not None).lower()}, {float(relu_slope or 0)!r}f"
    src = f"sbvsr_onednn::forward(in0_p, in1_p, in2_p, out0_p, {_SHAPES}, {stride}, {padding}, {dilation}, {flags});"
    out = jt.code((n, oh, ow, o), "float32", [x.float32(), weight.float32(), bias.float32()], cpu_header=_SOURCE,
                  cpu_src=src)
    inc, lib = os.path.join(home, "include"), os.path.join(home, "lib")
    out.compile_options = {f'FLAGS: -I"{inc}" -L"{lib}" -lmkldnn -Wl,-rpath,"{lib}" ': 1}
    return out


def output_length(size, kernel, stride, padding, dilation):
    """Length of a convolution's output along one axis (PyTorch's rule, which Jittor follows)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _square(value, name):
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if values[0] != values[1]:
        raise ValueError(f"conv_onednn.conv2d: only equal {name} in both directions is supported, got {values}")
    return int(values[0])
