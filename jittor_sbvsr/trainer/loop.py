"""The training loop (upstream-conventions §4): self-supervised steps, per-epoch validation, checkpoints and logs."""
import time
from dataclasses import dataclass

import numpy as np

from ..config import ModelConfig
from ..losses import LOSS_WEIGHTS, train_loss
from ..metrics import psnr
from ..runtime import is_out_of_memory, jittor
from .experiment import TrainingError

jt = jittor()

TERMS = tuple(LOSS_WEIGHTS)


def train_step(model, optimizer, x, weight=1.0, update=True, kernel=None):
    """One forward pass in 'train' mode on x [B, 5, 3, p, p] (with a known ``kernel`` [1, 1, k, k] instead of
    KernelNet's estimate when given); adds the gradient of weight * total loss to the accumulated gradients
    and, when ``update``, applies one Adam update. Returns (total, {term: value}) as floats (unweighted; under
    MPI, averaged over the processes like the gradients)."""
    out, _ = model(train_input(x, kernel))
    total, terms = train_loss(out)
    optimizer.backward(total * weight)
    if update:
        optimizer.step()
    values = {"total": total, **terms}
    if jt.in_mpi:
        values = {k: v.mpi_all_reduce("mean") for k, v in values.items()}
    jt.sync(list(values.values()))
    values = {k: v.item() for k, v in values.items()}
    return values.pop("total"), values


