#!/usr/bin/env python
"""How close CPU inference comes to what this machine can do: a peak figure and a per-part profile.

    python tools/bench_peak.py [--size 68x160] [--repeats 5]

1. Peak: ``tools/onednn_peak.cc`` (built here with g++ against each oneDNN installed: Jittor's version 2 and the
   wheel's version 3, ``cuda_ops/onednn_library.py``) times oneDNN 3x3 convolutions of this network's shapes
   reached directly (primitive created once, NHWC, weights in oneDNN's layout), in fp32 and bf16; plus numpy's
   sgemm (2048^3) for reference.
2. Profile: the released configuration (n_feat 128, 3 + 20 ResBlocks; seeded weights, values do not matter for
   speed) run as ``infer`` runs it, one part at a time (features of one frame; the 4 flows and warps of one
   window; fusion + trunk; upsampling + output convolutions; the rest: bilinear base and sum), each timed
   with synchronisation, median of ``--repeats`` after a warm-up, at ``--precision fp32`` and ``bf16``.
   FLOPs are counted from the convolution shapes actually run (2 * outputs * inputs per output).
   Each part's GFLOP/s is printed with its share of the best fp32 peak of the trunk's shape; the parts run on
   the oneDNN that ``SBVSR_ONEDNN`` selects (default: the wheel's when installed). The previous path
   (``jittor-conv``: Jittor's own convolutions, PWC-Net in NCHW, grid_sample warps) is profiled first, and the
   last line says how much faster than it a window would be with every FLOP at the fp32 peak.

A window of the cached engine costs one frame's features plus the other parts; the per-window line adds
them. Run on a quiet machine: everything here is timed side by side in one process.
"""
import argparse
import contextlib
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_peak_tool(onednn):
    """``onednn_peak.cc`` built against ``onednn`` (a ``cuda_ops.onednn_library.OneDNN``); returns its path."""
    exe = os.path.join(tempfile.mkdtemp(prefix="onednn_peak_"), "onednn_peak")
    subprocess.run(["g++", "-O2", "-std=c++14", "-fopenmp", os.path.join(ROOT, "tools", "onednn_peak.cc"), "-I",
                    onednn.include, onednn.library, f"-Wl,-rpath,{os.path.dirname(onednn.library)}", "-o", exe],
                   check=True)
    return exe


def conv_shapes(h, w):
    """(name, C, O, H, W) of the network's main 3x3 convolutions at LR size h x w."""
    return [("trunk 128->128 @LR", 128, 128, h, w), ("fusion 640->128 @LR", 640, 128, h, w),
            ("upsample 128->512 @LR", 128, 512, h, w), ("upsample 128->512 @2x", 128, 512, 2 * h, 2 * w),
            ("out 128->128 @4x", 128, 128, 4 * h, 4 * w)]


def peaks(exe, shapes, repeats):
    """{precision: {name: (GFLOP/s, oneDNN implementation)}}."""
    out = {}
    for precision, arg in (("fp32", "f32"), ("bf16", "bf16")):
        argv = [exe, arg, str(repeats)] + [str(v) for _, c, o, h, w in shapes for v in (c, o, h, w)]
        lines = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.splitlines()
        out[precision] = {}
        for (name, *_), line in zip(shapes, lines):
            fields = dict(f.split("=", 1) for f in line.split()[5:])
            out[precision][name] = (float(fields.get("gflops", "nan")), fields["impl"])
    return out


def sgemm_gflops(n=2048, repeats=5):
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times[1:]) / 1e9


class FlopCounter:
    """Counts the FLOPs of every convolution run while active (patches the Conv2d classes' ``execute``)."""

    def __init__(self, jt):
        from jittor_sbvsr.models import channels_last

        self.flops, self._patched, self._depth = 0, [], 0
        for cls in {jt.nn.Conv2d, channels_last.Conv2d, jt.nn.ConvTranspose}:
            original = cls.__dict__.get("execute")
            if original is None:
                continue

            def counting(module, x, *args, _original=original, **kw):
                self._depth += 1  # a subclass's execute may call its base's: count the outermost call only
                try:
                    y = _original(module, x, *args, **kw)
                finally:
                    self._depth -= 1
                if self._depth:
                    return y
                cin = module.weight.shape[1] * getattr(module, "groups", 1) if not isinstance(
                    module, jt.nn.ConvTranspose) else module.weight.shape[0]
                k = module.weight.shape[2] * module.weight.shape[3]
                groups = getattr(module, "groups", 1)
                self.flops += 2 * int(np.prod(y.shape)) * cin // groups * k
                return y

            cls.execute = counting
            self._patched.append((cls, original))

    def close(self):
        for cls, original in self._patched:
            cls.execute = original


