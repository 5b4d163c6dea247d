"""The inference pipeline behind ``infer``: one run's videos through ``engine.stream``, and everything it writes.

``Runner`` reads each video's frames once (``InputFrames``, ``FrameReader`` for the GT), drives the window loop,
scores each frame (``metrics``), writes PNGs, kernels and ``--save-video`` on a writer thread
(``background``), keeps what an interrupted run finished (``resume``) and appends ``metrics.csv``;
``summarize``, ``summary_lines``, ``write_summary`` and ``merge_metrics`` turn its results into the run's
summary. What to write comes from ``RunSettings``, not from a command line, so the pipeline can run outside
``infer``. Imports no Jittor until a ``Runner`` is built.
"""
import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial

from . import metrics, resume
from .background import Background
from .ffmpeg import VideoEncoder, container_for
from .files import AppendFile, dump_atomic, write_bytes
from .interrupts import deferred
from .video_io import InputError, read_image, write_png

METRICS_COLUMNS = ["video", "frame", "psnr", "ssim", "pre_s", "forward_s", "post_s", "total_s"]


@dataclass
class RunSettings:
    """What a run restores and writes; the defaults are ``infer``'s (each field is the option of that name)."""
    border: bool = False  # also restore the first and last 2 frames of each video
    save_images: bool = True  # <video>/<frame>.png
    save_video: bool = False  # <run>/<video>.<mp4|mkv|mov>
    save_kernel: bool = False  # run KernelNet, <video>/kernels/<frame>.npy and .png
    codec: str = "h264"  # of save_video: a key of ffmpeg.CODECS
    crf: int = None  # of save_video (h264/h265); None: ffmpeg.DEFAULT_CRF
    pix_fmt: str = None  # of save_video; None: the codec's default
    fps: Fraction = None  # of save_video; None: the input's rate
    resume: bool = False  # keep the frames an interrupted run finished
    no_overlap: bool = False  # write in the compute thread instead of a writer thread
    y_channel: bool = False  # metrics on BT.601 Y instead of RGB
    tile: int = None  # LR tile size; None: whole frames
    tile_overlap: int = 16
    precision: str = "fp32"  # or "bf16" (see engine.WindowEngine)
    quiet: bool = False  # no progress display
    log_every: int = 10  # progress line every N frames when stderr is not a terminal

    @property
    def space(self):
        """The metrics' colour space, as ``metrics.evaluate`` names it."""
        return "y" if self.y_channel else "rgb"


