"""Super-resolve videos x4 with Self-Blind-VSR and score them: ``python -m jittor_sbvsr.infer``.

Follows upstream inference.py (upstream-conventions §3): 5-frame windows, outputs
``<output>/<run-name>/<video>/<frame>.png``,
PSNR/SSIM on uint8 RGB with a 4-pixel border crop, per-video and pooled averages, a log file. Differences
(all additive): inputs may be frame folders, dataset folders or video files in any frame format; the
PyTorch checkpoint loads without PyTorch; every frame's features are computed once (``engine``); timings
are synchronised and taken after a warm-up; a CSV, a JSON summary, optional video/kernels/Y-channel
metrics/tiling; errors are one line ``infer: error: <path>: <problem>`` with exit status 2.
"""
import argparse
import contextlib
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial

from . import ffmpeg, metrics, resume, run_folder
from .ranks import Group, plan
from .background import Background
from .checkpoint import CheckpointError
from .default_weights import (DEFAULT_CHECKPOINT, DEMO_WEIGHTS, MODEL_DIR, PRESETS, build_model, default_model_paths,
                              describe_weights, resolve_model)
from .ffmpeg import VideoEncoder, container_for
from .files import AppendFile, write_atomic
from .interrupts import default_sigchld, deferred, exit_status, sigterm_raises
from .video_io import InputError, check_frame_files, discover, length_problem, pair_gt, read_image, write_png

PROG = "infer"
METRICS_COLUMNS = ["video", "frame", "psnr", "ssim", "pre_s", "forward_s", "post_s", "total_s"]
MAX_FPS = 1000
EPILOG = """\
examples:
  python -m jittor_sbvsr.infer --demo
  python -m jittor_sbvsr.infer LR_frames/ --gt HR_frames/ --model pretrain_models/self_blind_vsr_gaussian.pt
  python -m jittor_sbvsr.infer --preset Gaussian_Vid4 --data-root ../dataset
  python -m jittor_sbvsr.infer clip.mp4 --border --save-video --tile 128

Without --border the first and last 2 frames of every video are only used as context and not restored
(upstream default, the protocol of the paper's numbers); --border restores them by repeating frames as
upstream. --tile N super-resolves N x N LR tiles overlapping by --tile-overlap pixels and stitches them
(each output pixel from the tile whose centre region holds it): memory stays bounded for large frames,
but flow is estimated per tile, so outputs near tile seams differ slightly from untiled ones.
"""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"{PROG}: error: {message}\n")