def profile(net, h, w, repeats, precision):
    """{part: (median seconds, FLOPs)} for one window of the cached engine at LR h x w."""
    from jittor_sbvsr.models import channels_last
    from jittor_sbvsr.runtime import jittor

    jt = jittor()
    rng = np.random.default_rng(0)
    frames = [jt.array(rng.random((1, 3, h, w), dtype=np.float32)) for _ in range(5)]
    stacked = jt.concat(frames, dim=0)
    with jt.no_grad(), channels_last.precision(precision):
        feats = net.features(stacked)
        levels = net.flow_net.pyramid(stacked)
        jt.sync([feats] + list(levels))
        first = [jt.concat([lv[2:3]] * 4, dim=0) for lv in levels]
        second = [jt.concat([lv[i:i + 1] for i in (0, 1, 3, 4)], dim=0) for lv in levels]
        neighbours = jt.concat([feats[i:i + 1] for i in (0, 1, 3, 4)], dim=0)

        def flow():
            flows = net.flow_net.flow_from_pyramids(first, second, h, w)
            return net.flow_net.warp(neighbours, flows)[0]

        aligned = jt.concat([feats[i:i + 1] for i in range(5)], dim=1)
        trunk_out = channels_last.apply(lambda x: net.recons_net(net.fusion_conv(x)), aligned)
        trunk_out.sync()
        parts = {
            "features (1 frame)": lambda: net.features(frames[2]),
            "pyramid (1 frame)": lambda: net.flow_net.pyramid(frames[2]),
            "flow + warp (4 neighbours)": flow,
            "fusion + trunk": lambda: channels_last.apply(lambda x: net.recons_net(net.fusion_conv(x)), aligned),
            "upsample + out": lambda: channels_last.apply(lambda x: net.out_conv(net.upsample_layers(x)), trunk_out),
            "bilinear base": lambda: jt.nn.interpolate(frames[2], size=(4 * h, 4 * w), mode="bilinear",
                                                       align_corners=False),
        }
        result = {}
        for name, run in parts.items():
            counter = FlopCounter(jt)
            try:
                out = run()
                jt.sync(list(out) if isinstance(out, (list, tuple)) else [out])  # warm-up, compiles
            finally:
                counter.close()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                out = run()
                jt.sync(list(out) if isinstance(out, (list, tuple)) else [out])
                times.append(time.perf_counter() - t0)
            result[name] = (statistics.median(times), counter.flops)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="68x160", help="LR size HxW (default 68x160)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    h, w = map(int, args.size.split("x"))

    from cuda_ops import onednn_library
    from jittor_sbvsr import runtime
    from jittor_sbvsr.config import ModelConfig

    jt = runtime.init()
    print(runtime.report())
    shapes = conv_shapes(h, w)
    reference = 0.0
    for name, onednn in onednn_library.installed().items():  # every oneDNN present, side by side
        peak = peaks(build_peak_tool(onednn), shapes, args.repeats)
        print(f"\n== oneDNN '{name}' reached directly ({onednn.library}), LR {h}x{w}, median of {args.repeats}")
        for shape, *_ in shapes:
            (f, impl), (b, impl_b) = peak["fp32"][shape], peak["bf16"][shape]
            print(f"  {shape:24s} fp32 {f:7.1f} GFLOP/s ({impl})   bf16 {b:7.1f} GFLOP/s ({impl_b})")
        reference = max(reference, peak["fp32"]["trunk 128->128 @LR"][0])
    print(f"  numpy sgemm 2048^3        {sgemm_gflops():7.1f} GFLOP/s")
    print(f"\ninfer's convolutions run on {onednn_library.describe('fp32')} ({onednn_library.ENV_VAR} picks)")

    jt.set_global_seed(0)
    net = ModelConfig().build()
    net.eval()
    windows = {}
    for variant, precision in (("jittor-conv", "fp32"), ("fp32", "fp32"), ("bf16", "bf16")):
        with previous_path(variant == "jittor-conv"):
            result = profile(net, h, w, args.repeats, precision)
        print(f"\n== infer's parts, {variant}, LR {h}x{w} (share: of the fp32 trunk peak {reference:.0f} GFLOP/s)")
        for name, (seconds, flops) in result.items():
            rate = flops / seconds / 1e9
            share = f"{100 * rate / reference:5.1f} %" if flops else "    -  "
            print(f"  {name:28s} {1000 * seconds:9.1f} ms {flops / 1e9:8.1f} GFLOP {rate:7.1f} GFLOP/s {share}")
        total_t = sum(seconds for seconds, _ in result.values())  # the pyramid counts once, like the features
        total_f = sum(flops for _, flops in result.values())
        windows[variant] = total_t
        print(f"  {'one window (sum)':28s} {1000 * total_t:9.1f} ms {total_f / 1e9:8.1f} GFLOP "
              f"{total_f / total_t / 1e9:7.1f} GFLOP/s {100 * total_f / total_t / 1e9 / reference:5.1f} %")
    ideal = total_f / (reference * 1e9)
    print(f"\nwindow against jittor-conv's: fp32 {windows['jittor-conv'] / windows['fp32']:.2f}x, bf16 "
          f"{windows['jittor-conv'] / windows['bf16']:.2f}x; every FLOP at the fp32 peak would take "
          f"{1000 * ideal:.0f} ms: {windows['jittor-conv'] / ideal:.2f}x (the most fp32 can gain here)")


@contextlib.contextmanager
def previous_path(active):
    """While active: the path before the CPU operators (what bench_infer's jittor-conv method runs): the
    channels-last stacks' convolutions left to Jittor, PWC-Net in NCHW, the warps through grid_sample."""
    from cuda_ops import warp
    from jittor_sbvsr.models import channels_last

    direct, fast_warp = channels_last._direct, warp.wanted
    if active:
        channels_last._direct = warp.wanted = lambda: False
    try:
        yield
    finally:
        channels_last._direct, warp.wanted = direct, fast_warp

if __name__ == "__main__":
    main()
