"""Reading and writing the frames of videos: discovery, validation, conversion to uint8 RGB, PNG output.

An input is a folder of frames (png/jpg/bmp), a dataset folder (one sub-folder or video file per video,
the REDS/Vid4 layout), or a video file (mp4/avi/mkv/mov, decoded by imageio-ffmpeg). Frames are sorted by
file name (upstream sorts lexicographically) and decoded lazily, once each, as uint8 H x W x 3 RGB.
Problems are raised as ``InputError(path, problem)``; unusual but usable frames (grayscale, alpha, 16-bit,
palette, CMYK) are converted and reported as notes.
"""
import contextlib
import os
import warnings
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .errors import InputError
from .ffmpeg import ffmpeg_reason, probe
from .files import write_atomic

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov")
DEFAULT_FPS = 25
MIN_FRAMES = 5  # one full window: without border, frame j needs frames j-2..j+2
EXIF_ORIENTATION = 0x0112


def length_problem(n, border):
    """Why an ``n``-frame video cannot be restored (None when it can)."""
    if n == 0:
        return "no frames could be decoded"
    if not border and n < MIN_FRAMES:
        return (f"{n} frame(s): without --border a video needs at least {MIN_FRAMES} frames (each output frame "
                "uses 2 frames before and after it, and the first and last 2 frames are not restored); use "
                "--border for short clips")
    return None


def _png_bit_depth(path):
    with open(path, "rb") as f:
        head = f.read(25)
    return head[24] if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 25 else 8


def to_rgb8(img, mode, bit_depth=8):
    """Convert a decoded PIL image (``img`` its numpy array, ``mode`` its PIL mode) to uint8 RGB.

    Returns ``(array, note)``; ``note`` says what was converted, or is None for plain 8-bit RGB.
    """
    notes = []
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        img = np.round(np.clip(img.astype(np.float64), 0, 65535) / 257.0).astype(np.uint8)
        notes.append("16-bit grayscale converted to 8 bits")
    elif mode in ("RGB", "RGBA", "LA") and bit_depth == 16:
        notes.append(f"16-bit {mode} reduced to 8 bits by the image decoder (high byte)")
    if img.ndim == 3 and img.shape[2] in (2, 4):
        img = img[..., :-1]
        notes.append("alpha channel dropped")
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2 or img.shape[2] == 1:
        img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
        notes.append("grayscale converted to RGB")
    return np.ascontiguousarray(img, dtype=np.uint8), "; ".join(notes) or None


