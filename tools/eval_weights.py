"""Score a weights file on held-out clips: SR vs bicubic, the value of the neighbours, the kernel estimate.

    python tools/eval_weights.py pretrain_models/sbvsr_demo_x4.pkl
    python tools/eval_weights.py W.pkl --sets dataset/demo_clips/val dataset/demo_clips/val_sigma1.6 --json out.json

For the demo clip (``infer --demo``'s astronaut pan) and every video of each ``--sets`` folder (HR/,
LR_blurdown_x4/ and kernel/<video>.npy, as tools/make_blurdown_dataset.py writes them), over the frames that
have a full 5-frame window:
* PSNR/SSIM of the SR output and of PIL bicubic upsampling (upstream metrics: uint8 RGB, 4-pixel crop);
* PSNR with the centre frame repeated 5 times instead of its neighbours (what the neighbours add);
* the estimated 13x13 kernel's L1 error (sum of absolute differences) against the true kernel, beside the
  error of a delta kernel (no blur at all), the baseline an estimator must beat.
"""
import argparse
import json
import os
import sys

import numpy as np

from jittor_sbvsr import demo, metrics, runtime
from jittor_sbvsr.data.folders import video_frames
from jittor_sbvsr.data.kernels import pad_kernel
from jittor_sbvsr.video_io import InputError, read_image


def window_outputs(net, frames):
    """(SR uint8 image, estimated kernel [k, k]) of the centre of 5 uint8 frames."""
    from jittor_sbvsr.engine import to_image, window_output

    out = window_output(net, frames)
    return to_image(out["recons"].numpy()[0]), out["est_kernel"].numpy()[0, 0]


def score_clip(net, lr, hr, true_kernel=None):
    """Mean scores over the centres 2..n-3 of one clip (lists of uint8 frames)."""
    rows = []
    for c in range(2, len(lr) - 2):
        sr, kernel = window_outputs(net, lr[c - 2:c + 3])
        alone, _ = window_outputs(net, [lr[c]] * 5)
        row = dict(zip(("psnr", "ssim"), metrics.evaluate(sr, hr[c], "rgb")))
        row.update(zip(("bicubic_psnr", "bicubic_ssim"), metrics.evaluate(demo.bicubic(lr[c]), hr[c], "rgb")))
        row["centre_only_psnr"] = metrics.evaluate(alone, hr[c], "rgb")[0]
        if true_kernel is not None:
            truth = pad_kernel(true_kernel, kernel.shape[0])
            delta = np.zeros_like(truth)
            delta[truth.shape[0] // 2, truth.shape[1] // 2] = 1
            row["kernel_l1"] = float(np.abs(kernel - truth).sum())
            row["delta_kernel_l1"] = float(np.abs(delta - truth).sum())
        rows.append(row)
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def folder_clips(root):
    """[(name, LR frames, HR frames, true kernel or None)] of a blur-down dataset folder."""
    clips = []
    for (name, hr_paths), (_, lr_paths) in zip(video_frames(root, "HR"), video_frames(root, "LR_blurdown_x4")):
        kernel_path = os.path.join(root, "kernel", f"{name}.npy")
        kernel = np.load(kernel_path) if os.path.isfile(kernel_path) else None
        clips.append((name, [read_image(p)[0] for p in lr_paths], [read_image(p)[0] for p in hr_paths], kernel))
    return clips


def evaluate(weights, sets):
    """{clip label: scores} for the demo clip and every video of ``sets``."""
    from jittor_sbvsr.degrade import TEST_SIGMA, fspecial_gaussian
    from jittor_sbvsr.weights import load_model

    net, _, _ = load_model(weights)
    net.eval()
    hr, lr = demo.make_clip()
    results = {"demo/astronaut": score_clip(net, lr, hr, fspecial_gaussian(TEST_SIGMA))}
    for root in sets:
        for name, lr, hr, kernel in folder_clips(root):
            results[f"{os.path.basename(os.path.normpath(root))}/{name}"] = score_clip(net, lr, hr, kernel)
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("weights")
    p.add_argument("--sets", nargs="*", default=["dataset/demo_clips/val", "dataset/demo_clips/val_sigma1.6"],
                   help="blur-down dataset folders (HR/, LR_blurdown_x4/, kernel/)")
    p.add_argument("--json", help="also write the scores here")
    args = p.parse_args(argv)
    missing = [s for s in args.sets if not os.path.isdir(s)]
    if missing:
        p.error(f"not found: {', '.join(missing)} (make them with tools/make_training_clips.py)")
    runtime.init()
    try:
        results = evaluate(args.weights, args.sets)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"{'clip':34s} {'SR':>7s} {'bicubic':>7s} {'gain':>6s} {'centre x5':>9s} {'kernel L1':>9s} {'delta L1':>8s}")
    for label, r in results.items():
        print(f"{label:34s} {r['psnr']:7.2f} {r['bicubic_psnr']:7.2f} {r['psnr'] - r['bicubic_psnr']:+6.2f} "
              f"{r['centre_only_psnr']:9.2f} {r.get('kernel_l1', float('nan')):9.3f} "
              f"{r.get('delta_kernel_l1', float('nan')):8.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"weights": args.weights, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
