"""Super-resolve videos x4 with Self-Blind-VSR and score them: ``python -m jittor_sbvsr.infer``.

Follows upstream inference.py (upstream-conventions §3): 5-frame windows, outputs
``<output>/<run-name>/<video>/<frame>.png``,
PSNR/SSIM on uint8 RGB with a 4-pixel border crop, per-video and pooled averages, a log file. Differences
(all additive): inputs may be frame folders, dataset folders or video files in any frame format; the
PyTorch checkpoint loads without PyTorch; every frame's features are computed once (``engine``); timings
are synchronised and taken after a warm-up; a CSV, a JSON summary, optional video/kernels/Y-channel
metrics/tiling; errors are one line ``infer: error: <path>: <problem>`` with exit status 2.

This module is the command: arguments, the run folder, the log, the run's header and summary, exit statuses.
The window loop and what it writes are ``pipeline.Runner``, driven by the ``RunSettings`` built here.
"""
import argparse
import contextlib
import dataclasses
import os
import sys
import time
from fractions import Fraction

from . import ffmpeg, metrics, resume, run_folder
from .ranks import Group, plan
from .checkpoint import CheckpointError
from .default_weights import (DEFAULT_CHECKPOINT, DEMO_WEIGHTS, MODEL_DIR, PRESETS, build_model, default_model_paths,
                              describe_weights, resolve_model)
from .files import AppendFile
from .interrupts import default_sigchld, exit_status, sigterm_raises
from .pipeline import (RunSettings, Runner, describe_share, merge_metrics, metrics_file, summarize, summary_lines,
                       write_summary)
from .video_io import InputError, check_frame_files, discover, length_problem, pair_gt

PROG = "infer"
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
                   help="bf16: the convolutions (features, PWC-Net, reconstruction) in bfloat16 with float32 "
                        "accumulation (CPU; correlation, warping, resizing and sums stay fp32); 2.5-3x faster with "
                        "AMX, 1.7-2x on other AVX512-BF16 CPUs, slower without ('python -m jittor_sbvsr.doctor' "
                        "measures), within 0.005 dB of fp32 where measured (README)")
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


def run_settings(args):
    """The pipeline's RunSettings from the parsed arguments (each field is the option of its name)."""
    return RunSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RunSettings)})


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


def prepare_inputs(args):
    """Discover and validate the input and GT videos before anything heavy starts: names, lengths and every
    frame file's header and integrity (a corrupt or odd-sized frame is found before the model loads)."""
    if args.preset and not os.path.exists(args.input):
        raise InputError(args.input, f"input not found: --preset {args.preset} expects the upstream test set under "
                                     f"--data-root ({args.data_root})")
    videos = discover(args.input)
    gt_pairs = pair_gt(videos, discover(args.gt, "GT"), args.gt) if args.gt else {}
    for v in videos:
        problem = None if v.is_file else length_problem(len(v.frame_paths), args.border)
        if problem:
            raise InputError(v.path, problem)
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
            from .runtime import check_settings

            check_settings()  # before anything is written (runtime.init checks again)
            demo = None
            if args.demo:
                if group.size > 1:
                    raise InputError("--demo", "runs in one process; start it without mpirun")
                from .demo import Demo

                claimed = cleanup.enter_context(contextlib.closing(claim_run_dir(args, [], group)))
                demo = Demo()
                args.input, args.gt = demo.write(claimed.path)
            videos, gt_pairs = prepare_inputs(args)
            if group.size > 1 and len(videos) == 1 and args.save_video and not args.save_images:
                raise InputError(videos[0].path, "--save-video of one video shared by several processes is encoded "
                                                 "from the PNGs: drop --no-images")
            model_path = None if model is not None else resolve_model(args.model, args.preset,
                                                                      allow_untrained=args.demo)
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
    settings = run_settings(args)
    header = {"run": os.path.basename(run_dir), "input": args.input, "gt": args.gt,
              "model": model_path or ("<given>" if model is not None else "<untrained, seed 0>"),
              "untrained": untrained, "border": args.border,
              "metrics": {"space": settings.space, "crop_border": metrics.CROP_BORDER},
              "tile": args.tile, "device": runtime.report(), "processes": group.size, "precision": args.precision}
    if args.precision == "bf16":
        from cuda_ops import conv_onednn, onednn_library

        if not conv_onednn.available():
            raise InputError("--precision", "bf16 runs on the CPU through oneDNN, which this run does not use "
                                            "(CUDA, or no oneDNN); drop --precision or add --cpu")
        header["device"] += f" | bf16 convolutions: {onednn_library.describe('bf16')}"
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
            + (", ".join(describe_share(videos, share) for share in shares) or "nothing"))
    runner = None
    complete = False
    try:
        net = model if model is not None else build_model(model_path, log, args.allow_nonfinite)
        runner = Runner(settings, net, log, run_dir, metrics_file(group.rank, group.size))
        shared = group.size > 1 and len(videos) == 1  # one video cut among the processes
        for share in shares:
            video = videos[share.video]
            runner.run_video(video, gt_pairs.get(video.name), share.start, share.stop, encode=not shared)
        group.barrier()  # wait until every process has written its frames
        if group.size > 1 and group.leader:
            runner.results = merge_metrics(run_dir, group.size, [v.name for v in videos])
            if shared and args.save_video:
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
        demo.report(log, runner.results, settings.space)
    return 0


if __name__ == "__main__":
    sys.exit(main())
