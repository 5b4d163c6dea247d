#!/usr/bin/env python
"""How much ``infer --tile`` changes the output: tiled against untiled inference of one clip.

    python tools/tile_diff.py [LR_VIDEO [--gt HR_VIDEO]] [--model M.pkl] [--tiles 48,64] [--overlaps 8,16,32]

Every window of the clip (no border, like upstream) is super-resolved untiled and with each tile size and
overlap, through ``WindowEngine`` as ``infer`` runs it. Per setting the tool prints the PSNR of the tiled
output against the untiled one (uint8 RGB, whole frame), the largest pixel difference and the share of
differing values, and with ground truth the PSNR/SSIM against it (upstream metrics) and their change.

LR_VIDEO and HR_VIDEO are frame folders or video files, read as ``infer`` reads them. Without LR_VIDEO the
clip is a camera pan over scikit-image's 'coffee' photo (7 frames, HR 320x480, the upstream Gaussian
degradation to LR 80x120) with its HR frames as ground truth. Without --model the network is the seeded
untrained one, and the tool says so: seam differences depend on the weights, so quote figures measured with
the released checkpoints.
"""
import argparse
import os
import sys

import numpy as np

from jittor_sbvsr import metrics, runtime
from jittor_sbvsr.checkpoint import CheckpointError
from jittor_sbvsr.demo import pan_clip
from jittor_sbvsr.engine import WindowEngine, to_image
from jittor_sbvsr.default_weights import build_model
from jittor_sbvsr.video_io import InputError, discover


def load_video(path, what):
    """uint8 frames of one video (a frame folder or a video file), read as ``infer`` reads them."""
    videos = discover(path, what)
    if len(videos) != 1:
        raise InputError(path, f"{len(videos)} videos; give one video (a frame folder or a video file)")
    return [img for _, img, _, _ in videos[0].frames()]


def super_resolve(engine, lr):
    """uint8 SR frames of the centres 2..n-3."""
    return [to_image(sr) for sr in engine.restore_clip(len(lr), lr.__getitem__)]


def compare(tiled, untiled):
    """(PSNR of tiled vs untiled pooled over frames, max |difference|, share of differing values)."""
    a, b = np.stack(tiled), np.stack(untiled)
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return metrics.psnr(a, b), int(diff.max()), float((diff > 0).mean())


def against_gt(sr, gt):
    """Mean upstream (PSNR, SSIM) of the SR frames against the GT centres."""
    scores = [metrics.evaluate(s, g) for s, g in zip(sr, gt)]
    return float(np.mean([p for p, _ in scores])), float(np.mean([q for _, q in scores]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lr", nargs="?", help="LR frame folder or video file (one video); default: the coffee pan")
    parser.add_argument("--gt", help="the HR frames of that video (frame folder or video file)")
    parser.add_argument("--model", help="weights (.pkl, .pt or trainer checkpoint); default: seeded untrained")
    parser.add_argument("--tiles", default="48,64", help="comma-separated tile sizes (LR pixels)")
    parser.add_argument("--overlaps", default="8,16,32", help="comma-separated overlaps (LR pixels)")
    args = parser.parse_args()
    try:
        if args.lr:
            lr = load_video(args.lr, "input")
            gt = load_video(args.gt, "GT") if args.gt else None
            source = args.lr
        else:
            from skimage import data

            gt, lr = pan_clip(data.coffee(), (320, 480), (40, 60), (1, 3), 7)
            source = "pan over skimage's coffee photo (Gaussian sigma 1.2, x4)"
        if len(lr) < 5:
            raise InputError(args.lr, f"{len(lr)} frames; at least 5 are needed")
        if gt and [g.shape[:2] for g in gt] != [(4 * f.shape[0], 4 * f.shape[1]) for f in lr]:
            raise InputError(args.gt, f"{len(gt)} HR frames do not match the {len(lr)} LR frames at 4x their size")
        if args.model and not os.path.isfile(args.model):
            raise InputError(args.model, "model file not found")
        runtime.init()
        net = build_model(args.model, print)
    except (InputError, CheckpointError) as e:
        print(f"tile_diff: error: {e}", file=sys.stderr)
        sys.exit(2)
    weights = args.model or "the seeded UNTRAINED network (seam differences depend on the weights)"
    h, w = lr[0].shape[:2]
    print(f"clip: {source}, {len(lr)} frames, LR {h}x{w} (HxW); weights: {weights}")
    untiled = super_resolve(WindowEngine(net), lr)
    gt_centres = gt[2:len(lr) - 2] if gt else None
    if gt_centres:
        base = against_gt(untiled, gt_centres)
        print(f"untiled: PSNR {base[0]:.3f} dB, SSIM {base[1]:.4f} against GT")
    for tile in (int(v) for v in args.tiles.split(",")):
        for overlap in (int(v) for v in args.overlaps.split(",")):
            if not 0 <= overlap < tile:
                continue
            tiled = super_resolve(WindowEngine(net, tile, overlap), lr)
            p, worst, share = compare(tiled, untiled)
            line = (f"tile {tile} overlap {overlap}: PSNR vs untiled {p:.2f} dB, max |diff| {worst}, "
                    f"{100 * share:.2f}% of values differ")
            if gt_centres:
                score = against_gt(tiled, gt_centres)
                line += f"; against GT {score[0]:.3f} dB ({score[0] - base[0]:+.3f}), SSIM {score[1]:.4f} " \
                        f"({score[1] - base[1]:+.4f})"
            print(line, flush=True)


if __name__ == "__main__":
    main()