def build_parser():
    p = Parser(prog="python -m jittor_sbvsr.infer", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
               description="Self-Blind-VSR x4 video super-resolution (Jittor) with PSNR/SSIM evaluation.")
    p.add_argument("input", nargs="?", help="folder of frames (png/jpg/bmp), dataset folder of video sub-folders "
                                            "(REDS/Vid4 layout) or video file (mp4/avi/mkv/mov)")
    p.add_argument("--gt", help="HR ground truth in the same layout as the input; turns on PSNR/SSIM")
    p.add_argument("--model", help="weights: a .pkl from tools/convert_weights.py, an upstream PyTorch .pt, or a "
                                   f"trainer checkpoint (default: {MODEL_DIR}/{DEFAULT_CHECKPOINT}.pkl, else .pt)")
    p.add_argument("--allow-nonfinite", action="store_true",
                   help="load weights holding NaN or infinity (refused by default: they give black frames)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="upstream quick-test set: input, GT, checkpoint and "
                                                             "run name from the upstream layout under --data-root")
    p.add_argument("--data-root", default="dataset", help="folder holding the upstream test sets (default: dataset)")
    p.add_argument("--output", default="infer_results", help="results folder (default: infer_results)")
    p.add_argument("--run-name", help="sub-folder of --output for this run (default: infer_<preset>, infer_demo "
                                      "or infer_<date-time>, with a suffix _2, _3, ... when that folder exists)")
    p.add_argument("--overwrite", action="store_true", help="write into the run folder even when it holds an "
                                                            "earlier run (files of the same name are replaced)")
    p.add_argument("--border", action="store_true", help="also restore the first and last 2 frames of each video")
    p.add_argument("--no-images", dest="save_images", action="store_false", help="do not write the output PNGs")
    p.add_argument("--save-video", action="store_true",
                   help="also write <run>/<video>.mp4 (.mkv for mkv/avi inputs and ffv1), keeping a video input's "
                        "audio and subtitle streams (copied), exact frame rate and length")
    p.add_argument("--fps", type=_rate, help="frame rate of --save-video, e.g. 25 or 30000/1001 (default: the input "
                                             "video's, or 25)")
    p.add_argument("--codec", choices=sorted(ffmpeg.CODECS), default="h264",
                   help="video codec of --save-video (default h264; h265 and lossless ffv1 when ffmpeg has them)")
    p.add_argument("--crf", type=int, help=f"quality of h264/h265, 0 (lossless) to 51 (default {ffmpeg.DEFAULT_CRF})")
    p.add_argument("--pix-fmt", help="pixel format of --save-video (default yuv420p for h264/h265, RGB for ffv1)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run of the same command in the same run folder: frames whose PNG "
                        "is complete are kept, the others computed; metrics and the video cover all frames")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: convolutions of the feature and reconstruction stacks in bfloat16 with float32 "
                        "accumulation (CPU with AVX512-BF16; flow, correlation and warping stay fp32); about 1.6x "
                        "faster here, within 0.05 dB of fp32 where measured (README)")
    p.add_argument("--no-overlap", action="store_true",
                   help="write PNGs and video in the compute thread instead of a background thread (to measure)")
    p.add_argument("--save-kernel", action="store_true",
                   help="run KernelNet and write each frame's 13x13 blur kernel estimate to <video>/kernels/ "
                        "(.npy exact, .png scaled to 0..255 and enlarged 8x)")
    p.add_argument("--y-channel", action="store_true", help="PSNR/SSIM on the BT.601 Y channel (BasicSR) instead "
                                                           "of RGB")
    p.add_argument("--tile", type=int, help="process LR tiles of this size (pixels) for large frames")
    p.add_argument("--tile-overlap", type=int, default=16, help="overlap of neighbouring tiles (default 16)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even when CUDA is available")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--log-every", type=int, default=10, metavar="N",
                   help="when stderr is not a terminal, a progress line every N frames (default 10)")
    p.add_argument("--demo", action="store_true", help="super-resolve a synthetic clip made from a scikit-image "
                                                       "photo and compare with bicubic upsampling")
    return p


def _rate(text):
    """A positive frame rate up to MAX_FPS, integer, decimal or rational (30000/1001), as a Fraction."""
    try:
        rate = Fraction(text)
    except (ValueError, ZeroDivisionError):
        rate = None
    if rate is None or not 0 < rate <= MAX_FPS:
        raise argparse.ArgumentTypeError(f"not a frame rate in (0, {MAX_FPS}]: {text!r}")
    return rate


def parse_args(argv):
    p = build_parser()
    args = p.parse_args(argv)
    sources = [name for name, on in (("an input", args.input), ("--preset", args.preset), ("--demo", args.demo)) if on]
    if len(sources) != 1:
        p.error("give exactly one of: an input path, --preset, --demo" + (f" (got {', '.join(sources)})"
                                                                          if sources else ""))
    if args.tile is not None and not (args.tile >= 8 and 0 <= args.tile_overlap <= args.tile // 2):
        p.error("--tile must be >= 8 and --tile-overlap (default 16) in [0, tile/2]: a larger overlap multiplies "
                "the tiles per frame (tile 8 with overlap 7 cuts a 32x24 frame into 425 tiles)")
    if args.demo and args.gt:
        p.error("--demo makes its own ground truth; drop --gt")
    if args.log_every < 1:
        p.error("--log-every must be positive")
    if args.crf is not None and not (0 <= args.crf <= 51 and ffmpeg.CODECS[args.codec][2]):
        p.error(f"--crf takes 0..51 and applies to h264/h265 only (codec {args.codec})")
    if args.save_video:
        try:  # the first call to ffmpeg, before Jittor is imported (see ffmpeg.exe)
            codecs = ffmpeg.available_codecs()
        except InputError as e:
            p.error(str(e))
        if args.codec not in codecs:
            p.error(f"--codec {args.codec}: this ffmpeg ({ffmpeg.exe()}) has no {ffmpeg.CODECS[args.codec][0]} "
                    "encoder")
    if args.resume and args.run_name is None and not (args.preset or args.demo):
        p.error("--resume continues the run folder that --run-name names: give the interrupted run's --run-name")
    if args.preset:
        folder, checkpoint = PRESETS[args.preset]
        args.input = os.path.join(args.data_root, folder, "LR_blurdown_x4")
        args.gt = args.gt or os.path.join(args.data_root, folder, "HR")
    args.default_name = args.run_name is None
    args.run_name = args.run_name or "infer_" + (args.preset or ("demo" if args.demo else
                                                                 time.strftime("%Y-%m-%d_%H-%M-%S")))
    return args


class RunLog:
    """Lines to the log file and (unless ``console=False``, or ``echo=False`` for the whole log) to stdout,
    above any progress bar.

    A failed write (disk full) raises an OSError naming the log; the file is not written again afterwards,
    so that reporting that very error cannot fail a second time."""

    def __init__(self, path, echo=True):
        self.file = AppendFile(path)
        self.failed, self.echo = False, echo

    def __call__(self, line, console=True):
        if not self.failed:
            try:
                self.file.write(line + "\n")
            except OSError:
                self.failed = True
                raise
        if console and self.echo:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stdout)

    def close(self):
        self.file.close()


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
    video: str
    frame: str
    psnr: float = None
    ssim: float = None
    times: dict = field(default_factory=dict)  # pre, forward, post, total (seconds)


