"""Fine-tune Self-Blind-VSR on the clip you want to restore, then restore it: ``python -m jittor_sbvsr.adapt``.

The training signal needs no HR frames (the network restores its own input after blurring and decimating it
again), so it can be applied to the very clip a user has. The blur used for that is ``--kernel``: the clip's
own blur when the user knows it (a Gaussian sigma or a kernel file), else KernelNet's estimate, trained along
or frozen. Measured (README): with the clip's true blur adapting gains, outside the training range by more
than 1 dB; with the estimates it lost PSNR, so a kernel must be chosen explicitly. Steps of the trainer's
loss on crops of the clip's LR frames (``trainer.adaptation``) start from trained weights; held-out windows
of the clip are scored before and after, and adapted weights that do not improve that score by KEEP_MARGIN
are not kept. Then ``infer`` runs on the clip with the weights kept.

Folder (``--output DIR``)::

    config.json, log.txt         options (``--resume`` reads them back) and everything printed
    loss.csv, loss.png           training loss per step, held-out loss before and after (PNG needs matplotlib)
    summary.json                 steps, time, held-out losses, which weights were kept
    model/model_latest.pkl       weights, Adam moments and step count (``--resume DIR`` continues from here)
    model/adapted.pkl            the weights kept (the starting ones when adapting made things worse)
    infer/                       infer's outputs with those weights (unless --no-infer)

Errors are one line ``adapt: error: <path>: <problem>``, exit status 2. Ctrl-C or SIGTERM stops at the end
of the current step, saves model_latest.pkl (written to a temporary name and renamed) and exits 130 or 143;
a second signal stops at once, leaving the last save.
"""
import argparse
import json
import math
import os
import signal
import sys
import time

from .checkpoint import CheckpointError
from .trainer.experiment import Experiment, ExperimentError
from .files import write_bytes
from .video_io import InputError

