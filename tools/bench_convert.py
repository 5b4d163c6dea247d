#!/usr/bin/env python
"""Benchmark tools/convert_weights.py on a full-size (18.9M-parameter, ~76 MB) checkpoint.

    python tools/bench_convert.py [--runs 3] [--keep DIR]

Writes a random-weight state dict with the 272 keys and shapes of the model (needs torch, a test-only
dependency) in PyTorch's legacy (< 1.6) and zip (>= 1.6) formats into a temporary folder, then for each format:

* runs ``convert_weights.py IN OUT --force`` as a subprocess ``--runs`` times and reports the median wall time
  and the child's peak resident memory (``ru_maxrss`` from ``wait4``), also as a multiple of the file size;
* reads the file with ``jittor_sbvsr.checkpoint.read_state_dict`` alone (in a fresh child) and reports the median
  time and the tracemalloc peak (numpy buffers included) as a multiple of the file size.

Every measurement runs in a child process of a small parent: a child's ru_maxrss also counts the memory of the
parent it was forked from.

The peak RSS includes the interpreter and numpy (~35 MB, printed as the baseline). Targets: under 5 s and under
3x the file size; the exit status is 1 when a target is missed.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from support import child_env  # tools/, this script's folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONVERT = os.path.join(ROOT, "tools", "convert_weights.py")
TARGET_SECONDS = 5.0
TARGET_MEMORY_RATIO = 3.0


def run_child(cmd):
    """(wall seconds, peak RSS bytes, return code) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, env=child_env())
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        sys.exit(f"bench_convert: {' '.join(cmd)} failed: {err.strip()}")
    return wall, usage.ru_maxrss * 1024  # Linux: kilobytes


_MAKE = """
import torch
from collections import OrderedDict
from jittor_sbvsr.weights import reference_shapes
g = torch.Generator().manual_seed(0)
state = OrderedDict((k, torch.randn(*s, generator=g)) for k, s in reference_shapes("full").items())
torch.save(state, {legacy!r}, _use_new_zipfile_serialization=False)
torch.save(state, {zip!r})
print(sum(v.numel() for v in state.values()))
"""

_READ = """
import time, tracemalloc
from jittor_sbvsr.checkpoint import read_state_dict
tracemalloc.start()
t0 = time.perf_counter()
state, _ = read_state_dict({src!r})
print(time.perf_counter() - t0, tracemalloc.get_traced_memory()[1])
"""


def make_checkpoints(folder):
    """Write the two inputs from a child process (torch is a test-only dependency; the parent stays small,
    because a child's ru_maxrss also counts the memory of the parent it was forked from)."""
    paths = {fmt: os.path.join(folder, f"self_blind_vsr_random_{fmt}.pt") for fmt in ("legacy", "zip")}
    code = _MAKE.format(**paths)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=child_env())
    return paths, int(out.stdout.split()[-1])


def read_in_process(src):
    """(seconds, tracemalloc peak bytes) of read_state_dict alone, in a fresh child."""
    out = subprocess.run([sys.executable, "-c", _READ.format(src=src)], capture_output=True, text=True, check=True,
                         env=child_env())
    seconds, peak = out.stdout.split()
    return float(seconds), int(peak)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", metavar="DIR", help="write the files here and keep them (default: a temp dir)")
    args = ap.parse_args()

    tmp = None
    folder = args.keep
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_convert_")
        folder = tmp.name
    os.makedirs(folder, exist_ok=True)
    try:
        paths, n_params = make_checkpoints(folder)
        _, base_rss = run_child([sys.executable, "-c", "import numpy, jittor_sbvsr.weights"])
        print(f"bench_convert: {n_params:,} parameters, {args.runs} runs each, python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs")
        print(f"baseline RSS of python + numpy + jittor_sbvsr.weights: {base_rss / 1e6:.1f} MB")
        ok = True
        for fmt, src in paths.items():
            size = os.path.getsize(src)
            out = os.path.join(folder, f"converted_{fmt}.pkl")
            walls, rss = [], []
            for _ in range(args.runs):
                w, r = run_child([sys.executable, CONVERT, src, out, "--force"])
                walls.append(w)
                rss.append(r)
            reads, peaks = zip(*(read_in_process(src) for _ in range(args.runs)))
            wall, peak = statistics.median(walls), max(rss)
            ratio = peak / size
            print(f"{fmt:6s} file {size / 1e6:6.1f} MB | convert_weights.py: {wall:5.2f} s median wall, "
                  f"peak RSS {peak / 1e6:6.1f} MB = {ratio:4.2f}x file "
                  f"({(peak - base_rss) / size:4.2f}x above baseline) | read_state_dict in-process: "
                  f"{statistics.median(reads):5.2f} s, tracemalloc peak {max(peaks) / size:4.2f}x file")
            ok &= wall < TARGET_SECONDS and ratio < TARGET_MEMORY_RATIO
        print(f"targets (< {TARGET_SECONDS:g} s, peak RSS < {TARGET_MEMORY_RATIO:g}x file size): "
              f"{'met' if ok else 'MISSED'}")
        return 0 if ok else 1
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
