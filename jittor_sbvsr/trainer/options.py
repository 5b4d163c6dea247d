"""Command line of ``python -m jittor_sbvsr.train``: defaults, the two upstream templates, and parsing.

Precedence: a value given on the command line > the template's value > the default. (Upstream applied its
templates after argparse, so they silently replaced command-line values, upstream-conventions §5.)
"""
import argparse

from ..data.kernels import KERNEL_TYPES

# upstream-conventions §4; paths are relative to the working directory
TEMPLATES = {
    "Self_Blind_VSR_Gaussian": {
        "save": "Self_Blind_VSR_Gaussian", "kernel": "gaussian",
        "data_train": "dataset/REDS/train", "data_val": "dataset/REDS4_BlurDown_Gaussian",
    },
    "Self_Blind_VSR_Realistic": {
        "save": "Self_Blind_VSR_Realistic", "kernel": "realistic",
        "data_train": "dataset/REDS/train", "data_val": "dataset/REDS4_BlurDown_Realistic",
    },
    # the recipe of the shipped demo weights: 2 CPU cores, clips from tools/make_training_clips.py, no
    # pretrained PWC-Net (docs/training.md has the measurements behind each choice)
    "Demo_CPU": {
        "save": "Demo_CPU", "kernel": "gaussian",
        "data_train": "dataset/demo_clips/train", "data_val": "dataset/demo_clips/val",
        "patch_size": 32, "batch_size": 4, "n_threads": 1, "test_every": 100, "n_frames_per_video": 50,
        "lr": 2e-4, "flow_lr": 2e-5, "lr_decay": 12, "epochs": 36, "zero_flow_init": True, "kernel_init_sigma": 1.2,
        "n_feat": 64, "recons_rbs": 10,
    },
}


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m jittor_sbvsr.train",
        description="Self-supervised training of Self-Blind-VSR (Jittor). Command-line values override the "
                    "template's; with --resume DIR every option comes from DIR/config.json unless given again.")
    add = p.add_argument
    add("--template", choices=sorted(TEMPLATES), help="upstream configuration to start from")
    g = p.add_argument_group("data")
    g.add_argument("--data-train", default="dataset/REDS/train", help="folder holding HR/<video>/<frames>")
    g.add_argument("--data-val", default=None,
                   help="folder holding HR/ and LR_blurdown_x4/ (validated every epoch); 'none' to skip")
    g.add_argument("--kernel", choices=KERNEL_TYPES, default="gaussian", help="random training blur kernels")
    g.add_argument("--patch-size", type=int, default=160, help="LR patch size in pixels (HR crop = 4x)")
    g.add_argument("--n-frames-per-video", type=int, default=50, help="use the first N frames of each video")
    g.add_argument("--no-augment", action="store_true", help="no random flips / rotations")
    g.add_argument("--n-threads", type=int, default=4, help="data-loading worker processes (0 = in-process)")
    g.add_argument("--test-every", type=int, default=1000,
                   help="a small training set is repeated so that an epoch has about this many batches")
    g = p.add_argument_group("model")
    g.add_argument("--n-feat", type=int, default=128)
    g.add_argument("--extra-rbs", type=int, default=3, help="ResBlocks of the per-frame feature extractor")
    g.add_argument("--recons-rbs", type=int, default=20, help="ResBlocks of the reconstruction trunk")
    g.add_argument("--pwc-weights", default="pretrain_models/network-default.pytorch",
                   help="PWC-Net initialisation of a fresh run (PyTorch file or converted .pkl)")
    flow = g.add_mutually_exclusive_group()
    flow.add_argument("--random-flow-init", action="store_true",
                      help="start PWC-Net from random weights instead of --pwc-weights")
    flow.add_argument("--zero-flow-init", action="store_true",
                      help="start PWC-Net from random weights whose flow output is exactly 0 (identity warps)")
    g.add_argument("--kernel-init-sigma", type=float, default=None, metavar="SIGMA",
                   help="start KernelNet's estimate near a Gaussian of this sigma instead of a uniform 13x13 box")
    g.add_argument("--pre-train", default=None, help="initialise the whole model from these weights")
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, default=8, help="samples per forward pass (per process)")
    g.add_argument("--accumulate", type=int, default=1,
                   help="forward passes per optimizer step (effective batch = batch-size x accumulate)")
    g.add_argument("--epochs", type=int, default=500)
    g.add_argument("--lr", type=float, default=1e-4, help="learning rate of every module but the flow net")
    g.add_argument("--flow-lr", type=float, default=1e-6, help="learning rate of PWC-Net")
    g.add_argument("--lr-decay", type=int, default=100, help="halve the learning rates every N epochs")
    g.add_argument("--gamma", type=float, default=0.5, help="learning-rate decay factor")
    g.add_argument("--seed", type=int, default=1, help="seeds weights, crops, kernels and data order")
    g = p.add_argument_group("experiment")
    g.add_argument("--experiment-dir", default="experiment", help="parent folder of experiment folders")
    g.add_argument("--save", default="sbvsr", help="experiment folder name")
    g.add_argument("--resume", default=None, metavar="DIR", help="continue the experiment in DIR")
    g.add_argument("--save-middle-models", action="store_true", default=True,
                   help="also keep model_<epoch>.pkl every epoch (default)")
    g.add_argument("--no-save-middle-models", dest="save_middle_models", action="store_false",
                   help="keep only model_latest.pkl and model_best.pkl")
    g.add_argument("--print-every", type=int, default=100, help="log running losses every N batches")
    g.add_argument("--cpu", action="store_true", help="run on the CPU even when CUDA is available")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


# options that describe the run, not the invocation: restored from config.json on --resume
RESUMABLE_EXCLUDE = ("resume", "cpu", "no_progress")


def parse_args(argv=None, resumed_config=None):
    """Resolved options (argparse.Namespace): command line > template > defaults.

    ``resumed_config`` (a loaded config.json) takes the place of template and defaults, except for the
    invocation-only options in RESUMABLE_EXCLUDE and the ones given on the command line.
    """
    parser = build_parser()
    pre, _ = parser.parse_known_args(argv)
    if resumed_config is not None:
        parser.set_defaults(**{k: v for k, v in resumed_config.items() if k not in RESUMABLE_EXCLUDE
                               and k != "template"})
    elif pre.template:
        parser.set_defaults(**TEMPLATES[pre.template])
    args = parser.parse_args(argv)
    check(parser, args)
    return args


def check(parser, args):
    """Reject impossible values with one line each."""
    for name in ("patch_size", "batch_size", "accumulate", "epochs", "lr_decay", "n_frames_per_video",
                 "n_feat", "test_every", "print_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(args, name)})")
    if args.kernel_init_sigma is not None and not 0 < args.kernel_init_sigma <= 2.0:
        parser.error("--kernel-init-sigma must be in (0, 2] (its kernel must fit 13x13)")
    if args.n_threads < 0:
        parser.error("--n-threads must be >= 0")
    if args.lr <= 0 or args.flow_lr < 0:
        parser.error("--lr must be > 0 and --flow-lr >= 0")
    if args.data_val is not None and args.data_val.lower() == "none":
        args.data_val = None
