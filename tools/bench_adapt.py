"""What ``python -m jittor_sbvsr.adapt`` gains: PSNR/SSIM against GT before and after adapting, per clip.

    python tools/bench_adapt.py --model experiment/Demo_CPU/model/model_best.pkl --minutes 10 --json adapt.json \\
        --plot adapt.png

Clips (LR 64x64, 12 frames, made here so that the GT and the true kernel are known):
* ``in_range``: a camera pan over scikit-image's chelsea photo (kept out of the demo training clips), blurred
  with a Gaussian of sigma 1.2 (inside the training range 0.4-2.0) and decimated x4, as the upstream test sets;
* ``sigma2.4``: the same scene with sigma 2.4, outside the training range (13x13 kernel, the estimate's size);
* ``video``: the centre 256x256 of the first frames of a real video file (``--video``), sigma 1.6.

Each clip is adapted from the same starting weights with the command's own pieces (LRWindows, Adaptation,
defaults of the CLI), once per ``--kernels`` mode: adapt's ``--kernel learn`` / ``estimate``, or ``true``,
the clip's true kernel given as a known blur (what ``--kernel SIGMA`` or ``--kernel FILE.npy`` does). At
the steps of ``--at`` and at the end of the ``--minutes`` budget (or ``--steps``) the weights are scored:
PSNR/SSIM of the SR output against GT (upstream metrics, the frames with a full window), the bicubic baseline,
the estimated kernel's L1 error against the true one (tools/eval_weights.py), the held-out self-supervised
loss the guard uses, and the training time (wall and process CPU seconds; scoring is not counted). The last
row per clip says what the guard keeps. ``--plot`` draws the gain over the starting weights against steps and
CPU minutes.
"""
import argparse
import json
import time
from types import SimpleNamespace

import numpy as np

from eval_weights import score_clip  # tools/, this script's folder

from jittor_sbvsr import adapt, runtime
from jittor_sbvsr.data.camera_clips import Motion, load_photo, render_clip
from jittor_sbvsr.degrade import blur_downsample, fspecial_gaussian, quantize

N_FRAMES = 12
HR_SIZE = 256
KSIZE = 13


def degrade(hr, kernel):
    return [quantize(blur_downsample(f, kernel)) for f in hr]


def synthetic_hr():
    """12 HR frames of a diagonal pan (1.3, 2.1 HR pixels per frame) over chelsea."""
    photo = load_photo("chelsea")
    return render_clip(photo, Motion((1.3, 2.1)), (HR_SIZE, HR_SIZE), N_FRAMES, (150, 170))


def video_hr(path):
    """The centre HR_SIZE x HR_SIZE of the first N_FRAMES frames of a video file."""
    from jittor_sbvsr.video_io import discover

    frames = []
    for _, img, _, _ in discover(path)[0].frames():
        h, w = img.shape[:2]
        y, x = (h - HR_SIZE) // 2, (w - HR_SIZE) // 2
        frames.append(np.ascontiguousarray(img[y:y + HR_SIZE, x:x + HR_SIZE]))
        if len(frames) == N_FRAMES:
            break
    return frames


def make_clips(names, video):
    """{name: (LR frames, HR frames, true 13x13 kernel)}."""
    clips = {}
    hr = synthetic_hr() if {"in_range", "sigma2.4"} & set(names) else None
    for name in names:
        sigma, frames = {"in_range": (1.2, hr), "sigma2.4": (2.4, hr)}.get(name, (1.6, None))
        if name == "video":
            frames = video_hr(video)
        kernel = fspecial_gaussian(sigma, KSIZE)
        clips[name] = (degrade(frames, kernel), frames, kernel)
    return clips