class Runner:
    """Runs the videos of one run through a ``WindowEngine`` and writes every output."""

    def __init__(self, args, net, log, run_dir, metrics_name="metrics.csv"):
        from .engine import WindowEngine

        self.args, self.log, self.run_dir = args, log, run_dir
        self.engine = WindowEngine(net, args.tile, args.tile_overlap, args.precision)
        self.space = "y" if args.y_channel else "rgb"
        self.results = []
        self.written = 0
        self.previous = resume.previous_times(run_dir) if args.resume else {}
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

        args, scale = self.args, self.engine.scale
        out_dir = os.path.join(self.run_dir, video.name)
        if args.save_images or args.save_kernel:
            os.makedirs(os.path.join(out_dir, "kernels") if args.save_kernel else out_dir, exist_ok=True)
        inputs = InputFrames(video, self.log)
        gt_reader = FrameReader(gt, self.log, first=start) if gt else None
        encoder = self._encoder(video) if args.save_video and encode else None
        hint = video.count_hint()
        progress = Progress(video.name, hint if args.border or hint is None else max(hint - 4, 0), args.quiet,
                            args.log_every)
        kept = {}  # centre -> image finished by an earlier run

        def wanted(centre):
            if not (args.resume and args.save_images):
                return True
            stem, (h, w, c) = inputs.info[centre]
            kept[centre] = resume.finished_frame(out_dir, stem, (h * scale, w * scale, c), args.save_kernel)
            return kept[centre] is None

        windows = self._windows(video, inputs, wanted, start, stop)
        out = Background(threaded=not args.no_overlap)
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
                                                                self.space)
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
            yield from stream(self.engine, inputs, self.args.border, self.args.save_kernel, wanted, start, stop)
        except ClipTooShort as e:
            raise InputError(video.path, str(e)) from None
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
            raise out_of_memory_error(video, inputs.shape, self.args.tile) from None

    def _encoder(self, video):
        """The VideoEncoder of ``<run>/<video>.<mp4|mkv|mov>``: at the input's exact frame rate (or --fps),
        keeping a video file's audio, subtitles and length (the edge frames that are not restored without
        --border repeat their nearest restored neighbour)."""
        args = self.args
        source = video.path if video.is_file else None
        path = os.path.join(self.run_dir, video.name + container_for(args.codec, source))
        pad = (0, 0) if args.border else (2, 2)
        if any(pad):
            self.log(f"note: {path}: the first and last 2 frames repeat the nearest restored frame (not restored "
                     "without --border), so the video keeps the input's length")
        return VideoEncoder(path, args.fps or video.rate(), args.codec, args.crf, args.pix_fmt, source, pad)

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

        if self.args.save_images:
            write_png(os.path.join(out_dir, stem + ".png"), sr)
            self.written += 1
        if encoder:
            encoder.write(sr)
        if kernel is not None:
            base = os.path.join(out_dir, "kernels", stem)
            write_atomic(base + ".npy", lambda tmp: _save_npy(tmp, kernel))
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


def _save_npy(path, array):
    """np.save to exactly ``path`` (given a file name, np.save would append .npy to the temporary one)."""
    import numpy as np

    with open(path, "wb") as f:
        np.save(f, array)


def _check_length(video, n, border):
    problem = length_problem(n, border)
    if problem:
        raise InputError(video.path, problem)


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
    data = _json_safe(dict(header, complete=complete, **summary))
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    write_atomic(path, write)


