"""The experiment folder: configuration, log, per-epoch metrics, plots and checkpoints.

    <dir>/config.json              every resolved option
    <dir>/log.txt                  everything the run printed (appended on resume)
    <dir>/metrics.csv, .json       one row per epoch: learning rate, mean training losses, validation PSNRs
    <dir>/loss.png, psnr.png       curves (only when matplotlib is installed)
    <dir>/model/model_latest.pkl   training state: model, optimizer moments, epoch, history, RNG states
    <dir>/model/model_best.pkl     model of the epoch with the best validation PSNR
    <dir>/model/model_<epoch>.pkl  model after each epoch (--save-middle-models)

Checkpoints are pickles of ``{"model": {key: np.ndarray}, "epoch": int, "meta": {...}, ...}`` readable by
``jittor_sbvsr.weights.load_weights``. Every file is written to a temporary name, forced to disk and renamed
into place (``files.dump_atomic``), so an interrupted run or a crash never leaves a truncated file.
"""
import csv
import io
import json
import os
import pickle
import time
from collections import OrderedDict

import numpy as np
from tqdm import tqdm

from ..checkpoint import load_checkpoint
from ..config import META_KEY
from ..files import dump_atomic, write_bytes

CHECKPOINT_FORMAT = "jittor-sbvsr-train-1"
TRAINING_STATE = ("model", "optimizer", "epoch", "history", "rng")  # what model_latest.pkl holds to resume
METRIC_COLUMNS = ("epoch", "lr", "loss", "L1", "cycle", "boundaries", "sparse", "center", "cycle_psnr",
                  "down_psnr", "psnr", "bicubic_psnr", "best", "seconds")


class ExperimentError(Exception):
    """An experiment folder cannot be created or resumed; the message is one line."""


class TrainingError(Exception):
    """A run cannot go on; the message is one line saying what to change."""


def model_state(model):
    """{key: float32 np.ndarray} of every parameter, in registration order."""
    return OrderedDict((k, np.ascontiguousarray(v.numpy())) for k, v in model.state_dict().items())