def adapt_clip(model_path, lr, hr, kernel, mode, args):
    """Rows of scores at step 0, at each step of ``args.at`` and at the end of the budget; ``mode`` is adapt's
    ``--kernel`` ("learn", "estimate") or "true" (the clip's true kernel given as a known blur)."""
    from jittor_sbvsr.data.lr_windows import LRWindows
    from jittor_sbvsr.trainer.adaptation import Adaptation
    from jittor_sbvsr.weights import load_model

    net, _, _ = load_model(model_path)
    windows = LRWindows([(SimpleNamespace(path="clip"), np.stack(lr))], args.patch_size)
    known = kernel.astype(np.float32) if mode == "true" else mode
    ad = Adaptation(net, windows, args.batch_size, args.lr, args.flow_lr, kernel=known)
    rows, cpu, marks = [], 0.0, sorted(set(args.at))

    def score():
        net.eval()
        row = {"step": ad.steps, "wall_s": round(ad.seconds, 1), "cpu_s": round(cpu, 1),
               "held_out": ad.held_out()["loss"], **score_clip(net, lr, hr, kernel)}
        net.train()
        rows.append(row)
        print(f"  step {row['step']:4d} {row['wall_s']:7.1f} s wall {row['cpu_s']:7.1f} s CPU | PSNR "
              f"{row['psnr']:.3f} SSIM {row['ssim']:.4f} | kernel L1 {row['kernel_l1']:.3f} | held-out "
              f"{row['held_out']:.5f}", flush=True)

    score()
    while ad.seconds < 60 * args.minutes and (args.steps is None or ad.steps < args.steps):
        started = time.process_time()
        ad.step()
        cpu += time.process_time() - started
        if ad.steps in marks:
            score()
    if rows[-1]["step"] != ad.steps:
        score()
    return rows


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, rows in results.items():
        gain = [r["psnr"] - rows[0]["psnr"] for r in rows]
        axes[0].plot([r["step"] for r in rows], gain, marker="o", label=name)
        axes[1].plot([r["cpu_s"] / 60 for r in rows], gain, marker="o", label=name)
    for ax, label in zip(axes, ("steps", "CPU minutes (process time, training only)")):
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel(label)
        ax.set_ylabel("PSNR gain over the starting weights (dB)")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    defaults = adapt.build_parser().parse_args(["x"])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="starting weights")
    p.add_argument("--clips", nargs="+", default=["in_range", "sigma2.4", "video"],
                   choices=["in_range", "sigma2.4", "video"])
    p.add_argument("--video", default="/tmp/bikes.mp4", help="real video for the 'video' clip")
    p.add_argument("--kernels", nargs="+", default=["learn", "true"], choices=["learn", "estimate", "true"],
                   help="adapt's --kernel modes to compare; 'true' passes the clip's true kernel")
    p.add_argument("--minutes", type=float, default=10.0, help="training time per clip (wall minutes)")
    p.add_argument("--steps", type=int, help="stop after this many steps instead (or at --minutes, if sooner)")
    p.add_argument("--at", type=int, nargs="*", default=[10, 25, 50, 100, 150, 200, 300, 400, 600],
                   help="also score after these steps")
    for name in ("patch_size", "batch_size", "lr", "flow_lr"):
        p.add_argument(f"--{name.replace('_', '-')}", type=type(getattr(defaults, name)),
                       default=getattr(defaults, name))
    p.add_argument("--json", help="write every row here")
    p.add_argument("--plot", help="PNG of the gain against steps and CPU minutes")
    args = p.parse_args(argv)
    runtime.init()
    results = {}
    for name, (lr, hr, kernel) in make_clips(args.clips, args.video).items():
        for mode in args.kernels:
            print(f"{name}, --kernel {mode}: LR {lr[0].shape[1]}x{lr[0].shape[0]}, {len(lr)} frames", flush=True)
            results[f"{name}/{mode}"] = adapt_clip(args.model, lr, hr, kernel, mode, args)
    print(f"\n{'clip/kernel':18s} {'bicubic':>8s} {'start':>8s} {'adapted':>8s} {'gain':>6s} {'guard':>8s} "
          f"{'steps':>5s} {'CPU min':>7s} {'kernel L1 start/adapted':>24s}")
    for name, rows in results.items():
        first, last = rows[0], rows[-1]
        kept = last if adapt.better({"loss": first["held_out"]}, {"loss": last["held_out"]}) else first
        print(f"{name:18s} {first['bicubic_psnr']:8.3f} {first['psnr']:8.3f} {last['psnr']:8.3f} "
              f"{last['psnr'] - first['psnr']:+6.3f} {kept['psnr'] - first['psnr']:+8.3f} {last['step']:5d} "
              f"{last['cpu_s'] / 60:7.2f} {first['kernel_l1']:11.3f} / {last['kernel_l1']:.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            settings = ("minutes", "steps", "patch_size", "batch_size", "lr", "flow_lr", "kernels")
            json.dump({"model": args.model, "settings": {k: getattr(args, k) for k in settings},
                       "results": results}, f, indent=1)
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
