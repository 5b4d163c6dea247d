"""Channels-last 2-D convolution on the CPU through oneDNN directly (``conv_onednn.cc``), fp32 or bf16.

``conv_onednn.cc`` is built as a library of its own against the oneDNN that ``onednn_library`` selects (oneDNN 3
from its wheel, or the oneDNN 2 Jittor installed); small ``jt.code`` operators call into it, one compiled per
(stride, padding, dilation, precision, activation): shapes are read at run time, so it serves every layer of
that kind. Inference only: the operator has no backward.
"""
from . import onednn_library
from .host import loaded_jittor

PRECISIONS = ("fp32", "bf16")
# (n, h, w, c, o, kh, kw, oh, ow) of sbvsr_conv_forward in conv_onednn.cc
_SHAPES = ("in0_shape0, in0_shape1, in0_shape2, in0_shape3, in1_shape0, in1_shape2, in1_shape3, "
           "out0_shape1, out0_shape2")
# The operator's side: find sbvsr_conv_forward in the built library (LIBRARY: its path as a C string).
_CALLER = r"""
#include <dlfcn.h>
#include <stdexcept>
#include <string>
namespace sbvsr_onednn {
typedef int (*forward_fn)(const float*, const float*, const float*, float*, int, int, int, int, int, int, int,
                          int, int, int, int, int, int, int, float, char*, int);
inline forward_fn forward() {
    static forward_fn fn = [] {
        void* lib = dlopen(LIBRARY, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
        void* symbol = lib ? dlsym(lib, "sbvsr_conv_forward") : nullptr;
        if (!symbol) throw std::runtime_error(std::string("conv_onednn: cannot load ") + LIBRARY + ": " + dlerror());
        return reinterpret_cast<forward_fn>(symbol);
    }();
    return fn;
}
inline void run(int status, const char* error) {
    if (status != 0) throw std::runtime_error(std::string("conv_onednn: ") + error);
}
}  // namespace sbvsr_onednn
"""


def available():
    """Whether this operator can run now: on the CPU, with a oneDNN present (``onednn_library``)."""
    return not loaded_jittor().flags.use_cuda and onednn_library.selected() is not None


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
    flags = f"{int(precision == 'bf16')}, {int(relu_slope is not None)}, {float(relu_slope or 0)!r}f"
    src = (f"char error[512]; sbvsr_onednn::run(sbvsr_onednn::forward()(in0_p, in1_p, in2_p, out0_p, {_SHAPES}, "
           f"{stride}, {padding}, {dilation}, {flags}, error, sizeof(error)), error);")
    header = f"#define LIBRARY {_c_string(onednn_library.library_path())}\n{_CALLER}"
    out = jt.code((n, oh, ow, o), "float32", [x.float32(), weight.float32(), bias.float32()], cpu_header=header,
                  cpu_src=src)
    return out


def output_length(size, kernel, stride, padding, dilation):
    """Length of a convolution's output along one axis (PyTorch's rule, which Jittor follows)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _c_string(text):
    """``text`` as a C string literal (octal escapes: any byte of a path survives)."""
    return '"' + "".join(f"\\{byte:03o}" for byte in text.encode()) + '"'


def _square(value, name):
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if values[0] != values[1]:
        raise ValueError(f"conv_onednn.conv2d: only equal {name} in both directions is supported, got {values}")
    return int(values[0])
