"""Benchmark the correlation custom operator against the vectorised Jittor fallback, side by side.

On CPU: forward+backward at [4,32,64,112] and forward at [1,32,48,80]. On CUDA (Jittor with use_cuda): forward and
forward+backward at [8,32,48,48] and [1,32,48,80], plus the achieved memory bandwidth (minimum bytes read and
written by the kernels / median time) against the GPU's peak. Times are medians of warm runs in ms; every run
ends with jt.sync_all(True) so device work is included.

    python tools/bench_correlation.py [--repeats 20]
"""
import argparse
import ctypes
import ctypes.util
import os
import statistics
import time

import numpy as np

from jittor_sbvsr.runtime import device_name, init

jt = init()  # before the custom operator's module, which needs Jittor imported

from cuda_ops.correlation_op import correlation as custom  # noqa: E402
from cuda_ops.correlation_vectorized import correlation as vectorized  # noqa: E402
from cuda_ops.geometry import CHANNELS  # noqa: E402


def median_ms(run, repeats, warmup=3):
    """Median wall time of run() in ms, each run synchronised with the device."""
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        run()
        jt.sync_all(True)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def runner(impl, shape, backward):
    """A closure computing impl's forward (and both input gradients) on fixed random inputs."""
    rng = np.random.default_rng(0)
    first, second = (jt.array(rng.standard_normal(shape).astype(np.float32)) for _ in range(2))
    weight = jt.array(rng.standard_normal([shape[0], CHANNELS, *shape[2:]]).astype(np.float32))

    def run():
        out = impl(first, second)
        if backward:
            jt.sync(jt.grad((out * weight).sum(), [first, second]))
        else:
            out.sync()
    return run


def traffic_bytes(shape, backward):
    """Minimum global-memory bytes of the custom kernels: inputs read once, outputs written once (float32)."""
    b, c, h, w = shape
    maps, corr = b * c * h * w, b * CHANNELS * h * w
    forward = 2 * maps + corr
    return 4 * (forward + (4 * maps + corr if backward else 0))


def peak_bandwidth_gbs():
    """Theoretical DRAM bandwidth of GPU 0 in GB/s from the CUDA driver (memory clock x bus width x 2)."""
    lib = ctypes.util.find_library("cuda")
    if lib is None:
        return None
    cuda = ctypes.CDLL(lib)
    clock_khz, bus_bits = ctypes.c_int(), ctypes.c_int()
    ok = (cuda.cuInit(0) == 0
          and cuda.cuDeviceGetAttribute(ctypes.byref(clock_khz), 36, 0) == 0  # MEMORY_CLOCK_RATE
          and cuda.cuDeviceGetAttribute(ctypes.byref(bus_bits), 37, 0) == 0)  # GLOBAL_MEMORY_BUS_WIDTH
    return 2 * clock_khz.value * 1e3 * bus_bits.value / 8 / 1e9 if ok and clock_khz.value else None


def compare(label, shape, backward, repeats, peak=None):
    """Print one line: custom vs vectorised median times, their ratio and (on GPU) the custom op's bandwidth."""
    t_custom = median_ms(runner(custom, shape, backward), repeats)
    t_vector = median_ms(runner(vectorized, shape, backward), repeats)
    line = (f"{label:<8} {str(shape):<18} custom {t_custom:8.3f} ms | vectorized {t_vector:8.3f} ms | "
            f"speed-up {t_vector / t_custom:6.1f}x")
    if jt.flags.use_cuda:
        gbs = traffic_bytes(shape, backward) / (t_custom * 1e-3) / 1e9
        line += f" | {gbs:7.1f} GB/s" + (f" = {100 * gbs / peak:4.1f}% of {peak:.0f} GB/s peak" if peak else "")
    print(line, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per case (median reported)")
    args = parser.parse_args()
    print(f"correlation benchmark on {device_name()}, jittor {jt.__version__}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    if jt.flags.use_cuda:
        peak = peak_bandwidth_gbs()
        for shape in ([8, 32, 48, 48], [1, 32, 48, 80]):
            compare("fwd", shape, False, args.repeats, peak)
            compare("fwd+bwd", shape, True, args.repeats, peak)
    else:
        compare("fwd+bwd", [4, 32, 64, 112], True, args.repeats)
        compare("fwd", [1, 32, 48, 80], False, args.repeats)


if __name__ == "__main__":
    main()
