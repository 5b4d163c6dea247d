"""Python API for embedding the x4 video super-resolution in other programs.

    from jittor_sbvsr.api import VideoSR
    sr = VideoSR()                                   # default weights, CUDA when available
    for frame in sr.stream(frames):                  # uint8 RGB H x W x 3 in, 4H x 4W x 3 out, in order
        show(frame)
    sr.run("clip.mp4", "clip_x4.mp4")                # keeps the audio, subtitles, frame rate and length

Both go through ``engine.stream``, the window loop the CLI uses, so outputs equal ``infer``'s exactly.
"""
import os

from .ffmpeg import VideoEncoder
from .video_io import VIDEO_EXTS, InputError, discover, write_png


def _default_weights():
    """The weights ``infer`` takes without --model (upstream's, else the demo weights); FileNotFoundError."""
    from .default_weights import DEMO_WEIGHTS, default_model_paths

    found = next((p for p in default_model_paths() + [DEMO_WEIGHTS] if os.path.isfile(p)), None)
    if found is None:
        raise FileNotFoundError(f"no weights found at {', '.join(default_model_paths() + [DEMO_WEIGHTS])}; pass "
                                "model=<weights file>")
    return found


class VideoSR:
    """A loaded network ready to super-resolve videos.

    ``model``: None (the default weights ``infer`` uses), a weights file path, or a PWC_Recons network.
    ``device``: "auto" (CUDA when Jittor has it), "cpu" or "cuda" (error when absent); it applies to the
    whole process, as Jittor's device is global. ``tile``/``overlap``: as ``infer --tile/--tile-overlap``.
    """

    def __init__(self, model=None, device="auto", tile=None, overlap=16, precision="fp32"):
        from . import runtime
        from .engine import WindowEngine
        from .weights import load_model

        runtime.init(device)
        if model is None or isinstance(model, (str, os.PathLike)):
            model = load_model(os.fspath(model) if model is not None else _default_weights())[0]
        self.engine = WindowEngine(model, tile, overlap, precision)

    def stream(self, frames, border=True):
        """Yield the SR frame (uint8 4H x 4W x 3) of each input frame of the iterable ``frames`` (uint8 RGB
        H x W x 3, one size), reading only 2 frames ahead. ``border=False`` skips the first and last 2
        frames as upstream's evaluation protocol does (``infer`` without ``--border``)."""
        from .engine import stream, to_image

        for window in stream(self.engine, frames, border):
            yield to_image(window.recons)

    def run(self, input_path, output_path, border=True, codec="h264", crf=None, pix_fmt=None):
        """Super-resolve one video (a video file or a folder of frames) into ``output_path``: a video file
        (by extension; a video input's audio, subtitles, frame rate and length are kept) or else a folder
        of ``<index>.png``. Returns the number of frames written."""
        videos = discover(input_path)
        if len(videos) != 1:
            raise InputError(input_path, f"{len(videos)} videos; give one video (a video file or a frame folder)")
        video = videos[0]
        outputs = enumerate(self.stream((img for _, img, _, _ in video.frames()), border), 0 if border else 2)
        count = 0
        if output_path.lower().endswith(VIDEO_EXTS):
            encoder = VideoEncoder(output_path, video.rate(), codec, crf, pix_fmt,
                                   source=video.path if video.is_file else None, pad=(0, 0) if border else (2, 2))
            try:
                for count, (_, img) in enumerate(outputs, 1):
                    encoder.write(img)
            except BaseException:
                encoder.abort()
                raise
            encoder.close()
            return count
        os.makedirs(output_path, exist_ok=True)
        for count, (index, img) in enumerate(outputs, 1):
            write_png(os.path.join(output_path, f"{index:08d}.png"), img)
        return count
