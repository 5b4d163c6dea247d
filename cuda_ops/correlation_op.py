"""81-channel PWC-Net correlation as a Jittor custom operator (jt.code, CUDA and C++/OpenMP).

Forward and backward are each one ``jt.code`` operator compiled by Jittor's JIT on first use; it runs the CUDA
kernels of ``correlation_cuda.cu`` when ``jt.flags.use_cuda`` is set and the C++ ones of ``correlation_cpu.cc``
otherwise. Neither direction materialises the [B, 81, C, H, W] product the vectorised fallback needs.
Importing it needs Jittor imported already (``host.loaded_jittor``).
"""
from pathlib import Path

import numpy as np

from .host import loaded_jittor
from .geometry import CHANNELS, GRID, MAX_DISPLACEMENT

jt = loaded_jittor()

_HERE = Path(__file__).resolve().parent
_GEOMETRY = (f"namespace sbvsr_corr {{ constexpr int kMaxDisp = {MAX_DISPLACEMENT}; "
             f"constexpr int kGrid = {GRID}; constexpr int kChannels = {CHANNELS}; }}\n")
_SHAPE = "in0_shape0, in0_shape1, in0_shape2, in0_shape3"

CPU_HEADER = _GEOMETRY + (_HERE / "correlation_cpu.cc").read_text(encoding="utf-8")
CUDA_HEADER = _GEOMETRY + (_HERE / "correlation_cuda.cu").read_text(encoding="utf-8")


def _forward_src(device):
    """jt.code body of the forward operator (inputs first, second; output corr)."""
    return f"sbvsr_corr::forward_{device}<in0_type>(in0_p, in1_p, out0_p, {_SHAPE});"


def _backward_src(device):
    """jt.code body of the backward operator (inputs first, second, grad; outputs d_first, d_second)."""
    return f"sbvsr_corr::backward_{device}<in0_type>(in0_p, in1_p, in2_p, out0_p, out1_p, {_SHAPE});"


FORWARD = dict(cpu_header=CPU_HEADER, cpu_src=_forward_src("cpu"),
               cuda_header=CUDA_HEADER, cuda_src=_forward_src("cuda"))
BACKWARD = dict(cpu_header=CPU_HEADER, cpu_src=_backward_src("cpu"),
                cuda_header=CUDA_HEADER, cuda_src=_backward_src("cuda"))


class Correlation(jt.Function):
    """corr[b, (dy+4)*9 + (dx+4), y, x] = (1/C) sum_c first[b,c,y,x] * second[b,c,y+dy,x+dx], zero outside."""

    def execute(self, first, second):
        if first.ndim != 4 or first.shape != second.shape or first.dtype != second.dtype:
            raise ValueError(f"correlation needs two [B, C, H, W] maps of one shape and dtype, got "
                             f"{first.shape} {first.dtype} and {second.shape} {second.dtype}")
        self.inputs = first, second
        b, _, h, w = first.shape
        return jt.code([b, CHANNELS, h, w], first.dtype, [first, second], **FORWARD)

    def grad(self, grad):
        first, second = self.inputs
        return jt.code([first.shape, second.shape], [first.dtype, second.dtype],
                       [first, second, grad], **BACKWARD)


def correlation(first, second):
    """81-channel correlation of two [B, C, H, W] maps with the custom operator -> [B, 81, H, W]."""
    return Correlation.apply(first, second)


def check():
    """Compile and run forward and backward once on a tiny float32 input; raise if anything is wrong.

    The forward is compared with the formula evaluated in numpy. The backward is checked through bilinearity:
    sum(d_first * first) and sum(d_second * second) must both equal sum(grad * corr).
    Uses its own numpy generator, so Jittor's random state is untouched.
    """
    rng = np.random.default_rng(0)
    f, s, g = (rng.standard_normal(shape).astype(np.float32)
               for shape in ([1, 3, 5, 6], [1, 3, 5, 6], [1, CHANNELS, 5, 6]))
    with jt.enable_grad():
        first, second = jt.array(f), jt.array(s)
        corr = correlation(first, second)
        d_first, d_second = jt.grad((corr * jt.array(g)).sum(), [first, second])
        corr, d_first, d_second = corr.numpy(), d_first.numpy(), d_second.numpy()

    padded = np.pad(s.astype(np.float64), [(0, 0), (0, 0), (MAX_DISPLACEMENT,) * 2, (MAX_DISPLACEMENT,) * 2])
    expected = np.stack([(f * padded[:, :, dy:dy + 5, dx:dx + 6]).mean(1)
                         for dy in range(GRID) for dx in range(GRID)], axis=1)
    inner = float((g * corr).sum())
    errors = {"forward": np.abs(corr - expected).max(),
              "d_first": abs(float((d_first * f).sum()) - inner),
              "d_second": abs(float((d_second * s).sum()) - inner)}
    wrong = {name: err for name, err in errors.items() if not err <= 1e-4}
    if wrong:
        raise RuntimeError(f"correlation custom op gives wrong results (max errors {wrong})")