class Experiment:
    """Writes the files of one experiment folder; ``writer=False`` (MPI ranks > 0) makes every write a no-op.
    Log lines are echoed with tqdm.write so that they do not break the progress bar."""

    def __init__(self, path, writer=True, echo=tqdm.write):
        self.path, self.writer, self.echo = path, writer, echo
        self.model_dir = os.path.join(path, "model")
        self._plot_note = False

    @classmethod
    def create(cls, path, config, writer=True, echo=tqdm.write, other="another --save name"):
        """A new folder; refuses one that already holds a run (the error suggests --resume or ``other``)."""
        if writer and os.path.exists(os.path.join(path, "config.json")):
            raise ExperimentError(f"{path}: folder already holds a run; continue it with --resume {path} or "
                                  f"choose {other}")
        exp = cls(path, writer, echo)
        if writer:
            os.makedirs(exp.model_dir, exist_ok=True)
            exp.write_config(config)
        return exp

    @classmethod
    def open(cls, path, writer=True, echo=tqdm.write, checkpoint_format=CHECKPOINT_FORMAT):
        """An existing folder to resume: returns (experiment, config dict, training state); the state must
        be of ``checkpoint_format`` (the trainer's, or another program's that uses this folder layout)."""
        latest = os.path.join(path, "model", "model_latest.pkl")
        config_path = os.path.join(path, "config.json")
        for needed in (config_path, latest):
            if not os.path.isfile(needed):
                raise ExperimentError(f"{needed}: not found; --resume needs a folder written by this program")
        try:
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
        except ValueError as e:  # malformed JSON or text that is not UTF-8
            raise ExperimentError(f"{config_path}: not valid JSON ({e})") from None
        if not isinstance(config, dict):
            raise ExperimentError(f"{config_path}: not a JSON object of options")
        state, _ = load_checkpoint(latest)
        if not isinstance(state, dict) or state.get("format") != checkpoint_format:
            raise ExperimentError(f"{latest}: not a checkpoint of this program (format {checkpoint_format!r} "
                                  "with optimizer state expected)")
        needed = TRAINING_STATE if checkpoint_format == CHECKPOINT_FORMAT else ("model",)
        missing = [key for key in needed if key not in state]
        if missing:
            raise ExperimentError(f"{latest}: training checkpoint without {', '.join(missing)}")
        return cls(path, writer, echo), config, state

    def write_config(self, config):
        if self.writer:
            write_bytes(os.path.join(self.path, "config.json"),
                        (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(), fsync=True)

    def log(self, line, console=True):
        """Append ``line`` to log.txt and (unless ``console=False``) print it."""
        if not self.writer:
            return
        if console:
            self.echo(line)
        with open(os.path.join(self.path, "log.txt"), "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def save_checkpoint(self, name, payload):
        """Pickle ``payload`` to model/<name>.pkl atomically."""
        if self.writer:
            dump_atomic(os.path.join(self.model_dir, f"{name}.pkl"),
                        lambda f: pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL), fsync=True)

    def save_epoch(self, model, optimizer_state, epoch, history, rng_state, is_best, keep_epoch_model,
                   model_config):
        """All checkpoints of a finished epoch: model_latest (full training state), model_best, model_<epoch>;
        each records ``model_config`` so that ``infer`` rebuilds the network as it was trained."""
        if not self.writer:
            return
        weights = model_state(model)
        meta = {"epoch": epoch, "psnr": history[-1].get("psnr"), "saved": time.strftime("%Y-%m-%d %H:%M:%S"),
                META_KEY: model_config.to_dict()}
        self.save_checkpoint("model_latest", {"format": CHECKPOINT_FORMAT, "model": weights, "epoch": epoch,
                                              "optimizer": optimizer_state, "history": history,
                                              "rng": rng_state, "meta": meta})
        if is_best:
            self.save_checkpoint("model_best", {"model": weights, "epoch": epoch, "meta": meta})
        if keep_epoch_model:
            self.save_checkpoint(f"model_{epoch}", {"model": weights, "epoch": epoch, "meta": meta})

    def write_metrics(self, history):
        """metrics.csv and metrics.json from the per-epoch rows; then the plots."""
        if not self.writer:
            return
        self.write_table("metrics.csv", history, METRIC_COLUMNS)
        write_bytes(os.path.join(self.path, "metrics.json"), (json.dumps(history, indent=1) + "\n").encode(),
                    fsync=True)
        self.write_plot("loss.png", history, "epoch", ("loss", "L1", "cycle", "boundaries", "sparse", "center"),
                        "training loss")
        self.write_plot("psnr.png", history, "epoch", ("psnr", "bicubic_psnr", "down_psnr", "cycle_psnr"),
                        "validation PSNR (dB)")

    def write_table(self, filename, rows, columns):
        """<dir>/<filename>: CSV of ``columns`` of ``rows`` (dicts; missing or None values left empty)."""
        if not self.writer:
            return
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
        write_bytes(os.path.join(self.path, filename), text.getvalue().encode(), fsync=True)

    def write_plot(self, filename, rows, x_key, keys, title):
        """<dir>/<filename>: PNG of the curves ``keys`` of ``rows`` over ``x_key`` (rows lacking a key are gaps),
        if matplotlib is installed; otherwise a note in the log, once."""
        if not self.writer:
            return
        try:
            import matplotlib
        except ImportError:
            if not self._plot_note:
                self.log("note: matplotlib is not installed, so no plots are drawn (the CSV files have the numbers)")
                self._plot_note = True
            return
        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for key in keys:
            points = [(row[x_key], row[key]) for row in rows if row.get(key) is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, label=key, marker="o" if len(points) < 3 else None)
        ax.set_xlabel(x_key)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        write_bytes(os.path.join(self.path, filename), buf.getvalue(), fsync=True)
