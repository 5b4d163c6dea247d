"""Make a blur-down test set from HR videos, like upstream's script_gene_dataset_blurdown.py (upstream-conventions §3).

    python tools/make_blurdown_dataset.py --hr dataset/REDS4/HR --out dataset/REDS4_BlurDown_Gaussian
    python tools/make_blurdown_dataset.py --hr dataset/REDS4/HR --out dataset/REDS4_BlurDown_Realistic \\
        --type realistic --seed 0

Writes <out>/HR/<video>/<stem>.png (the HR frames re-saved as PNG), <out>/LR_blurdown_x4/<video>/<stem>.png
and <out>/kernel/<video>.npy (float64). One kernel per video, used for all its frames: the fixed Gaussian
(sigma 1.2, 9x9) or one draw of the realistic kernel (seeded here; upstream's draw was unseeded). Each LR frame
is the replicate-padded blur kept at [::4, ::4], clamped to [0, 255] and rounded to uint8.
"""
import argparse
import os
import sys

import numpy as np

from jittor_sbvsr.data.kernels import random_realistic_kernel
from jittor_sbvsr.degrade import TEST_SIGMA, blur_downsample, fspecial_gaussian, quantize
from jittor_sbvsr.video_io import InputError, check_unique_names, frame_stem, list_frames, read_image, write_png

MAX_SIGMA = 10.0  # a 61x61 kernel: wider ones blur x4 frames away and take minutes per frame


def video_kernel(kind, rng, sigma):
    if kind == "gaussian":
        return fspecial_gaussian(sigma)
    return random_realistic_kernel(rng)


def make_dataset(hr_root, out_root, kind="gaussian", sigma=TEST_SIGMA, seed=0, scale=4, echo=print):
    """Degrade every video folder of ``hr_root`` into ``out_root``; returns the number of frames written."""
    if not os.path.isdir(hr_root):
        raise InputError(hr_root, "HR folder not found (expected <hr>/<video>/<frames>)")
    videos = sorted(v for v in os.listdir(hr_root) if os.path.isdir(os.path.join(hr_root, v)))
    if not videos:
        raise InputError(hr_root, "no video sub-folders")
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out_root, "kernel"), exist_ok=True)
    count = 0
    for video in videos:
        frames = list_frames(os.path.join(hr_root, video))
        if not frames:
            raise InputError(os.path.join(hr_root, video), "no frames (png/jpg/bmp) in this video folder")
        check_unique_names(frames, frame_stem, os.path.join(hr_root, video))
        kernel = video_kernel(kind, rng, sigma)
        np.save(os.path.join(out_root, "kernel", f"{video}.npy"), kernel)
        for sub in ("HR", "LR_blurdown_x4"):
            os.makedirs(os.path.join(out_root, sub, video), exist_ok=True)
        for path in frames:
            hr, _ = read_image(path)
            stem = frame_stem(path)
            write_png(os.path.join(out_root, "LR_blurdown_x4", video, f"{stem}.png"),
                      quantize(blur_downsample(hr, kernel, scale)))
            write_png(os.path.join(out_root, "HR", video, f"{stem}.png"), hr)
            count += 1
        echo(f"{video}: {len(frames)} frames, kernel {kernel.shape[0]}x{kernel.shape[1]}")
    return count


def sigma_value(text):
    """argparse type of --sigma: a number in (0, MAX_SIGMA]."""
    try:
        sigma = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < sigma <= MAX_SIGMA:  # false for NaN too
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_SIGMA:g}] (got {text})")
    return sigma


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hr", required=True, help="folder of HR video folders (<hr>/<video>/<frames>)")
    p.add_argument("--out", required=True, help="output folder (gets HR/, LR_blurdown_x4/, kernel/)")
    p.add_argument("--type", choices=("gaussian", "realistic"), default="gaussian")
    p.add_argument("--sigma", type=sigma_value, default=TEST_SIGMA,
                   help=f"Gaussian sigma in (0, {MAX_SIGMA:g}] (kernel size ceil(3 sigma) * 2 + 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the realistic kernels")
    args = p.parse_args(argv)
    try:
        n = make_dataset(args.hr, args.out, args.type, args.sigma, args.seed)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"{n} frames written to {args.out}")


if __name__ == "__main__":
    main()
