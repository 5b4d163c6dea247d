"""Backward warping with a validity mask as a C++ operator for CPU inference (``warp_cpu.cc``, jt.code).

It computes what the models' ``grid_sample`` formulation does (bilinear, align_corners=True, a mask from the
bilinear weight that falls inside the image) in one pass, to float rounding: the sample position is x + flow
directly instead of through normalised grid coordinates. Forward only, CPU only: training and CUDA keep the
``grid_sample`` formulation (``wanted`` says which). Importing it needs Jittor imported already.
"""
from pathlib import Path

from .host import loaded_jittor

_HEADER = (Path(__file__).resolve().parent / "warp_cpu.cc").read_text(encoding="utf-8")
PADDINGS = ("zeros", "border")


def wanted():
    """Whether the operator applies now: on the CPU, without gradients."""
    jt = loaded_jittor()
    return not jt.flags.use_cuda and bool(jt.flags.no_grad)


def masked_warp(image, flow, padding, threshold=0.999, inclusive=False):
    """(image [B, C, H, W] sampled at (x, y) + flow [B, 2, H, W] (pixels) times the mask, mask [B, 1, H, W]).

    The mask is 1 where the bilinear weights of the taps inside the image sum to more than ``threshold`` (at
    least it, with ``inclusive``); taps outside read 0 (``padding`` "zeros") or the nearest edge ("border")."""
    jt = loaded_jittor()
    if padding not in PADDINGS:
        raise ValueError(f"unknown padding {padding!r} (expected one of {', '.join(PADDINGS)})")
    b, c, h, w = image.shape
    if tuple(flow.shape) != (b, 2, h, w):
        raise ValueError(f"masked_warp: flow of shape {tuple(flow.shape)} for an image of shape {tuple(image.shape)}")
    src = (f"sbvsr_warp::forward_cpu<float>(in0_p, in1_p, out0_p, out1_p, in0_shape0, in0_shape1, in0_shape2, "
           f"in0_shape3, {str(padding == 'border').lower()}, {float(threshold)!r}f, {str(bool(inclusive)).lower()});")
    warped, mask = jt.code([(b, c, h, w), (b, 1, h, w)], ["float32", "float32"],
                           [image.float32(), flow.float32()], cpu_header=_HEADER, cpu_src=src)
    return warped, mask
