#!/usr/bin/env python
"""Video inference speed and memory: the CLI's cached path vs the naive per-window network vs PyTorch.

    python tools/bench_infer.py [--sizes 68x160,180x320] [--frames 9] [--repeats 3]

For every LR size, one clip of ``--frames`` frames (smooth random pan, seeded, saved as PNG files) is
super-resolved, without border (``frames - 4`` windows), by

* cached: ``jittor_sbvsr.engine.WindowEngine`` as ``infer`` runs it: every frame decoded once, its features
  and pyramid computed once, no KernelNet (no --save-kernel);
* jittor-conv: the path before the CPU operators, in that process only: the channels-last stacks'
  convolutions left to Jittor (no ``cuda_ops/conv_onednn``), PWC-Net in NCHW, the warps through grid_sample
  (no ``cuda_ops/warp``), to measure what the operators gain;
* bf16:   the same with ``--precision bf16`` (convolutions in bfloat16 through oneDNN, float32 accumulation;
  its outputs are compared with cached's: largest difference and PSNR of one against the other);
* ``cached@jittor``, ``bf16@jittor`` (any method of the engine with ``@wheel`` or ``@jittor``): the same with
  that oneDNN under the operator (``SBVSR_ONEDNN``; default: the wheel's oneDNN 3 when installed), to measure
  what the newer oneDNN gains;
* naive:  what upstream does per window: decode the window's 5 PNGs, run ``net({'x': window, 'mode':
  'infer'})`` and evaluate both outputs of that mode (``recons`` and ``est_kernel``), in Jittor;
* upstream: the same, with the network evaluated in upstream's order (upstream-conventions §1): features frame
  by frame, and for each neighbour its own ``flow_net(centre, neighbour)`` call, which extracts both PWC pyramids again
  (8 extractions per window where ``PWC_Recons.recons_forward`` does 5) and one warp; the same values;
* torch:  the same per-window protocol with the PyTorch reference model (tests/reference), ``torch.no_grad()``.

All three use the same seeded weights. Each method lives in its own process (so its peak RSS, ru_maxrss with
warm-up included, is its own, and torch never shares a process with Jittor). After one warm-up pass each,
the timed passes are interleaved (cached, naive, torch, cached, ...) so that load from other work on the
machine hits all methods alike; frames/s is windows / median wall-clock pass time, CPU s/frame the median
process CPU time of a pass / windows (less sensitive to other load). Outputs are compared: cached must
equal naive exactly; the difference to PyTorch is printed.

The per-frame work the cache saves is a fixed amount per frame, so the cached/naive ratio grows with the
clip length towards its steady state (one new frame per window); the default of 25 frames (21 windows) is
shorter than the upstream test clips (Vid4 34-49, SPMCS 31, REDS4 100 frames).
"""
import argparse
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from jittor_sbvsr import metrics
from support import child_env

METHODS = ("cached", "jittor-conv", "bf16", "naive", "upstream", "torch")
TAG = "@@bench "  # prefix of protocol lines on the child's stdout (Jittor may print there too)


