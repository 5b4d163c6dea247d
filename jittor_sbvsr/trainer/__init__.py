"""Self-supervised training of PWC_Recons: options, optimizer, experiment folder, loop."""
from .experiment import Experiment, ExperimentError
from .loop import Trainer, TrainingError, self_supervised_loss, train_step, validate
from .optim import GROUPS, lr_at_epoch, make_optimizer
from .options import TEMPLATES, parse_args

__all__ = ["Experiment", "ExperimentError", "Trainer", "TrainingError", "self_supervised_loss", "train_step",
           "validate", "GROUPS", "lr_at_epoch", "make_optimizer", "TEMPLATES", "parse_args"]
