"""Short HR clips with camera motion, rendered from still photos that scikit-image ships.

No video data set can be downloaded on every machine, but a camera moving over a photo gives what the
self-supervised training needs: consecutive frames of the same scene with small, smooth, sub-pixel motion.
Each clip pans by a fractional number of pixels per frame, and may zoom slowly and rotate a little; frames are
resampled from the photo with a cubic spline (scipy's ``map_coordinates``), which keeps edges sharp.

The astronaut photo is never used here: it is the scene of ``infer --demo``. ``VALIDATION_PHOTOS`` are kept
out of the training clips so that validation measures scenes the network has not seen.
"""
import math
from dataclasses import dataclass

import numpy as np

DEMO_PHOTO = "astronaut"
TRAINING_PHOTOS = ("coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "motorcycle_left",
                   "motorcycle_right", "camera", "brick", "grass", "gravel", "moon", "coins", "cell", "text",
                   "page")
VALIDATION_PHOTOS = ("chelsea",)


def load_photo(name):
    """uint8 RGB H x W x 3 array of a scikit-image photo (grey ones repeated over 3 channels)."""
    from skimage import data

    if name == DEMO_PHOTO:
        raise ValueError(f"{DEMO_PHOTO} is the demo scene and must not be used for training or validation")
    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        img = left if name == "motorcycle_left" else right
    else:
        img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


@dataclass(frozen=True)
class Motion:
    """Camera path: per-frame shift (rows, columns) in photo pixels, zoom factor and rotation in degrees."""
    shift: tuple = (0.0, 0.0)
    zoom: float = 1.0
    rotation: float = 0.0

    def transform(self, t):
        """(2x2 matrix, offset) mapping frame-t pixel offsets from the frame centre to photo offsets from the
        path's start: scale zoom^t, rotation t * rotation, translation t * shift."""
        angle = math.radians(self.rotation * t)
        scale = self.zoom ** t
        matrix = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        return matrix, np.array(self.shift, np.float64) * t

    def reach(self, size, n_frames):
        """Largest distance (rows, columns) from the start centre that any frame's corner reaches."""
        h, w = size
        corners = np.array([[-h / 2, -w / 2], [-h / 2, w / 2], [h / 2, -w / 2], [h / 2, w / 2]])
        reach = np.zeros(2)
        for t in range(n_frames):
            matrix, offset = self.transform(t)
            reach = np.maximum(reach, np.abs(corners @ matrix.T + offset).max(axis=0))
        return reach


def random_motion(rng, max_speed=3.0):
    """A camera path of the kinds wanted in training: a pan (always), plus a slow zoom (half the clips) and a
    small rotation (a third of the clips). Speeds are fractional so that frames differ by sub-pixel shifts."""
    speed = rng.uniform(0.3, max_speed)
    direction = rng.uniform(0, 2 * math.pi)
    zoom = 1.0 + rng.uniform(-0.01, 0.01) if rng.random() < 0.5 else 1.0
    rotation = rng.uniform(-0.5, 0.5) if rng.random() < 1 / 3 else 0.0
    return Motion((speed * math.sin(direction), speed * math.cos(direction)), zoom, rotation)


def render_clip(photo, motion, size, n_frames, start):
    """``n_frames`` uint8 frames of ``size`` (rows, columns) along ``motion`` from centre ``start`` (photo
    pixel coordinates)."""
    from scipy.ndimage import map_coordinates

    h, w = size
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    offsets = np.stack([rows - (h - 1) / 2, cols - (w - 1) / 2], axis=-1)
    channels = [np.asarray(photo[..., c], np.float64) for c in range(photo.shape[2])]
    frames = []
    for t in range(n_frames):
        matrix, shift = motion.transform(t)
        coords = offsets @ matrix.T + shift + np.asarray(start, np.float64)
        grid = [coords[..., 0], coords[..., 1]]
        frame = np.stack([map_coordinates(ch, grid, order=3, mode="mirror") for ch in channels], axis=-1)
        frames.append(np.clip(np.round(frame), 0, 255).astype(np.uint8))
    return frames


def random_clip(photo, size, n_frames, rng, max_speed=3.0):
    """A clip of ``photo`` along a random camera path that stays inside the photo; None when the photo is too
    small for ``size`` with any motion."""
    ph, pw = photo.shape[:2]
    for _ in range(20):
        motion = random_motion(rng, max_speed)
        reach = motion.reach(size, n_frames)
        # the path starts at `start` and moves by up to `reach` in either direction along each axis
        low, high = reach + 1, np.array([ph, pw]) - reach - 2
        if np.all(high > low):
            start = (rng.uniform(low[0], high[0]), rng.uniform(low[1], high[1]))
            return render_clip(photo, motion, size, n_frames, start), motion
    return None