def make_clip(h, w, n):
    """n uint8 frames h x w: a smooth random scene panning ~1.3 px per frame."""
    rng = np.random.default_rng(0)
    scene = np.kron(rng.random((h // 8 + 4, w // 8 + 4, 3)), np.ones((8, 8, 1)))
    for axis in (0, 1):  # box blur twice: smooth enough for stable flow
        for _ in range(2):
            scene = (np.roll(scene, 4, axis) + scene + np.roll(scene, -4, axis)) / 3
    return [np.round(scene[i:i + h, (4 * i) // 3:(4 * i) // 3 + w] * 255).astype(np.uint8) for i in range(n)]


def make_weights(path):
    """Seeded reference weights as a pickle of numpy arrays (loads into both implementations)."""
    import torch

    from support import reference

    ref = reference()

    torch.manual_seed(0)
    with open(path, "wb") as f:
        pickle.dump(ref.state_dict_numpy(ref.PWC_Recons()), f)


def save_clip(clip, folder):
    """Write the frames as PNG files; returns their paths."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"{i:08d}.png") for i in range(len(clip))]
    for path, img in zip(paths, clip):
        Image.fromarray(img).save(path)
    return paths


def pass_function(method, paths, weights):
    """A function running one pass of ``method`` over the clip's PNG files, returning the outputs
    [n-4, 3, 4h, 4w]."""
    from jittor_sbvsr.video_io import read_image

    n = len(paths)
    windows = [list(range(c - 2, c + 3)) for c in range(2, n - 2)]
    decode = lambda j: read_image(paths[j])[0]  # noqa: E731
    if method == "torch":
        import torch

        from support import reference

        ref = reference()

        net = ref.PWC_Recons().eval()
        with open(weights, "rb") as f:
            ref.load_numpy_state(net, pickle.load(f))

        def tensor(img):
            return torch.from_numpy(img.astype(np.float32).transpose(2, 0, 1) * np.float32(1 / 255))

        def run_pass():
            with torch.no_grad():
                return np.stack([net({"x": torch.stack([tensor(decode(j)) for j in idx])[None], "mode": "infer"})[0]
                                 ["recons"].numpy()[0] for idx in windows])
        return run_pass

    from jittor_sbvsr import engine, runtime
    from jittor_sbvsr.models import PWC_Recons
    from jittor_sbvsr.weights import load_weights

    jt = runtime.init()
    net = PWC_Recons()
    load_weights(net, weights)

    def naive_window(idx):
        x = jt.concat([engine.to_tensor(decode(j)) for j in idx], dim=0).unsqueeze(0)
        with jt.no_grad():
            out = net({"x": x, "mode": "infer"})[0]
            jt.sync([out["recons"], out["est_kernel"]])  # both outputs of the mode, as upstream computes them
            return out["recons"].numpy()[0]

    def upstream_window(idx):
        frames = [engine.to_tensor(decode(j)) for j in idx]
        c = len(frames) // 2
        with jt.no_grad():
            kernel = net.kernel_net(jt.concat(frames, dim=1))
            feats = [net.features(f) for f in frames]
            aligned = [feats[i] if i == c else net.flow_net.warp(feats[i], net.flow_net(frames[c], frames[i]))[0]
                       for i in range(len(frames))]
            h, w = frames[c].shape[2:]
            base = jt.nn.interpolate(frames[c], size=(4 * h, 4 * w), mode="bilinear", align_corners=False)
            recons = net.head(jt.concat(aligned, dim=1)) + base
            jt.sync([recons, kernel])
            return recons.numpy()[0]

    method = method.split("@")[0]
    if method == "jittor-conv":
        from cuda_ops import warp
        from jittor_sbvsr.models import channels_last

        channels_last._direct = lambda: False
        warp.wanted = lambda: False

    def run_cached():
        outs = engine.WindowEngine(net, precision="bf16" if method == "bf16" else "fp32").restore_clip(n, decode)
        jt.sync_all(True)
        return np.stack(outs)

    per_window = {"naive": naive_window, "upstream": upstream_window}.get(method)  # others: the engine
    return (lambda: np.stack([per_window(idx) for idx in windows])) if per_window else run_cached


def child(method, h, w, n, weights, out):
    """Serve timed passes: warm up, then answer each 'pass' line on stdin with its wall-clock and CPU time;
    on 'done' save the outputs and report the peak RSS. If stdin closes first, the parent has stopped (its
    own error says why) and there is nothing to save."""
    paths = save_clip(make_clip(h, w, n), os.path.splitext(out)[0] + "_clip")
    run_pass = pass_function(method, paths, weights)
    outs = run_pass()  # warm-up (Jittor compiles here)
    print(TAG + "ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "pass":
            start, cpu = time.perf_counter(), time.process_time()
            run_pass()
            print(f"{TAG}{time.perf_counter() - start} {time.process_time() - cpu}", flush=True)
        elif line.strip() == "done":
            np.save(out, outs)
            print(TAG + str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), flush=True)
            return


def onednn_choice(method):
    """The environment that selects the oneDNN named after '@' in ``method`` ('bf16@jittor'), if any."""
    return {"SBVSR_ONEDNN": method.split("@", 1)[1]} if "@" in method else {}


class Child:
    """One benchmark process, driven line by line."""

    def __init__(self, method, h, w, n, weights, out):
        self.method, self.out = method, out
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--frames", str(n), "--child",
                                      method, str(h), str(w), weights, out], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=child_env(**onednn_choice(method)))
        self.read()  # ready

    def read(self):
        for line in self.proc.stdout:
            if TAG in line:
                return line.split(TAG, 1)[1].strip()
        status = self.proc.wait()
        raise RuntimeError(f"benchmark child '{self.method}' exited with status {status} (its error is above)")

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return [float(v) for v in self.read().split()]


def bench_size(h, w, args, weights, tmp):
    methods = args.methods.split(",")
    children = {}
    for m in methods:  # started one after the other: warm-ups do not overlap
        children[m] = Child(m, h, w, args.frames, weights, os.path.join(tmp, f"{m}_{h}x{w}.npy"))
    times = {m: [] for m in methods}
    for _ in range(args.repeats):
        for m in methods:
            times[m].append(children[m].ask("pass"))
    peak = {m: children[m].ask("done")[0] for m in methods}
    for c in children.values():
        c.proc.wait()
    outputs = {m: np.load(children[m].out) for m in methods}
    report(h, w, args, times, peak, outputs)


def report(h, w, args, times, peak, outputs):
    windows = args.frames - 4
    print(f"LR {h}x{w} -> {4 * h}x{4 * w}, {args.frames} frames ({windows} windows, no border), CPU, "
          f"median of {args.repeats} interleaved passes")
    fps = {m: windows / statistics.median(wall for wall, _ in t) for m, t in times.items()}
    cpu = {m: statistics.median(c for _, c in t) / windows for m, t in times.items()}
    for m in times:
        ratio = "".join(f", {fps[m] / fps[base]:.2f}x {base}" for base in ("jittor-conv", "cached", "naive",
                                                                           "upstream", "torch")
                        if base in fps and base != m)
        ratio = f" ({ratio[2:]})" if ratio else ""
        print(f"  {m:13s} {fps[m]:6.3f} frames/s{ratio}, {cpu[m]:6.2f} CPU s/frame, peak RSS {peak[m]:5.0f} MiB; "
              f"pass wall times {', '.join(f'{wall:.1f}' for wall, _ in times[m])} s")
    if "cached" in outputs and "jittor-conv" in outputs:
        a, b = (np.round(np.clip(outputs[m], 0, 1) * 255) for m in ("cached", "jittor-conv"))
        print(f"  cached vs jittor-conv: max |diff| {np.abs(outputs['cached'] - outputs['jittor-conv']).max():.2e}, "
              f"values within 1 grey level {100 * np.mean(np.abs(a - b) <= 1):.4f} %")
    for other in ("naive", "upstream"):
        if "cached" in outputs and other in outputs:
            print(f"  cached == {other} exactly: {bool(np.array_equal(outputs['cached'], outputs[other]))}")
    if "cached" in outputs and "bf16" in outputs:
        a, b = (np.clip(outputs[m], 0, 1) for m in ("cached", "bf16"))
        psnr = metrics.psnr(a, b, peak=1.0)
        print(f"  bf16 vs cached: max |diff| {np.abs(a - b).max():.2e}, PSNR {psnr:.1f} dB, values within 1 grey level "
              f"{100 * np.mean(np.abs(np.round(a * 255) - np.round(b * 255)) <= 1):.3f} %")
    if "torch" in outputs and "naive" in outputs:
        print(f"  max |jittor - torch|: {np.abs(outputs['naive'] - outputs['torch']).max():.2e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="68x160,180x320", help="comma-separated LR sizes HxW")
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)  # METHOD H W WEIGHTS OUT
    parser.add_argument("--make-weights", help=argparse.SUPPRESS)  # PATH
    args = parser.parse_args()
    if args.make_weights:
        return make_weights(args.make_weights)
    if args.child:
        method, h, w, weights, out = args.child
        return child(method, int(h), int(w), args.frames, weights, out)
    if args.frames < 5:
        parser.error("--frames must be >= 5")
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "weights.pkl")
        subprocess.run([sys.executable, os.path.abspath(__file__), "--make-weights", weights], check=True,
                       env=child_env())  # torch in a process of its own
        for size in args.sizes.split(","):
            h, w = (int(v) for v in size.split("x"))
            bench_size(h, w, args, weights, tmp)


if __name__ == "__main__":
    main()