def prepare_inputs(args):
    """Discover and validate the input and GT videos before anything heavy starts: names, lengths and every
    frame file's header and integrity (a corrupt or odd-sized frame is found before the model loads)."""
    if args.preset and not os.path.exists(args.input):
        raise InputError(args.input, f"input not found: --preset {args.preset} expects the upstream test set under "
                                     f"--data-root ({args.data_root})")
    videos = discover(args.input)
    gt_pairs = pair_gt(videos, discover(args.gt, "GT"), args.gt) if args.gt else {}
    for v in videos:
        if not v.is_file:
            _check_length(v, len(v.frame_paths), args.border)
    for v in videos + list(gt_pairs.values()):
        check_frame_files(v.frame_paths, verify=True)
    return videos, gt_pairs


def claim_run_dir(args, inputs, group):
    """Lock this run's folder (``run_folder.claim``) after checking that it lies apart from ``inputs``; with
    ``--resume``, remove what the interrupted run left half-written. Of several processes, rank 0 claims the
    folder and tells the others its path once it is ready (they hold no lock)."""
    if not group.leader:
        path = group.broadcast_text("")
        if not path:
            raise InputError(os.path.join(args.output, args.run_name), "process 0 could not claim the run folder "
                                                                       "(its error says why)")
        return run_folder.RunDir(path, None)
    path = ""
    try:
        run_folder.check_apart(os.path.join(args.output, args.run_name), inputs)
        claimed = run_folder.claim(args.output, args.run_name, default=args.default_name,
                                   overwrite=args.overwrite, resume=args.resume)
        if args.resume:
            resume.remove_partials(claimed.path)
        path = claimed.path
    finally:  # also after a failure, so that the other processes stop waiting
        group.broadcast_text(path)
    return claimed


def main(argv=None, model=None):
    """CLI entry point; returns the exit status. ``model`` (a PWC_Recons) replaces loading (tests)."""
    args = parse_args(argv)
    with sigterm_raises():
        return _main(args, model)


def _main(args, model):
    group = Group()
    with contextlib.ExitStack() as cleanup:  # closes the log, then releases the run folder
        log = None
        try:
            demo = None
            if args.demo:
                if group.size > 1:
                    raise InputError("--demo", "runs in one process; start it without mpirun")
                from .demo import Demo

                claimed = cleanup.enter_context(contextlib.closing(claim_run_dir(args, [], group)))
                demo = Demo(args, claimed.path)
            videos, gt_pairs = prepare_inputs(args)
            if group.size > 1 and len(videos) == 1 and args.save_video and not args.save_images:
                raise InputError(videos[0].path, "--save-video of one video shared by several processes is encoded "
                                                 "from the PNGs: drop --no-images")
            model_path = None if model is not None else resolve_model(args, allow_untrained=args.demo)
            if not args.demo:
                inputs = [args.input] + ([args.gt] if args.gt else [])
                claimed = cleanup.enter_context(contextlib.closing(claim_run_dir(args, inputs, group)))
            rank = "" if group.size == 1 else f".rank{group.rank}"
            log = cleanup.enter_context(contextlib.closing(RunLog(os.path.join(
                claimed.path, f"inference_log_{time.strftime('%Y-%m-%d_%H-%M-%S')}{rank}.txt"), echo=group.leader)))
            untrained = model is None and model_path is None
            if demo:
                demo.first_line(log, "the given network" if model is not None else describe_weights(model_path),
                                default_model_paths() + [DEMO_WEIGHTS] if untrained else None)
            return _run(args, model, model_path, untrained, videos, gt_pairs, claimed.path, log, demo, group)
        except (InputError, CheckpointError, OSError) as e:
            print(f"{PROG}: error: {_message(e)}", file=sys.stderr)
            if log is not None:
                log(f"error: {_message(e)}", console=False)
            return 2
        except KeyboardInterrupt as e:  # outside the frame loop, which reports its own interruptions
            print(f"{PROG}: interrupted", file=sys.stderr)
            return exit_status(e)


def _message(err):
    """One line ``<path>: <problem>`` for our errors and for OSErrors that name a file."""
    return f"{err.filename}: {err.strerror}" if isinstance(err, OSError) and err.filename else str(err)


