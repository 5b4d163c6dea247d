"""Self-supervised training of Self-Blind-VSR: ``python -m jittor_sbvsr.train --template Self_Blind_VSR_Gaussian``.

Multi-GPU: ``mpirun -np N python -m jittor_sbvsr.train ...`` (each rank reads its share of every batch,
gradients are averaged, only rank 0 writes files). See ``--help`` for every option.

Parsing the options imports no Jittor; ``run`` chooses the device once they are known (``--cpu``, also when
recorded by the run being resumed) and only then loads the Jittor-side modules.
"""
import dataclasses
import os
import random
import sys

import numpy as np

from . import runtime
from .checkpoint import CheckpointError
from .config import ModelConfig
from .data.kernels import pad_kernel
from .degrade import fspecial_gaussian
from .interrupts import exit_status, sigterm_raises
from .state_dict import load_state_dict_strict
from .trainer.experiment import Experiment, ExperimentError, TrainingError
from .trainer.options import build_parser, parse_args
from .video_io import InputError
from .weights import load_weights


def resolve(argv):
    """Options, plus (experiment, saved training state) when resuming."""
    pre, _ = build_parser().parse_known_args(argv)
    if not pre.resume:
        return parse_args(argv), None
    exp, config, state = Experiment.open(pre.resume, writer=runtime.jittor().rank == 0)
    args = parse_args(argv, resumed_config=config)
    return args, (exp, state)


def init_weights(model, args):
    """Fresh run: the whole model from --pre-train, else PWC-Net from --pwc-weights (or random) and KernelNet
    from --kernel-init-sigma (or random). Returns the lines to log."""
    if args.pre_train:
        info = load_weights(model, args.pre_train, kind="full")
        return [f"initialised the whole model from {args.pre_train} ({info['keys']} tensors)"]
    lines = [init_flow(model, args)]
    if args.kernel_init_sigma:
        model.kernel_net.start_from_kernel(pad_kernel(fspecial_gaussian(args.kernel_init_sigma)))
        lines.append(f"KernelNet starts near a Gaussian of sigma {args.kernel_init_sigma} (--kernel-init-sigma)")
    return lines


def init_flow(model, args):
    """PWC-Net from --pwc-weights, random, or random with zero flow; returns the line to log."""
    if args.random_flow_init:
        return "PWC-Net starts from random weights (--random-flow-init)"
    if args.zero_flow_init:
        model.flow_net.moduleNetwork.start_from_zero_flow()
        return "PWC-Net starts from random weights with zero flow output (--zero-flow-init)"
    if not os.path.isfile(args.pwc_weights):
        raise TrainingError(f"{args.pwc_weights}: PWC-Net weights not found; put network-default.pytorch "
                            "there, pass --pwc-weights PATH, or start the flow net from random weights "
                            "with --random-flow-init or --zero-flow-init")
    info = load_weights(model, args.pwc_weights, kind="pwc")
    return f"PWC-Net initialised from {args.pwc_weights} ({info['keys']} tensors)"


def model_config(args):
    """The network configuration of these options (stored in every checkpoint of the run)."""
    return ModelConfig(n_feat=args.n_feat, extra_rbs=args.extra_rbs, recons_rbs=args.recons_rbs)


def train_config(args):
    """The training loop's TrainConfig from the parsed options (each field is the option of its name)."""
    from .trainer.loop import TrainConfig

    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


def build_data(args):
    """(training set, validation set or None); this rank's share of each batch is read by Jittor."""
    from .data.train_set import BlurDownTrainSet
    from .data.val_set import HRLRValSet

    train_set = BlurDownTrainSet(args.data_train, kernel=args.kernel, patch_size=args.patch_size,
                                 n_frames_per_video=args.n_frames_per_video, augment=not args.no_augment,
                                 seed=args.seed, batch_size=args.batch_size * runtime.jittor().world_size,
                                 num_workers=args.n_threads, test_every=args.test_every)
    val_set = HRLRValSet(args.data_val) if args.data_val else None
    return train_set, val_set


def run(argv=None):
    args, resumed = resolve(argv)
    jt = runtime.init("cpu" if args.cpu else "auto")
    from .trainer.loop import Trainer
    from .trainer.optim import make_optimizer

    jt.set_global_seed(args.seed, different_seed_for_mpi=False)
    writer = jt.rank == 0
    train_set, val_set = build_data(args)
    config = model_config(args)
    model = config.build()
    optimizer = make_optimizer(model, args.lr, args.flow_lr)
    if resumed:
        exp, state = resumed
        try:
            load_state_dict_strict(model, state["model"])
            optimizer.load_state(state["optimizer"])
            random.setstate(state["rng"]["python"])
            np.random.set_state(state["rng"]["numpy"])
        except (ValueError, KeyError, TypeError) as err:  # StateDictMismatch included
            raise ExperimentError(f"{exp.path}: the checkpoint does not fit the model of these options ({err})")
        history, start = state["history"], state["epoch"] + 1
        exp.write_config(vars(args))
        exp.log(f"resumed {exp.path} after epoch {state['epoch']}")
    else:
        notes = init_weights(model, args)
        exp = Experiment.create(os.path.join(args.experiment_dir, args.save), vars(args), writer=writer)
        for note in notes:
            exp.log(note)
        history, start = [], 1
    exp.log(runtime.report() + (f" | {jt.world_size} MPI processes" if jt.in_mpi else ""))
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    exp.log(f"model: {config.describe()}, {n_params:,} parameters | training windows: {len(train_set.windows)} "
            f"x repeat "
            f"{train_set.repeat} | batch {args.batch_size} x accumulate {args.accumulate}"
            + (f" x {jt.world_size} processes" if jt.in_mpi else "")
            + f" | validation windows: {len(val_set.windows) if val_set else 'none'}")
    rng_state = {"python": random.getstate(), "numpy": np.random.get_state()}
    try:
        Trainer(train_config(args), model, optimizer, train_set, val_set, exp, history, rng_state,
                model_config=config).run(start)
    except KeyboardInterrupt:
        exp.log(f"interrupted: the checkpoints in {exp.model_dir} are those of the last finished epoch; continue "
                f"with --resume {exp.path}")
        raise
    exp.log(f"done: {exp.path}")
    return exp.path


def main(argv=None):
    """CLI entry point: one line and exit status 2 for a problem, 130 after Ctrl-C, 143 after SIGTERM."""
    with sigterm_raises():
        try:
            run(argv)
        except (InputError, CheckpointError, ExperimentError, TrainingError) as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt as interrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(exit_status(interrupt))


if __name__ == "__main__":
    main()