@contextlib.contextmanager
def _open_image(path):
    """The PIL image of ``path`` (header read, pixels not yet decoded). Pillow's failures inside the block,
    decoding included, become InputError: not an image, truncated or corrupt data, or a size beyond Pillow's
    decompression-bomb limit (its warning counts too: such a frame could not be super-resolved anyway)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                yield im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(path, f"too large to decode ({e})") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise InputError(path, f"cannot read image ({e})") from None


def _orientation_note(im):
    """A note when the EXIF orientation asks for a rotation or flip: like upstream, frames are used as stored."""
    orientation = im.getexif().get(EXIF_ORIENTATION, 1)
    return None if orientation == 1 else f"EXIF orientation {orientation} ignored: the frame is used as stored " \
                                          "(not rotated or flipped), as upstream reads it"


def read_image(path):
    """Decode one frame file -> ``(uint8 H x W x 3 RGB, note or None)``; InputError when unreadable."""
    with _open_image(path) as im:
        im.load()
        mode = im.mode
        orientation = _orientation_note(im)
        if mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
            rgb = im.convert("RGBA" if "A" in mode or "transparency" in im.info else "RGB")
            arr, note = to_rgb8(np.asarray(rgb), rgb.mode)
            note = f"{mode} image converted to RGB" + (f"; {note}" if note else "")
        elif mode not in ("1", "L", "LA", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I"):
            raise InputError(path, f"unsupported image mode {mode}")
        else:
            depth = _png_bit_depth(path) if path.lower().endswith(".png") else 8
            arr, note = to_rgb8(np.asarray(im), mode, depth)
    return arr, "; ".join(n for n in (note, orientation) if n) or None


def check_frame_files(paths, verify=False):
    """Check frame files before any is decoded, from their headers: each must open as an image within Pillow's
    size limit (with ``verify``, also pass Pillow's integrity check, e.g. PNG chunk checksums, which reads the
    file but decodes nothing), and all must share the first one's size. Returns that size (height, width);
    InputError names the first bad file."""
    first = None
    for path in paths:
        with _open_image(path) as im:
            size = (im.height, im.width)
            if verify:
                im.verify()
        if first is None:
            first = (size, path)
        elif size != first[0]:
            raise InputError(path, f"frame size {_size(size)} differs from {_size(first[0])} of the first frame "
                                   f"{os.path.basename(first[1])}; all frames of a video must have one size")
    return first[0] if first else None


def frame_stem(path):
    """The name a frame's outputs take: the file name without its last extension (``shot.0001.png`` ->
    ``shot.0001``)."""
    return os.path.splitext(os.path.basename(path))[0]


def check_unique_names(paths, name, folder):
    """InputError when two of ``paths`` get the same output name ``name(path)`` (``b.png`` and ``b.jpg``)."""
    seen = {}
    for path in paths:
        other = seen.setdefault(name(path), path)
        if other != path:
            raise InputError(folder, f"{os.path.basename(other)} and {os.path.basename(path)} would both be "
                                     f"written as {name(path)}; rename one")


def list_frames(folder):
    """Sorted frame files (by name) directly inside ``folder``. Hidden files are skipped (macOS's ``._*``
    companions among them), and so are the temporaries of interrupted writes, which end in ``.partial-*``
    rather than an image extension (``files.temp_name``)."""
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if not n.startswith(".") and n.lower().endswith(IMAGE_EXTS)
                  and os.path.isfile(os.path.join(folder, n)))


def is_video_file(path):
    return os.path.isfile(path) and path.lower().endswith(VIDEO_EXTS)


@dataclass
class Video:
    """One input video: a folder of frames (``frame_paths``) or a video file (``path``); ``whole`` when it is
    the input path itself rather than an entry of a dataset folder."""
    name: str
    path: str
    frame_paths: list = field(default_factory=list)
    whole: bool = False

    @property
    def is_file(self):
        return not self.frame_paths

    def count_hint(self):
        """Number of frames: exact for frame folders, ffmpeg's estimate (or None) for video files."""
        if not self.is_file:
            return len(self.frame_paths)
        meta = _video_meta(self.path)
        n = meta.get("duration", 0) * meta.get("fps", 0)
        return int(round(n)) or None

    def rate(self):
        """Exact frame rate (a Fraction) of a video file; DEFAULT_FPS for frame folders or when unknown."""
        return (self.is_file and probe(self.path).rate) or Fraction(DEFAULT_FPS)

    def shortfall_note(self, n):
        """A note when this video file gave ``n`` frames but its header announces clearly more (a truncated
        file, which ffmpeg decodes up to the cut without an error); None otherwise."""
        announced = self.count_hint() if self.is_file else None
        if announced and n < announced - 1:
            return (f"{n} frames decoded, its header announces {announced}: the file may be truncated; the decoded "
                    "frames are used")
        return None

    def frames(self):
        """Yield ``(stem, uint8 H x W x 3, note, path)`` per frame, in order; all frames must share one size."""
        first = None
        for stem, img, note, path in (self._file_frames() if self.is_file else self._folder_frames()):
            if first is None:
                first = (img.shape, path)
            elif img.shape != first[0]:
                raise InputError(path, f"frame size {_size(img.shape)} differs from {_size(first[0])} of the "
                                       f"first frame {os.path.basename(first[1])}; all frames of a video must "
                                       "have one size")
            yield stem, img, note, path

    def _folder_frames(self):
        for path in self.frame_paths:
            img, note = read_image(path)
            yield frame_stem(path), img, note, path

    def _file_frames(self):
        import imageio_ffmpeg

        reader = imageio_ffmpeg.read_frames(self.path)
        try:
            meta = next(reader)
            w, h = meta["size"]
            for i, raw in enumerate(reader):
                yield f"{i:08d}", np.frombuffer(raw, np.uint8).reshape(h, w, 3), None, self.path
        except (OSError, RuntimeError, StopIteration) as e:
            raise InputError(self.path, f"cannot decode video ({_imageio_reason(e)})") from None
        finally:
            reader.close()