def accumulation_weights(n_samples, batch_size, accumulate):
    """Per-batch loss weights and update flags of one epoch: batches are grouped ``accumulate`` at a time and
    weighted by their share of the group's samples, so each update sees the group's mean loss (the last,
    smaller batch included)."""
    sizes = [batch_size] * (n_samples // batch_size) + ([n_samples % batch_size] if n_samples % batch_size else [])
    weights, updates = [], []
    for start in range(0, len(sizes), accumulate):
        group = sizes[start:start + accumulate]
        weights += [s / sum(group) for s in group]
        updates += [False] * (len(group) - 1) + [True]
    return weights, updates


def calc_psnr(a, b, shave=4):
    """Upstream's training calc_psnr: ``metrics.psnr`` with peak 1 on the raw float outputs, not on uint8
    images as ``infer`` scores them: [..., H, W] arrays in [0, 1] (no rounding, no clamping), ``shave`` pixels
    cropped from each border, 100 instead of infinity when equal."""
    if shave:
        a, b = a[..., shave:-shave, shave:-shave], b[..., shave:-shave, shave:-shave]
    value = psnr(a, b, peak=1.0)
    return 100.0 if value == float("inf") else value


def bicubic_psnr(lr_centre, gt):
    """PSNR of PIL bicubic upsampling of the LR centre frame [3, h, w] against the GT [3, H, W]: the baseline
    logged beside the validation PSNR."""
    from ..demo import bicubic

    lr8 = np.round(np.clip(lr_centre.transpose(1, 2, 0) * 255.0, 0, 255)).astype(np.uint8)
    up = bicubic(lr8, gt.shape[-1] // lr8.shape[1]).transpose(2, 0, 1) / 255.0
    h, w = min(up.shape[-2], gt.shape[-2]), min(up.shape[-1], gt.shape[-1])
    return calc_psnr(gt[..., :h, :w], up[..., :h, :w])


def validate(model, val_set):
    """Mean Cycle-PSNR (LR vs blur-down of the SR), Down-PSNR (LR vs SR of the blur-downed LR) and PSNR
    (GT vs SR) over the validation windows, on the raw float outputs (upstream-conventions §4), and the bicubic
    PSNR."""
    sums = {"cycle_psnr": 0.0, "down_psnr": 0.0, "psnr": 0.0, "bicubic_psnr": 0.0}
    n = 0
    model.eval()
    with jt.no_grad():
        for lr, gt, _ in val_set:
            out, _ = model({"x": lr, "mode": "val"})
            centre, cycle, down = out["input"].numpy(), out["input_cycle"].numpy(), out["recons_down"].numpy()
            recons, gt = out["recons"].numpy(), gt.numpy()
            h, w = min(recons.shape[-2], gt.shape[-2]), min(recons.shape[-1], gt.shape[-1])  # upstream-conventions §5
            sums["cycle_psnr"] += calc_psnr(centre, cycle)
            sums["down_psnr"] += calc_psnr(centre, down)
            sums["psnr"] += calc_psnr(gt[..., :h, :w], recons[..., :h, :w])
            sums["bicubic_psnr"] += bicubic_psnr(centre[0], gt[0])
            n += 1
    model.train()
    return {k: v / max(n, 1) for k, v in sums.items()}


def train_input(x, kernel=None):
    """The network's 'train'-mode input dict, with the known ``kernel`` when there is one."""
    return {"x": x, "mode": "train"} if kernel is None else {"x": x, "mode": "train", "kernel": kernel}


def self_supervised_loss(model, batches, kernel=None):
    """Mean total and terms of the training loss in 'train' mode over fixed batches [B, 5, 3, p, p] (with a
    known ``kernel`` as ``train_step``), without gradients: the score of weights on a clip that has no HR
    frames. Batches are weighted by their size."""
    sums, n = dict.fromkeys(("loss",) + TERMS, 0.0), 0
    model.eval()
    with jt.no_grad():
        for x in batches:
            total, terms = train_loss(model(train_input(x, kernel))[0])
            values = {"loss": total, **terms}
            jt.sync(list(values.values()))
            for k, v in values.items():
                sums[k] += v.item() * x.shape[0]
            n += x.shape[0]
    model.train()
    return {k: v / max(n, 1) for k, v in sums.items()}


@dataclass
class TrainConfig:
    """What the loop needs beyond model, optimizer and data; each field is the ``train`` option of its name."""
    epochs: int  # the last epoch to run
    lr_decay: int  # the learning rates are multiplied by ``gamma`` every ``lr_decay`` epochs
    gamma: float
    accumulate: int  # batches per optimizer update
    batch_size: int  # per update step and process; with patch_size, named when memory runs out
    patch_size: int
    save_middle_models: bool  # keep model_<epoch>.pkl of every epoch
    print_every: int  # a loss line every N batches
    no_progress: bool  # no progress bar


class Trainer:
    """Runs epochs ``start_epoch..config.epochs`` and records them in ``experiment``."""

    def __init__(self, config, model, optimizer, train_set, val_set, experiment, history=None, rng_state=None,
                 model_config=None):
        self.config, self.model, self.optimizer = config, model, optimizer
        self.model_config = model_config or ModelConfig()
        self.train_set, self.val_set, self.exp = train_set, val_set, experiment
        self.history = list(history or [])
        self.rng_state = rng_state or {}

    def best(self):
        """(best PSNR, its epoch) so far, or (None, None) without validation."""
        rows = [r for r in self.history if r.get("psnr") is not None]
        if not rows:
            return None, None
        row = max(rows, key=lambda r: r["psnr"])  # first maximum, like torch.max
        return row["psnr"], row["epoch"]

    def run(self, start_epoch):
        for epoch in range(start_epoch, self.config.epochs + 1):
            self.epoch(epoch)

    def epoch(self, epoch):
        config = self.config
        started = time.time()
        lr = self.optimizer.set_epoch(epoch, config.lr_decay, config.gamma)
        self.exp.log(f"Epoch {epoch:3d} with Lr {lr:.2e}")
        losses = self.train_epoch(epoch)
        row = {"epoch": epoch, "lr": lr, **losses}
        validating = self.val_set is not None and self.exp.writer  # under MPI only rank 0 validates
        if validating:
            row.update(validate(self.model, self.val_set))
        self.history.append(row)
        best_psnr, best_epoch = self.best()
        row["best"] = best_epoch == epoch
        row["seconds"] = round(time.time() - started, 3)
        if validating:
            self.exp.log(f"[validation]\taverage Cycle-PSNR: {row['cycle_psnr']:.3f} Down-PSNR: "
                         f"{row['down_psnr']:.3f} PSNR: {row['psnr']:.3f} (Best: {best_psnr:.3f} @epoch {best_epoch})"
                         f" | bicubic PSNR: {row['bicubic_psnr']:.3f}")
        if self.exp.writer:
            self.exp.save_epoch(self.model, self.optimizer.state(), epoch, self.history, self.rng_state,
                                is_best=row["best"], keep_epoch_model=config.save_middle_models,
                                model_config=self.model_config)
            self.exp.write_metrics(self.history)

    def train_epoch(self, epoch):
        """Mean of each loss term over the epoch's batches."""
        config = self.config
        self.train_set.set_epoch(epoch)
        self.model.train()
        weights, updates = accumulation_weights(self.train_set.total_len, self.train_set.batch_size, config.accumulate)
        sums = dict.fromkeys(("loss",) + TERMS, 0.0)
        bar = self.progress(len(weights), epoch)
        seen, started = 0, time.time()
        for i, (x, _kernel) in enumerate(self.train_set):
            try:
                total, terms = train_step(self.model, self.optimizer, x, weights[i], updates[i])
            except (RuntimeError, MemoryError) as err:
                if is_out_of_memory(err):
                    raise TrainingError(
                        f"out of memory at --batch-size {config.batch_size} --patch-size {config.patch_size}: lower "
                        f"--batch-size and raise --accumulate (effective batch = batch-size x accumulate = "
                        f"{config.batch_size * config.accumulate}), or lower --patch-size") from None
                raise
            if not np.isfinite(total):
                raise TrainingError(f"epoch {epoch}, batch {i + 1}: the loss is {total}; lower --lr")
            sums["loss"] += total
            for k in TERMS:
                sums[k] += terms[k]
            seen += x.shape[0]
            means = {k: v / (i + 1) for k, v in sums.items()}
            if bar is not None:
                bar.set_postfix(loss=f"{means['loss']:.4f}", samples_s=f"{seen / (time.time() - started):.2f}")
                bar.update(1)
            if (i + 1) % config.print_every == 0:
                self.exp.log(f"[{seen}/{self.train_set.total_len}]\tLoss : [total: {means['loss']:.4f}]"
                             + "".join(f"[{k}: {means[k]:.4f}]" for k in TERMS))
        if bar is not None:
            bar.close()
        n = len(weights)
        return {k: v / n for k, v in sums.items()}

    def progress(self, total, epoch):
        if self.config.no_progress or not self.exp.writer:
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=f"epoch {epoch}", unit="batch", dynamic_ncols=True, leave=False)
