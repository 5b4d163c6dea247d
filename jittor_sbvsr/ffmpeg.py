"""Probe and encode videos with the ffmpeg binary that imageio-ffmpeg ships (no system ffmpeg needed).

``probe`` reads what ``ffmpeg -i`` reports (streams, duration) and the exact rational frame rate, which
``ffmpeg -i`` only prints rounded (29.97): it is taken from the frame rate ffmpeg's filter graph is
configured with for the first video stream (``showinfo``), the value ffprobe reports as ``r_frame_rate``.
``VideoEncoder`` pipes RGB frames into ffmpeg and, when given the source video, copies its audio and
subtitle streams and metadata into the result unchanged, so the output keeps sound, subtitles, rate and
duration. It writes to a temporary name (``files.temp_name``: no video extension, so no later run takes a
leftover as input) and renames when ffmpeg has succeeded.

The encoder runs in a session of its own, so that a Ctrl-C meant for the run does not reach it, and it is
stopped with SIGTERM, never SIGKILL: Jittor's SIGCHLD handler ends the whole process when a child dies of any
other signal.
"""
import contextlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

import numpy as np

from .errors import InputError
from .files import temp_name

# codec name -> (ffmpeg encoder, default pixel format, takes --crf); h264/h265 in yuv420p play everywhere,
# ffv1 is lossless and keeps RGB
CODECS = {"h264": ("libx264", "yuv420p", True), "h265": ("libx265", "yuv420p", True), "ffv1": ("ffv1", None, False)}
DEFAULT_CRF = 18
MUXERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
# ffmpeg stops at a SIGTERM once its input ends, and exits at once on the fourth, even while a process that
# inherited its input pipe keeps that input from ending
SIGNALS_TO_EXIT = 4
# first words of the lines of ffmpeg's version banner, which starts its stderr
FFMPEG_BANNER = ("ffmpeg version", "built with", "configuration:", "libav", "libsw", "libpostproc")


class FFmpegError(InputError):
    """ffmpeg cannot read or write a file; an InputError, so the CLI reports it as one line and exits 2."""


def ffmpeg_reason(stderr, fallback):
    """ffmpeg's reason in one line: its stderr without the version banner and the ``[in#0 @ 0x...]`` prefixes,
    the first and the last remaining line (``moov atom not found; Error opening input files: Invalid data
    ...``); ``fallback`` when nothing remains."""
    lines = [re.sub(r"^\[[^]]*@ 0x[0-9a-f]+\]\s*", "", line.strip()) for line in stderr.splitlines()]
    lines = [line for line in lines if line and not line.startswith(FFMPEG_BANNER)]
    return "; ".join(dict.fromkeys([lines[0], lines[-1]])) if lines else fallback


def exe():
    """The ffmpeg binary that imageio-ffmpeg finds (InputError when there is none). The first lookup runs
    ``ffmpeg -version`` in the caller's process group, so commands call it before Jittor is imported: a Ctrl-C
    that killed that child afterwards would trip Jittor's SIGCHLD handler, which ends the whole process."""
    import imageio_ffmpeg

    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:
        raise InputError("ffmpeg", str(e)) from None


