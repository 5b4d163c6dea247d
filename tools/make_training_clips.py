"""Make the training and validation clips of the Demo_CPU recipe from photos that scikit-image ships.

    python tools/make_training_clips.py --out dataset/demo_clips
    python tools/make_training_clips.py --out dataset/demo_clips --video bikes.mp4   # + a real held-out clip

Writes
    <out>/train/HR/<photo>_<k>/<frame>.png       camera-motion clips of the training photos (HR only: the
                                                 trainer degrades them online with random kernels)
    <out>/val/{HR,LR_blurdown_x4,kernel}/...     held-out clips degraded like the upstream Gaussian test sets
                                                 (sigma 1.2), validated every epoch
    <out>/val_sigma1.6/...                       the same clips blurred with sigma 1.6 (kernel-estimate checks)

The validation clips come from photos kept out of training (``VALIDATION_PHOTOS``) and, with ``--video``, from
the first frames of a real video, centre-cropped. The astronaut photo (the demo) is used by neither.
"""
import argparse
import os
import shutil
import sys

import numpy as np

from jittor_sbvsr.data.camera_clips import TRAINING_PHOTOS, VALIDATION_PHOTOS, load_photo, random_clip
from jittor_sbvsr.video_io import InputError, discover, write_png
from make_blurdown_dataset import make_dataset


def write_clip(folder, frames):
    os.makedirs(folder, exist_ok=True)
    for i, frame in enumerate(frames):
        write_png(os.path.join(folder, f"{i:08d}.png"), frame)


def photo_clips(photos, root, clips_per_photo, n_frames, size, rng, echo):
    """Random camera clips of each photo under root/<photo>_<k>/; returns the number of clips."""
    count = 0
    for name in photos:
        photo = load_photo(name)
        for k in range(clips_per_photo):
            clip = random_clip(photo, size, n_frames, rng)
            if clip is None:
                echo(f"{name}: {photo.shape[1]}x{photo.shape[0]} is too small for {size[1]}x{size[0]} clips, skipped")
                break
            frames, motion = clip
            write_clip(os.path.join(root, f"{name}_{k}"), frames)
            echo(f"{name}_{k}: shift {motion.shift[0]:+.2f},{motion.shift[1]:+.2f} px/frame, zoom {motion.zoom:.4f}, "
                 f"rotation {motion.rotation:+.2f} deg/frame")
            count += 1
    return count


def video_clip(path, n_frames, size):
    """The first ``n_frames`` frames of a video file, centre-cropped to ``size``."""
    video = discover(path)[0]
    frames = []
    for _, img, _, _ in video.frames():
        h, w = img.shape[:2]
        if h < size[0] or w < size[1]:
            raise InputError(path, f"frames are {w}x{h}, smaller than the {size[1]}x{size[0]} crop")
        y, x = (h - size[0]) // 2, (w - size[1]) // 2
        frames.append(img[y:y + size[0], x:x + size[1]])
        if len(frames) == n_frames:
            return video.name, frames
    raise InputError(path, f"has {len(frames)} frames, fewer than {n_frames}")


def make_clips(out, clips_per_photo=3, n_frames=10, size=(256, 256), val_frames=9, val_size=(192, 256),
               video=None, seed=0, echo=print):
    rng = np.random.default_rng(seed)
    n_train = photo_clips(TRAINING_PHOTOS, os.path.join(out, "train", "HR"), clips_per_photo, n_frames, size, rng,
                          echo)
    val_hr = os.path.join(out, "val_hr")
    photo_clips(VALIDATION_PHOTOS, val_hr, 1, val_frames, val_size, rng, echo)
    if video:
        name, frames = video_clip(video, val_frames, val_size)
        write_clip(os.path.join(val_hr, name), frames)
    for sub, sigma in (("val", 1.2), ("val_sigma1.6", 1.6)):
        make_dataset(val_hr, os.path.join(out, sub), sigma=sigma, echo=echo)
    shutil.rmtree(val_hr)
    return n_train


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="dataset/demo_clips", help="output folder")
    p.add_argument("--clips-per-photo", type=int, default=3)
    p.add_argument("--frames", type=int, default=10, help="frames per training clip")
    p.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"), help="HR training clip size")
    p.add_argument("--video", help="a real video file whose first frames become one more validation clip")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.frames < 5 or min(args.size) < 16 or args.clips_per_photo < 1:
        p.error("--frames must be at least 5, --size at least 16x16, --clips-per-photo at least 1")
    try:
        n = make_clips(args.out, args.clips_per_photo, args.frames, tuple(args.size), video=args.video,
                       seed=args.seed)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"{n} training clips and the validation sets written to {args.out}")


if __name__ == "__main__":
    main()
