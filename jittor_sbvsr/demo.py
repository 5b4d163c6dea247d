"""``infer --demo``: a synthetic test clip, super-resolved and compared with bicubic upsampling.

The clip is a camera pan over scikit-image's bundled astronaut photo (7 crops of 192x256 pixels, each
shifted by 1 row and 3 columns), degraded like the upstream Gaussian test sets (``degrade``), so the demo
needs no download and its LR frames are small (48x64) enough for a CPU.
"""
import os

import numpy as np

from . import metrics
from .degrade import TEST_SIGMA, degrade_gaussian
from .video_io import write_png

N_FRAMES = 7
HR_SIZE = (192, 256)
ORIGIN = (30, 150)  # top-left of the first crop in the 512x512 photo
STEP = (1, 3)  # pan per frame (rows, columns), HR pixels
SCALE = 4
VIDEO = "astronaut"


def pan_clip(photo, hr_size, origin, step, n):
    """(HR frames, LR frames) of a camera pan over ``photo``: n crops of ``hr_size`` starting at ``origin``,
    moving by ``step`` (rows, columns) per frame, each degraded like the upstream Gaussian test sets."""
    h, w = hr_size
    hr = [photo[origin[0] + i * step[0]:origin[0] + i * step[0] + h,
                origin[1] + i * step[1]:origin[1] + i * step[1] + w].copy() for i in range(n)]
    return hr, [degrade_gaussian(f, TEST_SIGMA, SCALE) for f in hr]


def make_clip():
    """(HR frames, LR frames): lists of uint8 RGB arrays, 192x256 and 48x64."""
    from skimage import data

    return pan_clip(data.astronaut(), HR_SIZE, ORIGIN, STEP, N_FRAMES)


def bicubic(lr, scale=SCALE):
    """PIL bicubic upsampling of a uint8 RGB frame."""
    from PIL import Image

    h, w = lr.shape[:2]
    return np.asarray(Image.fromarray(lr).resize((w * scale, h * scale), Image.Resampling.BICUBIC))


class Demo:
    """The demo clip and what ``infer --demo`` logs about it."""

    def __init__(self):
        self.hr, self.lr = make_clip()
        self.stems = [f"{i:08d}" for i in range(N_FRAMES)]
        self.missing = None

    def write(self, run_dir):
        """Write the clip under ``<run_dir>/clip/{lr,hr}/astronaut/``; returns (input, GT) dataset folders."""
        folders = tuple(os.path.join(run_dir, "clip", kind) for kind in ("lr", "hr"))
        for folder, frames in zip(folders, (self.lr, self.hr)):
            os.makedirs(os.path.join(folder, VIDEO), exist_ok=True)
            for stem, img in zip(self.stems, frames):
                write_png(os.path.join(folder, VIDEO, stem + ".png"), img)
        return folders

    def first_line(self, log, weights, missing):
        """``weights``: which weights run; ``missing``: the weight files looked for in vain (the network is
        untrained), or None."""
        self.missing = missing
        what = (f"{weights}: no weights at " + " or ".join(missing) + ", so the numbers below are not "
                "Self-Blind-VSR's") if missing else weights
        log(f"demo: {N_FRAMES}-frame pan over skimage's astronaut photo, LR {self.lr[0].shape[1]}x"
            f"{self.lr[0].shape[0]} (Gaussian blur sigma {TEST_SIGMA}, x{SCALE} decimation), with {what}")

    def report(self, log, results, space):
        """Log SR vs bicubic PSNR/SSIM (``space``: "rgb" or "y") on the frames the run restored, then the closing
        line with the gain."""
        index = {s: i for i, s in enumerate(self.stems)}
        frames = [index[r.frame] for r in results]
        sr = [(r.psnr, r.ssim) for r in results]
        bic = [metrics.evaluate(bicubic(self.lr[i]), self.hr[i], space) for i in frames]
        mean = lambda pairs, k: float(np.mean([p[k] for p in pairs]))  # noqa: E731
        log(f"demo: frames {frames[0]}-{frames[-1]} of 0-{N_FRAMES - 1}, {space.upper()} metrics: "
            f"Self-Blind-VSR PSNR={mean(sr, 0):.2f} dB SSIM={mean(sr, 1):.4f} | "
            f"bicubic PSNR={mean(bic, 0):.2f} dB SSIM={mean(bic, 1):.4f}")
        gain = f"{mean(sr, 0) - mean(bic, 0):+.2f} dB PSNR over bicubic"
        if self.missing:
            log(f"demo: done with an UNTRAINED network ({gain}): for real results put self_blind_vsr_gaussian.pt "
                f"(upstream README) in {os.path.dirname(self.missing[0]) or '.'}/ and run again")
        else:
            log(f"demo: done, {gain}")