class Progress:
    """Per-video progress: a tqdm bar on a terminal, else a plain line every ``every`` frames on stderr."""

    def __init__(self, name, total, quiet, every):
        from tqdm import tqdm

        self.name, self.total, self.every, self.done = name, total, every, 0
        self.quiet, self.start = quiet, time.perf_counter()
        self.bar = None
        if not quiet and sys.stderr.isatty():
            self.bar = tqdm(total=total, desc=name, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=True)

    def update(self):
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif not self.quiet and self.done % self.every == 0:
            rate = self.done / max(time.perf_counter() - self.start, 1e-9)
            eta = f", ETA {_hms((self.total - self.done) / rate)}" if self.total else ""
            of = f"/{self.total}" if self.total else ""
            print(f"{self.name}: {self.done}{of} frames, {rate:.2f} frames/s{eta}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _hms(seconds):
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def noted_frames(video, note):
    """``(stem, uint8 frame)`` of ``video`` in order; each conversion note reported once per video."""
    noted = set()
    for stem, img, problem, path in video.frames():
        if problem and problem not in noted:
            noted.add(problem)
            note(f"note: {path}: {problem} (reported once per video)")
        yield stem, img


class FrameReader:
    """Decodes one video's frames once, in order, on demand; keeps them (from frame ``first`` on) until
    released."""

    def __init__(self, video, note, first=0):
        self._it = noted_frames(video, note)
        self._frames = {}
        self._next, self._first = 0, first
        self.n = None  # known once the video is exhausted

    def load(self, j):
        """Decode up to frame ``j``; False when the video has fewer than j + 1 frames."""
        while self._next <= j and self.n is None:
            item = next(self._it, None)
            if item is None:
                self.n = self._next
                break
            if self._next >= self._first:
                self._frames[self._next] = item
            self._next += 1
        return self.n is None or j < self.n

    def __getitem__(self, j):
        return self._frames[j]

    def release_below(self, j):
        for k in [k for k in self._frames if k < j]:
            del self._frames[k]


class InputFrames:
    """The input frames of one video as the iterable ``engine.stream`` pulls, remembering each frame's stem
    and shape (until ``forget_below``) and how many were read."""

    def __init__(self, video, note):
        self.video, self.note = video, note
        self.info, self.count, self.shape = {}, 0, None

    def __iter__(self):
        for stem, img in noted_frames(self.video, self.note):
            self.info[self.count] = (stem, img.shape)
            self.shape = img.shape
            self.count += 1
            yield img
        shortfall = self.video.shortfall_note(self.count)
        if shortfall:
            self.note(f"note: {self.video.path}: {shortfall}")

    def forget_below(self, j):
        for k in [k for k in self.info if k < j]:
            del self.info[k]


@dataclass
class FrameResult:
    """One restored frame: its video and stem, scores (None without GT) and timings."""
    video: str
    frame: str
    psnr: float = None
    ssim: float = None
    times: dict = field(default_factory=dict)  # pre, forward, post, total (seconds)


class Runner:
    """Runs the videos of one run through a ``WindowEngine`` and writes every output into ``run_dir``, as
    ``settings`` (a RunSettings) says; ``log(line, console=True)`` takes notes and per-frame lines."""

    def __init__(self, settings, net, log, run_dir, metrics_name="metrics.csv"):
        from .engine import WindowEngine

        self.settings, self.log, self.run_dir = settings, log, run_dir
        self.engine = WindowEngine(net, settings.tile, settings.tile_overlap, settings.precision)
        self.results = []
        self.written = 0
        self.previous = resume.previous_times(run_dir) if settings.resume else {}
        self._csv_file = AppendFile(os.path.join(run_dir, metrics_name), "w")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(METRICS_COLUMNS)

    def close(self):
        self._csv_file.close()

    def run_video(self, video, gt, start=0, stop=None, encode=True):
        """Super-resolve (and score) the centre frames ``start <= centre < stop`` of ``video`` (all by default;
        ``ranks.plan`` gives each process its range); with ``--resume`` the frames an earlier run finished are
        read back instead of computed. ``encode=False`` leaves ``--save-video`` to ``encode_pngs``."""
        from .engine import to_image

        settings, scale = self.settings, self.engine.scale
        out_dir = os.path.join(self.run_dir, video.name)
        if settings.save_images or settings.save_kernel:
            os.makedirs(os.path.join(out_dir, "kernels") if settings.save_kernel else out_dir, exist_ok=True)
        inputs = InputFrames(video, self.log)
        gt_reader = FrameReader(gt, self.log, first=start) if gt else None
        encoder = self._encoder(video) if settings.save_video and encode else None
        hint = video.count_hint()
        progress = Progress(video.name, hint if settings.border or hint is None else max(hint - 4, 0),
                            settings.quiet, settings.log_every)
        kept = {}  # centre -> image finished by an earlier run

        def wanted(centre):
            if not (settings.resume and settings.save_images):
                return True
            stem, (h, w, c) = inputs.info[centre]
            kept[centre] = resume.finished_frame(out_dir, stem, (h * scale, w * scale, c), settings.save_kernel)
            return kept[centre] is None

        windows = self._windows(video, inputs, wanted, start, stop)
        out = Background(threaded=not settings.no_overlap)
        crop = None
        try:
            for window in windows:
                stem = inputs.info[window.centre][0]
                t0 = time.perf_counter()
                gt_img = self._gt_frame(gt_reader, gt, window.centre, inputs.count) if gt else None
                t1 = time.perf_counter()
                sr = kept.pop(window.centre, None)
                sr = to_image(window.recons) if sr is None else sr
                result = FrameResult(video.name, stem)
                if gt_img is not None:
                    if crop is None:
                        crop = self._gt_crop(sr.shape, gt_img.shape, gt, video.name)
                    result.psnr, result.ssim = metrics.evaluate(sr[:crop[0], :crop[1]], gt_img[:crop[0], :crop[1]],
                                                                settings.space)
                with deferred():  # a frame handed to the writer is a frame in metrics.csv and summary.json
                    if window.recons is None:
                        result.times = self.previous.get((video.name, stem), dict.fromkeys(resume.TIMES, 0.0))
                        if encoder:
                            out.submit(partial(encoder.write, sr))
                    else:
                        out.submit(partial(self._save, out_dir, stem, sr, window.kernel, encoder))
                        pre = window.decode_s + t1 - t0
                        post = time.perf_counter() - t1
                        result.times = {"pre": pre, "forward": window.forward_s, "post": post,
                                        "total": pre + window.forward_s + post}
                    self._record(result)
                progress.update()
                inputs.forget_below(window.centre - 1)
                if gt_reader:
                    gt_reader.release_below(window.centre)
            if gt_reader and stop is None and gt_reader.load(inputs.count):
                self.log(f"note: {gt.path}: the GT has more frames than the {inputs.count} of the input; the extra "
                         "GT frames are ignored")
            out.close()
            if encoder:
                encoder.close()
        except BaseException:
            out.close(raise_error=False)
            if encoder:
                encoder.abort()
            raise
        finally:
            progress.close()
            windows.close()

    def _windows(self, video, inputs, wanted, start, stop):
        """``engine.stream`` over the video's frames; a too-short video and a failed allocation are reported as
        InputErrors."""
        from .engine import ClipTooShort, stream

        from .runtime import is_out_of_memory

        try:
            yield from stream(self.engine, inputs, self.settings.border, self.settings.save_kernel, wanted, start,
                              stop)
        except ClipTooShort as e:
            raise InputError(video.path, str(e)) from None
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
            raise out_of_memory_error(video, inputs.shape, self.settings.tile) from None

    def _encoder(self, video):
        """The VideoEncoder of ``<run>/<video>.<mp4|mkv|mov>``: at the input's exact frame rate (or --fps),
        keeping a video file's audio, subtitles and length (the edge frames that are not restored without
        --border repeat their nearest restored neighbour)."""
        settings = self.settings
        source = video.path if video.is_file else None
        path = os.path.join(self.run_dir, video.name + container_for(settings.codec, source))
        pad = (0, 0) if settings.border else (2, 2)
        if any(pad):
            self.log(f"note: {path}: the first and last 2 frames repeat the nearest restored frame (not restored "
                     "without --border), so the video keeps the input's length")
        return VideoEncoder(path, settings.fps or video.rate(), settings.codec, settings.crf, settings.pix_fmt,
                            source, pad)

    def encode_pngs(self, video, stems):
        """Encode ``--save-video`` of ``video`` from its PNGs ``<video>/<stem>.png`` (a video whose frames
        several processes restored)."""
        encoder = self._encoder(video)
        try:
            for stem in stems:
                encoder.write(read_image(os.path.join(self.run_dir, video.name, stem + ".png"))[0])
            encoder.close()
        except BaseException:
            encoder.abort()
            raise

    def _gt_frame(self, gt_reader, gt, centre, n):
        if not gt_reader.load(centre):
            raise InputError(gt.path, f"{gt_reader.n} GT frames for {n} input frames" if n else
                             f"only {gt_reader.n} GT frames, the input has more")
        return gt_reader[centre][1]

    def _gt_crop(self, sr_shape, gt_shape, gt, name):
        scale = self.engine.scale
        size = metrics.common_size(sr_shape, gt_shape, tolerance=scale)
        if size is None:
            raise InputError(gt.path, f"GT frames of {name} are {gt_shape[1]}x{gt_shape[0]}, the output is "
                                      f"{sr_shape[1]}x{sr_shape[0]} ({scale}x the LR size): they must agree to "
                                      f"within {scale - 1} pixels")
        if size != tuple(sr_shape[:2]) or size != tuple(gt_shape[:2]):
            self.log(f"note: {name}: GT {gt_shape[1]}x{gt_shape[0]} vs output {sr_shape[1]}x{sr_shape[0]}: both "
                     f"cropped to {size[1]}x{size[0]} (top-left) for the metrics (HR size not a multiple of {scale})")
        return size

    def _save(self, out_dir, stem, sr, kernel, encoder):
        import numpy as np

        if self.settings.save_images:
            write_png(os.path.join(out_dir, stem + ".png"), sr)
            self.written += 1
        if encoder:
            encoder.write(sr)
        if kernel is not None:
            base = os.path.join(out_dir, "kernels", stem)
            dump_atomic(base + ".npy", lambda f: np.save(f, kernel))
            span = float(kernel.max() - kernel.min())
            scaled = (kernel - kernel.min()) / span if span > 0 else np.zeros_like(kernel)
            write_png(base + ".png", np.kron(np.round(scaled * 255), np.ones((8, 8))).astype(np.uint8))

    def _record(self, r):
        self.results.append(r)
        t = r.times
        score = f" PSNR={r.psnr:.5}, SSIM={r.ssim:.4}" if r.psnr is not None else ""
        self.log(f"> {r.video}-{r.frame}{score} pre_time:{t['pre']:.3f}s, forward_time:{t['forward']:.3f}s, "
                 f"post_time:{t['post']:.3f}s, total_time:{t['total']:.3f}s", console=False)
        self._csv.writerow([r.video, r.frame, _num(r.psnr), _num(r.ssim)] + [f"{t[k]:.4f}" for k in
                                                                             ("pre", "forward", "post", "total")])


def out_of_memory_error(video, shape, tile):
    """The InputError for running out of memory on frames of ``shape``: it names the frame size and a --tile
    value to try (tiles bound the memory a window needs)."""
    h, w = shape[:2]
    if not tile:
        advice = f"process them in tiles, e.g. --tile {min(256, max(32, max(h, w) // 2 // 16 * 16))}"
    elif tile > 32:
        advice = f"lower --tile (now {tile}), e.g. --tile {max(32, tile // 2)}"
    else:
        advice = f"the tiles ({tile}) are already small: free memory or use a machine with more"
    return InputError(video.path, f"out of memory super-resolving its {w}x{h} frames; {advice}")


def _num(x):
    return "" if x is None else f"{x:.6f}"


def summarize(results):
    """Averages as upstream: per video over its frames, total pooled over all frames."""
    def stats(rows):
        out = {"frames": len(rows), "seconds": sum(r.times["total"] for r in rows)}
        out["frames_per_s"] = out["frames"] / out["seconds"] if out["seconds"] > 0 else None
        scored = [r for r in rows if r.psnr is not None]
        if scored:
            out["psnr"] = sum(r.psnr for r in scored) / len(scored)
            out["ssim"] = sum(r.ssim for r in scored) / len(scored)
        return out

    videos = {}
    for r in results:
        videos.setdefault(r.video, []).append(r)
    return {"videos": {v: stats(rows) for v, rows in videos.items()}, "total": stats(results)}


def summary_lines(summary):
    """Upstream-style ``# Video:<name> AVG-PSNR=..., AVG-SSIM=...`` lines, then ``# Total ...``."""
    def line(prefix, s):
        score = f" AVG-PSNR={s['psnr']:.5f}, AVG-SSIM={s['ssim']:.4f}," if "psnr" in s else ""
        fps = f"{s['frames_per_s']:.2f}" if s["frames_per_s"] else "-"
        return f"# {prefix}{score} frames={s['frames']}, {fps} frames/s"

    return [line(f"Video:{v}", s) for v, s in sorted(summary["videos"].items())] + [line("Total", summary["total"])]


def _json_safe(x):
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    return None if isinstance(x, float) and not math.isfinite(x) else x


def write_summary(path, header, summary, complete):
    """``summary.json``: ``header`` (the run's settings), ``complete`` and ``summary``; NaN and infinity as null."""
    data = _json_safe(dict(header, complete=complete, **summary))
    write_bytes(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def describe_share(videos, share):
    """``<video>`` or ``<video> frames <first>..<last|end>``: what one ``ranks.plan`` share restores."""
    video = videos[share.video]
    if share.start == 0 and share.stop is None:
        return video.name
    return f"{video.name} frames {share.start}..{'end' if share.stop is None else share.stop - 1}"


def metrics_file(rank, size):
    """The name of the metrics CSV that process ``rank`` of ``size`` writes while it runs."""
    return "metrics.csv" if size == 1 else f"metrics.rank{rank}.csv"


def merge_metrics(run_dir, size, video_order):
    """Merge the processes' ``metrics.rank<N>.csv`` into ``metrics.csv`` (videos in input order; a shared
    video's ranges follow rank order, which is frame order) and return the rows as FrameResults."""
    rows = []
    for rank in range(size):
        path = os.path.join(run_dir, metrics_file(rank, size))
        with open(path, newline="", encoding="utf-8") as f:
            rows += list(csv.reader(f))[1:]
    rows.sort(key=lambda row: video_order.index(row[0]))  # stable: frame order within each video is kept
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(METRICS_COLUMNS)
    writer.writerows(rows)
    # atomically: an interruption leaves the per-process files and no half-written metrics.csv
    write_bytes(os.path.join(run_dir, "metrics.csv"), text.getvalue().encode("utf-8"))
    for rank in range(size):
        os.remove(os.path.join(run_dir, metrics_file(rank, size)))
    return [FrameResult(video, frame, float(psnr) if psnr else None, float(ssim) if ssim else None,
                        dict(zip(resume.TIMES, map(float, times)))) for video, frame, psnr, ssim, *times in rows]

