"""Interleaved timing for the side-by-side benchmarks (Jittor vs the PyTorch reference in one process)."""
import statistics
import time


def interleaved_medians(runs, calls):
    """Median wall-clock seconds of each function in ``runs`` (name -> function), all called in turn with
    each argument tuple of ``calls``, so that load from other work on the machine hits them alike. The
    functions must synchronise before returning (Jittor is lazy)."""
    times = {name: [] for name in runs}
    for args in calls:
        for name, fn in runs.items():
            start = time.perf_counter()
            fn(*args)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