_META = {}


def _video_meta(path):
    if path not in _META:
        import imageio_ffmpeg

        reader = imageio_ffmpeg.read_frames(path)
        try:
            _META[path] = next(reader)
        except (OSError, RuntimeError, StopIteration) as e:
            raise InputError(path, f"cannot open video ({_imageio_reason(e)})") from None
        finally:
            reader.close()
    return _META[path]


def _imageio_reason(err):
    """The reason in an imageio-ffmpeg error, whose text is a headline followed by ffmpeg's whole stderr."""
    head, _, stderr = str(err).partition("=== stderr ===")
    return ffmpeg_reason(stderr, (head.strip().splitlines() or [type(err).__name__])[0])


def _size(shape):
    return f"{shape[1]}x{shape[0]}"


def discover(path, what="input"):
    """The videos of an input path, sorted by name; InputError when there are none or the path is unusable."""
    if not os.path.exists(path):
        raise InputError(path, f"{what} not found")
    if os.path.isfile(path):
        if not path.lower().endswith(VIDEO_EXTS):
            raise InputError(path, f"not a video file ({', '.join(VIDEO_EXTS)}) or a folder of frames")
        _video_meta(path)
        return [Video(os.path.splitext(os.path.basename(os.path.normpath(path)))[0], path, whole=True)]
    try:
        frames = list_frames(path)
        entries = sorted(os.listdir(path))
    except OSError as e:
        raise InputError(path, f"cannot list folder ({e.strerror})") from None
    if frames:
        check_unique_names(frames, frame_stem, path)
        return [Video(os.path.basename(os.path.abspath(path)), path, frames, whole=True)]
    videos = []
    for name in entries:
        sub = os.path.join(path, name)
        if name.startswith("."):
            continue
        if os.path.isdir(sub):
            sub_frames = list_frames(sub)
            if not sub_frames:
                raise InputError(sub, f"no frames ({'/'.join(e[1:] for e in IMAGE_EXTS)}) in this video folder")
            check_unique_names(sub_frames, frame_stem, sub)
            videos.append(Video(name, sub, sub_frames))
        elif is_video_file(sub):
            videos.append(Video(os.path.splitext(name)[0], sub))
    if not videos:
        raise InputError(path, f"empty: no frames ({'/'.join(e[1:] for e in IMAGE_EXTS)}), video sub-folders or "
                               "video files found")
    names = {v.path: v.name for v in videos}
    check_unique_names(list(names), names.get, path)
    return videos


def pair_gt(videos, gt_videos, gt_path):
    """Map each input video to its GT video: by name, except that a single video given directly (a frame
    folder or video file) pairs with a single GT video whatever their names."""
    if len(videos) == 1 and len(gt_videos) == 1 and (videos[0].whole or gt_videos[0].whole):
        pairs = {videos[0].name: gt_videos[0]}
    else:
        by_name = {v.name: v for v in gt_videos}
        missing = [v.name for v in videos if v.name not in by_name]
        if missing:
            raise InputError(gt_path, f"no GT for video(s) {', '.join(missing[:5])}"
                                      f"{' ...' if len(missing) > 5 else ''} (GT videos are matched by name)")
        pairs = {v.name: by_name[v.name] for v in videos}
    for v in videos:
        n, n_gt = v.count_hint(), pairs[v.name].count_hint()
        if not v.is_file and not pairs[v.name].is_file and n != n_gt:
            raise InputError(pairs[v.name].path, f"{n_gt} GT frames for {n} input frames of video {v.name}")
    return pairs


def write_png(path, img):
    """Write uint8 RGB (or grayscale) ``img`` as a PNG file, atomically."""
    from PIL import Image

    write_atomic(path, lambda tmp: Image.fromarray(img).save(tmp, format="PNG"))
