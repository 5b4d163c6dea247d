"""Fine-tuning a trained network on one clip (``python -m jittor_sbvsr.adapt``) with the trainer's pieces.

Each step is the trainer's ``train_step`` (self-supervised loss, Adam over the 8 parameter groups) on a batch
of the clip's own LR crops (``data.lr_windows``). The same loss, measured without gradients on held-out
crops, scores the weights before and after, which is how the command decides whether to keep them.

The blur used to re-degrade the clip is one of KERNEL_MODES or a known kernel. "learn" trains KernelNet
along (the paper's scheme); "estimate" keeps KernelNet's estimate from the starting weights (KernelNet
frozen); a known kernel replaces the estimate (KernelNet frozen and unused). Frozen modules (KernelNet
unless it learns, PWC-Net when its learning rate is 0) get no gradients at all, which also saves their
backward pass.
"""
import time

import numpy as np

from ..runtime import jittor
from ..state_dict import load_state_dict_strict
from .experiment import model_state
from .loop import self_supervised_loss, train_step
from .optim import make_optimizer

jt = jittor()

STATE_FORMAT = "jittor-sbvsr-adapt-1"
KERNEL_MODES = ("learn", "estimate")


class Adaptation:
    """The model, its optimizer and the clip's windows; ``steps``, ``seconds`` (spent in steps) and ``history``
    (one row per step) describe the progress and are part of ``state()``."""

    def __init__(self, model, windows, batch_size, lr, flow_lr, kernel="learn"):
        """``kernel``: one of KERNEL_MODES or a known [k, k] numpy kernel (k = the model's kernel size)."""
        self.model, self.windows, self.batch_size = model, windows, batch_size
        known = not isinstance(kernel, str)
        if not known and kernel not in KERNEL_MODES:
            raise ValueError(f"unknown kernel mode {kernel!r} (expected {', '.join(KERNEL_MODES)} or an array)")
        self.kernel = jt.array(np.asarray(kernel, np.float32)[None, None]) if known else None
        frozen = [model.kernel_net] if known or kernel == "estimate" else []
        frozen += [model.flow_net] if flow_lr == 0 else []
        for module in frozen:
            for p in module.parameters():
                p.stop_grad()
        self.optimizer = make_optimizer(model, lr, flow_lr)
        self.steps, self.seconds, self.history = 0, 0.0, []

    def step(self):
        """One update on training batch number ``steps``; returns its row (step, seconds, loss and terms)."""
        started = time.perf_counter()
        x = jt.array(self.windows.batch(self.steps, self.batch_size))
        total, terms = train_step(self.model, self.optimizer, x, kernel=self.kernel)
        self.steps += 1
        self.seconds += time.perf_counter() - started
        row = {"step": self.steps, "seconds": round(self.seconds, 3), "loss": total, **terms}
        self.history.append(row)
        return row

    def held_out(self):
        """Mean training loss and terms on the held-out crops, without gradients (so in batches of twice the
        training batch: no activations are kept for a backward pass)."""
        batches = [jt.array(b) for b in self.windows.held_out_batches(2 * self.batch_size)]
        return self_supervised_loss(self.model, batches, self.kernel)

    def state(self):
        """Everything a resumed run needs: weights, Adam moments, step count, time and history (numpy/Python)."""
        return {"format": STATE_FORMAT, "model": model_state(self.model), "optimizer": self.optimizer.state(),
                "steps": self.steps, "seconds": self.seconds, "history": list(self.history)}

    def load_state(self, state):
        """Continue from ``state()`` output; ValueError when it does not fit the model."""
        load_state_dict_strict(self.model, state["model"])
        self.optimizer.load_state(state["optimizer"])
        self.steps, self.seconds, self.history = state["steps"], state["seconds"], list(state["history"])