PROG = "adapt"
DEFAULT_STEPS = 200
SAVE_EVERY_S = 60.0  # seconds of training between saves of model_latest.pkl
# adapted weights are kept only when they lower the held-out loss by at least this fraction: in the benchmark
# (tools/bench_adapt.py) changes of a few tenths of a percent went either way in PSNR
KEEP_MARGIN = 0.01
# options of the invocation, not of the run: never read back from config.json
INVOCATION_ONLY = ("resume", "quiet", "cpu")


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m jittor_sbvsr.adapt", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Self-supervised fine-tuning of Self-Blind-VSR on a low-resolution clip (no HR frames "
                    "needed), then super-resolution of that clip with the adapted weights.",
        epilog="examples:\n  python -m jittor_sbvsr.adapt clip.mp4 --kernel 1.6 --minutes 10 --output adapted/clip\n"
               "  python -m jittor_sbvsr.adapt LR_frames/ --kernel my_kernel.npy --steps 300 --gt HR_frames/\n"
               "  python -m jittor_sbvsr.adapt --resume adapted/clip --steps 500")
    p.add_argument("input", nargs="?", help="folder of frames, dataset folder of videos or video file (as infer)")
    p.add_argument("--model", help="starting weights (never written to); default: infer's default weights")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help=f"adapt for this many steps in all (default {DEFAULT_STEPS})")
    budget.add_argument("--minutes", type=float, help="adapt for this many minutes of training time in all")
    p.add_argument("--patch-size", type=int, default=32, help="LR crop size in pixels, a multiple of 4 (default 32)")
    p.add_argument("--batch-size", type=int, default=4, help="crops per step (default 4)")
    p.add_argument("--kernel", metavar="K",
                   help="required: the clip's blur, which re-degrades it: a Gaussian sigma in HR pixels (e.g. 1.6) or "
                        "a .npy file of a 2-D kernel; or, blind, 'learn' (KernelNet trained along, the paper's scheme) "
                        "or 'estimate' (KernelNet's estimate from the starting weights, frozen), which lowered PSNR in "
                        "every measurement (README)")
    p.add_argument("--lr", type=float, default=2e-5,
                   help="learning rate of every module but the flow net (default 2e-5)")
    p.add_argument("--flow-lr", type=float, default=0.0,
                   help="learning rate of PWC-Net (default 0: frozen)")
    p.add_argument("--max-frames", type=int, default=100,
                   help="train on the first N frames of each video (they are kept in memory; default 100)")
    p.add_argument("--seed", type=int, default=1, help="seeds the crops and flips")
    p.add_argument("--output", help="folder of this run (default adapt_results/<input>_<date-time>)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR (options from DIR/config.json "
                                                   "unless given again, e.g. a larger --steps)")
    p.add_argument("--no-infer", action="store_true", help="only adapt; do not super-resolve the input")
    p.add_argument("--gt", help="HR ground truth of the input, passed to infer for PSNR/SSIM")
    p.add_argument("--border", action="store_true", help="infer also restores the first and last 2 frames")
    p.add_argument("--log-every", type=int, default=25, metavar="N", help="a log line every N steps (default 25)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even when CUDA is available")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def parse_args(argv):
    """(options, the resumed run's (experiment, state) or None). Values given on the command line win over a
    resumed run's config.json, which wins over the defaults; a new --steps or --minutes replaces the old budget."""
    parser = build_parser()
    given = parser.parse_args(argv)
    resumed = None
    if given.resume:
        from .trainer.adaptation import STATE_FORMAT

        exp, config, state = Experiment.open(given.resume, checkpoint_format=STATE_FORMAT)
        for name in ("input", "model"):
            mine, theirs = getattr(given, name), config[name]
            if mine and os.path.abspath(mine) != os.path.abspath(theirs):
                parser.error(f"--resume {given.resume} adapts {theirs} ({name}); give no {name} or that one")
        defaults = {k: v for k, v in config.items() if k not in INVOCATION_ONLY}
        if given.steps is not None or given.minutes is not None:
            defaults.pop("steps")
            defaults.pop("minutes")
        parser.set_defaults(**defaults)
        resumed = (exp, state)
    args = parser.parse_args(argv)
    if not args.input:
        parser.error("give an input (frame folder, dataset folder or video file) or --resume DIR")
    if not args.kernel:
        parser.error("give --kernel: the clip's blur as a Gaussian sigma in HR pixels (e.g. 1.6) or a .npy kernel; "
                     "--kernel learn or estimate adapt blind, which lowered PSNR in every measurement (README)")
    if args.steps is None and args.minutes is None:
        args.steps = DEFAULT_STEPS
    if args.patch_size < 16 or args.patch_size % 4:
        parser.error(f"--patch-size must be a multiple of 4 and at least 16 (got {args.patch_size})")
    for name in ("steps", "minutes", "batch_size", "max_frames", "log_every"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive (got {value})")
    if not args.lr > 0 or not args.flow_lr >= 0:
        parser.error("--lr must be > 0 and --flow-lr >= 0")
    args.output = given.resume or args.output or os.path.join(
        "adapt_results", f"{os.path.basename(os.path.normpath(args.input))}_{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    return args, resumed


class StopRequest:
    """While active, SIGINT and SIGTERM only set ``signum``: the loop stops at the end of the step and saves. A
    second signal raises KeyboardInterrupt at once."""

    def __init__(self):
        self.signum, self._previous = None, {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    @property
    def status(self):
        """Exit status for the signal received: 128 + its number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


class Run:
    """One adaptation: the folder, the starting weights, the Adaptation and its bookkeeping."""

    def __init__(self, args, resumed):
        from . import runtime
        from .data.lr_windows import LRWindows, read_clips
        from .default_weights import resolve_model
        from .trainer.adaptation import Adaptation
        from .trainer.experiment import model_state
        from .video_io import discover
        from .weights import load_model

        self.args = args
        runtime.init("cpu" if args.cpu else "auto")
        self.model_path = resolve_model(args.model)
        args.model = self.model_path
        self.adapted_path = os.path.join(args.output, "model", "adapted.pkl")
        for written in (self.adapted_path, os.path.join(args.output, "model", "model_latest.pkl")):
            if os.path.exists(written) and os.path.samefile(written, self.model_path):
                raise InputError(self.model_path, "is where this run writes its weights; the starting weights "
                                                  "are never overwritten: choose another --output")
        model, _, self.config = load_model(self.model_path)
        kernel = read_kernel(args.kernel, self.config.ksize)
        notes = []
        self.windows = LRWindows(read_clips(discover(args.input), args.max_frames, notes.append),
                                 args.patch_size, seed=args.seed)
        self.start_weights = model_state(model)
        self.adaptation = Adaptation(model, self.windows, args.batch_size, args.lr, args.flow_lr, kernel=kernel)
        if resumed:
            self.exp, state = resumed
            try:
                self.adaptation.load_state(state)
            except ValueError as err:  # StateDictMismatch included
                raise ExperimentError(f"{self.exp.path}: model_latest.pkl does not fit the model of "
                                      f"{self.model_path} ({err})") from None
            self.before = state["held_out_before"]
            self.exp.write_config(vars(args))
            self.exp.log(f"resumed {self.exp.path} after step {self.adaptation.steps}")
        else:
            self.exp = Experiment.create(args.output, vars(args), other="another --output folder")
            self.before = None
        for line in notes:
            self.exp.log(line)

    def log_start(self):
        from . import runtime
        from .default_weights import describe_weights

        args, budget = self.args, (f"{self.args.steps} steps" if self.args.steps else
                                   f"{self.args.minutes:g} minutes of training")
        self.exp.log(f"adapt: {args.input} from {describe_weights(self.model_path)} ({self.config.describe()})")
        self.exp.log(f"clip: {self.windows.describe()}")
        self.exp.log(f"kernel: {describe_kernel(args.kernel)}")
        self.exp.log(f"training: {budget}, batch {args.batch_size} of {args.patch_size}x{args.patch_size} LR "
                     f"crops, lr {args.lr:g}, flow lr {args.flow_lr:g} | {runtime.report()}")

    def done(self):
        a = self.adaptation
        return a.steps >= self.args.steps if self.args.steps else a.seconds >= 60 * self.args.minutes

    def save_state(self):
        self.exp.save_checkpoint("model_latest", dict(self.adaptation.state(), held_out_before=self.before,
                                                      meta=self.meta()))

    def meta(self, **extra):
        from .config import META_KEY

        return {META_KEY: self.config.to_dict(), "adapted_from": self.model_path, "input": self.args.input,
                "steps": self.adaptation.steps, **extra}

    def train(self, stop):
        """Steps until the budget is spent, a signal arrives or the loss stops being finite. Returns False in
        the last case (the weights are then not saved)."""
        a = self.adaptation
        if self.before is None:
            self.before = a.held_out()
            self.exp.log(f"held-out loss before: {format_loss(self.before)}")
            self.save_state()
        bar = self.progress()
        last_save = a.seconds
        try:
            while not self.done() and stop.signum is None:
                row = a.step()
                if not math.isfinite(row["loss"]):
                    self.exp.log(f"step {a.steps}: the loss is {row['loss']}; adapting stops (lower --lr)")
                    return False
                self.show(row, bar)
                if a.seconds - last_save >= SAVE_EVERY_S:
                    self.save_state()
                    last_save = a.seconds
        finally:
            if bar is not None:
                bar.close()
        self.save_state()
        return True

    def progress(self):
        """A tqdm bar over steps (or over seconds with --minutes) on a terminal, else None."""
        if self.args.quiet or not sys.stderr.isatty():
            return None
        from tqdm import tqdm

        a = self.adaptation
        if self.args.steps:
            return tqdm(total=self.args.steps, initial=min(a.steps, self.args.steps), unit="step", desc=PROG,
                        file=sys.stderr, dynamic_ncols=True)
        total = round(60 * self.args.minutes)
        return tqdm(total=total, initial=min(round(a.seconds), total), unit="s", desc=PROG, file=sys.stderr,
                    dynamic_ncols=True)

    def show(self, row, bar):
        a, args = self.adaptation, self.args
        recent = [r["loss"] for r in a.history[-args.log_every:]]
        if bar is not None:
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", step=a.steps)
            bar.update(1 if args.steps else min(round(a.seconds), bar.total) - bar.n)
        if a.steps % args.log_every == 0:
            per_step = a.seconds / a.steps
            left = (args.steps - a.steps) * per_step if args.steps else 60 * args.minutes - a.seconds
            self.exp.log(f"step {a.steps}{f'/{args.steps}' if args.steps else ''}: loss {format_loss(row)} | "
                         f"mean of the last {len(recent)} {sum(recent) / len(recent):.4f} | {per_step:.2f} s/step, "
                         f"ETA {_hms(max(left, 0))}")

    def finish(self, trained):
        """Score the held-out crops again, keep the adapted weights only if they did better, write
        model/adapted.pkl, the loss curve and summary.json. Returns the summary."""
        from .trainer.experiment import model_state

        a = self.adaptation
        after = a.held_out() if trained else None
        keep = after is not None and better(self.before, after)
        if keep:
            verdict = "keeping the adapted weights"
            weights = model_state(a.model)
        else:
            verdict = (f"adapting did not lower it by {KEEP_MARGIN:.0%}, keeping the starting weights "
                       f"{self.model_path}" if trained else
                       f"adapting failed, keeping the starting weights {self.model_path}")
            weights = self.start_weights
        change = (f" ({100 * (after['loss'] / self.before['loss'] - 1):+.2f}%)" if after and self.before["loss"]
                  else "")
        self.exp.log(f"held-out loss after {a.steps} steps: {format_loss(after) if after else 'not measured'}")
        self.exp.log(f"guard: held-out loss {self.before['loss']:.5f} -> "
                     f"{after['loss'] if after else float('nan'):.5f}{change}: {verdict}")
        self.exp.save_checkpoint("adapted", {"model": weights, "meta": self.meta(
            kept="adapted" if keep else "start", held_out_before=self.before, held_out_after=after)})
        rows = [dict(step=0, seconds=0.0, split="held-out", **self.before)]
        rows += [dict(r, split="train") for r in a.history]
        if after:
            rows.append(dict(step=a.steps, seconds=round(a.seconds, 3), split="held-out", **after))
        self.exp.write_table("loss.csv", rows, loss_columns())
        train_rows = [r for r in rows if r["split"] == "train"]
        held_rows = [{"step": r["step"], "held_out_loss": r["loss"]} for r in rows if r["split"] == "held-out"]
        self.exp.write_plot("loss.png", train_rows + held_rows, "step", ("loss", "held_out_loss"),
                            "adaptation: training loss and held-out loss")
        summary = {"input": self.args.input, "model": self.model_path, "adapted_weights": self.adapted_path,
                   "kept": "adapted" if keep else "start", "steps": a.steps, "train_seconds": round(a.seconds, 3),
                   "held_out_separate": self.windows.separate, "held_out_before": self.before,
                   "held_out_after": after if after and all(map(math.isfinite, after.values())) else None}
        write_bytes(os.path.join(self.exp.path, "summary.json"), (json.dumps(summary, indent=2) + "\n").encode("utf-8"))
        self.exp.log(f"adapted weights: {self.adapted_path} ({'adapted' if keep else 'the starting ones'})")
        return summary

    def infer_argv(self):
        args = self.args
        argv = [args.input, "--model", self.adapted_path, "--output", args.output, "--run-name", "infer",
                "--overwrite"]  # the folder belongs to this adapt run: a resumed run redoes its inference
        return argv + [flag for flag, on in (("--border", args.border), ("--cpu", args.cpu),
                                             ("--quiet", args.quiet)) if on] + (["--gt", args.gt] if args.gt else [])


def read_kernel(spec, ksize):
    """``--kernel``: one of KERNEL_MODES as it is, else a known blur as a [ksize, ksize] float32 array summing to
    1: a Gaussian of that sigma (HR pixels), or a .npy file of a square, odd-sized, non-negative 2-D kernel no
    larger than ksize (zero-padded to it, normalised). InputError naming the file or value otherwise."""
    import numpy as np

    from .degrade import fspecial_gaussian
    from .trainer.adaptation import KERNEL_MODES

    if spec in KERNEL_MODES:
        return spec
    if not spec.endswith(".npy"):
        try:
            return fspecial_gaussian(float(spec), ksize).astype(np.float32)
        except ValueError:
            raise InputError(spec, f"--kernel is not {', '.join(KERNEL_MODES)}, a positive Gaussian sigma or a "
                                   ".npy file") from None
    try:
        kernel = np.load(spec, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(spec, f"cannot read the kernel ({err})") from None
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 != 1 or kernel.shape[0] > ksize:
        raise InputError(spec, f"the kernel must be a square 2-D array of odd size at most {ksize} (got shape "
                               f"{kernel.shape})")
    if not np.issubdtype(kernel.dtype, np.number) or not np.all(np.isfinite(kernel)) or kernel.min() < 0 \
            or not kernel.sum() > 0:
        raise InputError(spec, "the kernel must hold finite, non-negative numbers with a positive sum")
    pad = (ksize - kernel.shape[0]) // 2
    return (np.pad(kernel.astype(np.float64), pad) / kernel.sum()).astype(np.float32)


def describe_kernel(spec):
    """The log's words for a ``--kernel`` value."""
    if spec == "learn":
        return "KernelNet's estimate, KernelNet trained along"
    if spec == "estimate":
        return "KernelNet's estimate from the starting weights (KernelNet frozen)"
    return f"known: {f'Gaussian of sigma {spec}' if not spec.endswith('.npy') else spec} (KernelNet unused)"


def better(before, after):
    """Whether held-out scores ``after`` are better enough than ``before`` to keep the adapted weights."""
    return after["loss"] < (1 - KEEP_MARGIN) * before["loss"]


def loss_terms():
    """Names of the loss terms (the trainer's, which imports Jittor: not at this module's import)."""
    from .trainer.loop import TERMS

    return TERMS


def loss_columns():
    """Columns of loss.csv."""
    return ("step", "seconds", "split", "loss") + loss_terms()


def format_loss(row):
    return f"{row['loss']:.5f} (" + ", ".join(f"{k} {row[k]:.4g}" for k in loss_terms()) + ")"


def _hms(seconds):
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def main(argv=None):
    """CLI entry point; returns the exit status."""
    try:
        args, resumed = parse_args(argv)
        run = Run(args, resumed)
    except (InputError, CheckpointError, ExperimentError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted before adapting began; nothing was trained", file=sys.stderr)
        return 130
    try:
        with StopRequest() as stop:
            run.log_start()
            trained = run.train(stop)
            if stop.signum is not None:
                message = (f"interrupted after step {run.adaptation.steps}: weights, optimizer state and step count "
                           f"saved in {run.exp.model_dir}/model_latest.pkl; continue with --resume {args.output}")
                run.exp.log(message, console=False)
                print(f"{PROG}: {message}", file=sys.stderr)
                return stop.status
            run.finish(trained)
            if stop.signum is not None:
                message = f"interrupted: {run.adapted_path} is written; infer was not run"
                run.exp.log(message, console=False)
                print(f"{PROG}: {message}", file=sys.stderr)
                return stop.status
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted again: the last save in {run.exp.model_dir} is kept", file=sys.stderr)
        return 130
    except OSError as err:
        print(f"{PROG}: error: {err.filename or args.output}: {err.strerror or err}", file=sys.stderr)
        return 2
    if args.no_infer:
        return 0
    from . import infer

    run.exp.log(f"infer: python -m jittor_sbvsr.infer {' '.join(run.infer_argv())}")
    return infer.main(run.infer_argv())


if __name__ == "__main__":
    sys.exit(main())