@lru_cache(maxsize=None)
def encoders():
    """Names of the video encoders this ffmpeg build has."""
    text = subprocess.run([exe(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return {m.group(1) for m in re.finditer(r"^ V\S* (\S+)", text, re.M)}


def available_codecs():
    return [name for name, (encoder, _, _) in CODECS.items() if encoder in encoders()]


@dataclass
class Probe:
    """What a media file holds: ``streams`` as ``[(kind, codec)]`` (kind: Video, Audio, Subtitle, Data),
    ``duration`` in seconds (None when unknown) and ``rate`` of the first video stream (a Fraction)."""
    streams: list = field(default_factory=list)
    duration: float = None
    rate: Fraction = None

    def kinds(self):
        return [kind for kind, _ in self.streams]


def probe(path):
    """Probe ``path`` with ffmpeg; FFmpegError when ffmpeg cannot open it."""
    info = subprocess.run([exe(), "-hide_banner", "-nostdin", "-i", path], capture_output=True, text=True,
                          errors="replace").stderr
    if "Input #0" not in info:
        raise FFmpegError(path, f"ffmpeg cannot open it ({ffmpeg_reason(info, 'no message')})")
    result = Probe(streams=re.findall(r"^\s*Stream #0:\d+\S*: (\w+): (\w+)", info, re.M))
    m = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", info)
    if m:
        result.duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    if "Video" in result.kinds():
        graph = subprocess.run([exe(), "-hide_banner", "-nostdin", "-i", path, "-map", "0:v:0", "-frames:v", "1",
                                "-vf", "showinfo", "-f", "null", "-"], capture_output=True, text=True,
                               errors="replace").stderr
        m = re.search(r"frame_rate: (\d+)/(\d+)", graph)
        if m and int(m.group(1)) > 0 and int(m.group(2)) > 0:
            result.rate = Fraction(int(m.group(1)), int(m.group(2)))
    return result


def container_for(codec, source=None):
    """File extension of the output video: the source's container when it can hold the codec and the source's
    other streams (mp4, mov, mkv), else Matroska, which holds them all; mp4 for frame folders."""
    ext = os.path.splitext(source)[1].lower() if source else ".mp4"
    if codec == "ffv1" or ext not in (".mp4", ".mov", ".mkv"):
        return ".mkv"
    return ext


class VideoEncoder:
    """Encode RGB frames to ``path`` at ``rate`` (a Fraction or number) with ``codec``/``crf``/``pix_fmt``.

    ``source``: a video file whose audio and subtitle streams and metadata are copied into the output.
    ``pad``: (frames before, frames after) filled by repeating the first and last frame, so that a clip
    whose edge frames were not restored keeps the source's length and audio sync.
    """

    def __init__(self, path, rate, codec="h264", crf=None, pix_fmt=None, source=None, pad=(0, 0)):
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r} (known: {', '.join(CODECS)})")
        self.path, self.rate, self.source, self.pad = path, Fraction(rate).limit_denominator(1 << 20), source, pad
        self.codec, self.crf, self.pix_fmt = codec, crf, pix_fmt
        self.muxer = MUXERS.get(os.path.splitext(path)[1].lower(), "matroska")
        self.tmp = temp_name(path)
        self._proc = None
        self._log = None

    def _command(self, w, h):
        encoder, default_pix_fmt, takes_crf = CODECS[self.codec]
        cmd = [exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{w}x{h}", "-framerate", f"{self.rate.numerator}/{self.rate.denominator}", "-i", "-"]
        if self.source:
            cmd += ["-i", self.source, "-map", "0:v", "-map", "1:a?", "-map", "1:s?", "-c:a", "copy", "-c:s",
                    "mov_text" if self._needs_mov_text() else "copy", "-map_metadata", "1"]
        if any(self.pad):
            cmd += ["-vf", f"tpad=start={self.pad[0]}:stop={self.pad[1]}:start_mode=clone:stop_mode=clone"]
        cmd += ["-c:v", encoder]
        if takes_crf:
            cmd += ["-crf", str(DEFAULT_CRF if self.crf is None else self.crf)]
        if self.pix_fmt or default_pix_fmt:
            cmd += ["-pix_fmt", self.pix_fmt or default_pix_fmt]
        if self.codec == "h265" and self.muxer in ("mp4", "mov"):
            cmd += ["-tag:v", "hvc1"]  # the tag Apple players need for HEVC
        return cmd + ["-f", self.muxer, self.tmp]

    def _needs_mov_text(self):
        """mp4/mov hold text subtitles only as mov_text: SubRip/ASS subtitles are converted, not copied."""
        return self.muxer in ("mp4", "mov") and any(
            kind == "Subtitle" and codec != "mov_text" for kind, codec in probe(self.source).streams)

    def write(self, img):
        """Append one uint8 H x W x 3 RGB frame (ffmpeg starts with the first one)."""
        if self._proc is None:
            self._log = tempfile.TemporaryFile()
            self._proc = subprocess.Popen(self._command(img.shape[1], img.shape[0]), stdin=subprocess.PIPE,
                                          bufsize=0, stdout=subprocess.DEVNULL, stderr=self._log,
                                          start_new_session=True)
        data = memoryview(np.ascontiguousarray(img, np.uint8)).cast("B")
        try:
            while data:  # an unbuffered pipe may take part of a frame per call
                data = data[self._proc.stdin.write(data):]
        except BrokenPipeError:
            self._fail()

    def close(self):
        """Finish the file and move it into place (nothing is written for zero frames)."""
        if self._proc is None:
            return
        self._proc.stdin.close()
        if self._proc.wait() != 0:
            self._fail()
        os.replace(self.tmp, self.path)
        self._end()

    def _fail(self):
        self._proc.wait()
        self._log.seek(0)
        message = ffmpeg_reason(self._log.read().decode("utf-8", "replace"), "no message")
        self.abort()
        raise FFmpegError(self.path, f"ffmpeg failed to encode the video ({message})")

    def abort(self):
        """Stop ffmpeg (SIGTERM) and remove the partial file."""
        if self._proc is not None:
            self._proc.stdin.close()
            for _ in range(SIGNALS_TO_EXIT):
                if self._proc.poll() is not None:
                    break
                self._proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=1)
            self._proc.wait()
            self._end()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)

    def _end(self):
        self._log.close()
        self._proc, self._log = None, None