def _run(args, model, model_path, untrained, videos, gt_pairs, run_dir, log, demo, group):
    from . import runtime

    runtime.init("cpu" if args.cpu else "auto")
    default_sigchld()  # no data workers here; see interrupts.default_sigchld
    header = {"run": os.path.basename(run_dir), "input": args.input, "gt": args.gt,
              "model": model_path or ("<given>" if model is not None else "<untrained, seed 0>"),
              "untrained": untrained, "border": args.border,
              "metrics": {"space": "y" if args.y_channel else "rgb", "crop_border": metrics.CROP_BORDER},
              "tile": args.tile, "device": runtime.report(), "processes": group.size, "precision": args.precision}
    if args.precision == "bf16":
        from cuda_ops import conv_onednn

        if not conv_onednn.available():
            raise InputError("--precision", "bf16 runs on the CPU through Jittor's oneDNN, which this run does not "
                                            "use (CUDA, or oneDNN off); drop --precision or add --cpu")
        header["device"] += f" | bf16 convolutions ({conv_onednn.bf16_support()} on this CPU)"
    log(f"Inference - {header['run']} with " + ("the given network" if model is not None else
                                               describe_weights(model_path)))
    for key in ("input", "gt", "model", "device", "precision"):
        log(f"{key}: {header[key]}")
    log(f"output: {run_dir}")
    log("border: on (all frames restored)" if args.border else
        "border: off (upstream default): the first and last 2 frames of each video are not restored; --border "
        "restores them")
    if args.gt:
        log(f"metrics: PSNR/SSIM on {'the Y channel' if args.y_channel else 'RGB'} of uint8 images, "
            f"{metrics.CROP_BORDER}-pixel border crop; totals pooled over all frames (upstream)")
    if args.tile:
        log(f"tiles: {args.tile}x{args.tile} LR pixels, overlap {args.tile_overlap}")
    shares = plan([v.count_hint() for v in videos], group.size, args.border)[group.rank]
    if group.size > 1:
        log(f"processes: {group.size}; this one (rank {group.rank}) restores "
            + (", ".join(_describe_share(videos, share) for share in shares) or "nothing"))
    runner = None
    complete = False
    try:
        net = model if model is not None else build_model(model_path, log, args.allow_nonfinite)
        runner = Runner(args, net, log, run_dir, "metrics.csv" if group.size == 1 else
                        f"metrics.rank{group.rank}.csv")
        for share in shares:
            video = videos[share.video]
            runner.run_video(video, gt_pairs.get(video.name), share.start, share.stop, encode=len(videos) > 1 or
                             group.size == 1)
        group.total(runner.written)  # wait until every process has written its frames
        if group.size > 1 and group.leader:
            runner.results = merge_metrics(run_dir, group.size, [v.name for v in videos])
            if len(videos) == 1 and args.save_video:
                runner.encode_pngs(videos[0], [r.frame for r in runner.results])
        complete = True
    except KeyboardInterrupt as e:
        message = f"interrupted: {runner.written if runner else 0} frame(s) written to {run_dir}, each complete"
        log(message, console=False)
        print(f"{PROG}: {message}", file=sys.stderr)
        return exit_status(e)
    finally:
        results = runner.results if runner else []
        if runner:
            runner.close()
        if group.leader:  # the others' frames are in its merged results
            summary = summarize(results)
            write_summary(os.path.join(run_dir, "summary.json"), header, summary, complete)
            if complete:
                for line in summary_lines(summary):
                    log(line)
                log(f"results: {run_dir} (metrics.csv, summary.json)")
    if demo:
        demo.report(log, runner.results)
    return 0


def _describe_share(videos, share):
    video = videos[share.video]
    if share.start == 0 and share.stop is None:
        return video.name
    return f"{video.name} frames {share.start}..{'end' if share.stop is None else share.stop - 1}"


def merge_metrics(run_dir, size, video_order):
    """Merge the processes' ``metrics.rank<N>.csv`` into ``metrics.csv`` (videos in input order; a shared
    video's ranges follow rank order, which is frame order) and return the rows as FrameResults."""
    rows = []
    for rank in range(size):
        path = os.path.join(run_dir, f"metrics.rank{rank}.csv")
        with open(path, newline="", encoding="utf-8") as f:
            rows += list(csv.reader(f))[1:]
    rows.sort(key=lambda row: video_order.index(row[0]))  # stable: frame order within each video is kept
    with contextlib.closing(AppendFile(os.path.join(run_dir, "metrics.csv"), "w")) as f:
        writer = csv.writer(f)
        writer.writerow(METRICS_COLUMNS)
        writer.writerows(rows)
    for rank in range(size):
        os.remove(os.path.join(run_dir, f"metrics.rank{rank}.csv"))
    return [FrameResult(video, frame, float(psnr) if psnr else None, float(ssim) if ssim else None,
                        dict(zip(resume.TIMES, map(float, times)))) for video, frame, psnr, ssim, *times in rows]


if __name__ == "__main__":
    sys.exit(main())
